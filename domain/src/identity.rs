//! Users: registration, credentials, role, second factor, block, and the sessions and API
//! keys a user holds. One stream per user; what is secret (password hash, sealed TOTP
//! secret) is stored as the application gives it, never in the clear.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregate;
use crate::ids::{ApiKeyId, SessionId, Timestamp, UserId};

/// Most active API keys one user may hold.
pub const API_KEYS_MAX: usize = 20;
/// Longest API key name and display name, in characters.
pub const NAME_LENGTH_MAX: usize = 64;
/// Longest block reason, in characters.
pub const BLOCK_REASON_LENGTH_MAX: usize = 500;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

/// An email address, trimmed and lowercased. Uniqueness is decided on this form.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub const LENGTH_MAX: usize = 254;

    /// Accepts `local@domain.tld` with no spaces, one `@`, a dot in the domain.
    pub fn parse(raw: &str) -> Result<Email, IdentityError> {
        let email = raw.trim().to_lowercase();
        let invalid = || IdentityError::InvalidEmail(raw.trim().to_owned());
        if email.len() > Email::LENGTH_MAX || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let labels_ok = domain.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
        if local.is_empty() || local.len() > 64 || domain.contains('@') || !domain.contains('.') || !labels_ok {
            return Err(invalid());
        }
        Ok(Email(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.split_once('@').map_or("", |(local, _)| local)
    }

    pub fn domain(&self) -> &str {
        self.0.split_once('@').map_or("", |(_, domain)| domain)
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a session ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    Logout,
    RevokedByUser,
    RefreshTokenReused,
    PasswordChanged,
    PasswordReset,
    Blocked,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserCommand {
    Register {
        user_id: UserId,
        email: Email,
        password_hash: String,
        role: Role,
        at: Timestamp,
    },
    VerifyEmail {
        email: Email,
        at: Timestamp,
    },
    /// `replaces_version`: a reset token is good only for the password version it was issued for.
    ChangePassword {
        password_hash: String,
        end_sessions: SessionEnd,
        keep: Option<SessionId>,
        replaces_version: Option<u32>,
        at: Timestamp,
    },
    UpdateProfile {
        display_name: Option<String>,
        language: Option<String>,
        at: Timestamp,
    },
    SetRole {
        role: Role,
        at: Timestamp,
    },
    SetTotpSecret {
        secret_sealed: String,
        at: Timestamp,
    },
    /// `step`: the TOTP time step of the code that confirmed the secret; it cannot sign in.
    EnableTotp {
        step: u64,
        at: Timestamp,
    },
    Block {
        reason: String,
        by: Option<UserId>,
        at: Timestamp,
    },
    Unblock {
        by: Option<UserId>,
        at: Timestamp,
    },
    OpenSession(OpenSession),
    CloseSession {
        session_id: SessionId,
        reason: SessionEnd,
        at: Timestamp,
    },
    CloseOtherSessions {
        keep: Option<SessionId>,
        reason: SessionEnd,
        at: Timestamp,
    },
    CreateApiKey {
        key_id: ApiKeyId,
        name: String,
        prefix: String,
        at: Timestamp,
    },
    RevokeApiKey {
        key_id: ApiKeyId,
        at: Timestamp,
    },
}

/// What a user's stream records of a new session (the refresh-token chain is in the session's
/// own stream).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenSession {
    pub session_id: SessionId,
    pub expires_at: Timestamp,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The second factor was presented at login.
    pub mfa: bool,
    /// The TOTP time step the code matched, so a code is never accepted twice.
    pub totp_step: Option<u64>,
    pub at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum UserEvent {
    #[serde(rename = "user.registered")]
    Registered { user_id: UserId, email: Email, password_hash: String, role: Role, at: Timestamp },
    #[serde(rename = "user.email_verified")]
    EmailVerified { email: Email, at: Timestamp },
    #[serde(rename = "user.password_changed")]
    PasswordChanged { password_hash: String, at: Timestamp },
    #[serde(rename = "user.profile_updated")]
    ProfileUpdated { display_name: Option<String>, language: Option<String>, at: Timestamp },
    #[serde(rename = "user.role_changed")]
    RoleChanged { role: Role, at: Timestamp },
    #[serde(rename = "user.totp_secret_set")]
    TotpSecretSet { secret_sealed: String, at: Timestamp },
    #[serde(rename = "user.totp_enabled")]
    TotpEnabled { step: u64, at: Timestamp },
    #[serde(rename = "user.blocked")]
    Blocked { reason: String, by: Option<UserId>, at: Timestamp },
    #[serde(rename = "user.unblocked")]
    Unblocked { by: Option<UserId>, at: Timestamp },
    #[serde(rename = "user.session_opened")]
    SessionOpened(OpenSession),
    #[serde(rename = "user.session_closed")]
    SessionClosed { session_id: SessionId, reason: SessionEnd, at: Timestamp },
    #[serde(rename = "user.api_key_created")]
    ApiKeyCreated { key_id: ApiKeyId, name: String, prefix: String, at: Timestamp },
    #[serde(rename = "user.api_key_revoked")]
    ApiKeyRevoked { key_id: ApiKeyId, at: Timestamp },
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    #[error("{0:?} is not a valid email address")]
    InvalidEmail(String),
    #[error("the user is already registered")]
    AlreadyRegistered,
    #[error("no such user")]
    NotRegistered,
    #[error("the account is blocked")]
    Blocked,
    #[error("the token was issued for another email address")]
    EmailMismatch,
    #[error("no such open session")]
    SessionNotFound,
    #[error("no such API key")]
    ApiKeyNotFound,
    #[error("a user may hold at most {max} API keys")]
    TooManyApiKeys { max: usize },
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("two-factor authentication has not been set up")]
    TotpNotSetUp,
    #[error("two-factor authentication is already enabled")]
    TotpAlreadyEnabled,
    #[error("the password was changed since this token was issued")]
    PasswordAlreadyChanged,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Totp {
    Off,
    /// A secret was issued; it takes effect once a code from it is confirmed.
    Pending {
        secret_sealed: String,
    },
    Enabled {
        secret_sealed: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SessionInfo {
    pub session_id: SessionId,
    pub opened_at: Timestamp,
    pub expires_at: Timestamp,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub mfa: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApiKeyInfo {
    pub key_id: ApiKeyId,
    pub name: String,
    pub prefix: String,
    pub created_at: Timestamp,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Profile {
    pub user_id: UserId,
    pub email: Email,
    pub role: Role,
    pub registered_at: Timestamp,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserState {
    pub profile: Option<Profile>,
    pub password_hash: String,
    /// How many times the password was set; a reset token names the version it may replace.
    pub password_version: u32,
    pub email_verified: bool,
    pub display_name: Option<String>,
    pub language: Option<String>,
    pub totp: Option<Totp>,
    pub last_totp_step: Option<u64>,
    pub blocked: Option<String>,
    /// Open sessions; a session past `expires_at` is open in the log but refused at use.
    pub sessions: BTreeMap<SessionId, SessionInfo>,
    pub api_keys: BTreeMap<ApiKeyId, ApiKeyInfo>,
}

impl UserState {
    pub fn role(&self) -> Option<Role> {
        self.profile.as_ref().map(|p| p.role)
    }

    pub fn totp_enabled(&self) -> bool {
        matches!(self.totp, Some(Totp::Enabled { .. }))
    }

    fn registered(&self) -> Result<&Profile, IdentityError> {
        self.profile.as_ref().ok_or(IdentityError::NotRegistered)
    }

    fn close_all(&self, keep: Option<SessionId>, reason: SessionEnd, at: Timestamp) -> Vec<UserEvent> {
        self.sessions
            .keys()
            .filter(|id| Some(**id) != keep)
            .map(|&session_id| UserEvent::SessionClosed { session_id, reason, at })
            .collect()
    }
}

impl Aggregate for UserState {
    type Command = UserCommand;
    type Event = UserEvent;
    type Error = IdentityError;

    fn decide(&self, command: UserCommand) -> Result<Vec<UserEvent>, IdentityError> {
        if let UserCommand::Register { user_id, email, password_hash, role, at } = command {
            if self.profile.is_some() {
                return Err(IdentityError::AlreadyRegistered);
            }
            return Ok(vec![UserEvent::Registered { user_id, email, password_hash, role, at }]);
        }
        let profile = self.registered()?;
        let events = match command {
            UserCommand::Register { .. } => unreachable!("handled above"),
            UserCommand::VerifyEmail { email, at } => {
                if email != profile.email {
                    return Err(IdentityError::EmailMismatch);
                }
                if self.email_verified { vec![] } else { vec![UserEvent::EmailVerified { email, at }] }
            }
            UserCommand::ChangePassword { password_hash, end_sessions, keep, replaces_version, at } => {
                if replaces_version.is_some_and(|version| version != self.password_version) {
                    return Err(IdentityError::PasswordAlreadyChanged);
                }
                let mut events = vec![UserEvent::PasswordChanged { password_hash, at }];
                events.extend(self.close_all(keep, end_sessions, at));
                events
            }
            UserCommand::UpdateProfile { display_name, language, at } => {
                let display_name = display_name.map(|name| checked_name("display_name", &name)).transpose()?;
                let language = language.map(|code| checked_language(&code)).transpose()?;
                vec![UserEvent::ProfileUpdated { display_name, language, at }]
            }
            UserCommand::SetRole { role, at } => {
                if role == profile.role {
                    vec![]
                } else {
                    vec![UserEvent::RoleChanged { role, at }]
                }
            }
            UserCommand::SetTotpSecret { secret_sealed, at } => {
                if self.totp_enabled() {
                    return Err(IdentityError::TotpAlreadyEnabled);
                }
                vec![UserEvent::TotpSecretSet { secret_sealed, at }]
            }
            UserCommand::EnableTotp { step, at } => match &self.totp {
                Some(Totp::Pending { .. }) => vec![UserEvent::TotpEnabled { step, at }],
                Some(Totp::Enabled { .. }) => return Err(IdentityError::TotpAlreadyEnabled),
                Some(Totp::Off) | None => return Err(IdentityError::TotpNotSetUp),
            },
            UserCommand::Block { reason, by, at } => {
                let reason = reason.trim().to_owned();
                if reason.is_empty() || reason.chars().count() > BLOCK_REASON_LENGTH_MAX {
                    return Err(invalid("reason", format!("1 to {BLOCK_REASON_LENGTH_MAX} characters")));
                }
                if self.blocked.is_some() {
                    return Ok(vec![]);
                }
                let mut events = vec![UserEvent::Blocked { reason, by, at }];
                events.extend(self.close_all(None, SessionEnd::Blocked, at));
                events
            }
            UserCommand::Unblock { by, at } => {
                if self.blocked.is_none() {
                    vec![]
                } else {
                    vec![UserEvent::Unblocked { by, at }]
                }
            }
            UserCommand::OpenSession(open) => {
                if self.blocked.is_some() {
                    return Err(IdentityError::Blocked);
                }
                vec![UserEvent::SessionOpened(open)]
            }
            UserCommand::CloseSession { session_id, reason, at } => {
                if !self.sessions.contains_key(&session_id) {
                    return Err(IdentityError::SessionNotFound);
                }
                vec![UserEvent::SessionClosed { session_id, reason, at }]
            }
            UserCommand::CloseOtherSessions { keep, reason, at } => self.close_all(keep, reason, at),
            UserCommand::CreateApiKey { key_id, name, prefix, at } => {
                if self.blocked.is_some() {
                    return Err(IdentityError::Blocked);
                }
                if self.api_keys.len() >= API_KEYS_MAX {
                    return Err(IdentityError::TooManyApiKeys { max: API_KEYS_MAX });
                }
                let name = checked_name("name", &name)?;
                vec![UserEvent::ApiKeyCreated { key_id, name, prefix, at }]
            }
            UserCommand::RevokeApiKey { key_id, at } => {
                if !self.api_keys.contains_key(&key_id) {
                    return Err(IdentityError::ApiKeyNotFound);
                }
                vec![UserEvent::ApiKeyRevoked { key_id, at }]
            }
        };
        Ok(events)
    }

    fn apply(mut self, event: &UserEvent) -> Self {
        match event {
            UserEvent::Registered { user_id, email, password_hash, role, at } => {
                self.profile =
                    Some(Profile { user_id: *user_id, email: email.clone(), role: *role, registered_at: *at });
                self.password_hash.clone_from(password_hash);
                self.password_version = 1;
            }
            UserEvent::EmailVerified { .. } => self.email_verified = true,
            UserEvent::PasswordChanged { password_hash, .. } => {
                self.password_hash.clone_from(password_hash);
                self.password_version += 1;
            }
            UserEvent::ProfileUpdated { display_name, language, .. } => {
                if display_name.is_some() {
                    self.display_name.clone_from(display_name);
                }
                if language.is_some() {
                    self.language.clone_from(language);
                }
            }
            UserEvent::RoleChanged { role, .. } => {
                if let Some(profile) = &mut self.profile {
                    profile.role = *role;
                }
            }
            UserEvent::TotpSecretSet { secret_sealed, .. } => {
                self.totp = Some(Totp::Pending { secret_sealed: secret_sealed.clone() });
            }
            UserEvent::TotpEnabled { step, .. } => {
                self.last_totp_step = Some(*step);
                if let Some(Totp::Pending { secret_sealed }) = self.totp.take() {
                    self.totp = Some(Totp::Enabled { secret_sealed });
                }
            }
            UserEvent::Blocked { reason, .. } => self.blocked = Some(reason.clone()),
            UserEvent::Unblocked { .. } => self.blocked = None,
            UserEvent::SessionOpened(open) => {
                // Sessions that expired before this one opened are gone: the map stays bounded
                // by the logins of one session lifetime (pruned by event time, so replay agrees).
                self.sessions.retain(|_, session| session.expires_at > open.at);
                if open.totp_step.is_some() {
                    self.last_totp_step = open.totp_step;
                }
                let info = SessionInfo {
                    session_id: open.session_id,
                    opened_at: open.at,
                    expires_at: open.expires_at,
                    ip: open.ip.clone(),
                    user_agent: open.user_agent.clone(),
                    mfa: open.mfa,
                };
                self.sessions.insert(open.session_id, info);
            }
            UserEvent::SessionClosed { session_id, .. } => {
                self.sessions.remove(session_id);
            }
            UserEvent::ApiKeyCreated { key_id, name, prefix, at } => {
                let info = ApiKeyInfo { key_id: *key_id, name: name.clone(), prefix: prefix.clone(), created_at: *at };
                self.api_keys.insert(*key_id, info);
            }
            UserEvent::ApiKeyRevoked { key_id, .. } => {
                self.api_keys.remove(key_id);
            }
        }
        self
    }
}

fn invalid(field: &'static str, reason: impl Into<String>) -> IdentityError {
    IdentityError::Invalid { field, reason: reason.into() }
}

fn checked_name(field: &'static str, name: &str) -> Result<String, IdentityError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > NAME_LENGTH_MAX || name.chars().any(char::is_control) {
        return Err(invalid(field, format!("1 to {NAME_LENGTH_MAX} printable characters")));
    }
    Ok(name.to_owned())
}

/// A language tag such as `en` or `pt-BR`.
fn checked_language(code: &str) -> Result<String, IdentityError> {
    let (language, region) = code.split_once('-').map_or((code, None), |(l, r)| (l, Some(r)));
    let language_ok = language.len() == 2 && language.chars().all(|c| c.is_ascii_lowercase());
    let region_ok = region.is_none_or(|r| r.len() == 2 && r.chars().all(|c| c.is_ascii_uppercase()));
    if !(language_ok && region_ok) {
        return Err(invalid("language", "a language tag such as en or pt-BR"));
    }
    Ok(code.to_owned())
}
