//! `/api/v1/admin/projections`: each read model's position and lag, and rebuilding one online:
//! built aside and swapped in, so the service keeps answering from the old view meanwhile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use projections::ProjectionName;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::bodies::{AdminRefusals, Envelope, ErrorBody};
use super::error::{ApiError, ApiOk};
use super::json::ApiPath;
use super::principal::Admin;
use crate::identity::{now, rfc3339};
use crate::projection::views::View;

/// Online rebuilds by projection name: the running one and the last finished.
pub type Rebuilds = Arc<Mutex<HashMap<&'static str, RebuildState>>>;

#[derive(Clone, Debug, Serialize, ToSchema)]
pub struct RebuildState {
    /// running, done or failed.
    pub state: &'static str,
    /// The log position folded so far.
    pub position: i64,
    /// The log head when the rebuild started.
    pub target: i64,
    #[schema(format = DateTime)]
    pub started_at: String,
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ProjectionBody {
    pub name: String,
    pub position: i64,
    pub lag: i64,
    /// The running or last online rebuild, if any since start-up.
    pub rebuild: Option<RebuildState>,
}

#[derive(Serialize, ToSchema)]
pub struct ProjectionsData {
    pub head: i64,
    pub projections: Vec<ProjectionBody>,
}

#[derive(Serialize, ToSchema)]
pub struct RebuildData {
    pub name: String,
    pub rebuild: RebuildState,
}

/// A projection by its name: a ledger view or a document view.
#[derive(Clone, Copy)]
enum Target {
    Ledger(ProjectionName),
    View(View),
}

fn target(name: &str) -> Option<(&'static str, Target)> {
    if let Some(projection) = ProjectionName::parse(name) {
        return Some((projection.as_str(), Target::Ledger(projection)));
    }
    View::parse(name).map(|view| (view.name(), Target::View(view)))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/projections",
    tag = "admin",
    summary = "Each read model's position and lag behind the log, and its online rebuild if any",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<ProjectionsData>), AdminRefusals)
)]
pub async fn list(State(state): State<Arc<AppState>>, Admin(_): Admin) -> Result<ApiOk<ProjectionsData>, ApiError> {
    let head = state.store.head().await.map_err(ApiError::internal)?.position;
    let statuses = crate::projection::status(state.store.engine(), head).await.map_err(ApiError::internal)?;
    let rebuilds = state.rebuilds.lock().expect("rebuilds lock").clone();
    let projections = statuses
        .into_iter()
        .map(|status| ProjectionBody {
            name: status.name.to_owned(),
            position: status.position,
            lag: status.lag,
            rebuild: rebuilds.get(status.name).cloned(),
        })
        .collect();
    Ok(ApiOk(ProjectionsData { head, projections }))
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/projections/{name}/rebuild",
    tag = "admin",
    summary = "Rebuild a read model from the log, aside, then swap it in; follow it at GET /admin/projections",
    security(("bearer" = [])),
    params(("name" = String, Path, description = "balances, statement, trial_balance, orders, deposits, analytics or users_directory")),
    responses(
        (status = 202, body = Envelope<RebuildData>),
        (status = 404, description = "no such projection", body = ErrorBody),
        (status = 409, description = "a rebuild of it is running", body = ErrorBody),
        AdminRefusals,
    )
)]
pub async fn rebuild(
    State(state): State<Arc<AppState>>,
    Admin(_): Admin,
    ApiPath(name): ApiPath<String>,
) -> Result<Response, ApiError> {
    let (name, target) = target(&name).ok_or_else(|| ApiError::not_found(format!("no projection {name:?}")))?;
    let head = state.store.head().await.map_err(ApiError::internal)?.position;
    let started = RebuildState {
        state: "running",
        position: 0,
        target: head,
        started_at: rfc3339(now()),
        finished_at: None,
        error: None,
    };
    {
        let mut rebuilds = state.rebuilds.lock().expect("rebuilds lock");
        if rebuilds.get(name).is_some_and(|rebuild| rebuild.state == "running") {
            return Err(ApiError::conflict(format!("{name} is being rebuilt")));
        }
        rebuilds.insert(name, started.clone());
    }
    let (engine, rebuilds, batch_max) =
        (state.store.engine().clone(), Arc::clone(&state.rebuilds), state.projection_batch_max);
    tokio::spawn(async move {
        let progress = |position: i64| {
            if let Some(rebuild) = rebuilds.lock().expect("rebuilds lock").get_mut(name) {
                rebuild.position = position;
            }
        };
        let result = match target {
            Target::Ledger(projection) => crate::projection::rebuild(&engine, projection, batch_max, &progress).await,
            Target::View(view) => crate::projection::views::rebuild(&engine, view, batch_max, &progress).await,
        };
        let mut rebuilds = rebuilds.lock().expect("rebuilds lock");
        if let Some(rebuild) = rebuilds.get_mut(name) {
            rebuild.finished_at = Some(rfc3339(now()));
            match result {
                Ok(position) => {
                    rebuild.state = "done";
                    rebuild.position = position;
                    tracing::info!(projection = name, position, "projection.rebuilt_online");
                }
                Err(error) => {
                    rebuild.state = "failed";
                    rebuild.error = Some(error.to_string());
                    tracing::error!(projection = name, %error, "projection.rebuild_failed");
                }
            }
        }
    });
    let body = serde_json::json!({"success": true, "data": RebuildData { name: name.to_owned(), rebuild: started }});
    Ok((StatusCode::ACCEPTED, axum::Json(body)).into_response())
}
