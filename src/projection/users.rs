//! The users directory table: one row per account (the `UserRow` as JSON, plus the columns it is
//! searched by), kept by a projector of its own, for admins to find users.

use std::collections::BTreeMap;

use domain::identity::{Role, UserEvent};
use domain::{DomainEvent, UserId};
use projections::UserRow;
use sqlx::Row;

use super::page::Slice;
use super::runner::ProjectionError;
use super::sink;
use super::views::ByDocument;
use crate::search::{Total, Where};
use crate::store::Engine;

/// The checkpoint name of the live users directory.
pub const NAME: &str = super::views::View::Users.name();

/// The user events of a page, by user, oldest first.
fn user_events(page: Slice<'_>) -> Result<ByDocument<'_, UserId, UserEvent>, ProjectionError> {
    let by_stream = super::views::events_by_stream(page, "user.", "user-", |event| match event {
        DomainEvent::User(user) => Some(user),
        _ => None,
    })?;
    Ok(by_stream.into_iter().map(|(id, events)| (UserId(id), events)).collect())
}

fn parse_row(text: &str) -> Result<UserRow, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

fn role_text(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Admin => "admin",
    }
}

/// What admins search users by; `None` matches all.
#[derive(Clone, Debug, Default)]
pub struct UserFilter {
    /// Part of the email address (lowercase).
    pub email_contains: Option<String>,
    pub role: Option<Role>,
    pub blocked: Option<bool>,
}

/// A page of users and how many match in all.
#[derive(Debug)]
pub struct UserPage {
    pub users: Vec<UserRow>,
    pub total: Total,
}

/// `%text%` for LIKE, with `\` escaping the pattern characters in the text.
fn contains_pattern(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    format!("%{escaped}%")
}

macro_rules! engine_users {
    ($module:ident, $connection:ty) => {
        pub mod $module {
            use super::*;

            /// Applies a page's user events to the rows they touch.
            pub async fn apply_page(
                connection: &mut $connection,
                table: &str,
                page: Slice<'_>,
            ) -> Result<(), ProjectionError> {
                let by_user = user_events(page)?;
                let ids: Vec<uuid::Uuid> = by_user.keys().map(|id| id.0).collect();
                let mut rows: BTreeMap<UserId, UserRow> = BTreeMap::new();
                for text in sink::$module::documents_by_id(connection, table, "user_id", &ids).await? {
                    let user = parse_row(&text)?;
                    rows.insert(user.user_id, user);
                }
                for (id, events) in by_user {
                    let (row, position) = crate::projection::views::fold_document(
                        id,
                        rows.remove(&id),
                        &events,
                        |event, _| UserRow::registered(event),
                        UserRow::apply,
                        "user.registered",
                    )?;
                    let row = &row;
                    sqlx::query(sink::sql(format!(
                        "INSERT INTO {table} (user_id, email, role, blocked, registered_at, position, view) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (user_id) DO UPDATE SET email = excluded.email, \
                         role = excluded.role, blocked = excluded.blocked, position = excluded.position, view = excluded.view",
                    )))
                    .bind(id.0)
                    .bind(row.email.as_str())
                    .bind(role_text(row.role))
                    .bind(row.blocked)
                    .bind(row.registered_at.0)
                    .bind(position)
                    .bind(serde_json::to_string(row).expect("a user row serializes"))
                    .execute(&mut *connection)
                    .await?;
                }
                Ok(())
            }

            /// Users newest first, narrowed by the filter.
            pub async fn search(
                connection: &mut $connection,
                filter: &UserFilter,
                offset: i64,
                limit: i64,
            ) -> Result<UserPage, sqlx::Error> {
                let conditions = Where::new()
                    .and("email LIKE $ ESCAPE '\\'", filter.email_contains.as_deref().map(contains_pattern))
                    .and("role = $", filter.role.map(role_text))
                    .and("blocked = $", filter.blocked);
                let order = "registered_at DESC, user_id DESC";
                let (texts, total) =
                    sink::$module::documents_where(connection, (NAME, order), &conditions, offset, limit).await?;
                let users = texts.iter().map(|text| parse_row(text)).collect::<Result<_, _>>()?;
                Ok(UserPage { users, total })
            }

            /// Every row, for `verify` to compare with the log.
            pub async fn all(connection: &mut $connection) -> Result<BTreeMap<UserId, UserRow>, sqlx::Error> {
                let rows = sqlx::query("SELECT view FROM users_directory").fetch_all(&mut *connection).await?;
                rows.iter()
                    .map(|row| parse_row(&row.try_get::<String, _>(0)?).map(|user| (user.user_id, user)))
                    .collect()
            }
        }
    };
}

engine_users!(postgres, sqlx::PgConnection);
engine_users!(sqlite, sqlx::SqliteConnection);

/// Users newest first, narrowed by the filter.
pub async fn search_users(
    engine: &Engine,
    filter: &UserFilter,
    offset: i64,
    limit: i64,
) -> Result<UserPage, sqlx::Error> {
    crate::on_engine!(engine, search(filter, offset, limit))
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns_escape_their_wildcards() {
        assert_eq!(super::contains_pattern("ann"), "%ann%");
        assert_eq!(super::contains_pattern("a_b%c\\"), "%a\\_b\\%c\\\\%");
    }
}
