//! `npm token list|create|revoke` (npm-protocol.md §9): the caller's own tokens.
//!
//! npm's `key` is our token id (the JWT's `jti`, 32 hex characters): npm shows its shortest unique
//! prefix of at least 6 as the id, and `npm token revoke <id>` sends the full key back. The same id
//! is used by the admin API and `packr token list|revoke`. npm's `token` field, a redacted piece of
//! the token, is the start of the token's signature (every JWT starts with the same header).

use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{Authenticated, BaseUrl, NpmJson, string_list};
use crate::auth::accounts::user_role;
use crate::auth::cidr::CidrList;
use crate::auth::tokens::{Issuer, TokenInfo, TokenListing, TokenRequest};
use crate::auth::{AuthError, Role};
use crate::clock;
use crate::error::ApiError;
use crate::server::AppState;

/// npm's documented page size bounds (`perPage`, 1–9999, default 10).
const MAX_PER_PAGE: u32 = 9999;
const DEFAULT_PER_PAGE: u32 = 10;

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/-/npm/v1/tokens", get(get_tokens).post(post_token))
        .route("/-/npm/v1/tokens/token/{key}", delete(delete_token))
}

/// The paging query of `GET /-/npm/v1/tokens`.
#[derive(Debug, Deserialize)]
pub struct Paging {
    page: Option<u32>,
    #[serde(rename = "perPage")]
    per_page: Option<u32>,
}

/// A token as npm lists it; `token` is the full token only in the answer to its creation.
fn token_object(info: &TokenInfo, token: Option<&str>) -> Value {
    let created = clock::iso(info.created_at);
    json!({
        "token": token.unwrap_or(&info.display),
        "key": info.id,
        // npm prints the name; tokens made without one would read "name null".
        "name": info.name.as_deref().unwrap_or("(no name)"),
        // npm prints the list whenever it is not null, so an unrestricted token sends null.
        "cidr_whitelist": (!info.cidr.is_empty()).then_some(&info.cidr),
        "readonly": info.role == Role::CiReadonly.as_str(),
        "created": created,
        "updated": created,
        "expires": info.expires_at.map(clock::iso),
    })
}

/// `GET /-/npm/v1/tokens?page=&perPage=`: the caller's live tokens, newest first; npm follows
/// `urls.next` until it is absent.
async fn get_tokens(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    BaseUrl(base): BaseUrl,
    Query(paging): Query<Paging>,
) -> Result<Json<Value>, ApiError> {
    let per_page = paging.per_page.unwrap_or(DEFAULT_PER_PAGE);
    if !(1..=MAX_PER_PAGE).contains(&per_page) {
        return Err(ApiError::bad_request(
            "invalid_page",
            format!("perPage must be between 1 and {MAX_PER_PAGE}"),
        ));
    }
    let page = paging.page.unwrap_or(0);
    let offset = page.saturating_mul(per_page);
    let (tokens, total) = app
        .tokens
        .list(TokenListing {
            user_id: Some(caller.user_id),
            live_only: true,
            limit: per_page,
            offset,
        })
        .await?;
    let mut urls = json!({});
    if i64::from(offset) + i64::from(per_page) < total {
        urls["next"] = json!(format!(
            "{base}/-/npm/v1/tokens?page={}&perPage={per_page}",
            page + 1
        ));
    }
    let objects: Vec<Value> = tokens.iter().map(|t| token_object(t, None)).collect();
    Ok(Json(
        json!({ "objects": objects, "total": total, "urls": urls }),
    ))
}

