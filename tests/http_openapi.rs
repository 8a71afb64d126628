//! The OpenAPI document describes every route the server answers, and the docs page works
//! from the binary alone.

mod common;

use common::TestDatabase;
use common::app::spawn;
use reqwest::StatusCode;
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

#[tokio::test]
async fn the_document_is_openapi_3_1_and_every_operation_has_its_shapes() {
    let app = spawn(common::sqlite_database()).await;
    let root = app.base.trim_end_matches("/api/v1").to_owned();
    let response = reqwest::get(format!("{root}/api/v1/openapi.json")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let document: Value = response.json().await.unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(document, serde_json::to_value(smsledger::http::openapi_document()).unwrap());
    let schemes = &document["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    assert_eq!(schemes["api_key"]["name"], "X-API-Key");
    assert_eq!(schemes["api_key_query"]["in"], "query");

    let paths = document["paths"].as_object().unwrap();
    assert!(paths.len() >= 27, "{} paths", paths.len());
    let mut operations = 0;
    for (path, item) in paths {
        for method in METHODS {
            let Some(operation) = item.get(method) else { continue };
            operations += 1;
            let responses = operation["responses"].as_object().unwrap();
            let success = responses.keys().find(|code| code.starts_with('2'));
            let success = success.unwrap_or_else(|| panic!("{method} {path} documents no success"));
            assert!(responses[success]["content"].is_object(), "{method} {path}: success has no body schema");
            // The public configuration and payment methods are built at start-up; answering
            // them cannot fail.
            let infallible = ["/api/v1/system/config", "/api/v1/payment/methods"];
            if path.starts_with("/api/v1/") && !infallible.contains(&path.as_str()) {
                let errors: Vec<_> = responses.keys().filter(|code| !code.starts_with('2')).collect();
                assert!(!errors.is_empty(), "{method} {path} documents no errors");
                for code in errors {
                    let schema = &responses[code]["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(schema, "#/components/schemas/ErrorBody", "{method} {path} {code}");
                }
            }
            if path.starts_with("/api/v1/admin/") {
                assert!(responses.contains_key("403"), "{method} {path} documents no 403 for non-admins");
            }
            if matches!(method, "post" | "put") && operation.get("requestBody").is_none() {
                // Signed raw bodies (webhooks) and form parameters (SMS-Activate) are not JSON bodies.
                let bodyless = [
                    "logout",
                    "send-verification-email",
                    "2fa/setup",
                    "unblock",
                    "cancel",
                    "finish",
                    "another-sms",
                    "extend",
                    "approve",
                    "rebuild",
                    "/read",
                    "read-all",
                    "webhooks/textverified",
                    "payments/webhook",
                    "handler_api.php",
                ];
                assert!(bodyless.iter().any(|p| path.ends_with(p)), "{method} {path} documents no request body");
            }
        }
    }
    assert!(operations >= 30, "{operations} operations");
}

/// Each documented operation is answered by a route (never the router's 404 or 405), so the
/// document cannot describe a route that does not exist.
#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = spawn(common::sqlite_database()).await;
    let root = app.base.trim_end_matches("/api/v1").to_owned();
    let document = serde_json::to_value(smsledger::http::openapi_document()).unwrap();
    let client = reqwest::Client::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            if item.get(method).is_none() {
                continue;
            }
            let concrete = path.replace("{id}", &uuid::Uuid::now_v7().to_string());
            let request = client.request(method.to_uppercase().parse().unwrap(), format!("{root}{concrete}"));
            let response = request.header("content-type", "application/json").body("{}").send().await.unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(!body.contains("no such route"), "{method} {path}: {status} {body}");
        }
    }
}

#[tokio::test]
async fn the_docs_page_is_served_from_the_binary_with_its_own_csp() {
    let app = spawn(common::sqlite_database()).await;
    let root = app.base.trim_end_matches("/api/v1").to_owned();
    let page = reqwest::get(format!("{root}/api/v1/docs/")).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("http"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger-ui-bundle.js"), "{html}");
    assert!(!html.contains("<script>"), "no inline scripts: the CSP would block them");
    let bundle = reqwest::get(format!("{root}/api/v1/docs/swagger-ui-bundle.js")).await.unwrap();
    assert_eq!(bundle.status(), StatusCode::OK);
    assert!(bundle.bytes().await.unwrap().len() > 100_000);
    let initializer = reqwest::get(format!("{root}/api/v1/docs/swagger-initializer.js")).await.unwrap();
    assert!(initializer.text().await.unwrap().contains("/api/v1/openapi.json"));
    let api = reqwest::get(format!("{root}/api/v1/system/config")).await.unwrap();
    assert_eq!(api.headers()["content-security-policy"], "default-src 'none'; frame-ancestors 'none'");
}

/// Every operation that takes a body refuses, with a 400 in the project's format, a body that
/// is not JSON, one that is an empty object (missing fields), and one with a field of the wrong
/// type; callers are authenticated as the operation needs, so the body is what is judged.
async fn every_body_taking_operation_refuses_malformed_bodies(database: TestDatabase) {
    let app = spawn(database).await;
    let (admin, _, _) = app.admin("root@example.com").await;
    let (user, _, _) = app.signed_in("ann@example.com").await;
    let root = app.base.trim_end_matches("/api/v1").to_owned();
    let document = serde_json::to_value(smsledger::http::openapi_document()).unwrap();
    let client = reqwest::Client::new();
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for method in METHODS {
            let Some(operation) = item.get(method) else { continue };
            if operation.get("requestBody").is_none() {
                continue;
            }
            let token = if path.starts_with("/api/v1/admin/") { &admin } else { &user };
            let url = format!("{root}{}", path.replace("{id}", &uuid::Uuid::now_v7().to_string()));
            let bodies = [
                "not json",
                "{}",
                r#"{"email": 1, "password": 2, "name": 3, "scope": 4, "token": 5, "code": 6,
                "refresh_token": 7, "current_password": 8, "new_password": 9, "reason": 10, "display_name": 11,
                "enabled": "yes", "provider": 12, "markup_percent": 13}"#,
            ];
            // `{}` is a complete request where the body has no required field.
            let schema = &operation["requestBody"]["content"]["application/json"]["schema"]["$ref"];
            let name = schema.as_str().and_then(|r| r.rsplit('/').next()).unwrap_or_default();
            let required =
                document["components"]["schemas"][name]["required"].as_array().is_some_and(|r| !r.is_empty());
            for body in bodies.into_iter().filter(|b| required || *b != "{}") {
                let response = client
                    .request(method.to_uppercase().parse().unwrap(), &url)
                    .bearer_auth(token)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let reply: Value = response.json().await.unwrap();
                assert_eq!(status, StatusCode::BAD_REQUEST, "{method} {path} with {body}: {reply}");
                assert_eq!(reply["success"], false);
                assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()), "{reply}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 12, "{checked} operations take a body");
}

on_both_engines!(every_body_taking_operation_refuses_malformed_bodies);
