//! Rate limits with the GCRA algorithm: in-process (governor) on one instance, and a GCRA
//! script on Redis (`REDIS_URL`) so several instances share one count.
//!
//! A quota "N per P" allows a burst of N, refilled at one every P/N: the same semantics in
//! both backends. If Redis cannot be reached, checks fall back to the in-process limiter
//! (limits still hold per instance) and a warning is logged: see decision 0009.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota as GovernorQuota};

/// How long connecting to Redis may take.
pub const REDIS_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one check waits for Redis before the in-process limiter answers instead.
pub const REDIS_RESPONSE_TIMEOUT: Duration = Duration::from_millis(250);
/// Reconnect attempts per failed operation (the next check tries again).
pub const REDIS_RECONNECT_RETRIES_MAX: usize = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Quota {
    /// Names the counter (and its Redis key prefix).
    pub name: &'static str,
    pub limit: u32,
    pub period: Duration,
}

impl Quota {
    pub const LOGIN: Quota = Quota { name: "login", limit: 5, period: Duration::from_secs(15 * 60) };
    pub const REGISTER: Quota = Quota { name: "register", limit: 3, period: Duration::from_secs(60 * 60) };
    pub const CODE_CHECK: Quota = Quota { name: "code_check", limit: 3, period: Duration::from_secs(5 * 60) };
    pub const RECHARGE: Quota = Quota { name: "recharge", limit: 10, period: Duration::from_secs(60 * 60) };
    pub const API: Quota = Quota { name: "api", limit: 30, period: Duration::from_secs(60) };

    /// How often one request's worth of quota comes back.
    pub fn interval(&self) -> Duration {
        self.period / self.limit.max(1)
    }
}

/// The quotas the routes apply; defaults are the constants above.
#[derive(Clone, Copy, Debug)]
pub struct Quotas {
    pub login: Quota,
    pub register: Quota,
    pub code_check: Quota,
    pub recharge: Quota,
    pub api: Quota,
}

impl Quotas {
    /// The defaults, with the general API quota set to `per_minute`.
    pub fn with_api_per_minute(per_minute: u32) -> Quotas {
        Quotas {
            login: Quota::LOGIN,
            register: Quota::REGISTER,
            code_check: Quota::CODE_CHECK,
            recharge: Quota::RECHARGE,
            api: Quota { limit: per_minute, ..Quota::API },
        }
    }

    /// Every quota allowing `limit` per its period (tests and load drivers lift them).
    pub fn all_at(self, limit: u32) -> Quotas {
        let at = |quota: Quota| Quota { limit, ..quota };
        Quotas {
            login: at(self.login),
            register: at(self.register),
            code_check: at(self.code_check),
            recharge: at(self.recharge),
            api: at(self.api),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    Limited { retry_after: Duration },
}

impl Decision {
    /// Whole seconds for a `Retry-After` header, at least 1.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            Decision::Allowed => None,
            Decision::Limited { retry_after } => Some(retry_after.as_secs_f64().ceil().max(1.0) as u64),
        }
    }
}

pub struct RateLimiter {
    local: InProcess,
    redis: Option<Redis>,
}

impl RateLimiter {
    pub fn in_process() -> RateLimiter {
        RateLimiter { local: InProcess::default(), redis: None }
    }

