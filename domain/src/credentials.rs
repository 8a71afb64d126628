//! Rules for new passwords and for the email addresses accounts may be opened with.

use crate::identity::Email;

/// Shortest password accepted, in characters.
pub const PASSWORD_LENGTH_MIN: usize = 10;
/// Longest password accepted, in bytes (hashing cost is bounded by it).
pub const PASSWORD_BYTES_MAX: usize = 256;

const COMMON_PASSWORDS: &str = include_str!("../data/common-passwords.txt");
const DISPOSABLE_DOMAINS: &str = include_str!("../data/disposable-email-domains.txt");

/// Every rule the password breaks (empty: acceptable). Compared case-insensitively with
/// the common-password list and the email's local part.
pub fn password_problems(password: &str, email: &Email) -> Vec<String> {
    let mut problems = Vec::new();
    if password.chars().count() < PASSWORD_LENGTH_MIN {
        problems.push(format!("must be at least {PASSWORD_LENGTH_MIN} characters"));
    }
    if password.len() > PASSWORD_BYTES_MAX {
        problems.push(format!("must be at most {PASSWORD_BYTES_MAX} bytes"));
    }
    let lowered = password.to_lowercase();
    if COMMON_PASSWORDS.lines().any(|common| common == lowered) {
        problems.push("is one of the most common passwords".to_owned());
    }
    let local = email.local_part();
    if lowered.contains(email.as_str()) || (local.len() >= 3 && lowered.contains(local)) {
        problems.push("must not contain the email address".to_owned());
    }
    problems
}

/// Whether the email's domain, or a domain it is under, is a known disposable-mail domain.
pub fn is_disposable(email: &Email) -> bool {
    let mut domain = email.domain();
    loop {
        if DISPOSABLE_DOMAINS.lines().any(|listed| listed == domain) {
            return true;
        }
        match domain.split_once('.') {
            Some((_, parent)) if parent.contains('.') => domain = parent,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(text: &str) -> Email {
        Email::parse(text).unwrap()
    }

    #[test]
    fn a_long_uncommon_password_unrelated_to_the_email_passes() {
        assert!(password_problems("correct horse battery", &email("ann@example.com")).is_empty());
    }

    #[test]
    fn each_rule_is_named() {
        let ann = email("ann.lee@example.com");
        assert_eq!(password_problems("short", &ann), vec!["must be at least 10 characters"]);
        assert_eq!(password_problems("QwertyUiop", &ann), vec!["is one of the most common passwords"]);
        assert_eq!(password_problems("my-ann.lee-secret", &ann), vec!["must not contain the email address"]);
        assert_eq!(password_problems(&"x".repeat(300), &ann), vec!["must be at most 256 bytes"]);
    }

    #[test]
    fn disposable_domains_and_their_subdomains_are_known() {
        assert!(is_disposable(&email("a@mailinator.com")));
        assert!(is_disposable(&email("a@eu.mailinator.com")));
        assert!(!is_disposable(&email("a@example.com")));
        assert!(!is_disposable(&email("a@gmail.com")));
    }

    #[test]
    fn emails_are_normalized_and_checked() {
        assert_eq!(email("  Ann@Example.COM ").as_str(), "ann@example.com");
        for bad in ["", "ann", "ann@", "@example.com", "ann@example", "a b@example.com", "a@b@c.com", "a@-x.com"] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }
}
