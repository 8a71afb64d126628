//! Identity: the application service for users, sessions, API keys and second factors.
//! Every change is an event appended to the user's stream (and, atomically, to the session,
//! API key or email-claim stream it concerns); state is read back by folding those streams.

mod account;
pub mod mailer;
pub mod password;
pub mod secrets;
mod sessions;
pub mod tokens;
pub mod totp;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use domain::api_key::ApiKeyState;
use domain::events::{api_key_stream, email_stream, session_stream, user_stream};
use domain::identity::{Email, IdentityError, Role, SessionEnd, UserEvent, UserState};
use domain::session::{SessionEvent, SessionState};
use domain::{Aggregate, ApiKeyId, DomainEvent, SessionId, Timestamp, UserId};
use serde::Serialize;
use serde_json::{Value, json};

use crate::service::CONFLICT_RETRIES_MAX;
use crate::store::{
    AppendRequest, EventStore, ExpectedVersion, Loaded, Metadata, NewEvent, RecordedEvent, StoreError, StreamAppend,
};

pub use account::{ApiKeyView, NewApiKey, SessionView, TotpSetup};
pub use mailer::{Mail, Mailer};
pub use sessions::{LoginInput, Tokens};

/// Why an identity operation was refused. The HTTP layer maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// 400: the request is malformed or a field breaks a rule.
    #[error("{message}")]
    Invalid { message: String, details: Value },
    /// 401
    #[error("invalid email or password")]
    BadCredentials,
    /// 401
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// 401, with `details.totp_required`.
    #[error("this account needs a two-factor code (totp_code)")]
    TotpRequired,
    /// 403
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404
    #[error("{0}")]
    NotFound(&'static str),
    /// 409
    #[error("{0}")]
    Conflict(&'static str),
    /// 422: a business rule refused it.
    #[error("{0}")]
    Rule(String),
    /// 503: refused because of maintenance; the caller knows the window.
    #[error("paused for maintenance")]
    Paused,
    /// 500
    #[error(transparent)]
    Store(#[from] StoreError),
    /// 500
    #[error("stored event at position {position} does not fit its stream: {reason}")]
    Corrupt { position: i64, reason: String },
}

impl AuthError {
    pub fn invalid(message: impl Into<String>) -> AuthError {
        AuthError::Invalid { message: message.into(), details: json!({}) }
    }

    pub fn invalid_field(field: &str, problems: impl Serialize) -> AuthError {
        AuthError::Invalid { message: format!("{field} is not acceptable"), details: json!({ field: problems }) }
    }
}

impl From<IdentityError> for AuthError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::InvalidEmail(_) => AuthError::invalid_field("email", [error.to_string()]),
            IdentityError::Invalid { field, reason } => AuthError::invalid_field(field, [reason]),
            IdentityError::EmailMismatch => AuthError::invalid("the token was issued for another email address"),
            IdentityError::PasswordAlreadyChanged => AuthError::invalid("the reset token was already used"),
            IdentityError::AlreadyRegistered => AuthError::Conflict("the user is already registered"),
            IdentityError::NotRegistered => AuthError::NotFound("no such user"),
            IdentityError::Blocked => AuthError::Forbidden("the account is blocked"),
            IdentityError::SessionNotFound => AuthError::NotFound("no such session"),
            IdentityError::ApiKeyNotFound => AuthError::NotFound("no such API key"),
            IdentityError::TooManyApiKeys { .. } | IdentityError::TotpNotSetUp | IdentityError::TotpAlreadyEnabled => {
                AuthError::Rule(error.to_string())
            }
        }
    }
}

/// Where a request came from, recorded with the events it causes.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl Caller {
    /// The metadata recorded with the events this caller causes, acting as `actor`.
    pub fn metadata(&self, actor: Option<UserId>) -> Metadata {
        Metadata {
            actor: actor.map(|id| format!("user:{id}")),
            request_id: self.request_id.clone(),
            ip: self.ip.clone(),
            ..Metadata::default()
        }
    }
}

/// Who is calling, as established from an access token or an API key.
#[derive(Clone, Debug)]
pub struct Principal {
    pub user_id: UserId,
    pub role: Role,
    /// Signed in with the second factor (never true for API keys).
    pub mfa: bool,
    pub via: Via,
    /// The user as read to authenticate this request (so a handler need not read it again).
    pub user: Arc<UserState>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    Session(SessionId),
    ApiKey(ApiKeyId),
}

