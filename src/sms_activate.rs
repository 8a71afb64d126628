//! The SMS-Activate protocol's conventions: its numeric country ids, and how amounts,
//! phones and times are written in its answers. Service codes (`tg`, `wa`, `go`, ...) are the
//! protocol's own and are the catalog's service codes as they are.

use domain::catalog::{CountryCode, PhoneNumber};
use domain::{Money, Timestamp};
use rust_decimal::{Decimal, RoundingStrategy};

/// SMS-Activate's country ids and the ISO 3166 alpha-2 code each stands for. Where two ids
/// name one country (12 "USA virtual" and 187 "USA"), the first listed is the one we answer with.
#[rustfmt::skip]
const COUNTRIES: &[(u16, &str)] = &[
    (0, "RU"), (1, "UA"), (2, "KZ"), (3, "CN"), (4, "PH"), (5, "MM"), (6, "ID"), (7, "MY"), (8, "KE"),
    (9, "TZ"), (10, "VN"), (11, "KG"), (187, "US"), (12, "US"), (13, "IL"), (14, "HK"), (15, "PL"),
    (16, "GB"), (17, "MG"), (18, "CD"), (19, "NG"), (20, "MO"), (21, "EG"), (22, "IN"), (23, "IE"),
    (24, "KH"), (25, "LA"), (26, "HT"), (27, "CI"), (28, "GM"), (29, "RS"), (30, "YE"), (31, "ZA"),
    (32, "RO"), (33, "CO"), (34, "EE"), (35, "AZ"), (36, "CA"), (37, "MA"), (38, "GH"), (39, "AR"),
    (40, "UZ"), (41, "CM"), (42, "TD"), (43, "DE"), (44, "LT"), (45, "HR"), (46, "SE"), (47, "IQ"),
    (48, "NL"), (49, "LV"), (50, "AT"), (51, "BY"), (52, "TH"), (53, "SA"), (54, "MX"), (55, "TW"),
    (56, "ES"), (57, "IR"), (58, "DZ"), (59, "SI"), (60, "BD"), (61, "SN"), (62, "TR"), (63, "CZ"),
    (64, "LK"), (65, "PE"), (66, "PK"), (67, "NZ"), (68, "GN"), (69, "ML"), (70, "VE"), (71, "ET"),
    (72, "MN"), (73, "BR"), (74, "AF"), (75, "UG"), (76, "AO"), (77, "CY"), (78, "FR"), (79, "PG"),
    (80, "MZ"), (81, "NP"), (82, "BE"), (83, "BG"), (84, "HU"), (85, "MD"), (86, "IT"), (87, "PY"),
    (88, "HN"), (89, "TN"), (90, "NI"), (92, "BO"), (93, "CR"), (94, "GT"), (95, "AE"), (96, "ZW"),
    (97, "PR"), (98, "SD"), (99, "TG"), (100, "KW"), (101, "SV"), (102, "LY"), (103, "JM"), (104, "TT"),
    (105, "EC"), (107, "OM"), (108, "BA"), (109, "DO"), (110, "SY"), (111, "QA"), (112, "PA"),
    (113, "CU"), (116, "JO"), (117, "PT"), (128, "GE"), (129, "GR"), (132, "IS"), (141, "SK"),
    (145, "BH"), (148, "AM"), (151, "CL"), (153, "LB"), (155, "AL"), (156, "UY"), (163, "FI"),
    (165, "LU"), (171, "ME"), (172, "DK"), (173, "CH"), (174, "NO"), (175, "AU"), (182, "JP"),
    (183, "MK"), (190, "KR"), (196, "SG"),
];

/// The country an SMS-Activate id names.
pub fn country(id: &str) -> Option<CountryCode> {
    let id: u16 = id.trim().parse().ok()?;
    COUNTRIES.iter().find(|(known, _)| *known == id).and_then(|(_, code)| CountryCode::parse(code).ok())
}

/// The SMS-Activate id of a country, if the protocol has one.
pub fn country_id(country: &CountryCode) -> Option<u16> {
    COUNTRIES.iter().find(|(_, code)| *code == country.as_str()).map(|(id, _)| *id)
}

/// An amount as the protocol writes it: at least two decimals, never rounded up
/// (`12.3` -> `12.30`, `0.125` -> `0.125`).
pub fn amount(money: Money) -> String {
    let mut value = money.amount.normalize();
    if value.scale() < 2 {
        value.rescale(2);
    }
    value.to_string()
}

/// A balance as the protocol writes it: two decimals, cut (never rounded up).
pub fn balance(available: Decimal) -> String {
    let mut value = available.round_dp_with_strategy(2, RoundingStrategy::ToZero);
    value.rescale(2);
    value.to_string()
}

/// A phone number as bare digits.
pub fn phone(phone: &PhoneNumber) -> String {
    phone.as_str().trim_start_matches('+').to_owned()
}

/// `2026-11-21 13:45:36` (UTC), the protocol's time format.
pub fn time(at: Timestamp) -> String {
    chrono::DateTime::from_timestamp_millis(at.0).unwrap_or_default().format("%Y-%m-%d %H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn countries_map_both_ways() {
        assert_eq!(country("16").unwrap().as_str(), "GB");
        assert_eq!(country("0").unwrap().as_str(), "RU");
        assert_eq!(country("12").unwrap().as_str(), "US");
        assert_eq!(country_id(&CountryCode::parse("US").unwrap()), Some(187));
        assert_eq!(country_id(&CountryCode::parse("IN").unwrap()), Some(22));
        assert!(country("999").is_none() && country("gb").is_none() && country("").is_none());
        let mut ids: Vec<u16> = COUNTRIES.iter().map(|(id, _)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), COUNTRIES.len(), "every id names one country");
    }

    #[test]
    fn amounts_and_phones_are_written_as_clients_parse_them() {
        assert_eq!(amount(Money::parse("12.3", "USD").unwrap()), "12.30");
        assert_eq!(amount(Money::parse("0.125", "USD").unwrap()), "0.125");
        assert_eq!(amount(Money::parse("3", "USD").unwrap()), "3.00");
        assert_eq!(balance("12.349".parse().unwrap()), "12.34");
        assert_eq!(balance("0".parse().unwrap()), "0.00");
        assert_eq!(phone(&PhoneNumber::parse("+447700900123").unwrap()), "447700900123");
        assert_eq!(time(Timestamp(0)), "1970-01-01 00:00:00");
    }
}
