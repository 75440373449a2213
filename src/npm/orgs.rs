//! npm's org, team and access commands (npm-protocol.md §13): `/-/org/...`, `/-/team/...`,
//! `/-/package/:pkg/{visibility,access,collaborators}` and `/-/user/:user/package`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::extract::{
    Authenticated, NpmJson, ReadAccess, package_name, package_name_for_write, required_field,
};
use crate::error::ApiError;
use crate::orgs::OrgRole;
use crate::server::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/-/org/{org}/user",
            get(get_org_users).put(put_org_user).delete(delete_org_user),
        )
        .route("/-/org/{org}/package", get(get_org_packages))
        .route("/-/org/{org}/team", get(get_teams).put(put_team))
        .route("/-/team/{org}/{team}", axum::routing::delete(delete_team))
        .route(
            "/-/team/{org}/{team}/user",
            get(get_team_users)
                .put(put_team_user)
                .delete(delete_team_user),
        )
        .route(
            "/-/team/{org}/{team}/package",
            get(get_team_packages)
                .put(put_team_package)
                .delete(delete_team_package),
        )
        .route("/-/user/{user}/package", get(get_user_packages))
        .route("/-/package/{pkg}/visibility", get(get_visibility))
        .route("/-/package/{pkg}/access", post(post_access))
        .route("/-/package/{pkg}/collaborators", get(get_collaborators))
}

/// npm prints roles as it knows them: maintainers are "developer"s.
fn npm_role(role: &str) -> &str {
    match role {
        "maintainer" => "developer",
        other => other,
    }
}

/// npm wants `read`/`write` per package.
fn npm_permissions(map: std::collections::BTreeMap<String, String>) -> Value {
    json!(
        map.into_iter()
            .map(|(k, v)| (
                k,
                if v == "read" {
                    "read".to_owned()
                } else {
                    "write".to_owned()
                }
            ))
            .collect::<std::collections::BTreeMap<_, _>>()
    )
}

fn org_slug(raw: &str) -> &str {
    raw.strip_prefix('@').unwrap_or(raw)
}

async fn get_org_users(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let members = app.orgs.members(&caller, org_slug(&org)).await?;
    let roster: serde_json::Map<String, Value> = members
        .into_iter()
        .map(|(user, role)| (user, Value::String(npm_role(&role).to_owned())))
        .collect();
    Ok(Json(Value::Object(roster)))
}

async fn put_org_user(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
    NpmJson(body): NpmJson,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let slug = org_slug(&org);
    let user = required_field(&body, "user")?;
    let role = OrgRole::parse(
        body.get("role")
            .and_then(Value::as_str)
            .unwrap_or("developer"),
    )?;
    let size = app.orgs.set_member(&caller, slug, user, role).await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({ "org": { "name": slug, "size": size }, "user": user, "role": npm_role(role.as_str()) }),
        ),
    ))
}

async fn delete_org_user(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
    NpmJson(body): NpmJson,
) -> Result<StatusCode, ApiError> {
    app.orgs
        .remove_member(&caller, org_slug(&org), required_field(&body, "user")?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_org_packages(
    State(app): State<AppState>,
    read: ReadAccess,
    Path(org): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let packages = app.orgs.packages(read.caller(), org_slug(&org)).await?;
    Ok(Json(npm_permissions(
        packages
            .into_keys()
            .map(|k| (k, "write".to_owned()))
            .collect(),
    )))
}

async fn get_teams(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let slug = org_slug(&org);
    let teams: Vec<String> = app
        .orgs
        .teams(&caller, slug)
        .await?
        .into_iter()
        .map(|team| format!("{slug}:{team}"))
        .collect();
    Ok(Json(json!(teams)))
}

async fn put_team(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(org): Path<String>,
    NpmJson(body): NpmJson,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = required_field(&body, "name")?;
    let description = body
        .get("description")
        .and_then(Value::as_str)
        .unwrap_or("");
    app.orgs
        .create_team(&caller, org_slug(&org), name, description)
        .await?;
    Ok((StatusCode::CREATED, Json(json!({ "name": name }))))
}

async fn delete_team(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((org, team)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    app.orgs
        .destroy_team(&caller, org_slug(&org), &team)
        .await?;
    Ok(Json(json!({ "name": team })))
}

async fn get_team_users(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((org, team)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!(
        app.orgs
            .team_members(&caller, org_slug(&org), &team)
            .await?
    )))
}

async fn put_team_user(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((org, team)): Path<(String, String)>,
    NpmJson(body): NpmJson,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    app.orgs
        .set_team_member(
            &caller,
            org_slug(&org),
            &team,
            required_field(&body, "user")?,
            true,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(json!({}))))
}

async fn delete_team_user(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((org, team)): Path<(String, String)>,
    NpmJson(body): NpmJson,
) -> Result<StatusCode, ApiError> {
    app.orgs
        .set_team_member(
            &caller,
            org_slug(&org),
            &team,
            required_field(&body, "user")?,
            false,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_team_packages(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((org, team)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(npm_permissions(
        app.orgs
            .team_packages(&caller, org_slug(&org), &team)
            .await?,
    )))
}

async fn put_team_package(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((org, team)): Path<(String, String)>,
    NpmJson(body): NpmJson,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let package = required_field(&body, "package")?;
    let permissions = body
        .get("permissions")
        .and_then(Value::as_str)
        .unwrap_or("read-only");
    app.orgs
        .set_team_grant(&caller, org_slug(&org), &team, package, Some(permissions))
        .await?;
    Ok((StatusCode::CREATED, Json(json!({}))))
}

async fn delete_team_package(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((org, team)): Path<(String, String)>,
    NpmJson(body): NpmJson,
) -> Result<StatusCode, ApiError> {
    app.orgs
        .set_team_grant(
            &caller,
            org_slug(&org),
            &team,
            required_field(&body, "package")?,
            None,
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn get_user_packages(
    State(app): State<AppState>,
    read: ReadAccess,
    Path(user): Path<String>,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(npm_permissions(
        app.orgs.user_packages(read.caller(), &user).await?,
    )))
}

async fn get_visibility(
    State(app): State<AppState>,
    read: ReadAccess,
    Path(pkg): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = package_name(&pkg)?;
    app.registry
        .require_read(read.caller(), &name, || {
            format!("package not found: {name}")
        })
        .await?;
    Ok(Json(
        json!({ "public": app.registry.is_public(&name).await? }),
    ))
}

async fn post_access(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(pkg): Path<String>,
    NpmJson(body): NpmJson,
) -> Result<Json<Value>, ApiError> {
    let name = package_name_for_write(&pkg)?;
    let Some(access) = body.get("access").and_then(Value::as_str) else {
        return Err(ApiError::bad_request(
            "unsupported",
            "only `access` (public or restricted) can be set; two-factor settings are not supported",
        ));
    };
    app.registry.set_access(&caller, &name, access).await?;
    Ok(Json(json!({ "ok": true })))
}

async fn get_collaborators(
    State(app): State<AppState>,
    read: ReadAccess,
    Path(pkg): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = package_name(&pkg)?;
    app.registry
        .require_read(read.caller(), &name, || {
            format!("package not found: {name}")
        })
        .await?;
    Ok(Json(npm_permissions(
        app.registry.collaborators(&name).await?,
    )))
}
