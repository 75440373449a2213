//! The webhook admin API: `/api/v1/admin/webhooks[/:id[/deliveries]]` and
//! `/api/v1/admin/webhooks/deliveries/:id/redeliver`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AdminCaller;
use super::paging::Paging;
use crate::error::ApiError;
use crate::npm::extract::NpmJson;
use crate::server::AppState;
use crate::webhooks::Owner;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/admin/webhooks",
            get(get_webhooks).post(post_webhook),
        )
        .route("/api/v1/admin/webhooks/{id}", delete(delete_webhook))
        .route(
            "/api/v1/admin/webhooks/{id}/deliveries",
            get(get_deliveries),
        )
        .route(
            "/api/v1/admin/webhooks/deliveries/{id}/redeliver",
            post(post_redeliver),
        )
}

fn optional_text<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if !text.is_empty() => Ok(Some(text)),
        Some(_) => Err(ApiError::bad_request(
            "invalid_field",
            format!("`{field}` must be a non-empty string"),
        )),
    }
}

/// Reads `{url, events, user?, org?}`.
fn parse_create(body: &Value) -> Result<(&str, Vec<String>, Option<Owner>), ApiError> {
    let url = optional_text(body, "url")?
        .ok_or_else(|| ApiError::bad_request("missing_field", "`url` is required"))?;
    let events = body
        .get("events")
        .and_then(Value::as_array)
        .and_then(|list| {
            list.iter()
                .map(|e| e.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_field",
                "`events` must be an array of event names, such as [\"package.published\"]",
            )
        })?;
    let owner = match (optional_text(body, "user")?, optional_text(body, "org")?) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid_owner",
                "give `user` or `org`, not both: a hook belongs to one owner",
            ));
        }
        (Some(user), None) => Some(Owner::User(user.to_owned())),
        (None, Some(org)) => Some(Owner::Org(org.trim_start_matches('@').to_owned())),
        (None, None) => None,
    };
    Ok((url, events, owner))
}

/// `POST /api/v1/admin/webhooks {url, events, user?, org?}`: 201 with the secret, shown once.
async fn post_webhook(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    NpmJson(body): NpmJson,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (url, events, owner) = parse_create(&body)?;
    let created = app.webhooks.create(&caller, url, &events, owner).await?;
    Ok((StatusCode::CREATED, Json(json!(created))))
}

/// `GET /api/v1/admin/webhooks`: every hook, without secrets.
async fn get_webhooks(
    State(app): State<AppState>,
    _admin: AdminCaller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "webhooks": app.webhooks.list().await? })))
}

/// `DELETE /api/v1/admin/webhooks/:id`.
async fn delete_webhook(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.webhooks.delete(&caller, parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/admin/webhooks/:id/deliveries?page=&per_page=`: newest first, with attempts.
async fn get_deliveries(
    State(app): State<AppState>,
    _admin: AdminCaller,
    Path(id): Path<String>,
    paging: Paging,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    let (deliveries, total) = app
        .webhooks
        .deliveries(id, paging.per_page, paging.offset())
        .await?;
    Ok(Json(json!({
        "webhook_id": id, "deliveries": deliveries, "total": total,
        "page": paging.page, "per_page": paging.per_page,
    })))
}

/// `POST /api/v1/admin/webhooks/deliveries/:id/redeliver`: queued again, due now.
async fn post_redeliver(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let delivery = app.webhooks.redeliver(&caller, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(json!(delivery))))
}

fn parse_id(text: &str) -> Result<i64, ApiError> {
    text.parse().map_err(|_| {
        ApiError::bad_request(
            "invalid_id",
            format!("`{text}` is not a webhook id; GET /api/v1/admin/webhooks lists them"),
        )
    })
}
