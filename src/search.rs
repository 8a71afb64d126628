//! What the admin searches (users, orders, deposits, the activity and system logs) share
//! (decision 0035): a WHERE text of only the conditions a filter sets, and a count that stops.
//!
//! A condition written `($1 IS NULL OR actor = $1)` serves every filter with one statement, but
//! once PostgreSQL settles on the statement's generic plan (after five runs of the cached
//! statement) that plan cannot use an index on `actor`: each page and each count read the
//! whole table. Measured on 3 million activity rows: 0.4 ms a page by the actor's index, 236 ms
//! in the generic plan. So a search's text names only what is set, one text per combination.
//!
//! And counting every match grows with the table: 190 ms for 3 million rows. A search counts
//! at most [`COUNT_CAP`] matches and says whether the count is exact.

/// A search counts at most this many matches; a page's `total` beyond it is this number with
/// `total_exact` false (narrow the filter to count further).
pub const COUNT_CAP: i64 = 10_000;

/// A value bound to a condition's parameter.
#[derive(Clone, Debug)]
pub enum Value {
    Text(String),
    Int(i64),
    Bool(bool),
    Uuid(uuid::Uuid),
}

impl From<String> for Value {
    fn from(value: String) -> Self {
        Value::Text(value)
    }
}

impl From<&str> for Value {
    fn from(value: &str) -> Self {
        Value::Text(value.to_owned())
    }
}

impl From<i64> for Value {
    fn from(value: i64) -> Self {
        Value::Int(value)
    }
}

impl From<bool> for Value {
    fn from(value: bool) -> Self {
        Value::Bool(value)
    }
}

impl From<uuid::Uuid> for Value {
    fn from(value: uuid::Uuid) -> Self {
        Value::Uuid(value)
    }
}

/// The conditions a search's filter sets, with their values in parameter order.
#[derive(Clone, Debug, Default)]
pub struct Where {
    text: String,
    values: Vec<Value>,
}

impl Where {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `condition` when `value` is set; each `$` in it stands for the value's parameter.
    pub fn and<V: Into<Value>>(mut self, condition: &str, value: Option<V>) -> Self {
        if let Some(value) = value {
            self.values.push(value.into());
            self.text.push_str(if self.text.is_empty() { " WHERE " } else { " AND " });
            self.text.push_str(&condition.replace('$', &format!("${}", self.values.len())));
        }
        self
    }

    /// ` WHERE a = $1 AND b = $2`, or nothing when no condition is set.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn values(&self) -> &[Value] {
        &self.values
    }

    /// `$n` for the parameter after the conditions' (a page's limit, then its offset).
    fn parameter(&self, after: usize) -> String {
        format!("${}", self.values.len() + after)
    }

    /// The statement counting `table`'s matches, no further than [`COUNT_CAP`] plus one.
    pub fn count_text(&self, table: &str) -> String {
        format!("SELECT count(*) FROM (SELECT 1 FROM {table}{} LIMIT {}) AS matches", self.text, COUNT_CAP + 1)
    }

    /// The statement of a page of `columns` of `table` in `order`, limit and offset bound after
    /// the conditions' values.
    pub fn page_text(&self, columns: &str, table: &str, order: &str) -> String {
        format!(
            "SELECT {columns} FROM {table}{} ORDER BY {order} LIMIT {} OFFSET {}",
            self.text,
            self.parameter(1),
            self.parameter(2)
        )
    }
}

/// How many rows match a search: exactly, or at least [`COUNT_CAP`]. Pages carry it flattened
/// (`total`, `total_exact`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Total {
    /// Matches, counted up to 10,000.
    pub total: i64,
    /// False when more than 10,000 match (`total` is then 10,000; narrow the filter to count).
    #[serde(rename = "total_exact")]
    pub exact: bool,
}

impl Total {
    /// From a count run by [`Where::count_text`].
    pub fn of_count(counted: i64) -> Self {
        Total { total: counted.min(COUNT_CAP), exact: counted <= COUNT_CAP }
    }
}

/// Binds a [`Where`]'s values to a query, in order.
#[macro_export]
macro_rules! bind_where {
    ($query:expr, $conditions:expr) => {{
        let mut query = $query;
        for value in $conditions.values() {
            query = match value {
                $crate::search::Value::Text(value) => query.bind(value.as_str()),
                $crate::search::Value::Int(value) => query.bind(*value),
                $crate::search::Value::Bool(value) => query.bind(*value),
                $crate::search::Value::Uuid(value) => query.bind(*value),
            };
        }
        query
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_set_conditions_are_numbered_in_order() {
        let conditions = Where::new()
            .and("actor = $", None::<String>)
            .and("event_type LIKE $ ESCAPE '\\'", Some("order.%"))
            .and("recorded_at >= $", None::<i64>)
            .and("recorded_at < $", Some(5_i64));
        assert_eq!(conditions.text(), " WHERE event_type LIKE $1 ESCAPE '\\' AND recorded_at < $2");
        assert_eq!(conditions.values().len(), 2);
        assert_eq!(
            conditions.page_text("position", "activity_log", "position DESC"),
            "SELECT position FROM activity_log WHERE event_type LIKE $1 ESCAPE '\\' AND recorded_at < $2 \
             ORDER BY position DESC LIMIT $3 OFFSET $4"
        );
        assert_eq!(
            conditions.count_text("activity_log"),
            "SELECT count(*) FROM (SELECT 1 FROM activity_log WHERE event_type LIKE $1 ESCAPE '\\' AND recorded_at < $2 \
             LIMIT 10001) AS matches"
        );
    }

    #[test]
    fn no_condition_is_no_where() {
        let conditions = Where::new().and("actor = $", None::<&str>);
        assert_eq!(conditions.text(), "");
        assert_eq!(
            conditions.page_text("id", "system_log", "id DESC"),
            "SELECT id FROM system_log ORDER BY id DESC LIMIT $1 OFFSET $2"
        );
    }

    #[test]
    fn a_count_past_the_cap_is_not_exact() {
        assert_eq!(Total::of_count(0), Total { total: 0, exact: true });
        assert_eq!(Total::of_count(COUNT_CAP), Total { total: COUNT_CAP, exact: true });
        assert_eq!(Total::of_count(COUNT_CAP + 1), Total { total: COUNT_CAP, exact: false });
    }
}
