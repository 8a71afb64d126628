//! Views kept apart from the ledger views: one JSON document per aggregate (orders, deposits),
//! each with the columns it is searched by, the users directory, the analytics rows per day,
//! and the activity log. Each has its own projector and checkpoint (named as its table), with the
//! discipline of the ledger views: a batch and its checkpoint commit together; a rebuild folds
//! the log into a table aside and swaps it in.

use std::collections::BTreeMap;

use domain::DomainEvent;
use uuid::Uuid;

use projections::ProjectionName;

use super::page::{Page, Slice};
use super::runner::{ProjectionError, lock_postgres_checkpoint};
use super::sink;
use crate::store::{self, Engine, Live};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    Orders,
    Deposits,
    Analytics,
    Users,
    Activity,
}

impl View {
    pub const ALL: [View; 5] = [View::Orders, View::Deposits, View::Analytics, View::Users, View::Activity];

    /// Its table and checkpoint name.
    pub const fn name(self) -> &'static str {
        match self {
            View::Orders => "orders",
            View::Deposits => "deposits",
            View::Analytics => "analytics",
            View::Users => "users_directory",
            View::Activity => "activity_log",
        }
    }

    pub fn parse(name: &str) -> Option<View> {
        View::ALL.into_iter().find(|view| view.name() == name)
    }
}

/// A page's events of each document (by its id), oldest first, with their positions.
pub(super) type ByDocument<'a, K, T> = BTreeMap<K, Vec<(i64, &'a T)>>;

/// The events of a page whose type starts with `type_prefix`, picked, by the id their stream
/// names (`{stream_prefix}{uuid}`), oldest first. An event in a stream of another shape, or
/// one that does not decode or is not picked, is refused: the view stops there.
pub(super) fn events_by_stream<'a, T>(
    page: Slice<'a>,
    type_prefix: &str,
    stream_prefix: &str,
    pick: impl Fn(&'a DomainEvent) -> Option<&'a T>,
) -> Result<ByDocument<'a, Uuid, T>, ProjectionError> {
    let mut by_stream: ByDocument<'a, Uuid, T> = BTreeMap::new();
    for (event, decoded) in page.iter().filter(|(event, _)| event.event_type.starts_with(type_prefix)) {
        let undecodable = |reason: String| ProjectionError::Undecodable { position: event.position, reason };
        let id = event
            .stream_id
            .strip_prefix(stream_prefix)
            .and_then(|id| Uuid::parse_str(id).ok())
            .ok_or_else(|| undecodable(format!("{type_prefix} event in stream {}", event.stream_id)))?;
        let picked = pick(decoded?).ok_or_else(|| undecodable(format!("not a {type_prefix} event")))?;
        by_stream.entry(id).or_default().push((event.position, picked));
    }
    Ok(by_stream)
}

/// Folds one document's events of a page onto the stored document (or a new one that its first
/// event starts); returns it with the position of its last event. A document whose stream
/// does not begin with its starting event (`first`) is refused.
pub(crate) fn fold_document<K: std::fmt::Display, D, E>(
    id: K,
    stored: Option<D>,
    events: &[(i64, &E)],
    start: impl Fn(&E, i64) -> Option<D>,
    apply: impl Fn(&mut D, &E),
    first: &str,
) -> Result<(D, i64), ProjectionError> {
    let mut document = stored;
    let mut position = 0;
    for (at, event) in events {
        position = *at;
        match document.as_mut() {
            Some(document) => apply(document, *event),
            None => {
                let started = start(*event, *at).ok_or_else(|| ProjectionError::Undecodable {
                    position: *at,
                    reason: format!("{id} has events before {first}"),
                })?;
                document = Some(started);
            }
        }
    }
    let document =
        document.ok_or_else(|| ProjectionError::Undecodable { position, reason: format!("{id} has no events") })?;
    Ok((document, position))
}

