//! The response conventions every route gets, against a real server: envelopes, JSON
//! rejections as 400s, request ids, security headers, CORS, compression, limits, panics.

mod common;

use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use smsledger::http::conventions::{HttpLimits, apply};
use smsledger::http::error::{ApiError, ApiOk};
use smsledger::http::json::ApiJson;

#[derive(Serialize, Deserialize)]
struct Echo {
    name: String,
    count: u32,
}

async fn boom() -> &'static str {
    panic!("secret panic detail")
}

async fn spawn(limits: HttpLimits) -> String {
    let routes = Router::new()
        .route("/echo", post(|ApiJson(echo): ApiJson<Echo>| async move { ApiOk(echo) }))
        .route("/boom", get(boom))
        .route("/internal", get(|| async { ApiError::internal("connection to db-secret-host refused") }))
        .route("/slow", get(|| async { tokio::time::sleep(Duration::from_secs(5)).await }))
        .route("/limited", get(|| async { ApiError::rate_limited(7) }))
        .route(
            "/rule",
            get(|| async { ApiError::unprocessable("insufficient balance").with_details(json!({"needed": "1.50"})) }),
        )
        .fallback(|| async { ApiError::not_found("no such route") });
    let app = apply(routes, &limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{address}")
}

fn limits() -> HttpLimits {
    HttpLimits { request_timeout: Duration::from_millis(300), body_bytes_max: 1_024, frontend_origin: None }
}

async fn json_of(response: reqwest::Response) -> Value {
    response.json().await.expect("a JSON body")
}

#[tokio::test]
async fn success_is_enveloped_with_a_request_id_and_security_headers() {
    let base = spawn(limits()).await;
    let response = reqwest::Client::new()
        .post(format!("{base}/echo"))
        .json(&json!({"name": "a", "count": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(request_id.len(), 36, "a uuid");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    assert!(response.headers()["strict-transport-security"].to_str().unwrap().starts_with("max-age="));
    assert_eq!(json_of(response).await, json!({"success": true, "data": {"name": "a", "count": 2}}));
}

#[tokio::test]
async fn a_client_request_id_is_kept() {
    let base = spawn(limits()).await;
    let response =
        reqwest::Client::new().get(format!("{base}/limited")).header("x-request-id", "abc-123").send().await.unwrap();
    assert_eq!(response.headers()["x-request-id"], "abc-123");
}

#[tokio::test]
async fn every_malformed_body_is_a_400_in_the_project_format() {
    let base = spawn(limits()).await;
    let client = reqwest::Client::new();
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "not valid JSON",
            client.post(format!("{base}/echo")).header("content-type", "application/json").body("{\"name\":"),
        ),
        ("missing field", client.post(format!("{base}/echo")).json(&json!({"name": "a"}))),
        ("wrong type", client.post(format!("{base}/echo")).json(&json!({"name": "a", "count": "two"}))),
        ("negative for u32", client.post(format!("{base}/echo")).json(&json!({"name": "a", "count": -1}))),
        ("no content type", client.post(format!("{base}/echo")).body("{\"name\":\"a\",\"count\":1}")),
        ("oversized", client.post(format!("{base}/echo")).json(&json!({"name": "x".repeat(2_000), "count": 1}))),
    ];
    for (case, request) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        assert!(response.headers().contains_key("x-request-id"), "{case}");
        let body = json_of(response).await;
        assert_eq!(body["success"], false, "{case}");
        assert!(body["error"].as_str().unwrap().starts_with("request body"), "{case}: {body}");
        assert!(body["details"]["reason"].is_string(), "{case}: {body}");
    }
    let oversized =
        client.post(format!("{base}/echo")).json(&json!({"name": "x".repeat(2_000), "count": 1})).send().await.unwrap();
    assert_eq!(json_of(oversized).await["error"], "request body is larger than the limit");
}

#[tokio::test]
async fn internal_errors_and_panics_leak_nothing_and_quote_the_request_id() {
    let base = spawn(limits()).await;
    for path in ["/internal", "/boom"] {
        let response = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR, "{path}");
        let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        let text = response.text().await.unwrap();
        assert!(!text.contains("secret"), "{path} leaked: {text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["success"], false);
        assert_eq!(body["error"], format!("internal error; quote request id {request_id}"));
        assert_eq!(body["details"]["request_id"], request_id);
    }
}

#[tokio::test]
async fn router_and_timeout_errors_are_in_the_project_format() {
    let base = spawn(limits()).await;
    let missing = reqwest::get(format!("{base}/nope")).await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.headers()["x-frame-options"], "DENY", "errors carry the security headers too");
    assert_eq!(json_of(missing).await["error"], "no such route");
    let wrong_method = reqwest::get(format!("{base}/echo")).await.unwrap();
    assert_eq!(wrong_method.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.headers()["allow"], "POST");
    assert_eq!(json_of(wrong_method).await["error"], "method not allowed");
    let slow = reqwest::get(format!("{base}/slow")).await.unwrap();
    assert_eq!(slow.status(), StatusCode::REQUEST_TIMEOUT);
    assert_eq!(slow.headers()["x-content-type-options"], "nosniff");
    assert!(slow.headers().contains_key("x-request-id"));
    assert_eq!(json_of(slow).await["success"], false);
}

#[tokio::test]
async fn rate_limits_and_rules_carry_their_status_and_details() {
    let base = spawn(limits()).await;
    let limited = reqwest::get(format!("{base}/limited")).await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "7");
    assert_eq!(
        json_of(limited).await,
        json!({"success": false, "error": "too many requests; retry later", "details": {}})
    );
    let rule = reqwest::get(format!("{base}/rule")).await.unwrap();
    assert_eq!(rule.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        json_of(rule).await,
        json!({"success": false, "error": "insufficient balance", "details": {"needed": "1.50"}})
    );
}

#[tokio::test]
async fn large_responses_are_gzipped_for_clients_that_ask() {
    let base = spawn(HttpLimits { body_bytes_max: 64 * 1024, ..limits() }).await;
    let response = reqwest::Client::new()
        .post(format!("{base}/echo"))
        .header("accept-encoding", "gzip")
        .json(&json!({"name": "y".repeat(4_000), "count": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-encoding"], "gzip");
    assert!(response.bytes().await.unwrap().len() < 1_000);
}

#[tokio::test]
async fn cors_allows_only_the_frontend_origin() {
    let frontend = "https://app.example.com";
    let base = spawn(HttpLimits { frontend_origin: Some(frontend.parse().unwrap()), ..limits() }).await;
    let client = reqwest::Client::new();
    let preflight = |origin: &str| {
        client
            .request(reqwest::Method::OPTIONS, format!("{base}/echo"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let allowed = preflight(frontend).await.unwrap();
    assert_eq!(allowed.headers()["access-control-allow-origin"], frontend);
    let refused = preflight("https://evil.example").await.unwrap();
    assert!(!refused.headers().contains_key("access-control-allow-origin"));
    // Without FRONTEND_URL no origin is allowed.
    let closed = spawn(limits()).await;
    let response = client
        .request(reqwest::Method::OPTIONS, format!("{closed}/echo"))
        .header("origin", frontend)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(!response.headers().contains_key("access-control-allow-origin"));
}
