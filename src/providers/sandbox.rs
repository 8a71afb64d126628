//! The built-in sandbox provider: rents made-up numbers (in the UK's range reserved for
//! drama, +44 7700 900xxx) and delivers a six-digit code a set delay after each request. It can
//! be told to fail, to have no numbers, or never to deliver, so every path of the order flow
//! runs on a fresh machine and in load tests.
//!
//! Time comes from a clock the owner gives it, so tests move it by hand; an SMS "arrives" when
//! a poll finds its delivery time has passed.
//!
//! A rental's id says when it was made (`sb-{ms}-{random}`), so every instance of the service,
//! and a restarted one, answers for every rental alike; only what was done to a rental since
//! (ended, another SMS asked for) is kept, in memory, for an hour.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::catalog::{CountryCode, PhoneNumber, ServiceCode};
use domain::{Money, Timestamp};
use sha2::{Digest, Sha256};

use super::{NumberRequest, Offer, ProviderError, ReceivedSms, Rental, SmsStatus};

pub const PROVIDER_ID: &str = "sandbox";

/// How the sandbox answers rentals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SandboxBehaviour {
    /// Rent, then deliver a code `code_delay` after each request.
    Deliver,
    /// Rent, never deliver (the order expires and is refunded).
    NeverDeliver,
    /// Refuse every rental: no numbers.
    NoNumbers,
    /// Every call fails as if the provider were down.
    Fail,
}

pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

#[derive(Clone)]
pub struct SandboxSettings {
    pub behaviour: SandboxBehaviour,
    pub code_delay: Duration,
    /// What every rental costs us.
    pub cost: Money,
    pub services: Vec<ServiceCode>,
    pub countries: Vec<CountryCode>,
    pub clock: Clock,
    /// With `Deliver`: the share of rentals, in percent, that ever get an SMS; the others
    /// expire and are refunded (`SANDBOX_DELIVER_PERCENT`, default 100). Fixed per rental.
    pub deliver_percent: u8,
}

impl SandboxSettings {
    /// Delivers after `code_delay`; a few common services in a few countries at `cost`.
    pub fn new(cost: Money, code_delay: Duration, clock: Clock) -> SandboxSettings {
        let services = ["tg", "wa", "go", "fb", "ig", "tw"].map(|s| ServiceCode::parse(s).expect("valid service code"));
        let countries = ["GB", "US", "DE", "FR", "IN"].map(|c| CountryCode::parse(c).expect("valid country code"));
        SandboxSettings {
            behaviour: SandboxBehaviour::Deliver,
            code_delay,
            cost,
            services: services.to_vec(),
            countries: countries.to_vec(),
            clock,
            deliver_percent: 100,
        }
    }
}

#[derive(Clone)]
struct SandboxRental {
    /// When each requested SMS is due, oldest first.
    due: Vec<Timestamp>,
    ended: bool,
}

pub struct Sandbox {
    settings: SandboxSettings,
    rentals: Mutex<HashMap<String, SandboxRental>>,
    next_number: Mutex<u32>,
}

/// Numbers each offer claims to have free.
const AVAILABLE_PER_OFFER: u32 = 1_000;
/// Rentals changed since they were made are remembered this long...
const REMEMBERED_MS: i64 = 3_600_000;
/// ...once this many are remembered.
const REMEMBERED_MAX: usize = 50_000;

/// When a rental id says it was made.
fn rented_at(provider_order_id: &str) -> Option<Timestamp> {
    let (at, random) = provider_order_id.strip_prefix("sb-")?.split_once('-')?;
    (random.len() == 32 && random.bytes().all(|b| b.is_ascii_hexdigit())).then_some(())?;
    at.parse().ok().map(Timestamp)
}

impl Sandbox {
    pub fn new(settings: SandboxSettings) -> Sandbox {
        Sandbox { settings, rentals: Mutex::default(), next_number: Mutex::new(0) }
    }

    fn now(&self) -> Timestamp {
        (self.settings.clock)()
    }

    pub fn health(&self) -> Result<(), ProviderError> {
        self.failing()
    }

