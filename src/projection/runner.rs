//! Running projectors: one batch per transaction, checkpoint in the same transaction.
//!
//! A batch locks its checkpoint row (PostgreSQL `FOR UPDATE`, SQLite `BEGIN IMMEDIATE`),
//! reads the events after it, folds them into the rows and moves the checkpoint, all in
//! one commit: a crash mid-batch applies nothing, and two runners never apply an event twice.
//! A rebuild fills `<table>_rebuild` from position 0, then swaps it in with one transaction,
//! so readers see the old view or the new one, never a half-built one.

use std::sync::Arc;
use std::time::Duration;

use projections::{Fold, LedgerEntry, ProjectionName, StatementFold};
use tokio::sync::watch;

use super::page::{Page, Slice};
use super::{sink, views};
use crate::store::{self, Engine, Live, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("event at position {position} cannot be projected: {reason}")]
    Undecodable { position: i64, reason: String },
}

/// The live tables, or the aside copy a rebuild fills.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Live,
    Aside,
}

pub fn table(projection: ProjectionName, target: Target) -> String {
    match target {
        Target::Live => projection.table().to_owned(),
        Target::Aside => format!("{}_rebuild", projection.table()),
    }
}

pub fn checkpoint_name(projection: ProjectionName, target: Target) -> String {
    match target {
        Target::Live => projection.as_str().to_owned(),
        Target::Aside => format!("{}:rebuild", projection.as_str()),
    }
}

