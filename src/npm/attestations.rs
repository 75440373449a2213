//! `GET /-/npm/v1/attestations/<name>@<version>` (npm-protocol.md §12.4): the Sigstore bundles
//! published with a version, as pacote and `npm audit signatures` read them.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value;

use super::extract::{ReadAccess, package_name};
use crate::error::ApiError;
use crate::packages::Version;
use crate::server::AppState;

/// Takes the name and version from the rest of the path; a scoped name arrives as
/// `@scope%2fname` (decoded by axum) or with a plain `/`.
pub async fn get_attestations(
    State(app): State<AppState>,
    read: ReadAccess,
    Path(spec): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let not_found = || ApiError::not_found(format!("no attestations found for {spec}"));
    let (name, version) = spec
        .rsplit_once('@')
        .filter(|(name, _)| !name.is_empty())
        .ok_or_else(not_found)?;
    let name = package_name(name)?;
    let version = Version::parse(version).map_err(|_| not_found())?;
    let document = app
        .registry
        .attestations(read.caller(), &name, &version)
        .await?;
    Ok(Json(document))
}