impl Principal {
    /// The caller as shown to the caller.
    pub fn view(&self) -> Result<UserView, AuthError> {
        UserView::of(&self.user).ok_or(AuthError::NotFound("no such user"))
    }

    pub fn session(&self) -> Result<SessionId, AuthError> {
        match self.via {
            Via::Session(id) => Ok(id),
            Via::ApiKey(_) => Err(AuthError::Forbidden("this needs a signed-in session, not an API key")),
        }
    }

    pub fn require_admin(&self) -> Result<(), AuthError> {
        if self.role != Role::Admin {
            return Err(AuthError::Forbidden("admins only"));
        }
        if !self.mfa {
            return Err(AuthError::Forbidden("admin routes need a session opened with a two-factor code"));
        }
        Ok(())
    }
}

/// A user as shown to the user (and to admins).
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct UserView {
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    #[schema(value_type = String, format = Email)]
    pub email: Email,
    pub email_verified: bool,
    /// `user` or `admin`.
    #[schema(value_type = String, example = "user")]
    pub role: Role,
    pub display_name: Option<String>,
    pub language: Option<String>,
    pub totp_enabled: bool,
    pub blocked: bool,
    #[schema(format = DateTime)]
    pub registered_at: String,
}

impl UserView {
    fn of(state: &UserState) -> Option<UserView> {
        let profile = state.profile.as_ref()?;
        Some(UserView {
            id: profile.user_id,
            email: profile.email.clone(),
            email_verified: state.email_verified,
            role: profile.role,
            display_name: state.display_name.clone(),
            language: state.language.clone(),
            totp_enabled: state.totp_enabled(),
            blocked: state.blocked.is_some(),
            registered_at: rfc3339(profile.registered_at),
        })
    }
}

pub use crate::rfc3339::rfc3339;

pub fn now() -> Timestamp {
    Timestamp(chrono::Utc::now().timestamp_millis())
}

pub struct Identity {
    store: EventStore,
    signer: tokens::Signer,
    sealer: secrets::Sealer,
    pub mailer: Mailer,
    /// Where links in mail point (`FRONTEND_URL`), e.g. `{frontend}/verify-email?token=...`.
    link_base: String,
    /// When each API key's use was last recorded by this process.
    key_use_recorded: Mutex<HashMap<ApiKeyId, Timestamp>>,
    /// Owner and secret hash of keys seen (immutable once issued).
    keys_issued: Mutex<HashMap<ApiKeyId, (UserId, String)>>,
}

/// Per-key entries a map keeps (issued keys, last use recorded) before it starts over.
const KEYS_REMEMBERED_MAX: usize = 100_000;

/// API key use is recorded at most this often per key and process.
const KEY_USE_RECORD_INTERVAL_MS: i64 = 60_000;

impl Identity {
    pub fn new(store: EventStore, jwt_secret: &str, secrets_key: &str, mailer: Mailer, link_base: &str) -> Identity {
        Identity {
            store,
            signer: tokens::Signer::new(jwt_secret),
            sealer: secrets::Sealer::new(secrets_key),
            mailer,
            link_base: link_base.trim_end_matches('/').to_owned(),
            key_use_recorded: Mutex::default(),
            keys_issued: Mutex::default(),
        }
    }

    pub async fn user(&self, user_id: UserId) -> Result<Loaded<UserState>, AuthError> {
        let apply = |state: UserState, event| match event {
            DomainEvent::User(event) => Some(state.apply(&event)),
            _ => None,
        };
        Ok(self.store.fold_stream(&user_stream(user_id), UserState::default(), apply).await?)
    }

    /// The user as this process keeps it in memory (`fresh`: as the database has it now).
    pub async fn user_as(&self, user_id: UserId, fresh: bool) -> Result<UserState, AuthError> {
        let stream = user_stream(user_id);
        match &*self.store.folded(&stream, fresh).await? {
            crate::store::Folded::User(user) => Ok(user.state.clone()),
            _ => Err(AuthError::Store(StoreError::Invalid(format!("{stream} is not a user")))),
        }
    }

    pub async fn user_view(&self, user_id: UserId) -> Result<UserView, AuthError> {
        UserView::of(&self.user(user_id).await?.state).ok_or(AuthError::NotFound("no such user"))
    }

