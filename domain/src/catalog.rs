//! Parsed names from the catalog: services, countries, phone numbers.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("service code must be 1 to 32 lowercase letters, digits or '_', got {0:?}")]
    BadService(String),
    #[error("country must be an ISO 3166 alpha-2 code such as \"GB\", got {0:?}")]
    BadCountry(String),
    #[error("phone number must be 6 to 20 digits with an optional leading '+', got {0:?}")]
    BadPhone(String),
}

macro_rules! text_type {
    ($name:ident, $check:expr, $err:path) => {
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn parse(text: &str) -> Result<Self, CatalogError> {
                let check: fn(&str) -> bool = $check;
                if check(text) { Ok($name(text.to_owned())) } else { Err($err(text.to_owned())) }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = CatalogError;
            fn try_from(text: String) -> Result<Self, CatalogError> {
                $name::parse(&text)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(
    ServiceCode,
    |s| (1..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
    CatalogError::BadService
);
text_type!(CountryCode, |s| s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase()), CatalogError::BadCountry);
text_type!(
    PhoneNumber,
    |s| {
        let digits = s.strip_prefix('+').unwrap_or(s);
        (6..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    },
    CatalogError::BadPhone
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert!(ServiceCode::parse("tg").is_ok());
        assert!(ServiceCode::parse("").is_err());
        assert!(ServiceCode::parse("TG").is_err());
        assert!(CountryCode::parse("GB").is_ok());
        assert!(CountryCode::parse("gbr").is_err());
        assert!(PhoneNumber::parse("+447700900123").is_ok());
        assert!(PhoneNumber::parse("12345").is_err());
        assert!(PhoneNumber::parse("+44 7700").is_err());
        assert!(serde_json::from_str::<CountryCode>("\"uk\"").is_err());
    }
}
