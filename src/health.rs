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

/// Ready when the primary database and the blob store answer; a read replica that is down only
/// sends reads to the primary, so it leaves the instance ready.
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

/// Each database: the primary (checked now), then the read replicas as their last check (every
/// ~100 ms) found them. Addresses are left out: this endpoint needs no token.
fn databases(app: &AppState, primary_reachable: bool) -> Value {
    let mut out = vec![json!({
        "role": "primary",
        "kind": app.store.kind(),
        "reachable": primary_reachable,
    })];
    for (at, replica) in app.store.replica_status().into_iter().enumerate() {
        out.push(json!({
            "role": "replica",
            "replica": at + 1,
            "reachable": replica.reachable,
            "in_use": replica.in_use,
            "lag_ms": replica.lag.map(|lag| u64::try_from(lag.as_millis()).unwrap_or(u64::MAX)),
            "problem": replica.problem,
        }));
    }
    Value::Array(out)
}

async fn get_health(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    let (status, mut body) = readiness(&app).await;
    body["version"] = env!("CARGO_PKG_VERSION").into();
    body["uptime_seconds"] = app.started.elapsed().as_secs().into();
    body["region"] = app.config.region.clone().into();
    body["databases"] = databases(&app, body["database"] == "ok");
    (status, Json(body))
}

async fn get_live() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn get_ready(State(app): State<AppState>) -> (StatusCode, Json<Value>) {
    let (status, body) = readiness(&app).await;
    (status, Json(body))
}
