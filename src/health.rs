//! Health endpoints: `/-/health` (details), `/-/health/live`, `/-/health/ready` (503 when a store is down).

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::server::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/-/health", get(get_health))
        .route("/-/health/live", get(get_live))
        .route("/-/health/ready", get(get_ready))
}

async fn readiness(app: &AppState) -> (StatusCode, Value) {
    let (database, blobs) = match app.registry.check().await {
        Ok(()) => ("ok", "ok"),
        Err(crate::packages::RegistryError::Blob(_)) => ("ok", "unavailable"),
        Err(_) => ("unavailable", "unknown"),
    };
    let ready = database == "ok" && blobs == "ok";
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        json!({
            "status": if ready { "ok" } else { "unavailable" },
            "database": database,
            "blob_store": blobs,
        }),
    )
}

async fn get_health(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    let (status, mut body) = readiness(&app).await;
    body["version"] = env!("CARGO_PKG_VERSION").into();
    body["uptime_seconds"] = app.started.elapsed().as_secs().into();
    (status, Json(body))
}

async fn get_live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn get_ready(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    let (status, body) = readiness(&app).await;
    (status, Json(body))
}
