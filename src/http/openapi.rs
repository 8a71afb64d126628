//! The OpenAPI 3.1 document, generated from the handlers' annotations and the types they
//! take and return (routes are registered with their annotation, see `http::api_routes`), at `GET /api/v1/openapi.json`; and an interactive page at `/api/v1/docs`
//! whose assets are compiled into the binary (nothing is fetched, at build or at run time).

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderValue;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use super::AppState;
use super::bodies;

pub const DOCUMENT_PATH: &str = "/api/v1/openapi.json";
pub const PAGE_PATH: &str = "/api/v1/docs";

/// The docs page runs its own scripts and inline styles from this server, nothing else.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self' data:; frame-ancestors 'none'";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "smsledger",
        description = "SMS-verification backend on an event-sourced ledger. Every answer is \
            {\"success\": true, \"data\": ...} or {\"success\": false, \"error\": \"...\", \"details\": {...}}; \
            429 and 503 carry Retry-After. Money is a decimal string, never a float."
    ),
    components(schemas(bodies::ErrorBody)),
    modifiers(&SecuritySchemes),
    tags(
        (name = "auth", description = "Accounts, sessions, tokens, second factor"),
        (name = "user", description = "The caller's profile, balance and API keys"),
        (name = "catalog", description = "What can be bought, where, at what price (public)"),
        (name = "orders", description = "Buy a number, read its code, cancel, finish, another SMS"),
        (name = "webhooks", description = "Providers telling us about SMS, verified by signature"),
        (name = "sms-activate", description = "The SMS-Activate protocol for existing clients (plain text)"),
        (name = "admin", description = "Admins with a second factor only"),
        (name = "system", description = "Health, status, configuration, maintenance, metrics"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        components
            .add_security_scheme("api_key", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
        components
            .add_security_scheme("api_key_query", SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::new("api_key"))));
    }
}

/// Serves `document` and the docs page.
pub fn docs(document: utoipa::openapi::OpenApi) -> Router<Arc<AppState>> {
    let ui: Router<Arc<AppState>> = SwaggerUi::new(PAGE_PATH).url(DOCUMENT_PATH, document).into();
    ui.layer(SetResponseHeaderLayer::overriding(
        axum::http::header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    ))
}
