//! Time-based one-time codes (RFC 6238: SHA-1, 6 digits, 30 s, one step of skew), as
//! authenticator apps expect them.

use totp_rs::{Builder, Totp};

pub const SECRET_BYTES: usize = 20;
const STEP_S: u64 = 30;

fn totp(secret: &[u8]) -> Option<Totp> {
    Builder::new().with_secret(secret.to_vec()).with_step_duration(STEP_S).build().ok()
}

/// The secret as authenticator apps take it (base32, no padding).
pub fn encode_secret(secret: &[u8]) -> String {
    base32::encode(base32::Alphabet::Rfc4648 { padding: false }, secret)
}

/// `otpauth://` URL for a QR code.
pub fn provisioning_url(secret: &[u8], account: &str) -> String {
    let issuer = "smsledger";
    let label = format!("{issuer}:{account}").replace('@', "%40").replace(':', "%3A");
    format!(
        "otpauth://totp/{label}?secret={}&issuer={issuer}&algorithm=SHA1&digits=6&period={STEP_S}",
        encode_secret(secret)
    )
}

/// The time step `code` is valid for at `unix_s`, if it is valid.
pub fn check(secret: &[u8], code: &str, unix_s: u64) -> Option<u64> {
    let code = code.trim();
    if code.len() != 6 || !code.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    totp(secret)?.check(code, unix_s)
}

/// The current code (for tests and the CLI).
pub fn code_at(secret: &[u8], unix_s: u64) -> String {
    totp(secret).map(|t| t.generate(unix_s).to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_rfc_6238_sha1_vector() {
        // RFC 6238 appendix B: secret "12345678901234567890", T = 59 s -> 94287082 (8 digits);
        // the 6-digit code is its last six digits.
        assert_eq!(code_at(b"12345678901234567890", 59), "287082");
        assert!(check(b"12345678901234567890", "287082", 59).is_some());
        assert!(check(b"12345678901234567890", "287083", 59).is_none());
        assert!(check(b"12345678901234567890", "28708", 59).is_none());
        assert!(check(b"12345678901234567890", "abcdef", 59).is_none());
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_only() {
        let secret = b"12345678901234567890";
        let code = code_at(secret, 10_000);
        assert!(check(secret, &code, 10_000 + STEP_S).is_some());
        assert!(check(secret, &code, 10_000 + 3 * STEP_S).is_none());
    }
}
