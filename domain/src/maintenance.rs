//! Maintenance modes: for each scope, off, on now, or scheduled for a window. One stream
//! (`maintenance`); the latest setting of a scope replaces the previous one.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::catalog::ServiceCode;
use crate::ids::{Timestamp, UserId};

/// Longest maintenance message, in characters.
pub const MESSAGE_LENGTH_MAX: usize = 500;

/// What a maintenance window pauses. `Master` pauses everything a user can do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Scope {
    Master,
    /// Orders for numbers.
    Server,
    Auth,
    Recharge,
    Support,
    /// Orders for one SMS service only (e.g. `service:tg`).
    Service(ServiceCode),
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Master => f.write_str("master"),
            Scope::Server => f.write_str("server"),
            Scope::Auth => f.write_str("auth"),
            Scope::Recharge => f.write_str("recharge"),
            Scope::Support => f.write_str("support"),
            Scope::Service(code) => write!(f, "service:{code}"),
        }
    }
}

impl TryFrom<String> for Scope {
    type Error = String;
    fn try_from(text: String) -> Result<Scope, String> {
        Scope::parse(&text)
    }
}

impl From<Scope> for String {
    fn from(scope: Scope) -> String {
        scope.to_string()
    }
}

impl Scope {
    pub fn parse(text: &str) -> Result<Scope, String> {
        Ok(match text {
            "master" => Scope::Master,
            "server" => Scope::Server,
            "auth" => Scope::Auth,
            "recharge" => Scope::Recharge,
            "support" => Scope::Support,
            other => match other.strip_prefix("service:") {
                Some(code) => Scope::Service(ServiceCode::parse(code).map_err(|e| e.to_string())?),
                None => {
                    return Err(format!(
                        "unknown maintenance scope {other:?}: master, server, auth, recharge, support or service:<code>"
                    ));
                }
            },
        })
    }
}

/// A maintenance window: from `starts_at` until `ends_at` (or until switched off).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub starts_at: Timestamp,
    pub ends_at: Option<Timestamp>,
    pub message: String,
}

impl Window {
    pub fn validate(&self) -> Result<(), String> {
        if self.message.trim().is_empty() || self.message.chars().count() > MESSAGE_LENGTH_MAX {
            return Err(format!("message: 1 to {MESSAGE_LENGTH_MAX} characters"));
        }
        if self.ends_at.is_some_and(|end| end <= self.starts_at) {
            return Err("ends_at must be after starts_at".into());
        }
        Ok(())
    }

    pub fn active_at(&self, now: Timestamp) -> bool {
        self.starts_at <= now && self.ends_at.is_none_or(|end| now < end)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MaintenanceEvent {
    /// `window: None` switches the scope off.
    #[serde(rename = "maintenance.set")]
    Set { scope: Scope, window: Option<Window>, by: UserId, at: Timestamp },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceState {
    pub windows: BTreeMap<Scope, Window>,
}

impl MaintenanceState {
    pub fn apply(mut self, event: &MaintenanceEvent) -> Self {
        let MaintenanceEvent::Set { scope, window, .. } = event;
        match window {
            Some(window) => self.windows.insert(scope.clone(), window.clone()),
            None => self.windows.remove(scope),
        };
        self
    }

    /// The window that pauses `scope` at `now`: master first, then the scope itself.
    pub fn blocking(&self, scope: &Scope, now: Timestamp) -> Option<(&Scope, &Window)> {
        [Scope::Master, scope.clone()]
            .iter()
            .find_map(|s| self.windows.get_key_value(s).filter(|(_, w)| w.active_at(now)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(starts: i64, ends: Option<i64>) -> Window {
        Window { starts_at: Timestamp(starts), ends_at: ends.map(Timestamp), message: "upgrade".into() }
    }

    #[test]
    fn scopes_round_trip_through_text() {
        for text in ["master", "server", "auth", "recharge", "support", "service:tg"] {
            assert_eq!(Scope::parse(text).unwrap().to_string(), text);
        }
        assert!(Scope::parse("orders").is_err());
        assert!(Scope::parse("service:").is_err());
    }

    #[test]
    fn a_window_blocks_only_inside_it_and_master_blocks_every_scope() {
        let by = UserId::new();
        let state = MaintenanceState::default().apply(&MaintenanceEvent::Set {
            scope: Scope::Auth,
            window: Some(window(100, Some(200))),
            by,
            at: Timestamp(1),
        });
        assert!(state.blocking(&Scope::Auth, Timestamp(99)).is_none());
        assert!(state.blocking(&Scope::Auth, Timestamp(100)).is_some());
        assert!(state.blocking(&Scope::Auth, Timestamp(200)).is_none());
        assert!(state.blocking(&Scope::Recharge, Timestamp(150)).is_none());
        let state = state.apply(&MaintenanceEvent::Set {
            scope: Scope::Master,
            window: Some(window(0, None)),
            by,
            at: Timestamp(2),
        });
        assert_eq!(state.blocking(&Scope::Recharge, Timestamp(10_000)).unwrap().0, &Scope::Master);
        let state = state.apply(&MaintenanceEvent::Set { scope: Scope::Master, window: None, by, at: Timestamp(3) });
        assert!(state.blocking(&Scope::Recharge, Timestamp(10_000)).is_none());
    }

    #[test]
    fn windows_must_end_after_they_start_and_carry_a_message() {
        assert!(window(5, Some(5)).validate().is_err());
        assert!(Window { message: " ".into(), ..window(0, None) }.validate().is_err());
        assert!(window(5, Some(6)).validate().is_ok());
    }
}
