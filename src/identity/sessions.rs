//! Registration, login, refresh, logout, and establishing who a request comes from.

use domain::Aggregate;
use domain::api_key::ApiKeyEvent;
use domain::credentials::{is_disposable, password_problems};
use domain::events::{EmailClaim, api_key_used_stream, email_stream, session_stream, user_stream};
use domain::identity::{Email, OpenSession, Role, SessionEnd, Totp, UserCommand, UserEvent, UserState};
use domain::session::{SessionCommand, SessionError, SessionEvent};
use std::sync::Arc;

use domain::{ApiKeyId, SessionId, UserId};
use serde::Serialize;

use super::tokens::{self, ACCESS_TTL, AccessClaims, Purpose, SESSION_TTL, TokenError};
use super::{AuthError, Caller, Identity, Principal, UserView, Via, append_to, now, password, retrying, secrets, totp};
use crate::store::{AppendRequest, ExpectedVersion, StoreError};

#[derive(Clone, Debug, Default)]
pub struct LoginInput {
    pub email: String,
    pub password: String,
    pub totp_code: Option<String>,
}

/// What a login or a refresh hands the client.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: &'static str,
    /// Seconds the access token is valid for.
    pub expires_in: u64,
    #[schema(value_type = String, format = Uuid)]
    pub session_id: SessionId,
}

