//! The live projectors of a process run as one group (decision 0023): one batch reads a page
//! once, decodes it once and folds it into every ledger projection and view in one
//! transaction, with every checkpoint locked and moved in that transaction. Each projection
//! keeps its own checkpoint (a rebuild swaps one in further on; the group folds into each
//! only what is after its checkpoint), so a crash applies all of a page or none of it and
//! two processes never apply an event twice, as before.
//!
//! The notifier (the in-app notifications and the outbox it derives) is a member too.
//!
//! If a group batch fails, every projection runs a batch of its own for that round: one
//! projection that cannot go on (an event it cannot fold) does not stop the others.

use projections::ProjectionName;

use super::notifications::{self, Targets};
use super::page::Page;
use super::runner::{ProjectionError, Target};
use super::sink;
use super::views::{self, Fold, View};
use crate::store::{self, Engine, Live};

#[derive(Clone, Copy)]
enum Member<'a> {
    Ledger(ProjectionName),
    View(View),
    Notifier(&'a Targets),
}

/// The projections folded by the group, in the order their checkpoints are locked.
fn members(targets: &Targets) -> [Member<'_>; 9] {
    [
        Member::Ledger(ProjectionName::Balances),
        Member::Ledger(ProjectionName::Statement),
        Member::Ledger(ProjectionName::TrialBalance),
        Member::View(View::Orders),
        Member::View(View::Deposits),
        Member::View(View::Analytics),
        Member::View(View::Users),
        Member::View(View::Activity),
        Member::Notifier(targets),
    ]
}

impl<'a> Member<'a> {
    /// Its checkpoint's name.
    fn name(self) -> &'static str {
        match self {
            Member::Ledger(projection) => projection.as_str(),
            Member::View(view) => view.name(),
            Member::Notifier(_) => notifications::NAME,
        }
    }

    /// How it folds a page into its live table.
    fn fold(self) -> Fold<'a> {
        match self {
            Member::Ledger(projection) => Fold::Ledger(projection, projection.table()),
            Member::View(view) => Fold::View(view, view.name()),
            Member::Notifier(targets) => Fold::Notifier(targets),
        }
    }
}

/// One round of the group; returns how many events it read (0: every member caught up).
/// `news`: the caller knows there are new events (the look before the locks is skipped).
/// `targets`: where the notifier puts what it derives.
pub async fn run_batch(
    engine: &Engine,
    recent: &Live,
    targets: &Targets,
    batch_max: u32,
    news: bool,
) -> Result<usize, ProjectionError> {
    match run_together(engine, recent, targets, batch_max, news).await {
        Ok(read) => Ok(read),
        Err(error) => {
            tracing::warn!(%error, "projection.group_batch_failed: each projection runs alone this round");
            let mut read = 0;
            for member in members(targets) {
                let alone = match member {
                    Member::Ledger(projection) => {
                        super::runner::run_batch(engine, projection, Target::Live, batch_max).await
                    }
                    Member::View(view) => views::run_batch(engine, view, batch_max).await,
                    Member::Notifier(targets) => {
                        notifications::run_batch(engine, None, targets, batch_max, false).await
                    }
                };
                match alone {
                    Ok(n) => read += n,
                    Err(error) => tracing::error!(projection = member.name(), %error, "projection.batch_failed"),
                }
            }
            Ok(read)
        }
    }
}

