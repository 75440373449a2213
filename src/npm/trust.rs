//! `npm trust` (`/-/package/:pkg/trust`) and the OIDC token exchange
//! (`/-/npm/v1/oidc/token/exchange/package/:pkg`), npm-protocol.md §12.5.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::extract::{Authenticated, BaseUrl, NpmJson, package_name, package_name_for_write};
use crate::error::ApiError;
use crate::server::AppState;
use crate::trust::{TrustError, to_npm};

/// The routes of this module.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/-/package/{pkg}/trust", post(post_trust).get(get_trust))
        .route("/-/package/{pkg}/trust/{id}", delete(delete_trust))
        .route(
            "/-/npm/v1/oidc/token/exchange/package/{pkg}",
            post(post_exchange),
        )
}

impl From<TrustError> for ApiError {
    fn from(err: TrustError) -> Self {
        let message = err.to_string();
        match err {
            TrustError::Refused(_) => Self::user(StatusCode::UNAUTHORIZED, "oidc_refused", message),
            TrustError::Forbidden(_) => Self::user(StatusCode::FORBIDDEN, "forbidden", message),
            TrustError::NotFound(_) => Self::not_found(message),
            TrustError::Invalid(_) => Self::bad_request("invalid", message),
            // The issuer's documents, not Packr's storage, are out of reach: say which.
            TrustError::Unavailable(_) => {
                Self::user(StatusCode::BAD_GATEWAY, "issuer_unavailable", message)
            }
            TrustError::Auth(inner) => inner.into(),
            TrustError::Store(inner) => inner.into(),
        }
    }
}

async fn post_trust(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(pkg): Path<String>,
    NpmJson(body): NpmJson,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let name = package_name_for_write(&pkg)?;
    let rows = app.trust.add(&caller, name.as_str(), body).await?;
    Ok((
        StatusCode::CREATED,
        Json(Value::Array(rows.iter().map(to_npm).collect())),
    ))
}

async fn get_trust(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path(pkg): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let name = package_name(&pkg)?;
    let rows = app.trust.list(&caller, name.as_str()).await?;
    Ok(Json(Value::Array(rows.iter().map(to_npm).collect())))
}

async fn delete_trust(
    State(app): State<AppState>,
    Authenticated(caller): Authenticated,
    Path((pkg, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let name = package_name_for_write(&pkg)?;
    app.trust.revoke(&caller, name.as_str(), &id).await?;
    Ok(Json(json!({ "ok": true })))
}

/// The exchange. npm keeps only `body.message` of a refusal (at verbose level), so the reason
/// goes in `message` and `error`, and in one log line an operator can find.
async fn post_exchange(
    State(app): State<AppState>,
    Path(pkg): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    origin: crate::npm::extract::RequestOrigin,
) -> Response {
    let result = async {
        let name = package_name(&pkg)?;
        let id_token = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                TrustError::Refused("the exchange needs `Authorization: Bearer <ID token>`".into())
            })?;
        let host = host_name(&base);
        let token = app
            .trust
            .exchange(name.as_str(), id_token, &host, &origin.0)
            .await?;
        Ok::<_, ApiError>((name, token))
    }
    .await;
    match result {
        Ok((name, token)) => {
            tracing::info!(package = %name, "trusted publishing: ID token exchanged");
            (StatusCode::CREATED, Json(json!({ "token": token }))).into_response()
        }
        Err(err) => {
            let status = err.status();
            let message = err.message().to_owned();
            tracing::warn!(package = %pkg, reason = %message, "trusted publishing: exchange refused");
            (
                status,
                Json(json!({ "error": message, "message": message, "code": err.code() })),
            )
                .into_response()
        }
    }
}

/// The host name of a base URL, without scheme, port or path: npm's audience is
/// `npm:<hostname>`.
fn host_name(base: &str) -> String {
    let rest = base.split_once("://").map_or(base, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or_default();
    if let Some(v6) = authority.strip_prefix('[') {
        return format!("[{}]", v6.split(']').next().unwrap_or_default());
    }
    authority
        .split(':')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::host_name;

    #[test]
    fn the_audience_host_has_no_scheme_port_or_path() {
        assert_eq!(host_name("https://npm.Example.com/"), "npm.example.com");
        assert_eq!(host_name("http://127.0.0.1:4873"), "127.0.0.1");
        assert_eq!(
            host_name("https://reg.example.com:8443/npm/"),
            "reg.example.com"
        );
        assert_eq!(host_name("http://[::1]:4873"), "[::1]");
    }
}
