//! The event store: one interface, two engines (PostgreSQL, SQLite).
//!
//! Appends go through one writer task per process that batches concurrent requests into
//! one transaction (group commit). Each transaction locks the one-row `event_head` table,
//! so positions are gapless and in commit order even across processes: a reader that
//! reads `position > checkpoint` in order can never skip an event.

pub mod canonical;
mod live;
mod plan;
mod postgres;
pub mod snapshot;
mod sqlite;
pub mod system_log;
mod types;
mod writer;

use std::sync::Arc;
use std::time::Duration;

pub use live::{CHANNEL, Folded, Follower, Live, OrderLog};
pub use plan::{BatchPlan, Known, WriterCache, plan_batch};
use tokio::sync::{mpsc, oneshot, watch};
pub use types::*;

use crate::config::StoreSettings;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("stream {stream_id} is at version {actual}, expected {expected:?}")]
    Conflict { stream_id: String, expected: ExpectedVersion, actual: u64 },
    #[error("invalid append: {0}")]
    Invalid(String),
    #[error("the event store writer has stopped")]
    WriterStopped,
    /// A background task (a prefetching reader, a rebuild writer) panicked or was cancelled.
    #[error("{0}")]
    TaskFailed(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored event at position {position} is unreadable: {reason}")]
    Corrupt { position: i64, reason: String },
}

impl StoreError {
    fn shared(error: &sqlx::Error) -> StoreError {
        // A failed batch fails every caller in it; sqlx errors are not Clone.
        StoreError::Database(sqlx::Error::Protocol(format!("batch commit failed: {error}")))
    }
}

/// A database connection of either engine, for the store and the projection sinks.
#[derive(Clone, Debug)]
pub enum Engine {
    Postgres(sqlx::PgPool),
    Sqlite(sqlx::SqlitePool),
}

impl Engine {
    pub async fn connect(url: &str, pool_size: u32) -> Result<Engine, sqlx::Error> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            postgres::connect(url, pool_size).await.map(Engine::Postgres)
        } else if url.starts_with("sqlite:") {
            sqlite::connect(url, pool_size).await.map(Engine::Sqlite)
        } else {
            Err(sqlx::Error::Configuration("database url must start with postgres:// or sqlite:".into()))
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Engine::Postgres(_) => "postgres",
            Engine::Sqlite(_) => "sqlite",
        }
    }

    pub async fn migrate(&self) -> Result<(), sqlx::migrate::MigrateError> {
        match self {
            Engine::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
            Engine::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
        }
    }

    /// `cache` is the writer's memory of its own last commit (PostgreSQL uses it to skip a
    /// read; SQLite reads in-process under its write lock and needs none); `tag` is what the
    /// commit's announcement to other processes carries (PostgreSQL only).
    async fn commit_batch(
        &self,
        batch: &[&AppendRequest],
        cache: &mut WriterCache,
        tag: &str,
    ) -> Result<Committed, sqlx::Error> {
        match self {
            Engine::Postgres(pool) => postgres::commit_batch(pool, batch, cache, tag).await,
            Engine::Sqlite(pool) => sqlite::commit_batch(pool, batch).await,
        }
    }
}

/// What a batch commit did: one result per request, in order, and the events it wrote.
pub struct Committed {
    pub results: Vec<Result<AppendOutcome, StoreError>>,
    /// The events it wrote, with the domain events they were made from.
    pub rows: Vec<Handed>,
}

impl From<BatchPlan> for Committed {
    fn from(plan: BatchPlan) -> Self {
        let rows = plan.rows.into_iter().map(|row| (row.event, row.decoded)).collect();
        Committed { results: plan.results, rows }
    }
}

#[derive(Clone)]
pub struct EventStore {
    inner: Arc<Inner>,
}

struct Inner {
    engine: Engine,
    writer: mpsc::Sender<writer::Pending>,
    /// The newest position this process has committed.
    head: watch::Receiver<i64>,
    /// The newest position written by or for each actor (`user:{id}`): this process's
    /// appends, and everyone's once the tail passed them. What a read-your-writes read of
    /// that user's views waits for.
    writes: std::sync::Mutex<live::LastWrites>,
    /// The tail and the streams kept in memory, started on first use.
    live: std::sync::OnceLock<Arc<Live>>,
    /// This process's committed events, from the writer to the tail.
    handoff: Arc<writer::Handoff>,
    /// Events read from the database to fold streams, since the store opened.
    folded_events: std::sync::atomic::AtomicU64,
}

impl EventStore {
    /// Connects, applies migrations, and starts the group-commit writer on the current tokio
    /// runtime: the one way the service, the CLI, the tests and the benches open a store.
    pub async fn open(settings: &StoreSettings) -> Result<EventStore, sqlx::Error> {
        let engine = Engine::connect(&settings.database_url, settings.pool_size).await?;
        engine.migrate().await.map_err(|e| sqlx::Error::Migrate(Box::new(e)))?;
        Ok(EventStore::with_engine(engine, settings))
    }

