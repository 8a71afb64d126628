//! Signed tokens: access tokens (JWT, HS256 pinned, 15 minutes) and the single-purpose tokens
//! mailed to users (verify an email, reset a password). Refresh tokens and API keys are
//! opaque random strings that name their record, stored only as hashes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use domain::identity::{Email, Role};
use domain::{ApiKeyId, SessionId, UserId};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::secrets::random_token;

/// Lifetime of an access token.
pub const ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// Lifetime of a session (its refresh tokens), counted from login; refreshing does not extend it.
pub const SESSION_TTL: Duration = Duration::from_secs(30 * 24 * 3600);
pub const VERIFY_EMAIL_TTL: Duration = Duration::from_secs(24 * 3600);
pub const PASSWORD_RESET_TTL: Duration = Duration::from_secs(3600);
/// Clock skew tolerated between instances when checking `exp`.
const LEEWAY_S: u64 = 5;
const ALGORITHM: Algorithm = Algorithm::HS256;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Purpose {
    Access,
    VerifyEmail,
    PasswordReset,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: UserId,
    pub sid: SessionId,
    /// The role at issue; the current role is read from the user's stream at every request.
    pub role: Role,
    /// The second factor was presented when this session was opened.
    pub mfa: bool,
    pub typ: Purpose,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyEmailClaims {
    pub sub: UserId,
    pub email: Email,
    pub typ: Purpose,
    pub exp: i64,
}

/// Valid only while the password is still at version `pwv`: a reset uses it up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordResetClaims {
    pub sub: UserId,
    pub pwv: u32,
    pub typ: Purpose,
    pub exp: i64,
}

/// Access tokens verified here, kept so that a client's next request with the same token is
/// not decoded and its signature computed again (most requests of a client carry the token
/// of the one before). Cleared when full.
const VERIFIED_MAX: usize = 4_096;

pub struct Signer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Access tokens whose signature and purpose were checked, by the exact token text; only
    /// expiry is checked again when one is met again.
    verified: Mutex<HashMap<Box<str>, AccessClaims>>,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid")]
    Invalid,
}

impl Signer {
    pub fn new(jwt_secret: &str) -> Signer {
        let mut validation = Validation::new(ALGORITHM);
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.leeway = LEEWAY_S;
        Signer {
            encoding: EncodingKey::from_secret(jwt_secret.as_bytes()),
            decoding: DecodingKey::from_secret(jwt_secret.as_bytes()),
            validation,
            verified: Mutex::default(),
        }
    }

    pub fn sign<T: Serialize>(&self, claims: &T) -> String {
        jsonwebtoken::encode(&Header::new(ALGORITHM), claims, &self.encoding).expect("HS256 signing cannot fail")
    }

