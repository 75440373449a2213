//! The token admin API: `GET|POST /api/v1/admin/tokens` and `DELETE /api/v1/admin/tokens/:id`.
//! Listings never include a token or its hash; a token is shown once, in the answer to its creation.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AdminCaller;
use super::paging::Paging;
use crate::auth::Role;
use crate::auth::cidr::CidrList;
use crate::auth::tokens::{Issuer, TokenInfo, TokenListing, TokenRequest};
use crate::clock;
use crate::config::parse_duration;
use crate::error::ApiError;
use crate::npm::extract::{NpmJson, string_list};
use crate::server::AppState;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/tokens", get(get_tokens).post(post_token))
        .route("/api/v1/admin/tokens/{id}", delete(delete_token))
}

/// A token's details as the admin API shows them.
fn token_json(info: &TokenInfo) -> Value {
    json!({
        "id": info.id,
        "user": info.user,
        "role": info.role,
        "scopes": info.scopes,
        "name": info.name,
        "cidr": info.cidr,
        "created": clock::iso(info.created_at),
        "expires": info.expires_at.map(clock::iso),
        "revoked": info.revoked_at.is_some(),
        "revoked_at": info.revoked_at.map(clock::iso),
        "last_used_at": info.last_used_at.map(clock::iso),
        "use_count": info.use_count,
        "issued_by": info.issued_by,
    })
}

/// Filters of the listing: `?user=NAME&live=true` (paged with `&page=0&per_page=100`).
#[derive(Debug, Deserialize)]
pub struct Filters {
    user: Option<String>,
    live: Option<bool>,
}

/// `GET /api/v1/admin/tokens`: every token (revoked and expired ones too unless `live=true`).
async fn get_tokens(
    State(app): State<AppState>,
    _admin: AdminCaller,
    Query(filters): Query<Filters>,
    paging: Paging,
) -> Result<Json<Value>, ApiError> {
    let user_id = match &filters.user {
        Some(name) => Some(find_user(&app, name).await?.id),
        None => None,
    };
    let (tokens, total) = app
        .tokens
        .list(TokenListing {
            user_id,
            live_only: filters.live.unwrap_or(false),
            limit: paging.per_page,
            offset: paging.offset(),
        })
        .await?;
    let tokens: Vec<Value> = tokens.iter().map(token_json).collect();
    Ok(Json(
        json!({ "tokens": tokens, "total": total, "page": paging.page, "per_page": paging.per_page }),
    ))
}

async fn find_user(
    app: &AppState,
    name: &str,
) -> Result<crate::store::accounts::UserRow, ApiError> {
    app.accounts
        .find(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no user named {name}")))
}

fn optional_str<'a>(body: &'a Value, field: &str) -> Result<Option<&'a str>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.as_str())),
        Some(_) => Err(ApiError::bad_request(
            "invalid",
            format!("`{field}` must be a string"),
        )),
    }
}

/// `POST /api/v1/admin/tokens {user, role, scopes?, expires?: "30d", name?, cidr?}` → 201 with
/// the token, shown this once.
async fn post_token(
    State(app): State<AppState>,
    AdminCaller(admin): AdminCaller,
    NpmJson(body): NpmJson,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = optional_str(&body, "user")?
        .ok_or_else(|| ApiError::bad_request("missing_field", "`user` is required"))?;
    let role_text = optional_str(&body, "role")?
        .ok_or_else(|| ApiError::bad_request("missing_field", "`role` is required"))?;
    let role = Role::parse(role_text).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_role",
            format!("unknown role `{role_text}`: use ci-readonly, ci-publish, maintainer or admin"),
        )
    })?;
    let ttl = optional_str(&body, "expires")?
        .map(parse_duration)
        .transpose()
        .map_err(|err| ApiError::bad_request("invalid", format!("`expires`: {err:#}")))?;
    let cidr = CidrList::parse(&string_list(&body, "cidr")?)?;
    let request = TokenRequest {
        role,
        scopes: string_list(&body, "scopes")?,
        ttl,
        name: optional_str(&body, "name")?.map(str::to_owned),
    };
    let user = find_user(&app, name).await?;
    let issued = app
        .tokens
        .create(&user, request, cidr, Issuer::Admin(&admin), &admin.origin)
        .await?;
    let mut answer = token_json(&issued.info);
    answer["token"] = json!(issued.token);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `DELETE /api/v1/admin/tokens/:id` (an id or a unique prefix of at least 6 characters) → 204.
async fn delete_token(
    State(app): State<AppState>,
    AdminCaller(admin): AdminCaller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = app.tokens.find_id(None, &id).await?;
    app.tokens
        .revoke_id(&id, Some(&admin), &admin.origin)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