    fn with_engine(engine: Engine, settings: &StoreSettings) -> EventStore {
        let (sender, receiver) = mpsc::channel(settings.append_queue_max);
        let limits = writer::Limits {
            batch_events_max: settings.batch_events_max,
            batch_wait: Duration::from_micros(settings.batch_wait_us),
        };
        let (head_sender, head) = watch::channel(0);
        let handoff = Arc::new(writer::Handoff::default());
        tokio::spawn(writer::run(engine.clone(), receiver, limits, head_sender, handoff.clone()));
        let inner = Inner {
            engine,
            writer: sender,
            head,
            writes: Default::default(),
            live: Default::default(),
            handoff,
            folded_events: Default::default(),
        };
        EventStore { inner: Arc::new(inner) }
    }

    /// Changes whenever this process commits an append (others' appends are not seen here).
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.inner.head.clone()
    }

    /// The newest position this process has committed (0 before its first append).
    pub fn own_head(&self) -> i64 {
        *self.inner.head.borrow()
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Appends one request atomically; durable when this returns `Ok`.
    pub async fn append(&self, request: AppendRequest) -> Result<AppendOutcome, StoreError> {
        request.validate()?;
        let actor = request.metadata.actor.clone();
        let (reply, answer) = oneshot::channel();
        self.inner.writer.send(writer::Pending { request, reply }).await.map_err(|_| StoreError::WriterStopped)?;
        let outcome = answer.await.map_err(|_| StoreError::WriterStopped)??;
        if let Some(actor) = actor {
            self.inner.writes.lock().expect("last writes lock").wrote(&actor, outcome.last_position);
        }
        Ok(outcome)
    }

    /// The newest position written by or for `actor` (`user:{id}`) that this process knows
    /// of: its own appends at once, other processes' once the tail passed them.
    pub fn last_write_by(&self, actor: &str) -> i64 {
        self.inner.writes.lock().expect("last writes lock").last_by(actor)
    }

    /// The tail of the log and the streams this process keeps in memory; the tail starts on
    /// the first call.
    pub fn live(&self) -> &Arc<Live> {
        self.inner.live.get_or_init(|| {
            let live = Arc::new(Live::new());
            tokio::spawn(live::tail(Arc::downgrade(&self.inner), live.clone()));
            live
        })
    }

    pub async fn read_stream(&self, stream_id: &str) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_after(stream_id, 0).await
    }

    /// The events of a stream after `version` (its first `version` events skipped).
    pub async fn read_stream_after(&self, stream_id: &str, version: u64) -> Result<Vec<RecordedEvent>, StoreError> {
        match &self.inner.engine {
            Engine::Postgres(pool) => postgres::read_stream(pool, stream_id, version).await,
            Engine::Sqlite(pool) => sqlite::read_stream(pool, stream_id, version).await,
        }
    }

    /// Reads a stream and folds its decoded events into `initial` with `apply`. An event that
    /// does not decode, or that `apply` refuses (`None`: it does not belong in this stream), is
    /// `Corrupt`. The one way aggregates and settings are loaded.
    pub async fn fold_stream<S>(
        &self,
        stream_id: &str,
        initial: S,
        apply: impl Fn(S, domain::DomainEvent) -> Option<S>,
    ) -> Result<Loaded<S>, StoreError> {
        self.fold_stream_from(stream_id, Loaded { state: initial, version: 0 }, apply).await
    }

    /// Continues a fold: `from` is the stream folded to its `version`, and only the events
    /// after it are read. Events never change, so a fold of the first `version` events stays
    /// valid for ever; a cached one plus the tail is the same state as a full read.
    pub async fn fold_stream_from<S>(
        &self,
        stream_id: &str,
        from: Loaded<S>,
        apply: impl Fn(S, domain::DomainEvent) -> Option<S>,
    ) -> Result<Loaded<S>, StoreError> {
        self.fold_stream_at(stream_id, from, |state, _, event| apply(state, event)).await
    }

    /// `fold_stream_from` for folds that keep each event's log position (an order's view).
    pub async fn fold_stream_at<S>(
        &self,
        stream_id: &str,
        from: Loaded<S>,
        apply: impl Fn(S, i64, domain::DomainEvent) -> Option<S>,
    ) -> Result<Loaded<S>, StoreError> {
        let events = self.read_stream_after(stream_id, from.version).await?;
        self.inner.folded_events.fetch_add(events.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let version = from.version + events.len() as u64;
        let mut state = from.state;
        // The events are read for this fold only: their payloads are decoded in place.
        for mut recorded in events {
            let corrupt = |reason: String| StoreError::Corrupt {
                position: recorded.position,
                reason: format!("{}: {reason}", recorded.stream_id),
            };
            let payload = std::mem::take(&mut recorded.payload);
            let event = domain::DomainEvent::decode_owned(&recorded.event_type, recorded.schema_version, payload)
                .map_err(|e| corrupt(e.to_string()))?;
            state = apply(state, recorded.position, event)
                .ok_or_else(|| corrupt(format!("{} does not belong here", recorded.event_type)))?;
        }
        Ok(Loaded { state, version })
    }

    /// How many events this store has read from the database to fold streams (`fold_stream_at`
    /// and the streams kept in memory): a fresh read of a stream in memory reads only the
    /// events after memory's version.
    pub fn events_read_by_folds(&self) -> u64 {
        self.inner.folded_events.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The newest event of a stream, if it has any.
    pub async fn last_in_stream(&self, stream_id: &str) -> Result<Option<RecordedEvent>, StoreError> {
        match &self.inner.engine {
            Engine::Postgres(pool) => postgres::last_in_stream(pool, stream_id).await,
            Engine::Sqlite(pool) => sqlite::last_in_stream(pool, stream_id).await,
        }
    }

    /// Events with `position > after`, in position order, at most `limit`.
    pub async fn read_all(&self, after: i64, limit: u32) -> Result<Vec<RecordedEvent>, StoreError> {
        read_all(&self.inner.engine, after, limit).await
    }

    pub async fn head(&self) -> Result<Head, StoreError> {
        match &self.inner.engine {
            Engine::Postgres(pool) => postgres::head(pool).await,
            Engine::Sqlite(pool) => sqlite::head(pool).await,
        }
    }

    /// The first outcome of an append made with `key`, if there was one.
    pub async fn idempotent_outcome(&self, key: &str) -> Result<Option<AppendOutcome>, StoreError> {
        let text: Option<(String,)> = match &self.inner.engine {
            Engine::Postgres(pool) => {
                sqlx::query_as("SELECT outcome::text FROM idempotency_keys WHERE key = $1")
                    .bind(key)
                    .fetch_optional(pool)
                    .await?
            }
            Engine::Sqlite(pool) => {
                sqlx::query_as("SELECT outcome FROM idempotency_keys WHERE key = $1")
                    .bind(key)
                    .fetch_optional(pool)
                    .await?
            }
        };
        let Some((text,)) = text else { return Ok(None) };
        let outcome: AppendOutcome = serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt { position: -1, reason: format!("idempotency key {key:?}: {e}") })?;
        Ok(Some(AppendOutcome { replayed: true, ..outcome }))
    }

    /// The last position recorded at or before `at` (0 if none).
    pub async fn position_at(&self, at: chrono::DateTime<chrono::Utc>) -> Result<i64, StoreError> {
        match &self.inner.engine {
            Engine::Postgres(pool) => postgres::position_at(pool, at).await,
            Engine::Sqlite(pool) => sqlite::position_at(pool, at).await,
        }
    }
}