impl Identity {
    /// Opens an account. The email claim stream is appended with `NoStream` in the same
    /// append as the user stream, so one address can never belong to two accounts.
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        role: Role,
        caller: &Caller,
    ) -> Result<UserView, AuthError> {
        let email = Email::parse(email)?;
        if is_disposable(&email) {
            return Err(AuthError::invalid_field("email", ["disposable email addresses are not accepted"]));
        }
        check_password(password, &email)?;
        let password_hash = password::hash(password.to_owned()).await;
        let user_id = UserId::new();
        let at = now();
        let registered = UserEvent::Registered { user_id, email: email.clone(), password_hash, role, at };
        let claim = EmailClaim::Claimed { user_id, email: email.clone() };
        let request = AppendRequest {
            streams: vec![
                append_to(user_stream(user_id), ExpectedVersion::NoStream, &[registered]),
                append_to(email_stream(&email), ExpectedVersion::NoStream, &[claim]),
            ],
            idempotency_key: None,
            metadata: caller.metadata(Some(user_id)),
        };
        match self.store.append(request).await {
            Err(StoreError::Conflict { .. }) => {
                return Err(AuthError::Conflict("an account with this email already exists"));
            }
            result => result?,
        };
        // The account exists either way: a mail that could not be queued is asked for again.
        if let Err(error) = self.send_verification_mail(user_id, &email).await {
            tracing::warn!(%error, "mail.not_queued");
        }
        self.user_view(user_id).await
    }

    /// Checks the password (and the second factor when enrolled) and opens a session.
    /// `admins_only`: maintenance is on, only admins may sign in.
    pub async fn login(
        &self,
        input: LoginInput,
        caller: &Caller,
        admins_only: bool,
    ) -> Result<(Tokens, UserView), AuthError> {
        let user_id = match Email::parse(&input.email) {
            Ok(email) => self.user_id_by_email(&email).await?,
            Err(_) => None,
        };
        let user = match user_id {
            Some(id) => Some(self.user(id).await?.state),
            None => None,
        };
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        if !password::verify(input.password, hash).await {
            return Err(AuthError::BadCredentials);
        }
        let (Some(user_id), Some(user)) = (user_id, user) else { return Err(AuthError::BadCredentials) };
        if user.blocked.is_some() {
            return Err(AuthError::Forbidden("the account is blocked"));
        }
        if admins_only && user.role() != Some(Role::Admin) {
            return Err(AuthError::Paused);
        }
        let totp_step = match &user.totp {
            Some(Totp::Enabled { secret_sealed }) => {
                let code = input.totp_code.ok_or(AuthError::TotpRequired)?;
                let secret = self.sealer.open(secret_sealed, &user_id.to_string()).map_err(|e| AuthError::Corrupt {
                    position: -1,
                    reason: format!("TOTP secret of {user_id}: {e}"),
                })?;
                let step = totp::check(&secret, &code, unix_seconds())
                    .filter(|step| user.last_totp_step.is_none_or(|last| *step > last))
                    .ok_or(AuthError::Unauthenticated("the two-factor code is wrong or was already used"))?;
                Some(step)
            }
            _ => None,
        };
        let tokens = self.open_session(user_id, totp_step, caller).await?;
        let view = self.user_view(user_id).await?;
        Ok((tokens, view))
    }

    async fn open_session(
        &self,
        user_id: UserId,
        totp_step: Option<u64>,
        caller: &Caller,
    ) -> Result<Tokens, AuthError> {
        let session_id = SessionId::new();
        let (refresh_token, token_hash) = tokens::new_refresh_token(session_id);
        let at = now();
        let expires_at = at.plus_ms(SESSION_TTL.as_millis() as u64);
        let mfa = totp_step.is_some();
        let open = OpenSession {
            session_id,
            expires_at,
            ip: caller.ip.clone(),
            user_agent: caller.user_agent.as_ref().map(|ua| ua.chars().take(200).collect()),
            mfa,
            totp_step,
            at,
        };
        let issued = SessionEvent::Issued { session_id, user_id, token_hash, expires_at, mfa, at };
        let extra = vec![append_to(session_stream(session_id), ExpectedVersion::NoStream, &[issued])];
        let (user, _) =
            self.decide_user(user_id, UserCommand::OpenSession(open), extra, caller.metadata(Some(user_id))).await?;
        let role = user.role().unwrap_or(Role::User);
        Ok(self.tokens(user_id, session_id, role, mfa, refresh_token))
    }

    fn tokens(&self, user_id: UserId, session_id: SessionId, role: Role, mfa: bool, refresh_token: String) -> Tokens {
        let now_ms = now().0;
        let claims = AccessClaims {
            sub: user_id,
            sid: session_id,
            role,
            mfa,
            typ: Purpose::Access,
            iat: now_ms / 1000,
            exp: tokens::expiry(now_ms, ACCESS_TTL),
        };
        Tokens {
            access_token: self.signer.sign(&claims),
            refresh_token,
            token_type: "Bearer",
            expires_in: ACCESS_TTL.as_secs(),
            session_id,
        }
    }

    /// Exchanges a refresh token for a new pair. A token that was already exchanged means a
    /// copy is in other hands: the whole session is revoked and the call refused.
    pub async fn refresh(&self, refresh_token: &str, caller: &Caller) -> Result<Tokens, AuthError> {
        let invalid = AuthError::Unauthenticated("the refresh token is not valid");
        let Some(session_id) = tokens::record_id(refresh_token, "rt").map(SessionId) else { return Err(invalid) };
        let presented_hash = secrets::token_hash(refresh_token);
        retrying(|| async {
            let session = self.session_state(session_id).await?;
            let (new_token, new_hash) = tokens::new_refresh_token(session_id);
            let at = now();
            let command = SessionCommand::Refresh { presented_hash: presented_hash.clone(), new_hash, at };
            let events = session.state.decide(command).map_err(|error| match error {
                SessionError::Expired => AuthError::Unauthenticated("the session has expired; sign in again"),
                SessionError::Ended => AuthError::Unauthenticated("the session has ended; sign in again"),
                SessionError::UnknownToken | SessionError::AlreadyIssued => {
                    AuthError::Unauthenticated("the refresh token is not valid")
                }
            })?;
            let user_id = session.state.user_id.ok_or(AuthError::Unauthenticated("the refresh token is not valid"))?;
            let expected = ExpectedVersion::from_version(session.version);
            let mut streams = vec![append_to(session_stream(session_id), expected, &events)];
            let reused = matches!(events.as_slice(), [SessionEvent::Revoked { .. }]);
            let user = self.user(user_id).await?.state;
            if reused {
                let closed = UserEvent::SessionClosed { session_id, reason: SessionEnd::RefreshTokenReused, at };
                if user.sessions.contains_key(&session_id) {
                    streams.push(append_to(user_stream(user_id), ExpectedVersion::Any, &[closed]));
                }
            } else if user.blocked.is_some() {
                return Err(AuthError::Forbidden("the account is blocked"));
            } else if !user.sessions.contains_key(&session_id) {
                return Err(AuthError::Unauthenticated("the session has ended; sign in again"));
            }
            let request = AppendRequest { streams, idempotency_key: None, metadata: caller.metadata(Some(user_id)) };
            self.store.append(request).await?;
            if reused {
                tracing::warn!(%user_id, %session_id, "auth.refresh_token_reused");
                metrics::counter!("auth_refresh_token_reuse_total").increment(1);
                return Err(AuthError::Unauthenticated("this refresh token was already used; the session is revoked"));
            }
            let role = user.role().unwrap_or(Role::User);
            Ok(self.tokens(user_id, session_id, role, session.state.mfa, new_token))
        })
        .await
    }

    /// Who an access token belongs to. The user's stream is read every time, so a logout,
    /// a revoked session, a block or a role change takes effect at the next request.
    pub async fn authenticate_bearer(&self, token: &str) -> Result<Principal, AuthError> {
        let claims = self.signer.verify_access(token).map_err(|error| match error {
            TokenError::Expired => AuthError::Unauthenticated("the access token has expired; refresh it"),
            TokenError::Invalid => AuthError::Unauthenticated("the access token is not valid"),
        })?;
        // From memory; a refusal is confirmed against the database (a sign-in or an unblock
        // through another process may not have reached this one yet).
        let mut user = self.user_as(claims.sub, false).await?;
        if session_refusal(&user, claims.sid).is_some() {
            user = self.user_as(claims.sub, true).await?;
        }
        if let Some(refusal) = session_refusal(&user, claims.sid) {
            return Err(refusal);
        }
        let role = user.role().ok_or(AuthError::Unauthenticated("the access token is not valid"))?;
        let via = Via::Session(claims.sid);
        Ok(Principal { user_id: claims.sub, role, mfa: claims.mfa, via, user: Arc::new(user) })
    }

    /// Who an API key belongs to. API keys never carry the second factor: admin routes need a session.
    pub async fn authenticate_api_key(&self, key: &str) -> Result<Principal, AuthError> {
        let invalid = AuthError::Unauthenticated("the API key is not valid");
        let Some(key_id) = tokens::record_id(key, "sk").map(ApiKeyId) else { return Err(invalid) };
        let Some((user_id, secret_hash)) = self.issued_key(key_id).await? else { return Err(invalid) };
        if !secrets::same_hash(&secret_hash, &secrets::token_hash(key)) {
            return Err(invalid);
        }
        let mut user = self.user_as(user_id, false).await?;
        if key_refusal(&user, key_id).is_some() {
            user = self.user_as(user_id, true).await?;
        }
        if let Some(refusal) = key_refusal(&user, key_id) {
            return Err(refusal);
        }
        let role = user.role().ok_or(invalid)?;
        self.record_key_use(key_id).await;
        Ok(Principal { user_id, role, mfa: false, via: Via::ApiKey(key_id), user: Arc::new(user) })
    }

    /// Owner and secret hash of an issued key. They never change once written, so they are
    /// kept in memory after the first read (bounded: cleared when full).
    async fn issued_key(&self, key_id: ApiKeyId) -> Result<Option<(UserId, String)>, AuthError> {
        if let Some(issued) = self.keys_issued.lock().expect("issued keys lock").get(&key_id) {
            return Ok(Some(issued.clone()));
        }
        let state = self.api_key_state(key_id).await?;
        let Some(user_id) = state.user_id else { return Ok(None) };
        let issued = (user_id, state.secret_hash);
        let mut cache = self.keys_issued.lock().expect("issued keys lock");
        if cache.len() >= super::KEYS_REMEMBERED_MAX {
            cache.clear();
        }
        cache.insert(key_id, issued.clone());
        Ok(Some(issued))
    }

    /// Appends `api_key.used` at most once a minute per key and process; a failure to record
    /// is logged, never a reason to refuse the request.
    async fn record_key_use(&self, key_id: ApiKeyId) {
        let at = now();
        {
            let mut recorded = self.key_use_recorded.lock().expect("key use lock");
            if recorded.get(&key_id).is_some_and(|last| at.0 - last.0 < super::KEY_USE_RECORD_INTERVAL_MS) {
                return;
            }
            if recorded.len() >= super::KEYS_REMEMBERED_MAX {
                recorded.clear();
            }
            recorded.insert(key_id, at);
        }
        let used = append_to(api_key_used_stream(key_id), ExpectedVersion::Any, &[ApiKeyEvent::Used { at }]);
        let request = AppendRequest { streams: vec![used], ..AppendRequest::default() };
        if let Err(error) = self.store.append(request).await {
            tracing::warn!(%key_id, %error, "auth.key_use_not_recorded");
        }
    }
}

