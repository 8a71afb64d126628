//! Secret material: random tokens, their hashes, and sealing (AES-256-GCM) of secrets kept
//! at rest, such as TOTP secrets. Keys come from the environment (`SECRETS_KEY`).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::constant_time::verify_slices_are_equal;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// `bytes` random bytes from the operating system's generator, base64url without padding.
pub fn random_token(bytes: usize) -> String {
    URL_SAFE_NO_PAD.encode(random_bytes(bytes))
}

pub fn random_bytes(count: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; count];
    aws_lc_rs::rand::fill(&mut bytes).expect("the system random generator is available");
    bytes
}

/// SHA-256 of a high-entropy token, hex. Tokens are stored only as this.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two hashes in time independent of where they differ.
pub fn same_hash(a: &str, b: &str) -> bool {
    verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok()
}

/// Seals and opens secrets with one 256-bit key derived from `SECRETS_KEY`. A sealed value
/// names the record it belongs to (associated data), so it cannot be moved to another.
pub struct Sealer {
    key: LessSafeKey,
}

const SEALED_PREFIX: &str = "v1.";

#[derive(Debug, thiserror::Error)]
#[error("sealed value is malformed or was sealed with another key")]
pub struct Unsealable;

impl Sealer {
    pub fn new(secrets_key: &str) -> Sealer {
        let key_bytes = Sha256::digest(secrets_key.as_bytes());
        let unbound = UnboundKey::new(&AES_256_GCM, &key_bytes).expect("a 32-byte key");
        Sealer { key: LessSafeKey::new(unbound) }
    }

    pub fn seal(&self, plaintext: &[u8], belongs_to: &str) -> String {
        let nonce_bytes: [u8; NONCE_LEN] = random_bytes(NONCE_LEN).try_into().expect("NONCE_LEN bytes");
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(belongs_to.as_bytes()),
                &mut in_out,
            )
            .expect("sealing a short secret cannot fail");
        let mut sealed = nonce_bytes.to_vec();
        sealed.extend(in_out);
        format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed))
    }

    pub fn open(&self, sealed: &str, belongs_to: &str) -> Result<Vec<u8>, Unsealable> {
        let encoded = sealed.strip_prefix(SEALED_PREFIX).ok_or(Unsealable)?;
        let mut bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| Unsealable)?;
        if bytes.len() < NONCE_LEN {
            return Err(Unsealable);
        }
        let mut in_out = bytes.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&bytes).map_err(|_| Unsealable)?;
        let opened =
            self.key.open_in_place(nonce, Aad::from(belongs_to.as_bytes()), &mut in_out).map_err(|_| Unsealable)?;
        Ok(opened.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_with_its_key_and_owner() {
        let sealer = Sealer::new("key one, long enough for the test");
        let sealed = sealer.seal(b"JBSWY3DPEHPK3PXP", "user-1");
        assert!(!sealed.contains("JBSWY3DPEHPK3PXP"));
        assert_eq!(sealer.open(&sealed, "user-1").unwrap(), b"JBSWY3DPEHPK3PXP");
        assert!(sealer.open(&sealed, "user-2").is_err());
        assert!(Sealer::new("another key").open(&sealed, "user-1").is_err());
        assert!(sealer.open("v1.AAAA", "user-1").is_err());
        assert!(sealer.open("garbage", "user-1").is_err());
        assert_ne!(sealer.seal(b"x", "u"), sealer.seal(b"x", "u"), "a fresh nonce each time");
    }

    #[test]
    fn tokens_are_random_and_hashes_compare() {
        assert_ne!(random_token(32), random_token(32));
        assert_eq!(random_token(32).len(), 43);
        assert!(same_hash(&token_hash("a"), &token_hash("a")));
        assert!(!same_hash(&token_hash("a"), &token_hash("b")));
    }
}
