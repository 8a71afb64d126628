//! What a signed-in user does with the account: profile, password, email verification,
//! password reset, sessions, API keys, second factor; and what admins do to accounts.

use domain::api_key::ApiKeyEvent;
use domain::events::{api_key_stream, api_key_used_stream};
use domain::identity::{Email, Role, SessionEnd, Totp, UserCommand};
use domain::{ApiKeyId, DomainEvent, SessionId, UserId};
use serde::Serialize;

use super::sessions::{check_password, unix_seconds};
use super::tokens::{self, PASSWORD_RESET_TTL, PasswordResetClaims, Purpose, VERIFY_EMAIL_TTL, VerifyEmailClaims};
use super::{AuthError, Caller, Identity, Mail, Principal, UserView, Via, append_to, now, password, rfc3339, totp};
use crate::store::ExpectedVersion;

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct SessionView {
    #[schema(value_type = String, format = Uuid)]
    pub id: SessionId,
    #[schema(format = DateTime)]
    pub opened_at: String,
    #[schema(format = DateTime)]
    pub expires_at: String,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub mfa: bool,
    /// The session this request was made with.
    pub current: bool,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ApiKeyView {
    #[schema(value_type = String, format = Uuid)]
    pub id: ApiKeyId,
    pub name: String,
    /// The start of the key, to recognise it by; the rest is never shown again.
    pub prefix: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_used_at: Option<String>,
}

/// A new key: the only time `key` is ever shown.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct NewApiKey {
    #[serde(flatten)]
    pub view: ApiKeyView,
    pub key: String,
}

#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct TotpSetup {
    /// Base32, for typing into an authenticator app.
    pub secret: String,
    /// `otpauth://` URL, for a QR code.
    pub otpauth_url: String,
}

impl Identity {
    pub async fn update_profile(
        &self,
        principal: &Principal,
        display_name: Option<String>,
        language: Option<String>,
        caller: &Caller,
    ) -> Result<UserView, AuthError> {
        let command = UserCommand::UpdateProfile { display_name, language, at: now() };
        self.decide_user(principal.user_id, command, vec![], caller.metadata(Some(principal.user_id))).await?;
        self.user_view(principal.user_id).await
    }