pub(super) fn check_password(password: &str, email: &Email) -> Result<(), AuthError> {
    let problems = password_problems(password, email);
    if problems.is_empty() { Ok(()) } else { Err(AuthError::invalid_field("password", problems)) }
}

pub(super) fn unix_seconds() -> u64 {
    u64::try_from(now().0 / 1000).unwrap_or(0)
}

/// Why a session's access token is refused for this user, if it is.
fn session_refusal(user: &UserState, session: SessionId) -> Option<AuthError> {
    if user.role().is_none() {
        return Some(AuthError::Unauthenticated("the access token is not valid"));
    }
    if user.blocked.is_some() {
        return Some(AuthError::Forbidden("the account is blocked"));
    }
    if !user.sessions.contains_key(&session) {
        return Some(AuthError::Unauthenticated("the session has ended; sign in again"));
    }
    None
}

/// Why an API key is refused for its owner, if it is. A revocation is in the user's stream
/// too (same append as in the key's own stream).
fn key_refusal(user: &UserState, key: ApiKeyId) -> Option<AuthError> {
    if user.role().is_none() {
        return Some(AuthError::Unauthenticated("the API key is not valid"));
    }
    if !user.api_keys.contains_key(&key) {
        return Some(AuthError::Unauthenticated("the API key was revoked"));
    }
    if user.blocked.is_some() {
        return Some(AuthError::Forbidden("the account is blocked"));
    }
    None
}