    /// Shares counts through Redis; the connection reconnects by itself after an outage.
    /// A check waits at most `REDIS_RESPONSE_TIMEOUT` for Redis before falling back.
    pub async fn with_redis(url: &str) -> Result<RateLimiter, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let connection = client.get_connection_manager_with_config(redis_config()).await?;
        Ok(RateLimiter {
            local: InProcess::default(),
            redis: Some(Redis { connection, script: redis::Script::new(GCRA_SCRIPT) }),
        })
    }

    /// Like `with_redis`, but connects on first use: the service starts while Redis is down
    /// (checks fall back in-process until it is back). Fails only on a malformed URL.
    pub fn with_redis_lazy(url: &str) -> Result<RateLimiter, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let connection = client.get_connection_manager_lazy(redis_config())?;
        Ok(RateLimiter {
            local: InProcess::default(),
            redis: Some(Redis { connection, script: redis::Script::new(GCRA_SCRIPT) }),
        })
    }

    /// `None` without Redis; otherwise whether Redis answers a PING now.
    pub async fn redis_ok(&self) -> Option<bool> {
        let redis = self.redis.as_ref()?;
        let mut connection = redis.connection.clone();
        Some(redis::cmd("PING").query_async::<String>(&mut connection).await.is_ok())
    }

    pub fn backend(&self) -> &'static str {
        if self.redis.is_some() { "redis" } else { "in-process" }
    }

    /// Takes one request's worth of `quota` for `key` (an account, an IP, an API key).
    pub async fn check(&self, quota: &Quota, key: &str) -> Decision {
        if let Some(redis) = &self.redis {
            match redis.check(quota, key).await {
                Ok(decision) => return decision,
                Err(error) => {
                    tracing::warn!(%error, quota = quota.name, "rate_limit.redis_unavailable_using_in_process")
                }
            }
        }
        self.local.check(quota, key)
    }

    /// Drops in-process counters that are full again; call now and then to bound memory.
    pub fn forget_idle(&self) {
        for limiter in self.local.limiters.lock().expect("limiter map lock").values() {
            limiter.retain_recent();
        }
    }
}

fn redis_config() -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_CONNECT_TIMEOUT))
        .set_response_timeout(Some(REDIS_RESPONSE_TIMEOUT))
        .set_number_of_retries(REDIS_RECONNECT_RETRIES_MAX)
}

#[derive(Default)]
struct InProcess {
    limiters: Mutex<HashMap<Quota, Arc<DefaultKeyedRateLimiter<String>>>>,
}

impl InProcess {
    fn limiter(&self, quota: &Quota) -> Arc<DefaultKeyedRateLimiter<String>> {
        let mut limiters = self.limiters.lock().expect("limiter map lock");
        limiters
            .entry(*quota)
            .or_insert_with(|| {
                let burst = NonZeroU32::new(quota.limit.max(1)).expect("at least 1");
                let replenish = quota.interval().max(Duration::from_nanos(1));
                let quota = GovernorQuota::with_period(replenish).expect("a non-zero period").allow_burst(burst);
                Arc::new(DefaultKeyedRateLimiter::keyed(quota))
            })
            .clone()
    }

    fn check(&self, quota: &Quota, key: &str) -> Decision {
        match self.limiter(quota).check_key(&key.to_owned()) {
            Ok(()) => Decision::Allowed,
            Err(not_until) => {
                Decision::Limited { retry_after: not_until.wait_time_from(DefaultClock::default().now()) }
            }
        }
    }
}

struct Redis {
    connection: redis::aio::ConnectionManager,
    script: redis::Script,
}

/// GCRA on Redis, with Redis's own clock so every instance agrees. Returns
/// `{allowed (1|0), microseconds to wait}`. KEYS[1]: counter; ARGV[1]: interval in µs;
/// ARGV[2]: burst tolerance in µs (interval × (limit − 1)).
const GCRA_SCRIPT: &str = r"
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local allow_at = tat - tolerance
if now < allow_at then
  return {0, allow_at - now}
end
local new_tat = tat + interval
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, 0}
";

impl Redis {
    async fn check(&self, quota: &Quota, key: &str) -> Result<Decision, redis::RedisError> {
        let interval = quota.interval().as_micros() as u64;
        let tolerance = interval * u64::from(quota.limit.max(1) - 1);
        let mut connection = self.connection.clone();
        let (allowed, wait_us): (i64, i64) = self
            .script
            .key(format!("smsledger:ratelimit:{}:{key}", quota.name))
            .arg(interval)
            .arg(tolerance)
            .invoke_async(&mut connection)
            .await?;
        Ok(if allowed == 1 {
            Decision::Allowed
        } else {
            Decision::Limited { retry_after: Duration::from_micros(wait_us.max(0) as u64) }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(Decision::Limited { retry_after: Duration::from_millis(1) }.retry_after_s(), Some(1));
        assert_eq!(Decision::Limited { retry_after: Duration::from_millis(2_001) }.retry_after_s(), Some(3));
        assert_eq!(Decision::Allowed.retry_after_s(), None);
        assert_eq!(Quota::LOGIN.interval(), Duration::from_secs(180));
    }
}
