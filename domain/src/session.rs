//! A session's refresh-token family: one stream per session. Each refresh rotates the token;
//! presenting a token that was already rotated away means it leaked, and ends the family.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::identity::SessionEnd;
use crate::ids::{SessionId, Timestamp, UserId};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SessionEvent {
    #[serde(rename = "session.issued")]
    Issued {
        session_id: SessionId,
        user_id: UserId,
        token_hash: String,
        expires_at: Timestamp,
        mfa: bool,
        at: Timestamp,
    },
    #[serde(rename = "session.rotated")]
    Rotated { token_hash: String, at: Timestamp },
    #[serde(rename = "session.revoked")]
    Revoked { reason: SessionEnd, at: Timestamp },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionCommand {
    Issue {
        session_id: SessionId,
        user_id: UserId,
        token_hash: String,
        expires_at: Timestamp,
        mfa: bool,
        at: Timestamp,
    },
    /// Exchange the presented token (by hash) for a new one.
    Refresh {
        presented_hash: String,
        new_hash: String,
        at: Timestamp,
    },
    Revoke {
        reason: SessionEnd,
        at: Timestamp,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("the refresh token is not valid")]
    UnknownToken,
    #[error("the session has ended")]
    Ended,
    #[error("the session has expired")]
    Expired,
    #[error("the session already exists")]
    AlreadyIssued,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionState {
    pub session_id: Option<SessionId>,
    pub user_id: Option<UserId>,
    pub current_hash: String,
    /// Every hash rotated away: presenting one of these is a reuse.
    pub spent: BTreeSet<String>,
    pub expires_at: Timestamp,
    pub mfa: bool,
    pub ended: Option<SessionEnd>,
}

impl Aggregate for SessionState {
    type Command = SessionCommand;
    type Event = SessionEvent;
    type Error = SessionError;

    fn decide(&self, command: SessionCommand) -> Result<Vec<SessionEvent>, SessionError> {
        match command {
            SessionCommand::Issue { session_id, user_id, token_hash, expires_at, mfa, at } => {
                if self.session_id.is_some() {
                    return Err(SessionError::AlreadyIssued);
                }
                Ok(vec![SessionEvent::Issued { session_id, user_id, token_hash, expires_at, mfa, at }])
            }
            SessionCommand::Refresh { presented_hash, new_hash, at } => {
                if self.session_id.is_none() {
                    return Err(SessionError::UnknownToken);
                }
                if self.ended.is_some() {
                    return Err(SessionError::Ended);
                }
                if self.spent.contains(&presented_hash) {
                    // Someone else holds a copy of this family: end it for everyone.
                    return Ok(vec![SessionEvent::Revoked { reason: SessionEnd::RefreshTokenReused, at }]);
                }
                if presented_hash != self.current_hash {
                    return Err(SessionError::UnknownToken);
                }
                if at >= self.expires_at {
                    return Err(SessionError::Expired);
                }
                Ok(vec![SessionEvent::Rotated { token_hash: new_hash, at }])
            }
            SessionCommand::Revoke { reason, at } => {
                if self.session_id.is_none() || self.ended.is_some() {
                    return Ok(vec![]);
                }
                Ok(vec![SessionEvent::Revoked { reason, at }])
            }
        }
    }

    fn apply(mut self, event: &SessionEvent) -> Self {
        match event {
            SessionEvent::Issued { session_id, user_id, token_hash, expires_at, mfa, .. } => {
                self.session_id = Some(*session_id);
                self.user_id = Some(*user_id);
                self.current_hash.clone_from(token_hash);
                self.expires_at = *expires_at;
                self.mfa = *mfa;
            }
            SessionEvent::Rotated { token_hash, .. } => {
                let spent = std::mem::replace(&mut self.current_hash, token_hash.clone());
                self.spent.insert(spent);
            }
            SessionEvent::Revoked { reason, .. } => self.ended = Some(*reason),
        }
        self
    }
}