/// What a batch folds its page into: a view's table (live or the one being rebuilt aside),
/// a ledger projection's table (live or aside), or the notifier's inbox and outbox.
#[derive(Clone, Copy)]
pub(super) enum Fold<'a> {
    View(View, &'a str),
    Ledger(ProjectionName, &'a str),
    Notifier(&'a super::notifications::Targets),
}

pub(super) async fn apply_postgres(
    fold: Fold<'_>,
    connection: &mut sqlx::PgConnection,
    page: Slice<'_>,
) -> Result<(), ProjectionError> {
    match fold {
        Fold::Ledger(projection, table) => {
            let entries = super::runner::ledger_entries(page)?;
            Ok(sink::postgres::write_batch(connection, projection, table, &entries).await?)
        }
        Fold::View(View::Orders, table) => super::orders::postgres::apply_page(connection, table, page).await,
        Fold::View(View::Deposits, table) => super::deposits::postgres::apply_page(connection, table, page).await,
        Fold::View(View::Analytics, table) => super::analytics::postgres::apply_page(connection, table, page).await,
        Fold::View(View::Users, table) => super::users::postgres::apply_page(connection, table, page).await,
        Fold::View(View::Activity, table) => super::activity::postgres::apply_page(connection, table, page).await,
        Fold::Notifier(targets) => super::notifications::postgres::apply_page(connection, page, targets).await,
    }
}

pub(super) async fn apply_sqlite(
    fold: Fold<'_>,
    connection: &mut sqlx::SqliteConnection,
    page: Slice<'_>,
) -> Result<(), ProjectionError> {
    match fold {
        Fold::Ledger(projection, table) => {
            let entries = super::runner::ledger_entries(page)?;
            Ok(sink::sqlite::write_batch(connection, projection, table, &entries).await?)
        }
        Fold::View(View::Orders, table) => super::orders::sqlite::apply_page(connection, table, page).await,
        Fold::View(View::Deposits, table) => super::deposits::sqlite::apply_page(connection, table, page).await,
        Fold::View(View::Analytics, table) => super::analytics::sqlite::apply_page(connection, table, page).await,
        Fold::View(View::Users, table) => super::users::sqlite::apply_page(connection, table, page).await,
        Fold::View(View::Activity, table) => super::activity::sqlite::apply_page(connection, table, page).await,
        Fold::Notifier(targets) => super::notifications::sqlite::apply_page(connection, page, targets).await,
    }
}

/// Runs one batch of a view's projector; returns how many events it read (0: caught up).
pub async fn run_batch(engine: &Engine, view: View, batch_max: u32) -> Result<usize, ProjectionError> {
    run_batch_into(engine, None, Fold::View(view, view.name()), view.name(), batch_max, false).await
}

/// One batch folded by `fold`, from and to the checkpoint `name`, in one transaction;
/// `news`: the caller knows there are new events (the look before the lock is skipped);
/// `recent`: the tail whose recent events the page is read from while it has them.
pub(super) async fn run_batch_into(
    engine: &Engine,
    recent: Option<&Live>,
    fold: Fold<'_>,
    name: &str,
    batch_max: u32,
    news: bool,
) -> Result<usize, ProjectionError> {
    if !news && super::runner::nothing_after_checkpoint(engine, name).await? {
        return Ok(0);
    }
    match engine {
        Engine::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let position = lock_postgres_checkpoint(&mut tx, name).await?;
            let page = Page::new(store::read_page(engine, recent, position, batch_max).await?);
            let Some(last) = page.last_position() else { return Ok(0) };
            apply_postgres(fold, &mut tx, page.all()).await?;
            sink::postgres::set_checkpoint(&mut tx, name, last).await?;
            tx.commit().await?;
            Ok(page.len())
        }
        Engine::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let position = sink::sqlite::checkpoint(&mut tx, name).await?;
            let page = Page::new(store::read_page(engine, recent, position, batch_max).await?);
            let Some(last) = page.last_position() else { return Ok(0) };
            apply_sqlite(fold, &mut tx, page.all()).await?;
            sink::sqlite::set_checkpoint(&mut tx, name, last).await?;
            tx.commit().await?;
            Ok(page.len())
        }
    }
}

/// Rebuilds a view from the log aside (`{name}_rebuild`, with its own checkpoint), then, in
/// one transaction, catches it up to the head and swaps it in: readers see the old view or the
/// new one, never a half-built one. `progress(position)` after each batch.
pub async fn rebuild(
    engine: &Engine,
    view: View,
    batch_max: u32,
    progress: &(dyn Fn(i64) + Sync),
) -> Result<i64, ProjectionError> {
    let live = view.name();
    let aside = format!("{live}_rebuild");
    super::runner::prepare_aside_table(engine, live, &aside, &aside).await?;
    while run_batch_into(engine, None, Fold::View(view, &aside), &aside, batch_max, false).await? > 0 {
        progress(super::checkpoint(engine, &aside).await?);
    }
    let drop_live = sink::sql(format!("DROP TABLE {live}"));
    let rename = sink::sql(format!("ALTER TABLE {aside} RENAME TO {live}"));
    macro_rules! swap_on {
        ($engine_sink:ident, $apply:ident, $tx:expr) => {{
            let tx = $tx;
            let mut position = sink::$engine_sink::checkpoint(&mut *tx, &aside).await?;
            loop {
                let page = Page::decode(store::read_all(engine, position, batch_max).await?);
                let Some(last) = page.last_position() else { break };
                $apply(Fold::View(view, &aside), &mut *tx, page.all()).await?;
                position = last;
            }
            sqlx::query(drop_live).execute(&mut *tx).await?;
            sqlx::query(rename).execute(&mut *tx).await?;
            sink::$engine_sink::set_checkpoint(&mut *tx, live, position).await?;
            sqlx::query("DELETE FROM projection_checkpoints WHERE name = $1").bind(&aside).execute(&mut *tx).await?;
            position
        }};
    }
    let position = match engine {
        Engine::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            lock_postgres_checkpoint(&mut tx, live).await?;
            let position = swap_on!(postgres, apply_postgres, &mut *tx);
            tx.commit().await?;
            position
        }
        Engine::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let position = swap_on!(sqlite, apply_sqlite, &mut *tx);
            tx.commit().await?;
            position
        }
    };
    progress(position);
    Ok(position)
}