    /// Checks signature, algorithm, expiry and that the token was made for `purpose`.
    pub fn verify<T: DeserializeOwned + HasPurpose>(&self, token: &str, purpose: Purpose) -> Result<T, TokenError> {
        let claims = jsonwebtoken::decode::<T>(token, &self.decoding, &self.validation)
            .map_err(|error| match error.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?
            .claims;
        if claims.purpose() != purpose {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }

    /// `verify` for access tokens, answering a token verified before from memory while it has
    /// not expired: the same text with the same key verifies the same way.
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let known = self.verified.lock().expect("verified tokens lock").get(token).cloned();
        if let Some(claims) = known {
            let now_s = chrono::Utc::now().timestamp();
            return if claims.exp >= now_s - LEEWAY_S as i64 { Ok(claims) } else { Err(TokenError::Expired) };
        }
        let claims: AccessClaims = self.verify(token, Purpose::Access)?;
        let mut verified = self.verified.lock().expect("verified tokens lock");
        if verified.len() >= VERIFIED_MAX {
            verified.clear();
        }
        verified.insert(token.into(), claims.clone());
        Ok(claims)
    }
}

pub trait HasPurpose {
    fn purpose(&self) -> Purpose;
}

macro_rules! has_purpose {
    ($($claims:ty),*) => {$(
        impl HasPurpose for $claims {
            fn purpose(&self) -> Purpose {
                self.typ
            }
        }
    )*};
}

has_purpose!(AccessClaims, VerifyEmailClaims, PasswordResetClaims);

/// Seconds since the epoch, `ttl` from now.
pub fn expiry(now_ms: i64, ttl: Duration) -> i64 {
    now_ms / 1000 + ttl.as_secs() as i64
}

/// A refresh token: `rt_{session id}_{secret}`. Returns the token and the secret's hash.
pub fn new_refresh_token(session_id: SessionId) -> (String, String) {
    let token = format!("rt_{}_{}", session_id.0.simple(), random_token(32));
    let hash = super::secrets::token_hash(&token);
    (token, hash)
}

/// An API key: `sk_{key id}_{secret}`. Returns the key and its hash.
pub fn new_api_key(key_id: ApiKeyId) -> (String, String) {
    let key = format!("sk_{}_{}", key_id.0.simple(), random_token(32));
    let hash = super::secrets::token_hash(&key);
    (key, hash)
}

/// The record an opaque token names: `{prefix}_{32 hex}_{secret}`.
pub fn record_id(token: &str, prefix: &str) -> Option<uuid::Uuid> {
    let rest = token.strip_prefix(prefix)?.strip_prefix('_')?;
    let (id, secret) = rest.split_once('_')?;
    if id.len() != 32 || secret.is_empty() {
        return None;
    }
    uuid::Uuid::try_parse(id).ok()
}

/// What may be shown of an API key after creation: its prefix and id, never the secret.
pub fn api_key_prefix(key: &str) -> String {
    key.rsplit_once('_').map_or_else(String::new, |(head, _)| format!("{head}_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_signer() -> Signer {
        Signer::new("a test secret of at least thirty-two bytes")
    }

    /// A password reset's claims for a new user, valid from `now` (ms).
    fn reset_claims(now: i64) -> PasswordResetClaims {
        PasswordResetClaims {
            sub: UserId::new(),
            pwv: 1,
            typ: Purpose::PasswordReset,
            exp: expiry(now, PASSWORD_RESET_TTL),
        }
    }

    #[test]
    fn tokens_are_checked_for_purpose_signature_and_expiry() {
        let signer = test_signer();
        let now = chrono::Utc::now().timestamp_millis();
        let reset = reset_claims(now);
        let token = signer.sign(&reset);
        assert_eq!(signer.verify::<PasswordResetClaims>(&token, Purpose::PasswordReset).unwrap(), reset);
        assert!(matches!(signer.verify::<PasswordResetClaims>(&token, Purpose::Access), Err(TokenError::Invalid)));
        let other = Signer::new("another secret of at least thirty-two bytes");
        assert!(other.verify::<PasswordResetClaims>(&token, Purpose::PasswordReset).is_err());
        let old = signer.sign(&PasswordResetClaims { exp: now / 1000 - 60, ..reset });
        assert!(matches!(signer.verify::<PasswordResetClaims>(&old, Purpose::PasswordReset), Err(TokenError::Expired)));
    }

    #[test]
    fn access_tokens_verified_once_are_still_checked_for_expiry_and_text() {
        let signer = test_signer();
        let now = chrono::Utc::now().timestamp_millis();
        let claims = AccessClaims {
            sub: UserId::new(),
            sid: SessionId::new(),
            role: Role::User,
            mfa: false,
            typ: Purpose::Access,
            iat: now / 1000,
            exp: expiry(now, ACCESS_TTL),
        };
        let token = signer.sign(&claims);
        assert_eq!(signer.verify_access(&token).unwrap(), claims);
        assert_eq!(signer.verify_access(&token).unwrap(), claims, "again, from memory");
        let mut tampered = token.clone();
        tampered.pop();
        assert!(matches!(signer.verify_access(&tampered), Err(TokenError::Invalid)));
        // A remembered token past its expiry (and the leeway) is refused.
        let old = AccessClaims { exp: now / 1000 - LEEWAY_S as i64 - 1, ..claims };
        signer.verified.lock().unwrap().insert(token.as_str().into(), old);
        assert!(matches!(signer.verify_access(&token), Err(TokenError::Expired)));
        // Other purposes are never remembered as access tokens.
        let reset = signer.sign(&reset_claims(now));
        assert!(matches!(signer.verify_access(&reset), Err(TokenError::Invalid)));
        assert!(!signer.verified.lock().unwrap().contains_key(reset.as_str()));
    }

    #[test]
    fn unsigned_tokens_are_refused() {
        // {"alg":"none"} with the same claims shape must never pass.
        let signer = test_signer();
        let token =
            "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiIwMTkwIiwidHlwIjoiYWNjZXNzIiwiZXhwIjo5OTk5OTk5OTk5fQ.";
        assert!(signer.verify::<AccessClaims>(token, Purpose::Access).is_err());
    }

    #[test]
    fn opaque_tokens_name_their_record() {
        let session = SessionId::new();
        let (token, hash) = new_refresh_token(session);
        assert_eq!(record_id(&token, "rt"), Some(session.0));
        assert_eq!(hash, super::super::secrets::token_hash(&token));
        let key_id = ApiKeyId::new();
        let (key, _) = new_api_key(key_id);
        assert_eq!(record_id(&key, "sk"), Some(key_id.0));
        assert_eq!(record_id(&key, "rt"), None);
        assert!(key.starts_with(&api_key_prefix(&key)));
        assert!(!api_key_prefix(&key).contains(&key[key.len() - 10..]));
        for bad in ["", "sk_", "sk_x_y", "sk_0123_", "rt"] {
            assert_eq!(record_id(bad, "sk"), None, "{bad}");
        }
    }
}
