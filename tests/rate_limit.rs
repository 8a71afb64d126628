//! Rate limits, in-process and on the real Redis: burst, refill, keys apart, and on Redis a
//! count shared by every instance.

mod common;

use std::time::Duration;

use smsledger::rate_limit::{Decision, Quota, RateLimiter};

/// 3 per 600 ms: a burst of 3, one more every 200 ms.
const QUICK: Quota = Quota { name: "test_quick", limit: 3, period: Duration::from_millis(600) };

/// 3 per minute: nothing comes back while a test runs.
const SLOW: Quota = Quota { name: "test_slow", limit: 3, period: Duration::from_secs(60) };

fn unique_key() -> String {
    uuid::Uuid::new_v4().to_string()
}

async fn burst_then_limit_then_refill(limiter: &RateLimiter) {
    let key = unique_key();
    for i in 0..3 {
        assert_eq!(limiter.check(&QUICK, &key).await, Decision::Allowed, "request {i}");
    }
    let Decision::Limited { retry_after } = limiter.check(&QUICK, &key).await else {
        panic!("the 4th must be limited")
    };
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_millis(200), "{retry_after:?}");
    assert_eq!(limiter.check(&QUICK, &unique_key()).await, Decision::Allowed, "another key has its own quota");
    tokio::time::sleep(retry_after + Duration::from_millis(30)).await;
    assert_eq!(limiter.check(&QUICK, &key).await, Decision::Allowed, "one comes back per interval");
    assert!(matches!(limiter.check(&QUICK, &key).await, Decision::Limited { .. }));
}

#[tokio::test]
async fn in_process_limits() {
    let limiter = RateLimiter::in_process();
    assert_eq!(limiter.backend(), "in-process");
    burst_then_limit_then_refill(&limiter).await;
    limiter.forget_idle();
}

#[tokio::test]
async fn redis_limits() {
    let Some(url) = common::redis_url("redis_limits").await else { return };
    let limiter = RateLimiter::with_redis(&url).await.unwrap();
    assert_eq!(limiter.backend(), "redis");
    burst_then_limit_then_refill(&limiter).await;
}

#[tokio::test]
async fn instances_share_one_count_through_redis() {
    let Some(url) = common::redis_url("instances_share_one_count_through_redis").await else { return };
    let first = RateLimiter::with_redis(&url).await.unwrap();
    let second = RateLimiter::with_redis(&url).await.unwrap();
    let key = unique_key();
    let login = Quota::LOGIN;
    let mut allowed = 0;
    for i in 0..8 {
        let instance = if i % 2 == 0 { &first } else { &second };
        if instance.check(&login, &key).await == Decision::Allowed {
            allowed += 1;
        }
    }
    assert_eq!(allowed, 5, "5 logins per 15 minutes across both instances");
    let limited = first.check(&login, &key).await;
    let retry_after_s = limited.retry_after_s().expect("limited");
    assert!((170..=180).contains(&retry_after_s), "one attempt back every 3 minutes, got {retry_after_s}");
}

#[tokio::test]
async fn a_redis_outage_falls_back_to_in_process_limits() {
    let Some(url) = common::redis_url("a_redis_outage_falls_back_to_in_process_limits").await else { return };
    assert!(RateLimiter::with_redis("redis://127.0.0.1:1").await.is_err(), "nothing listens on port 1");
    let target = url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let proxy = common::proxy::Proxy::start(target).await;
    let limiter = RateLimiter::with_redis(&format!("redis://{}", proxy.address)).await.unwrap();
    let key = unique_key();
    assert_eq!(limiter.check(&SLOW, &key).await, Decision::Allowed, "through Redis");
    proxy.cut(); // Redis is gone and stays gone
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = std::time::Instant::now();
    for i in 0..3 {
        assert_eq!(limiter.check(&SLOW, &key).await, Decision::Allowed, "in-process request {i}");
    }
    assert!(matches!(limiter.check(&SLOW, &key).await, Decision::Limited { .. }), "limits still hold without Redis");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "each check gives up on Redis quickly: {:?}",
        started.elapsed()
    );
}
