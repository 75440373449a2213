//! `GET /api/v1/audit-log` and `GET /api/v1/packages/:pkg/audit-log` (admin only).

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, NaiveDate};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminCaller;
use super::paging::Paging;
use crate::error::ApiError;
use crate::server::AppState;
use crate::store::audit::AuditQuery;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/audit-log", get(get_audit_log))
        .route(
            "/api/v1/packages/{pkg}/audit-log",
            get(get_package_audit_log),
        )
}

/// Query-string filters.
#[derive(Debug, Deserialize)]
pub struct Filters {
    action: Option<String>,
    actor: Option<String>,
    package: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// Parses `2026-11-24` (start of that UTC day) or an RFC 3339 time into Unix ms.
fn parse_time(field: &str, text: &str) -> Result<i64, ApiError> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Ok(time.timestamp_millis());
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_time",
                format!("`{field}` must be a date like 2026-11-24 or an RFC 3339 time, not {text}"),
            )
        })
}

async fn answer(app: &AppState, filters: Filters, paging: Paging) -> Result<Json<Value>, ApiError> {
    let query = AuditQuery {
        action: filters.action,
        actor: filters.actor,
        package: filters.package,
        from: filters
            .from
            .as_deref()
            .map(|t| parse_time("from", t))
            .transpose()?,
        to: filters
            .to
            .as_deref()
            .map(|t| parse_time("to", t))
            .transpose()?,
        limit: paging.per_page,
        offset: paging.offset(),
    };
    let (events, total) = app.audit_log.query(query).await?;
    Ok(Json(
        json!({ "events": events, "total": total, "page": paging.page, "per_page": paging.per_page }),
    ))
}

/// `GET /api/v1/audit-log?action=&actor=&package=&from=&to=&page=&per_page=`.
async fn get_audit_log(
    State(app): State<AppState>,
    _admin: AdminCaller,
    Query(filters): Query<Filters>,
    paging: Paging,
) -> Result<Json<Value>, ApiError> {
    answer(&app, filters, paging).await
}

/// `GET /api/v1/packages/:pkg/audit-log`.
async fn get_package_audit_log(
    State(app): State<AppState>,
    _admin: AdminCaller,
    Path(pkg): Path<String>,
    Query(filters): Query<Filters>,
    paging: Paging,
) -> Result<Json<Value>, ApiError> {
    answer(
        &app,
        Filters {
            package: Some(pkg),
            ..filters
        },
        paging,
    )
    .await
}