async fn run_together(
    engine: &Engine,
    recent: &Live,
    targets: &Targets,
    batch_max: u32,
    news: bool,
) -> Result<usize, ProjectionError> {
    let members = members(targets);
    let names: Vec<&str> = members.into_iter().map(Member::name).collect();
    if !news {
        let seen = unlocked_checkpoints(engine, &names).await?;
        let from = seen.iter().copied().min().unwrap_or(0);
        if store::read_all(engine, from, 1).await?.is_empty() {
            return Ok(0);
        }
    }
    // Folds the page after the lowest checkpoint into each member; returns how many events
    // it read and where each checkpoint moves to.
    macro_rules! round {
        ($apply:path, $tx:expr, $positions:expr) => {{
            let tx = $tx;
            let positions: Vec<i64> = $positions;
            let from = positions.iter().copied().min().unwrap_or(0);
            let page = Page::new(store::read_page(engine, Some(recent), from, batch_max).await?);
            let Some(last) = page.last_position() else { return Ok(0) };
            for (member, &position) in members.into_iter().zip(&positions) {
                let after = page.after(position);
                if !after.is_empty() {
                    $apply(member.fold(), &mut *tx, after).await?;
                }
            }
            let moved: Vec<i64> = positions.iter().map(|&position| position.max(last)).collect();
            (page.len(), moved)
        }};
    }
    let read = match engine {
        Engine::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            let positions = lock_postgres_checkpoints(&mut tx, &names).await?;
            let (read, moved) = round!(views::apply_postgres, &mut *tx, positions);
            set_postgres_checkpoints(&mut tx, &names, &moved).await?;
            tx.commit().await?;
            read
        }
        Engine::Sqlite(pool) => {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            let mut positions = Vec::with_capacity(names.len());
            for name in &names {
                positions.push(sink::sqlite::checkpoint(&mut tx, name).await?);
            }
            let (read, moved) = round!(views::apply_sqlite, &mut *tx, positions);
            for (name, position) in names.iter().zip(moved) {
                sink::sqlite::set_checkpoint(&mut tx, name, position).await?;
            }
            tx.commit().await?;
            read
        }
    };
    Ok(read)
}

/// The checkpoints of `names` as committed (0 for one not written yet), in one read.
async fn unlocked_checkpoints(engine: &Engine, names: &[&str]) -> Result<Vec<i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> = match engine {
        Engine::Postgres(pool) => {
            sqlx::query_as("SELECT name, position FROM projection_checkpoints").fetch_all(pool).await?
        }
        Engine::Sqlite(pool) => {
            sqlx::query_as("SELECT name, position FROM projection_checkpoints").fetch_all(pool).await?
        }
    };
    let position = |name: &str| rows.iter().find(|(n, _)| n == name).map_or(0, |(_, position)| *position);
    Ok(names.iter().map(|name| position(name)).collect())
}

/// The checkpoints of `names`, in that order, their rows created if missing and locked until
/// the transaction ends (one statement; rows are locked in the order given, the same in
/// every process, so two groups wait on each other instead of deadlocking).
async fn lock_postgres_checkpoints(tx: &mut sqlx::PgConnection, names: &[&str]) -> Result<Vec<i64>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "INSERT INTO projection_checkpoints (name, position) \
         SELECT name, 0 FROM unnest($1::text[]) WITH ORDINALITY AS m(name, n) ORDER BY n \
         ON CONFLICT (name) DO UPDATE SET name = excluded.name RETURNING name, position",
    )
    .bind(names)
    .fetch_all(&mut *tx)
    .await?;
    names
        .iter()
        .map(|name| {
            rows.iter()
                .find(|(n, _)| n == name)
                .map(|(_, position)| *position)
                .ok_or_else(|| sqlx::Error::Protocol(format!("checkpoint {name} was not locked")))
        })
        .collect()
}

/// Moves the checkpoints of `names` to `positions` (rows locked by this transaction).
async fn set_postgres_checkpoints(
    tx: &mut sqlx::PgConnection,
    names: &[&str],
    positions: &[i64],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE projection_checkpoints AS c SET position = m.position, updated_at = $3 \
         FROM unnest($1::text[], $2::int8[]) AS m(name, position) WHERE c.name = m.name",
    )
    .bind(names)
    .bind(positions)
    .bind(super::sql_types::Instant::now())
    .execute(&mut *tx)
    .await?;
    Ok(())
}