/// `POST /-/npm/v1/tokens`: creates a token for the caller after checking their password.
async fn post_token(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    NpmJson(body): NpmJson,
) -> Result<Json<Value>, ApiError> {
    let password = body
        .get("password")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "missing_password",
                "your password is required to create a token (npm token create --password ...)",
            )
        })?;
    let user = match app.accounts.login(&caller.name, password).await {
        Err(AuthError::NoSuchUser(_)) => Err(AuthError::BadPassword),
        other => other,
    }?;
    let wanted = CreateBody::parse(&body)?;
    let role = wanted.role(user_role(&user).max_token_role())?;
    let cidr = CidrList::parse(&wanted.cidr)?;
    let request = TokenRequest {
        role,
        scopes: wanted.scopes,
        ttl: wanted
            .expires_days
            .map(|days| Duration::from_secs(days * 86_400)),
        name: Some(wanted.name),
    };
    let issued = app
        .tokens
        .create(
            &user,
            request,
            cidr,
            Issuer::Owner(Some(&caller)),
            &caller.origin,
        )
        .await?;
    tracing::info!(user = %user.name, token_id = %issued.info.id, "token created");
    Ok(Json(token_object(&issued.info, Some(&issued.token))))
}

/// What `npm token create` asks for (npm 10 and npm 11 bodies).
struct CreateBody {
    name: String,
    expires_days: Option<u64>,
    cidr: Vec<String>,
    readonly: bool,
    permission: Option<String>,
    scopes: Vec<String>,
}

impl CreateBody {
    fn parse(body: &Value) -> Result<Self, ApiError> {
        if !string_list(body, "packages")?.is_empty() || !string_list(body, "orgs")?.is_empty() {
            return Err(ApiError::bad_request(
                "unsupported",
                "Packr limits tokens by scope, not by package or org: use --scopes @acme",
            ));
        }
        let expires_days = match body.get("expires") {
            None | Some(Value::Null) => None,
            Some(value) => Some(value.as_u64().filter(|days| *days > 0).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid",
                    "`expires` must be a whole number of days, at least 1",
                )
            })?),
        };
        let scopes = string_list(body, "scopes")?
            .into_iter()
            .map(|scope| {
                if scope.starts_with('@') {
                    scope
                } else {
                    format!("@{scope}")
                }
            })
            .collect();
        Ok(Self {
            name: body
                .get("name")
                .and_then(Value::as_str)
                .filter(|n| !n.trim().is_empty())
                .unwrap_or("npm token")
                .to_owned(),
            expires_days,
            cidr: string_list(body, "cidr_whitelist")?,
            readonly: body.get("readonly").and_then(Value::as_bool) == Some(true),
            permission: body
                .get("packages_and_scopes_permission")
                .and_then(Value::as_str)
                .map(str::to_owned),
            scopes,
        })
    }

    /// npm 10's `readonly` and npm 11's `packages_and_scopes_permission` mapped onto a role; with
    /// neither, the strongest role the user may hold, as a password login gives.
    fn role(&self, strongest: Role) -> Result<Role, ApiError> {
        if self.readonly {
            return Ok(Role::CiReadonly);
        }
        match self.permission.as_deref() {
            None => Ok(strongest),
            Some("read-only") => Ok(Role::CiReadonly),
            Some("read-write") => Ok(strongest.min(Role::CiPublish)),
            Some(other) => Err(ApiError::bad_request(
                "unsupported",
                format!(
                    "packages-and-scopes-permission `{other}` is not supported; use read-only or read-write"
                ),
            )),
        }
    }
}

/// `DELETE /-/npm/v1/tokens/token/:key`: `npm token revoke`. The key may be a token id, a unique
/// prefix of one (at least 6 characters), or the token itself; only the caller's tokens count.
/// A `ci-readonly` or `ci-publish` token revokes only itself: npm's registry lets a login session
/// revoke its user's tokens, and here maintainer and admin tokens (what a login gives) may, but a
/// token leaked from a CI system must not be able to end its owner's other tokens.
async fn delete_token(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(key): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = app.tokens.find_id(Some(caller.user_id), &key).await?;
    if caller.role < Role::Maintainer && id != caller.token_id {
        return Err(AuthError::RevokesOnlyItself { role: caller.role }.into());
    }
    app.tokens
        .revoke_id(&id, Some(&caller), &caller.origin)
        .await?;
    tracing::info!(user = %caller.name, token_id = %id, "token revoked");
    Ok(StatusCode::NO_CONTENT)
}