/// The ledger entries of a page (every event of it must decode: a corrupt log stops the
/// ledger projections).
pub(super) fn ledger_entries(page: Slice<'_>) -> Result<Vec<LedgerEntry<'_>>, ProjectionError> {
    let mut entries = Vec::new();
    for (recorded, decoded) in page.iter() {
        let micros = recorded.recorded_at.timestamp_micros();
        entries.extend(LedgerEntry::new(recorded.position, micros, &recorded.event_type, decoded?));
    }
    Ok(entries)
}

/// A projection's checkpoint as committed, read without any lock.
pub async fn checkpoint(engine: &Engine, name: &str) -> Result<i64, sqlx::Error> {
    match engine {
        Engine::Postgres(pool) => sink::postgres::checkpoint(&mut *pool.acquire().await?, name).await,
        Engine::Sqlite(pool) => sink::sqlite::checkpoint(&mut *pool.acquire().await?, name).await,
    }
}

/// Runs one batch; returns how many events it applied (0: caught up).
pub async fn run_batch(
    engine: &Engine,
    projection: ProjectionName,
    target: Target,
    batch_max: u32,
) -> Result<usize, ProjectionError> {
    run_page(engine, None, projection, target, batch_max, false).await
}

/// One batch (through the views' batch: lock, page, fold, checkpoint, commit); `news`: the
/// caller knows there are new events, so the look before the lock is skipped. `recent`: the
/// tail whose recent events the page is read from while it has them.
async fn run_page(
    engine: &Engine,
    recent: Option<&Live>,
    projection: ProjectionName,
    target: Target,
    batch_max: u32,
    news: bool,
) -> Result<usize, ProjectionError> {
    let (table, name) = (table(projection, target), checkpoint_name(projection, target));
    let fold = views::Fold::Ledger(projection, &table);
    views::run_batch_into(engine, recent, fold, &name, batch_max, news).await
}

/// Whether the log has nothing after the checkpoint `name` (read without any lock).
pub(super) async fn nothing_after_checkpoint(engine: &Engine, name: &str) -> Result<bool, ProjectionError> {
    let seen = checkpoint(engine, name).await?;
    Ok(store::read_all(engine, seen, 1).await?.is_empty())
}

/// The checkpoint's position, its row created if missing and locked until the transaction
/// ends (one statement: the upsert takes the row lock).
pub(super) async fn lock_postgres_checkpoint(tx: &mut sqlx::PgConnection, name: &str) -> Result<i64, sqlx::Error> {
    let (position,): (i64,) = sqlx::query_as(
        "INSERT INTO projection_checkpoints (name, position) VALUES ($1, 0) \
         ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING position",
    )
    .bind(name)
    .fetch_one(&mut *tx)
    .await?;
    Ok(position)
}

/// Runs a projector until the process ends: a batch, then wait for the tail to pass new
/// events; pages come from the tail's recent events while it has them.
pub async fn run_live(live: Arc<Live>, engine: Engine, projection: ProjectionName, batch_max: u32, poll: Duration) {
    let head = live.subscribe();
    let batch = move |news| {
        let (engine, live) = (engine.clone(), live.clone());
        async move { run_page(&engine, Some(&live), projection, Target::Live, batch_max, news).await }
    };
    keep_running(projection.as_str(), batch, head, poll).await
}

/// Calls `batch` forever: again at once while it finds work, else when the writer announces
/// a new head or `poll` passes (for other processes' writes); a failure waits a second.
/// How long a projector that found events waits before it looks again (decision 0021).
pub const GATHER_WAIT: Duration = Duration::from_millis(10);

async fn keep_running<F, Fut>(name: &str, batch: F, mut head: watch::Receiver<i64>, poll: Duration)
where
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<Output = Result<usize, ProjectionError>>,
{
    // `news`: this process appended since the last look, so there is something to fold.
    // Appends of other processes are found by the look each `poll`.
    let mut news = false;
    loop {
        match batch(news).await {
            Ok(0) => {
                news = tokio::time::timeout(poll, head.changed()).await.is_ok_and(|changed| changed.is_ok());
            }
            // Under a steady trickle of appends, going again at once would run a transaction
            // per commit for every projector; a moment's wait lets a page gather instead.
            Ok(_) => {
                tokio::time::sleep(GATHER_WAIT).await;
                news = head.has_changed().unwrap_or(false);
                head.borrow_and_update();
            }
            Err(error) => {
                tracing::error!(projection = name, %error, "projection.batch_failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                news = false;
            }
        }
    }
}

/// Starts the projectors live on the current runtime, as `serve` runs them: one group for
/// the ledger projections, the views and the notifier (decision 0023), which puts what it
/// derives where `targets` say.
pub fn spawn_all_live(
    store: &crate::store::EventStore,
    targets: super::notifications::Targets,
    batch_max: u32,
    poll: Duration,
) {
    let live = store.live().clone();
    let engine = store.engine().clone();
    let head = live.subscribe();
    let batch = move |news| {
        let (engine, live, targets) = (engine.clone(), live.clone(), targets.clone());
        async move { super::group::run_batch(&engine, &live, &targets, batch_max, news).await }
    };
    tokio::spawn(async move { keep_running("projectors", batch, head, poll).await });
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProjectionStatus {
    pub name: &'static str,
    pub position: i64,
    pub lag: i64,
}

pub async fn status(engine: &Engine, head: i64) -> Result<Vec<ProjectionStatus>, ProjectionError> {
    let mut statuses = Vec::new();
    for projection in ProjectionName::ALL {
        let position = checkpoint(engine, &checkpoint_name(projection, Target::Live)).await?;
        statuses.push(ProjectionStatus { name: projection.as_str(), position, lag: head - position });
    }
    for view in super::views::View::ALL {
        let position = checkpoint(engine, view.name()).await?;
        statuses.push(ProjectionStatus { name: view.name(), position, lag: head - position });
    }
    Ok(statuses)
}

/// Rebuilds a projection from position 0 aside, then swaps it in. `progress(position)` is
/// called after every page. Returns the position the new view was built to.
///
/// The aside build keeps its fold in memory (nobody else writes the aside table): statement
/// lines are written page by page, balance rows once at the end, each with the aside checkpoint.
pub async fn rebuild(
    engine: &Engine,
    projection: ProjectionName,
    batch_max: u32,
    progress: &(dyn Fn(i64) + Sync),
) -> Result<i64, ProjectionError> {
    prepare_aside(engine, projection).await?;
    let aside = table(projection, Target::Aside);
    let aside_name = checkpoint_name(projection, Target::Aside);
    let mut fold = Fold::new(projection);
    let mut after = 0;
    let mut reader = store::LogReader::new(engine, 0, batch_max);
    // Statement lines of one page are written on another task while the next page is folded;
    // each write waits for the one before, so the aside checkpoint only moves forward.
    let mut writing: Option<tokio::task::JoinHandle<Result<(), ProjectionError>>> = None;
    loop {
        let page = Page::decode(reader.next_page().await?);
        let Some(last) = page.last_position() else { break };
        after = last;
        for entry in ledger_entries(page.all())? {
            fold.apply(&entry);
        }
        if let Fold::Statement(statement) = &mut fold {
            // Written lines are final; the running balances stay in memory for the next page.
            let page = Fold::Statement(StatementFold {
                running: Default::default(),
                lines: std::mem::take(&mut statement.lines),
            });
            finish(writing.take()).await?;
            let (engine, aside, aside_name) = (engine.clone(), aside.clone(), aside_name.clone());
            writing =
                Some(tokio::spawn(
                    async move { write_with_checkpoint(&engine, &aside, &page, &aside_name, after).await },
                ));
        }
        progress(after);
    }
    finish(writing.take()).await?;
    if !matches!(fold, Fold::Statement(_)) {
        write_with_checkpoint(engine, &aside, &fold, &aside_name, after).await?;
    }
    swap(engine, projection, batch_max).await
}

async fn finish(writing: Option<tokio::task::JoinHandle<Result<(), ProjectionError>>>) -> Result<(), ProjectionError> {
    match writing {
        None => Ok(()),
        Some(task) => task.await.map_err(|e| StoreError::TaskFailed(format!("rebuild writer task failed: {e}")))?,
    }
}

async fn write_with_checkpoint(
    engine: &Engine,
    table: &str,
    fold: &Fold,
    name: &str,
    position: i64,
) -> Result<(), ProjectionError> {
    match engine {
        Engine::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sink::postgres::write(&mut tx, table, fold).await?;
            sink::postgres::set_checkpoint(&mut tx, name, position).await?;
            tx.commit().await?;
        }
        Engine::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            sink::sqlite::write(&mut tx, table, fold).await?;
            sink::sqlite::set_checkpoint(&mut tx, name, position).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

async fn prepare_aside(engine: &Engine, projection: ProjectionName) -> Result<(), ProjectionError> {
    let (live, aside) = (table(projection, Target::Live), table(projection, Target::Aside));
    prepare_aside_table(engine, &live, &aside, &checkpoint_name(projection, Target::Aside)).await
}

/// Creates `aside` empty, shaped like `live` (columns, keys and indexes), with its checkpoint at 0.
pub(super) async fn prepare_aside_table(
    engine: &Engine,
    live: &str,
    aside: &str,
    aside_checkpoint: &str,
) -> Result<(), ProjectionError> {
    let drop = sqlx::AssertSqlSafe(format!("DROP TABLE IF EXISTS {aside}"));
    match engine {
        Engine::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query(drop).execute(&mut *tx).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE TABLE {aside} (LIKE {live} INCLUDING ALL)")))
                .execute(&mut *tx)
                .await?;
            sink::postgres::set_checkpoint(&mut tx, aside_checkpoint, 0).await?;
            tx.commit().await?;
        }
        Engine::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            sqlx::query(drop).execute(&mut *tx).await?;
            let (definition,): (String,) =
                sqlx::query_as("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = $1")
                    .bind(live)
                    .fetch_one(&mut *tx)
                    .await?;
            let columns = definition
                .find('(')
                .map(|at| &definition[at..])
                .ok_or_else(|| sqlx::Error::Protocol(format!("unexpected definition of table {live}")))?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE TABLE {aside} {columns}"))).execute(&mut *tx).await?;
            // Index names are global in SQLite: the aside copy of `i` is `i_aside` (and back).
            let indexes: Vec<(String, String)> = sqlx::query_as(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = $1 AND sql IS NOT NULL",
            )
            .bind(live)
            .fetch_all(&mut *tx)
            .await?;
            for (name, sql) in indexes {
                let renamed = name.strip_suffix("_aside").map_or_else(|| format!("{name}_aside"), str::to_owned);
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP INDEX IF EXISTS {renamed}"))).execute(&mut *tx).await?;
                let Some(on) = sql.find(" ON ") else { continue };
                let columns = sql[on..].find('(').map(|at| &sql[on + at..]).unwrap_or_default();
                let unique = if sql.to_ascii_uppercase().starts_with("CREATE UNIQUE") { "UNIQUE " } else { "" };
                let create = format!("CREATE {unique}INDEX {renamed} ON {aside} {columns}");
                sqlx::query(sqlx::AssertSqlSafe(create)).execute(&mut *tx).await?;
            }
            sink::sqlite::set_checkpoint(&mut tx, aside_checkpoint, 0).await?;
            tx.commit().await?;
        }
    }
    Ok(())
}

/// In one transaction: finish the aside build up to the head, replace the live table with
/// it, and move the live checkpoint. The live projector waits on the checkpoint lock.
async fn swap(engine: &Engine, projection: ProjectionName, batch_max: u32) -> Result<i64, ProjectionError> {
    let live = table(projection, Target::Live);
    let aside = table(projection, Target::Aside);
    let aside_name = checkpoint_name(projection, Target::Aside);
    let drop_live = sqlx::AssertSqlSafe(format!("DROP TABLE {live}"));
    let rename = sqlx::AssertSqlSafe(format!("ALTER TABLE {aside} RENAME TO {live}"));
    macro_rules! swap_on {
        ($engine_sink:ident, $apply:path, $tx:expr) => {{
            let tx = $tx;
            let mut position = sink::$engine_sink::checkpoint(&mut *tx, &aside_name).await?;
            loop {
                let page = Page::decode(store::read_all(engine, position, batch_max).await?);
                let Some(last) = page.last_position() else { break };
                $apply(views::Fold::Ledger(projection, &aside), &mut *tx, page.all()).await?;
                position = last;
            }
            sqlx::query(drop_live).execute(&mut *tx).await?;
            sqlx::query(rename).execute(&mut *tx).await?;
            sink::$engine_sink::set_checkpoint(&mut *tx, &checkpoint_name(projection, Target::Live), position).await?;
            sqlx::query("DELETE FROM projection_checkpoints WHERE name = $1")
                .bind(&aside_name)
                .execute(&mut *tx)
                .await?;
            position
        }};
    }
    let position = match engine {
        Engine::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            lock_postgres_checkpoint(&mut tx, &checkpoint_name(projection, Target::Live)).await?;
            let position = swap_on!(postgres, views::apply_postgres, &mut *tx);
            tx.commit().await?;
            position
        }
        Engine::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let position = swap_on!(sqlite, views::apply_sqlite, &mut *tx);
            tx.commit().await?;
            position
        }
    };
    Ok(position)
}
