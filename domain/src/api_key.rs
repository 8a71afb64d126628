//! An API key's own stream: who owns it and the hash of its secret, written once, then at
//! most a revocation. Its use is recorded in a separate stream so this one stays two events.

use serde::{Deserialize, Serialize};

use crate::ids::{ApiKeyId, Timestamp, UserId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ApiKeyEvent {
    #[serde(rename = "api_key.issued")]
    Issued { key_id: ApiKeyId, user_id: UserId, secret_hash: String, at: Timestamp },
    #[serde(rename = "api_key.revoked")]
    Revoked { at: Timestamp },
    /// Written to `api-key-used-{id}`, at most once a minute per key and process.
    #[serde(rename = "api_key.used")]
    Used { at: Timestamp },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApiKeyState {
    pub user_id: Option<UserId>,
    pub secret_hash: String,
    pub revoked: bool,
}

impl ApiKeyState {
    pub fn apply(mut self, event: &ApiKeyEvent) -> Self {
        match event {
            ApiKeyEvent::Issued { user_id, secret_hash, .. } => {
                self.user_id = Some(*user_id);
                self.secret_hash.clone_from(secret_hash);
            }
            ApiKeyEvent::Revoked { .. } => self.revoked = true,
            ApiKeyEvent::Used { .. } => {}
        }
        self
    }
}
