//! The npm wire protocol over HTTP: routes, extractors and the JSON npm, pnpm and yarn expect.

mod attestations;
mod audit;
pub mod body;
mod device;
mod dist_tags;
pub mod drain;
pub mod extract;
mod keys;
mod orgs;
mod packument;
pub mod path;
mod publish;
mod tarball;
mod tokens;
mod trust;
mod unpublish;
mod user;

use axum::Router;
use axum::routing::{delete, get, put};

use crate::server::AppState;

/// Every npm route. Scoped names must already be normalised by [`path::normalize_scoped_uri`].
pub fn routes() -> Router<AppState> {
    Router::new()
        .merge(user::routes())
        .merge(audit::routes())
        .merge(device::routes())
        .merge(orgs::routes())
        .merge(tokens::routes())
        .route("/-/npm/v1/keys", get(keys::get_keys))
        .route(
            "/-/npm/v1/attestations/{*spec}",
            get(attestations::get_attestations),
        )
        .merge(trust::routes())
        .route("/-/package/{pkg}/dist-tags", get(dist_tags::get_dist_tags))
        .route(
            "/-/package/{pkg}/dist-tags/{tag}",
            put(dist_tags::put_dist_tag).delete(dist_tags::delete_dist_tag),
        )
        .route(
            "/{pkg}",
            get(packument::get_packument).put(publish::put_package),
        )
        .route("/{pkg}/{version}", get(packument::get_version))
        .route("/{pkg}/-/{file}", get(tarball::get_tarball))
        .route(
            "/{pkg}/-rev/{rev}",
            put(unpublish::put_package_rev).delete(unpublish::delete_package),
        )
        .route(
            "/{pkg}/-/{file}/-rev/{rev}",
            delete(unpublish::delete_tarball),
        )
}
