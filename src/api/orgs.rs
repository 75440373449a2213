//! The org admin API: `/api/v1/admin/orgs[/:slug/members]`, `/api/v1/admin/users/me/orgs`, and the
//! public `/api/v1/orgs/:slug/packages`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AdminCaller;
use crate::error::ApiError;
use crate::npm::extract::{Authenticated, NpmJson, ReadAccess, required_field};
use crate::orgs::OrgRole;
use crate::server::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/orgs", get(get_orgs).post(post_org))
        .route(
            "/api/v1/admin/orgs/{slug}/members",
            get(get_members).post(post_member).delete(delete_member),
        )
        .route("/api/v1/admin/users/me/orgs", get(get_my_orgs))
        .route("/api/v1/orgs/{slug}/packages", get(get_org_packages))
}

async fn get_orgs(
    State(app): State<AppState>,
    _admin: AdminCaller,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "orgs": app.orgs.list().await? })))
}

/// `POST /api/v1/admin/orgs {slug, display_name}`.
async fn post_org(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    NpmJson(body): NpmJson,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let slug = required_field(&body, "slug")?;
    let display = body
        .get("display_name")
        .and_then(Value::as_str)
        .unwrap_or(slug);
    let org = app.orgs.create(&caller, slug, display).await?;
    Ok((StatusCode::CREATED, Json(json!(org))))
}

async fn get_members(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let members = app.orgs.members(&caller, &slug).await?;
    let list: Vec<Value> = members
        .into_iter()
        .map(|(user, role)| json!({ "user": user, "role": role }))
        .collect();
    Ok(Json(json!({ "org": slug, "members": list })))
}

/// `POST /api/v1/admin/orgs/:slug/members {user, role}`.
async fn post_member(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(slug): Path<String>,
    NpmJson(body): NpmJson,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let user = required_field(&body, "user")?;
    let role = OrgRole::parse(
        body.get("role")
            .and_then(Value::as_str)
            .unwrap_or("maintainer"),
    )?;
    let size = app.orgs.set_member(&caller, &slug, user, role).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "org": slug, "user": user, "role": role.as_str(), "size": size })),
    ))
}

/// `DELETE /api/v1/admin/orgs/:slug/members {user}`.
async fn delete_member(
    State(app): State<AppState>,
    AdminCaller(caller): AdminCaller,
    Path(slug): Path<String>,
    NpmJson(body): NpmJson,
) -> Result<StatusCode, ApiError> {
    app.orgs
        .remove_member(&caller, &slug, required_field(&body, "user")?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/admin/users/me/orgs`: the caller's orgs (any signed-in user).
async fn get_my_orgs(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
) -> Result<Json<Value>, ApiError> {
    let orgs: Vec<Value> = app
        .orgs
        .user_orgs(caller.user_id)
        .await?
        .into_iter()
        .map(|(org, role)| json!({ "slug": org.slug, "display_name": org.display_name, "role": role }))
        .collect();
    Ok(Json(json!({ "orgs": orgs })))
}

/// `GET /api/v1/orgs/:slug/packages` (readable like packuments).
async fn get_org_packages(
    State(app): State<AppState>,
    read: ReadAccess,
    Path(slug): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let packages: Vec<Value> = app
        .orgs
        .packages(read.caller(), &slug)
        .await?
        .into_iter()
        .map(|(name, access)| json!({ "name": name, "access": access }))
        .collect();
    Ok(Json(json!({ "org": slug, "packages": packages })))
}
