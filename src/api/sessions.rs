//! `POST /api/v1/admin/sessions` (sign in: sets the `packr_session` cookie) and
//! `DELETE /api/v1/admin/sessions` (sign out), both refused when sent cross-site.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::csrf::SameOrigin;
use crate::audit::AuditEvent;
use crate::error::ApiError;
use crate::npm::extract::{NpmJson, RequestOrigin};
use crate::server::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/api/v1/admin/sessions",
        post(post_session).delete(delete_session),
    )
}

fn with_cookie(mut response: Response, cookie: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `POST /api/v1/admin/sessions {name, password}`.
async fn post_session(
    State(app): State<AppState>,
    _same_origin: SameOrigin,
    RequestOrigin(origin): RequestOrigin,
    NpmJson(body): NpmJson,
) -> Result<Response, ApiError> {
    let field = |name: &str| {
        body.get(name)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let user = app
        .accounts
        .login(&field("name"), &field("password"))
        .await?;
    app.audit_log
        .record(AuditEvent::by_user(
            user.id,
            &user.name,
            &origin,
            "user.login",
            json!({ "via": "session" }),
        ))
        .await?;
    let cookie = crate::web::start_session(&app, &user).await?;
    let body = Json(json!({ "user": user.name, "role": user.role }));
    Ok(with_cookie(
        (StatusCode::CREATED, body).into_response(),
        &cookie,
    ))
}

/// `DELETE /api/v1/admin/sessions`.
async fn delete_session(State(app): State<AppState>, _same_origin: SameOrigin) -> Response {
    with_cookie(
        Json(json!({ "ok": true })).into_response(),
        &app.sessions.clear_cookie(),
    )
}