    fn failing(&self) -> Result<(), ProviderError> {
        match self.settings.behaviour {
            SandboxBehaviour::Fail => Err(ProviderError::Unavailable("sandbox set to fail".into())),
            _ => Ok(()),
        }
    }

    pub fn offers(&self) -> Result<Vec<Offer>, ProviderError> {
        self.failing()?;
        let available = if self.settings.behaviour == SandboxBehaviour::NoNumbers { 0 } else { AVAILABLE_PER_OFFER };
        let mut offers = Vec::new();
        for service in &self.settings.services {
            for country in &self.settings.countries {
                offers.push(Offer {
                    service: service.clone(),
                    country: country.clone(),
                    cost: self.settings.cost,
                    available,
                });
            }
        }
        Ok(offers)
    }

    pub fn rent(&self, request: &NumberRequest) -> Result<Rental, ProviderError> {
        self.failing()?;
        let offered =
            self.settings.services.contains(&request.service) && self.settings.countries.contains(&request.country);
        if self.settings.behaviour == SandboxBehaviour::NoNumbers || !offered {
            return Err(ProviderError::NoNumbers);
        }
        let cost = self.settings.cost;
        request.check_cost(cost)?;
        let serial = {
            let mut next = self.next_number.lock().expect("sandbox lock");
            *next = (*next + 1) % 1_000;
            *next
        };
        let provider_order_id = format!("sb-{}-{}", self.now().0, uuid::Uuid::new_v4().simple());
        let phone = PhoneNumber::parse(&format!("+447700900{serial:03}")).expect("a valid phone number");
        Ok(Rental { provider_order_id, phone, cost })
    }

    /// Whether this rental ever gets an SMS.
    fn delivers(&self, provider_order_id: &str) -> bool {
        let share = u64::from(self.settings.deliver_percent.min(100));
        let digest = Sha256::digest(provider_order_id.as_bytes());
        let draw = u64::from_be_bytes(digest[..8].try_into().expect("eight bytes")) % 100;
        self.settings.behaviour == SandboxBehaviour::Deliver && draw < share
    }

    /// A rental as it stands: as remembered, or as its id says it was made.
    fn rental(
        &self,
        remembered: &HashMap<String, SandboxRental>,
        provider_order_id: &str,
    ) -> Result<SandboxRental, ProviderError> {
        if let Some(rental) = remembered.get(provider_order_id) {
            return Ok(rental.clone());
        }
        let at = rented_at(provider_order_id).ok_or(ProviderError::UnknownRental)?;
        let due = if self.delivers(provider_order_id) { vec![self.due_from(at)] } else { vec![] };
        Ok(SandboxRental { due, ended: false })
    }

    /// Changes a rental and remembers it (forgetting rentals older than an hour when many are kept).
    fn change<T>(
        &self,
        provider_order_id: &str,
        change: impl FnOnce(&mut SandboxRental) -> Result<T, ProviderError>,
    ) -> Result<T, ProviderError> {
        let mut remembered = self.rentals.lock().expect("sandbox lock");
        let mut rental = self.rental(&remembered, provider_order_id)?;
        let answer = change(&mut rental)?;
        if remembered.len() >= REMEMBERED_MAX {
            let since = self.now().0 - REMEMBERED_MS;
            remembered.retain(|id, _| rented_at(id).is_some_and(|at| at.0 >= since));
        }
        remembered.insert(provider_order_id.to_owned(), rental);
        Ok(answer)
    }

    fn due_from(&self, at: Timestamp) -> Timestamp {
        at.plus_ms(self.settings.code_delay.as_millis() as u64)
    }

    pub fn sms(&self, provider_order_id: &str) -> Result<SmsStatus, ProviderError> {
        self.failing()?;
        let now = self.now();
        let rental = self.rental(&self.rentals.lock().expect("sandbox lock"), provider_order_id)?;
        let arrived: Vec<ReceivedSms> = rental
            .due
            .iter()
            .enumerate()
            .filter(|(_, due)| **due <= now)
            .map(|(index, _)| {
                let code = code_for(provider_order_id, index);
                ReceivedSms { sms_id: format!("{provider_order_id}-{index}"), text: format!("Your code: {code}"), code }
            })
            .collect();
        Ok(match (arrived.is_empty(), rental.ended) {
            (false, _) => SmsStatus::Received(arrived),
            (true, true) => SmsStatus::Ended,
            (true, false) => SmsStatus::Waiting,
        })
    }

