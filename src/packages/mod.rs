//! The registry's rules: names, versions, tarballs, publish, dist-tags, deprecation, unpublish,
//! owners and the packuments built from them. Nothing here knows about HTTP.

pub mod access;
pub mod blob_claims;
pub mod cache;
pub mod deprecate;
pub mod dist_tags;
pub mod doorkeeper;
pub mod integrity;
pub mod manifest;
pub mod name;
pub mod owners;
pub mod packument;
pub mod policy;
pub mod provenance;
pub mod publish;
pub mod registry;
pub mod renderer;
pub mod stage;
pub mod tarball;
pub mod tarball_cache;
pub mod unpublish;
pub mod version;
pub mod visibility;

pub use name::PackageName;
pub use registry::{Registry, RegistrySettings};
pub use version::{DistTag, Version};

use crate::auth::AuthError;
use crate::store::{BlobError, StoreError};

/// Why a registry operation failed, in the registry's own terms.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The request does not have the shape npm sends.
    #[error("{0}")]
    Invalid(String),
    /// The package name breaks npm's naming rules.
    #[error(transparent)]
    Name(#[from] name::NameError),
    /// The version or tag is not acceptable.
    #[error(transparent)]
    Version(#[from] version::VersionError),
    /// The tarball cannot be accepted.
    #[error(transparent)]
    Tarball(#[from] tarball::TarballError),
    /// The tarball's digests differ from the ones in the metadata.
    #[error(transparent)]
    Integrity(#[from] integrity::IntegrityError),
    /// Nothing by that name.
    #[error("{0}")]
    NotFound(String),
    /// The version is published already (npm's wording).
    #[error("You cannot publish over the previously published versions: {0}.")]
    VersionExists(String),
    /// The version was unpublished; versions are never reused.
    #[error(
        "You cannot publish over the previously published versions: {0}. It was unpublished, and versions can never be reused; publish a new version."
    )]
    VersionRetired(String),
    /// The change conflicts with the package's state.
    #[error("{0}")]
    Conflict(String),
    /// The caller does not maintain the package.
    #[error(
        "{user} is not a maintainer of {package}; ask a maintainer to run `npm owner add {user} {package}`"
    )]
    NotMaintainer {
        /// The caller.
        user: String,
        /// The package.
        package: String,
    },
    /// Every version of the package was unpublished, and the caller did not maintain it.
    #[error(
        "{0} was unpublished, and only its former maintainers, its org or a registry admin may publish it again; choose another name, or ask a former maintainer to publish it and run `npm owner add`"
    )]
    NameRetired(String),
    /// The provenance bundle's signer contradicts the package or the trusted publisher.
    #[error("{0}")]
    ProvenanceIdentity(String),
    /// The package's scope is an org's, and the caller may not change its packages.
    #[error("{0}")]
    OrgDenied(String),
    /// The org's publishing policy refuses this (approval, provenance, trusted publishing).
    #[error("{0}")]
    PolicyDenied(String),
    /// The version is older than the unpublish window.
    #[error(
        "{package}@{version} was published more than {window} ago and can no longer be unpublished; deprecate it instead (npm deprecate)"
    )]
    UnpublishWindow {
        /// The package.
        package: String,
        /// The version.
        version: String,
        /// The window, human readable.
        window: String,
    },
    /// The caller lacks a permission or scope.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The blob store failed.
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// Something else failed on the server.
    #[error("{0}")]
    Internal(String),
}