    /// Changes the password after checking the current one; every other session is closed.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: &str,
        new: &str,
        caller: &Caller,
    ) -> Result<(), AuthError> {
        let session_id = principal.session()?;
        let user = &principal.user;
        let email = user.profile.as_ref().map(|p| p.email.clone()).ok_or(AuthError::NotFound("no such user"))?;
        if !password::verify(current.to_owned(), Some(user.password_hash.clone())).await {
            return Err(AuthError::Forbidden("the current password is wrong"));
        }
        check_password(new, &email)?;
        let password_hash = password::hash(new.to_owned()).await;
        let command = UserCommand::ChangePassword {
            password_hash,
            end_sessions: SessionEnd::PasswordChanged,
            keep: Some(session_id),
            replaces_version: None,
            at: now(),
        };
        self.decide_user(principal.user_id, command, vec![], caller.metadata(Some(principal.user_id))).await?;
        Ok(())
    }

    pub(super) async fn send_verification_mail(&self, user_id: UserId, email: &Email) -> Result<(), AuthError> {
        let claims = VerifyEmailClaims {
            sub: user_id,
            email: email.clone(),
            typ: Purpose::VerifyEmail,
            exp: tokens::expiry(now().0, VERIFY_EMAIL_TTL),
        };
        let token = self.signer.sign(&claims);
        self.mail_link(email, "Confirm your email address", "verify-email", &token, "valid for 24 hours").await
    }

    /// Mails a link to the frontend's `page` carrying `token`.
    async fn mail_link(
        &self,
        to: &Email,
        subject: &str,
        page: &str,
        token: &str,
        validity: &str,
    ) -> Result<(), AuthError> {
        let link = format!("{}/{page}?token={token}", self.link_base);
        let body = format!("{subject} for smsledger: {link}\nThe link is {validity}.");
        let mail = Mail { to: to.to_string(), subject: subject.into(), body };
        self.mailer.send(mail).await.map_err(|e| AuthError::Store(e.into()))
    }

    pub async fn send_verification(&self, principal: &Principal) -> Result<(), AuthError> {
        let user = &principal.user;
        let profile = user.profile.as_ref().ok_or(AuthError::NotFound("no such user"))?;
        if user.email_verified {
            return Err(AuthError::Rule("the email address is already verified".into()));
        }
        self.send_verification_mail(principal.user_id, &profile.email).await
    }

    pub async fn verify_email(&self, token: &str, caller: &Caller) -> Result<UserView, AuthError> {
        let claims: VerifyEmailClaims = self
            .signer
            .verify(token, Purpose::VerifyEmail)
            .map_err(|e| AuthError::invalid(format!("the verification token is not usable: {e}")))?;
        let command = UserCommand::VerifyEmail { email: claims.email, at: now() };
        self.decide_user(claims.sub, command, vec![], caller.metadata(Some(claims.sub))).await?;
        self.user_view(claims.sub).await
    }

    /// Mails a reset link if the address belongs to an account that is not blocked. The
    /// answer is the same either way, so it tells nobody which addresses have accounts.
    pub async fn request_password_reset(&self, email: &str) -> Result<(), AuthError> {
        let Ok(email) = Email::parse(email) else { return Ok(()) };
        let Some(user_id) = self.user_id_by_email(&email).await? else { return Ok(()) };
        let user = self.user(user_id).await?.state;
        if user.blocked.is_some() {
            return Ok(());
        }
        let claims = PasswordResetClaims {
            sub: user_id,
            pwv: user.password_version,
            typ: Purpose::PasswordReset,
            exp: tokens::expiry(now().0, PASSWORD_RESET_TTL),
        };
        let token = self.signer.sign(&claims);
        self.mail_link(&email, "Reset your password", "reset-password", &token, "valid for one hour and works once")
            .await
    }

    /// Sets a new password with a mailed token; the token works once, and every session ends.
    pub async fn confirm_password_reset(&self, token: &str, new: &str, caller: &Caller) -> Result<(), AuthError> {
        let claims: PasswordResetClaims = self
            .signer
            .verify(token, Purpose::PasswordReset)
            .map_err(|e| AuthError::invalid(format!("the reset token is not usable: {e}")))?;
        let user = self.user(claims.sub).await?.state;
        let email = user.profile.as_ref().map(|p| p.email.clone()).ok_or(AuthError::NotFound("no such user"))?;
        if user.password_version != claims.pwv {
            return Err(AuthError::invalid("the reset token was already used"));
        }
        check_password(new, &email)?;
        let password_hash = password::hash(new.to_owned()).await;
        let command = UserCommand::ChangePassword {
            password_hash,
            end_sessions: SessionEnd::PasswordReset,
            keep: None,
            replaces_version: Some(claims.pwv),
            at: now(),
        };
        self.decide_user(claims.sub, command, vec![], caller.metadata(Some(claims.sub))).await?;
        Ok(())
    }

    pub async fn sessions(&self, principal: &Principal) -> Result<Vec<SessionView>, AuthError> {
        let user = &principal.user;
        let at = now();
        let current = match principal.via {
            Via::Session(id) => Some(id),
            Via::ApiKey(_) => None,
        };
        Ok(user
            .sessions
            .values()
            .filter(|s| s.expires_at > at)
            .map(|s| SessionView {
                id: s.session_id,
                opened_at: rfc3339(s.opened_at),
                expires_at: rfc3339(s.expires_at),
                ip: s.ip.clone(),
                user_agent: s.user_agent.clone(),
                mfa: s.mfa,
                current: Some(s.session_id) == current,
            })
            .collect())
    }

    /// Ends every session of the caller but the one making the request. Returns how many ended.
    pub async fn revoke_other_sessions(&self, principal: &Principal, caller: &Caller) -> Result<usize, AuthError> {
        let keep = principal.session()?;
        let command =
            UserCommand::CloseOtherSessions { keep: Some(keep), reason: SessionEnd::RevokedByUser, at: now() };
        let (_, events) =
            self.decide_user(principal.user_id, command, vec![], caller.metadata(Some(principal.user_id))).await?;
        Ok(events.len())
    }

    pub async fn create_api_key(
        &self,
        principal: &Principal,
        name: &str,
        caller: &Caller,
    ) -> Result<NewApiKey, AuthError> {
        principal.session()?;
        let key_id = ApiKeyId::new();
        let (key, secret_hash) = tokens::new_api_key(key_id);
        let prefix = tokens::api_key_prefix(&key);
        let at = now();
        let issued = ApiKeyEvent::Issued { key_id, user_id: principal.user_id, secret_hash, at };
        let extra = vec![append_to(api_key_stream(key_id), ExpectedVersion::NoStream, &[issued])];
        let command = UserCommand::CreateApiKey { key_id, name: name.to_owned(), prefix: prefix.clone(), at };
        let (user, _) =
            self.decide_user(principal.user_id, command, extra, caller.metadata(Some(principal.user_id))).await?;
        let name = user.api_keys.get(&key_id).map(|k| k.name.clone()).unwrap_or_default();
        let view = ApiKeyView { id: key_id, name, prefix, created_at: rfc3339(at), last_used_at: None };
        Ok(NewApiKey { view, key })
    }

    pub async fn api_keys(&self, principal: &Principal) -> Result<Vec<ApiKeyView>, AuthError> {
        let user = &principal.user;
        let mut views = Vec::with_capacity(user.api_keys.len());
        for key in user.api_keys.values() {
            let last_used_at = match self.store.last_in_stream(&api_key_used_stream(key.key_id)).await? {
                Some(recorded) => match super::decode(&recorded)? {
                    DomainEvent::ApiKey(ApiKeyEvent::Used { at }) => Some(rfc3339(at)),
                    _ => None,
                },
                None => None,
            };
            views.push(ApiKeyView {
                id: key.key_id,
                name: key.name.clone(),
                prefix: key.prefix.clone(),
                created_at: rfc3339(key.created_at),
                last_used_at,
            });
        }
        Ok(views)
    }

    pub async fn revoke_api_key(
        &self,
        principal: &Principal,
        key_id: ApiKeyId,
        caller: &Caller,
    ) -> Result<(), AuthError> {
        principal.session()?;
        let at = now();
        let revoked = append_to(api_key_stream(key_id), ExpectedVersion::Any, &[ApiKeyEvent::Revoked { at }]);
        let command = UserCommand::RevokeApiKey { key_id, at };
        self.decide_user(principal.user_id, command, vec![revoked], caller.metadata(Some(principal.user_id))).await?;
        Ok(())
    }

    /// Issues a new TOTP secret, sealed at rest; it takes effect once `enable_totp` confirms
    /// a code from it.
    pub async fn set_up_totp(&self, principal: &Principal, caller: &Caller) -> Result<TotpSetup, AuthError> {
        principal.session()?;
        let user = &principal.user;
        let email = user.profile.as_ref().map(|p| p.email.to_string()).ok_or(AuthError::NotFound("no such user"))?;
        let secret = super::secrets::random_bytes(totp::SECRET_BYTES);
        let secret_sealed = self.sealer.seal(&secret, &principal.user_id.to_string());
        let command = UserCommand::SetTotpSecret { secret_sealed, at: now() };
        self.decide_user(principal.user_id, command, vec![], caller.metadata(Some(principal.user_id))).await?;
        Ok(TotpSetup { secret: totp::encode_secret(&secret), otpauth_url: totp::provisioning_url(&secret, &email) })
    }

    /// Enables the second factor when `code` matches the pending secret. Sessions opened
    /// before carry no second factor: sign in again with a code to use admin routes.
    pub async fn enable_totp(&self, principal: &Principal, code: &str, caller: &Caller) -> Result<(), AuthError> {
        principal.session()?;
        let user = &principal.user;
        let sealed = match &user.totp {
            Some(Totp::Pending { secret_sealed }) => secret_sealed.clone(),
            Some(Totp::Enabled { .. }) => {
                return Err(AuthError::Rule("two-factor authentication is already enabled".into()));
            }
            _ => return Err(AuthError::Rule("two-factor authentication has not been set up".into())),
        };
        let secret = self.sealer.open(&sealed, &principal.user_id.to_string()).map_err(|e| AuthError::Corrupt {
            position: -1,
            reason: format!("TOTP secret of {}: {e}", principal.user_id),
        })?;
        let Some(step) = totp::check(&secret, code, unix_seconds()) else {
            return Err(AuthError::invalid_field("code", ["the code is wrong"]));
        };
        let command = UserCommand::EnableTotp { step, at: now() };
        self.decide_user(principal.user_id, command, vec![], caller.metadata(Some(principal.user_id))).await?;
        Ok(())
    }

    /// Makes the account with `email` an admin, registering it with `password` first if it
    /// does not exist. Returns the user and whether it was created.
    pub async fn make_admin(
        &self,
        email: &str,
        password: &str,
        caller: &Caller,
    ) -> Result<(UserView, bool), AuthError> {
        let parsed = Email::parse(email)?;
        if let Some(user_id) = self.user_id_by_email(&parsed).await? {
            let command = UserCommand::SetRole { role: Role::Admin, at: now() };
            self.decide_user(user_id, command, vec![], caller.metadata(None)).await?;
            return Ok((self.user_view(user_id).await?, false));
        }
        Ok((self.register(email, password, Role::Admin, caller).await?, true))
    }

    pub async fn block(
        &self,
        admin: &Principal,
        user_id: UserId,
        reason: &str,
        caller: &Caller,
    ) -> Result<UserView, AuthError> {
        let command = UserCommand::Block { reason: reason.to_owned(), by: Some(admin.user_id), at: now() };
        self.decide_user(user_id, command, vec![], caller.metadata(Some(admin.user_id))).await?;
        self.user_view(user_id).await
    }

    /// An admin gives a user a role; it takes effect at the user's next request.
    pub async fn set_role(
        &self,
        admin: &Principal,
        user_id: UserId,
        role: Role,
        caller: &Caller,
    ) -> Result<UserView, AuthError> {
        let command = UserCommand::SetRole { role, at: now() };
        self.decide_user(user_id, command, vec![], caller.metadata(Some(admin.user_id))).await?;
        self.user_view(user_id).await
    }

    pub async fn unblock(&self, admin: &Principal, user_id: UserId, caller: &Caller) -> Result<UserView, AuthError> {
        let command = UserCommand::Unblock { by: Some(admin.user_id), at: now() };
        self.decide_user(user_id, command, vec![], caller.metadata(Some(admin.user_id))).await?;
        self.user_view(user_id).await
    }
}