async fn head_position(engine: &Engine) -> Result<i64, StoreError> {
    Ok(match engine {
        Engine::Postgres(pool) => postgres::head(pool).await?.position,
        Engine::Sqlite(pool) => sqlite::head(pool).await?.position,
    })
}

/// Events with `position > after`, at most `limit`, decoded: from the tail's recent events
/// when it has them (`recent`; decoded by the tail already), otherwise from the log.
pub async fn read_page(
    engine: &Engine,
    recent: Option<&Live>,
    after: i64,
    limit: u32,
) -> Result<Vec<Arc<Passed>>, StoreError> {
    match recent.and_then(|live| live.recent_after(after, limit)) {
        Some(page) => Ok(page),
        None => Ok(Passed::decode_all(read_all(engine, after, limit).await?)),
    }
}

pub async fn read_all(engine: &Engine, after: i64, limit: u32) -> Result<Vec<RecordedEvent>, StoreError> {
    match engine {
        Engine::Postgres(pool) => postgres::read_all(pool, after, limit).await,
        Engine::Sqlite(pool) => sqlite::read_all(pool, after, limit).await,
    }
}

fn head_hash(bytes: Vec<u8>) -> Result<[u8; 32], StoreError> {
    bytes.try_into().map_err(|_| StoreError::Corrupt { position: -1, reason: "head hash is not 32 bytes".into() })
}

/// The writer's clock, truncated to microseconds: what both engines store exactly.
fn writer_clock() -> chrono::DateTime<chrono::Utc> {
    let now = chrono::Utc::now();
    chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).expect("now is in range")
}

/// Reads the whole log in pages, fetching the next page on another task while the caller
/// works on the current one (decoding rows then runs on a second core).
pub struct LogReader {
    engine: Engine,
    page_events: u32,
    next: Option<tokio::task::JoinHandle<Result<Vec<RecordedEvent>, StoreError>>>,
}

impl LogReader {
    pub fn new(engine: &Engine, after: i64, page_events: u32) -> LogReader {
        let mut reader = LogReader { engine: engine.clone(), page_events, next: None };
        reader.prefetch(after);
        reader
    }

    fn prefetch(&mut self, after: i64) {
        let (engine, page_events) = (self.engine.clone(), self.page_events);
        self.next = Some(tokio::spawn(async move { read_all(&engine, after, page_events).await }));
    }

    /// The next page in position order; empty at the end of the log.
    pub async fn next_page(&mut self) -> Result<Vec<RecordedEvent>, StoreError> {
        let Some(next) = self.next.take() else { return Ok(Vec::new()) };
        let page = next.await.map_err(|e| StoreError::TaskFailed(format!("log reader task failed: {e}")))??;
        if let Some(last) = page.last() {
            self.prefetch(last.position);
        }
        Ok(page)
    }
}