    /// The user an email address belongs to.
    pub async fn user_id_by_email(&self, email: &Email) -> Result<Option<UserId>, AuthError> {
        let apply = |_: Option<UserId>, event| match event {
            DomainEvent::EmailClaimed(domain::events::EmailClaim::Claimed { user_id, .. }) => Some(Some(user_id)),
            _ => None,
        };
        Ok(self.store.fold_stream(&email_stream(email), None, apply).await?.state)
    }

    async fn session_state(&self, session_id: SessionId) -> Result<Loaded<SessionState>, AuthError> {
        let apply = |state: SessionState, event| match event {
            DomainEvent::Session(event) => Some(state.apply(&event)),
            _ => None,
        };
        Ok(self.store.fold_stream(&session_stream(session_id), SessionState::default(), apply).await?)
    }

    async fn api_key_state(&self, key_id: ApiKeyId) -> Result<ApiKeyState, AuthError> {
        let apply = |state: ApiKeyState, event| match event {
            DomainEvent::ApiKey(event) => Some(state.apply(&event)),
            _ => None,
        };
        Ok(self.store.fold_stream(&api_key_stream(key_id), ApiKeyState::default(), apply).await?.state)
    }

    /// Decides `command` on the user's current state and appends the events with `extra`
    /// streams in one append; sessions the events close are revoked in their own streams too.
    /// Re-decided on fresh state after a lost version race. Returns the state after.
    async fn decide_user(
        &self,
        user_id: UserId,
        command: domain::identity::UserCommand,
        extra: Vec<StreamAppend>,
        metadata: Metadata,
    ) -> Result<(UserState, Vec<UserEvent>), AuthError> {
        retrying(|| async {
            let loaded = self.user(user_id).await?;
            let events = loaded.state.decide(command.clone())?;
            if events.is_empty() {
                return Ok((loaded.state, events));
            }
            let mut streams =
                vec![append_to(user_stream(user_id), ExpectedVersion::from_version(loaded.version), &events)];
            streams.extend(revocations(&events));
            streams.extend(extra.iter().cloned());
            self.store.append(AppendRequest { streams, idempotency_key: None, metadata: metadata.clone() }).await?;
            let after = loaded.state.apply_all(&events);
            Ok((after, events))
        })
        .await
    }
}

/// Runs `attempt` again when it lost a version race, a bounded number of times.
async fn retrying<T, F, Fut>(mut attempt: F) -> Result<T, AuthError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, AuthError>>,
{
    let mut tries = 0;
    loop {
        match attempt().await {
            Err(AuthError::Store(StoreError::Conflict { .. })) if tries < CONFLICT_RETRIES_MAX => tries += 1,
            result => return result,
        }
    }
}

fn append_to<E: Clone + Into<DomainEvent>>(stream_id: String, expected: ExpectedVersion, events: &[E]) -> StreamAppend {
    StreamAppend {
        stream_id,
        expected,
        events: events.iter().map(|e| NewEvent::from_domain(&e.clone().into())).collect(),
    }
}

/// A session closed in the user's stream is revoked in its own stream in the same append, so
/// its refresh token stops working at once. `Any`: revoking twice is harmless.
fn revocations(events: &[UserEvent]) -> Vec<StreamAppend> {
    events
        .iter()
        .filter_map(|event| match event {
            UserEvent::SessionClosed { session_id, reason, at } => Some(append_to(
                session_stream(*session_id),
                ExpectedVersion::Any,
                &[SessionEvent::Revoked { reason: *reason, at: *at }],
            )),
            _ => None,
        })
        .collect()
}

fn decode(recorded: &RecordedEvent) -> Result<DomainEvent, AuthError> {
    recorded
        .decode()
        .map_err(|e| AuthError::Corrupt { position: recorded.position, reason: format!("{}: {e}", recorded.stream_id) })
}

impl Identity {
    /// Closes one of the principal's sessions for `reason` (logout, the user revoking a session).
    pub async fn close_session(
        &self,
        principal: &Principal,
        session_id: SessionId,
        reason: SessionEnd,
        caller: &Caller,
    ) -> Result<(), AuthError> {
        let command = domain::identity::UserCommand::CloseSession { session_id, reason, at: now() };
        self.decide_user(principal.user_id, command, vec![], caller.metadata(Some(principal.user_id))).await?;
        Ok(())
    }
}