    pub fn cancel(&self, provider_order_id: &str) -> Result<(), ProviderError> {
        self.end(provider_order_id)
    }

    pub fn finish(&self, provider_order_id: &str) -> Result<(), ProviderError> {
        self.end(provider_order_id)
    }

    fn end(&self, provider_order_id: &str) -> Result<(), ProviderError> {
        self.failing()?;
        self.change(provider_order_id, |rental| {
            rental.ended = true;
            Ok(())
        })
    }

    /// Its rentals never time out on their own, so keeping one longer only needs it to exist.
    pub fn extend(&self, provider_order_id: &str, _by: Duration) -> Result<(), ProviderError> {
        self.failing()?;
        let rental = self.rental(&self.rentals.lock().expect("sandbox lock"), provider_order_id)?;
        if rental.ended {
            return Err(ProviderError::Refused("the rental has ended".into()));
        }
        Ok(())
    }

    pub fn another_sms(&self, provider_order_id: &str) -> Result<(), ProviderError> {
        self.failing()?;
        let due = self.due_from(self.now());
        let deliver = self.delivers(provider_order_id);
        self.change(provider_order_id, |rental| {
            if rental.ended {
                return Err(ProviderError::Refused("the rental has ended".into()));
            }
            if deliver {
                rental.due.push(due);
            }
            Ok(())
        })
    }
}

