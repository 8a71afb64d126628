//! Password hashing with argon2id and explicit parameters (OWASP's first recommendation:
//! 19 MiB, 2 passes, 1 lane). Hashing runs on the blocking pool, a few at a time, so a burst
//! of logins cannot take all memory or starve the async workers.

use std::sync::LazyLock;

use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use tokio::sync::Semaphore;

pub const MEMORY_KIB: u32 = 19 * 1024;
pub const PASSES: u32 = 2;
pub const LANES: u32 = 1;
/// Hashes computed at once; more wait their turn.
const CONCURRENT_MAX: usize = 4;

static PERMITS: Semaphore = Semaphore::const_new(CONCURRENT_MAX);

/// Verified against when an email is unknown, so that answer takes as long as a wrong password.
static DUMMY_HASH: LazyLock<String> = LazyLock::new(|| hash_now("no account has this password"));

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_now(password: &str) -> String {
    hasher().hash_password(password.as_bytes()).expect("argon2id hashing of a bounded password").to_string()
}

fn verify_now(password: &str, hash: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else { return false };
    hasher().verify_password(password.as_bytes(), &parsed).is_ok()
}

/// Runs `work` (hashing) on the blocking pool, a permit at a time, then gives the 19 MiB it
/// freed back to the system: the pool's thread may idle for long (decision 0031).
async fn off_the_workers<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    let _permit = PERMITS.acquire().await.expect("the semaphore is never closed");
    tokio::task::spawn_blocking(move || {
        let done = work();
        crate::return_freed_memory();
        done
    })
    .await
    .expect("hashing does not panic")
}

pub async fn hash(password: String) -> String {
    off_the_workers(move || hash_now(&password)).await
}

/// Whether `password` matches `hash`; `None` spends the same time and answers false.
pub async fn verify(password: String, hash: Option<String>) -> bool {
    off_the_workers(move || match hash {
        Some(hash) => verify_now(&password, &hash),
        None => {
            let _ = verify_now(&password, &DUMMY_HASH);
            false
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_argon2id_with_the_stated_parameters_and_verify() {
        let hashed = hash_now("correct horse battery");
        assert!(hashed.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hashed}");
        assert!(verify_now("correct horse battery", &hashed));
        assert!(!verify_now("correct horse batterY", &hashed));
        assert!(!verify_now("x", "not a hash"));
        assert_ne!(hashed, hash_now("correct horse battery"), "salted");
    }
}
