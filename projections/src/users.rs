//! The users directory: one row per account, as admins search it, folded from the user events.

use domain::identity::{Role, UserEvent};
use domain::{Timestamp, UserId};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRow {
    pub user_id: UserId,
    pub email: String,
    pub email_verified: bool,
    pub role: Role,
    pub blocked: bool,
    pub registered_at: Timestamp,
    /// The last sign-in.
    pub last_login_at: Option<Timestamp>,
}

impl UserRow {
    /// The row a `user.registered` event starts; `None` for any other event.
    pub fn registered(event: &UserEvent) -> Option<UserRow> {
        let UserEvent::Registered { user_id, email, role, at, .. } = event else { return None };
        Some(UserRow {
            user_id: *user_id,
            email: email.as_str().to_owned(),
            email_verified: false,
            role: *role,
            blocked: false,
            registered_at: *at,
            last_login_at: None,
        })
    }

    pub fn apply(&mut self, event: &UserEvent) {
        match event {
            UserEvent::EmailVerified { email, .. } => {
                self.email = email.as_str().to_owned();
                self.email_verified = true;
            }
            UserEvent::RoleChanged { role, .. } => self.role = *role,
            UserEvent::Blocked { .. } => self.blocked = true,
            UserEvent::Unblocked { .. } => self.blocked = false,
            UserEvent::SessionOpened(session) => self.last_login_at = Some(session.at),
            _ => {}
        }
    }
}