/// A six-digit code fixed by the rental and the SMS's index, so a replay sees the same code.
fn code_for(provider_order_id: &str, index: usize) -> String {
    let digest = Sha256::digest(format!("{provider_order_id}/{index}").as_bytes());
    let number = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 1_000_000;
    format!("{number:06}")
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};

    use super::*;

    fn sandbox(behaviour: SandboxBehaviour) -> (Sandbox, Arc<AtomicI64>) {
        let time = Arc::new(AtomicI64::new(1_000));
        let clock_time = time.clone();
        let clock: Clock = Arc::new(move || Timestamp(clock_time.load(Ordering::SeqCst)));
        let mut settings = SandboxSettings::new(Money::parse("0.10", "USD").unwrap(), Duration::from_secs(5), clock);
        settings.behaviour = behaviour;
        (Sandbox::new(settings), time)
    }

    fn request(max: Option<&str>) -> NumberRequest {
        NumberRequest {
            service: ServiceCode::parse("tg").unwrap(),
            country: CountryCode::parse("GB").unwrap(),
            max_cost: max.map(|m| Money::parse(m, "USD").unwrap()),
        }
    }

    #[test]
    fn a_code_arrives_after_the_delay_and_another_after_a_new_request() {
        let (sandbox, time) = sandbox(SandboxBehaviour::Deliver);
        let rental = sandbox.rent(&request(None)).unwrap();
        assert!(rental.phone.as_str().starts_with("+447700900"));
        assert_eq!(rental.cost, Money::parse("0.10", "USD").unwrap());
        assert_eq!(sandbox.sms(&rental.provider_order_id).unwrap(), SmsStatus::Waiting);
        time.store(6_000, Ordering::SeqCst);
        let SmsStatus::Received(first) = sandbox.sms(&rental.provider_order_id).unwrap() else { panic!("a code") };
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].code.len(), 6);
        assert!(first[0].text.contains(&first[0].code));
        assert_eq!(sandbox.sms(&rental.provider_order_id).unwrap(), SmsStatus::Received(first.clone()), "stable");

        sandbox.another_sms(&rental.provider_order_id).unwrap();
        time.store(10_999, Ordering::SeqCst);
        assert_eq!(sandbox.sms(&rental.provider_order_id).unwrap(), SmsStatus::Received(first.clone()));
        time.store(11_000, Ordering::SeqCst);
        let SmsStatus::Received(both) = sandbox.sms(&rental.provider_order_id).unwrap() else { panic!("codes") };
        assert_eq!(both.len(), 2);
        assert_ne!(both[0].sms_id, both[1].sms_id);

        sandbox.finish(&rental.provider_order_id).unwrap();
        assert!(matches!(sandbox.another_sms(&rental.provider_order_id), Err(ProviderError::Refused(_))));
    }

    #[test]
    fn each_behaviour_answers_as_configured() {
        let (never, time) = sandbox(SandboxBehaviour::NeverDeliver);
        let rental = never.rent(&request(None)).unwrap();
        time.store(10_000_000, Ordering::SeqCst);
        assert_eq!(never.sms(&rental.provider_order_id).unwrap(), SmsStatus::Waiting);
        never.cancel(&rental.provider_order_id).unwrap();
        assert_eq!(never.sms(&rental.provider_order_id).unwrap(), SmsStatus::Ended);

        let (empty, _) = sandbox(SandboxBehaviour::NoNumbers);
        assert_eq!(empty.rent(&request(None)), Err(ProviderError::NoNumbers));
        assert!(empty.offers().unwrap().iter().all(|o| o.available == 0));

        let (down, _) = sandbox(SandboxBehaviour::Fail);
        assert!(down.offers().is_err());
        let error = down.rent(&request(None)).unwrap_err();
        assert!(matches!(error, ProviderError::Unavailable(_)) && error.fails_over());
    }

    #[test]
    fn limits_unknown_offers_and_unknown_rentals_are_refused() {
        let (sandbox, _) = sandbox(SandboxBehaviour::Deliver);
        let cost = Money::parse("0.10", "USD").unwrap();
        assert_eq!(sandbox.rent(&request(Some("0.09"))), Err(ProviderError::TooExpensive { cost }));
        assert!(sandbox.rent(&request(Some("0.10"))).is_ok());
        let in_euros = NumberRequest { max_cost: Some(Money::parse("5.00", "EUR").unwrap()), ..request(None) };
        assert_eq!(sandbox.rent(&in_euros), Err(ProviderError::TooExpensive { cost }), "a limit it cannot compare");
        let elsewhere = NumberRequest { country: CountryCode::parse("ZZ").unwrap(), ..request(None) };
        assert_eq!(sandbox.rent(&elsewhere), Err(ProviderError::NoNumbers));
        assert_eq!(sandbox.sms("sb-unknown"), Err(ProviderError::UnknownRental));
        assert_eq!(sandbox.sms("sb-12-34"), Err(ProviderError::UnknownRental));
        assert_eq!(sandbox.offers().unwrap().len(), 30);
    }

    #[test]
    fn another_instance_answers_for_a_rental_it_did_not_make() {
        let (first, time) = sandbox(SandboxBehaviour::Deliver);
        let (second, _) = sandbox(SandboxBehaviour::Deliver);
        let rental = first.rent(&request(None)).unwrap();
        assert_eq!(second.sms(&rental.provider_order_id).unwrap(), SmsStatus::Waiting);
        time.store(6_000, Ordering::SeqCst);
        let SmsStatus::Received(seen) = first.sms(&rental.provider_order_id).unwrap() else { panic!("a code") };
        let (restarted, later) = sandbox(SandboxBehaviour::Deliver);
        later.store(6_000, Ordering::SeqCst);
        assert_eq!(restarted.sms(&rental.provider_order_id).unwrap(), SmsStatus::Received(seen), "the same code");
    }

    #[test]
    fn a_share_of_rentals_never_gets_an_sms() {
        let (mut sandbox, time) = sandbox(SandboxBehaviour::Deliver);
        sandbox.settings.deliver_percent = 70;
        let rentals: Vec<Rental> = (0..1_000).map(|_| sandbox.rent(&request(None)).unwrap()).collect();
        time.store(1_000_000, Ordering::SeqCst);
        let quiet = rentals.iter().filter(|r| sandbox.sms(&r.provider_order_id).unwrap() == SmsStatus::Waiting).count();
        assert!((200..400).contains(&quiet), "about 30% stay quiet: {quiet}");
        let again = rentals.iter().filter(|r| sandbox.sms(&r.provider_order_id).unwrap() == SmsStatus::Waiting).count();
        assert_eq!(quiet, again, "fixed per rental");
    }
}
