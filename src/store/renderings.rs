//! Stored packument renderings: the bytes a cache miss serves.
//!
//! Every change that alters a packument replaces the package's [`StoredRendering`] in the change's
//! own transaction (see the write methods of [`super::PackageStore`]), so a miss is one keyed read.
//! The rendering is assembled from per-version [`Fragment`]s, each rendered once (at publish, or
//! again after a deprecation), so a publish into a package of thousands of versions does not
//! re-render the others: it concatenates their stored JSON, then hashes and gzips the documents. The rendering rules live in `crate::packages::rendering`; the stores
//! only load the [`RenderSource`] and keep the bytes.
//!
//! Tarball URLs hold the public base URL, which may come from the request's `Host`: a rendering
//! records the base it was made for and where in each document that base sits, so a read for
//! another base splices its own in.

use std::collections::BTreeMap;

use super::StoreError;

/// One document (full or abbreviated) as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    /// The JSON bytes, with tarball URLs on the rendering's base.
    pub plain: Vec<u8>,
    /// The same bytes, gzip-compressed.
    pub gzip: Vec<u8>,
    /// Strong ETag of `plain` (quoted).
    pub etag: String,
    /// Strong ETag of `gzip` (quoted).
    pub gzip_etag: String,
    /// Where in `plain` the (JSON-escaped) base URL starts, each as a little-endian `u32`.
    pub base_at: Vec<u8>,
}

/// Both documents of a package, as of one write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRendering {
    /// The package's write counter when rendered; a rendering of an older rev is never served.
    pub rev: i64,
    /// The public base URL the tarball URLs were rendered on (`""` when none was known yet).
    pub base: String,
    /// `time.modified` as an HTTP date.
    pub last_modified: String,
    /// The full document.
    pub full: StoredDocument,
    /// The abbreviated document.
    pub abbreviated: StoredDocument,
}

/// A version's rendered JSON, with the base URL of its tarball URL left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// The full version object.
    pub full: String,
    /// Where the base URL goes in `full`.
    pub full_at: i64,
    /// The abbreviated version object.
    pub abbreviated: String,
    /// Where the base URL goes in `abbreviated`.
    pub abbreviated_at: i64,
}

/// One version as a rendering needs it.
#[derive(Debug, Clone)]
pub struct VersionSource {
    /// The version string.
    pub version: String,
    /// Publish time (ms), for `time`.
    pub published_at: i64,
    /// Its stored fragment.
    pub fragment: Fragment,
}

/// Everything a rendering is assembled from.
#[derive(Debug, Clone)]
pub struct RenderSource {
    /// Package name.
    pub name: String,
    /// Write counter.
    pub rev: i64,
    /// First publish (ms).
    pub created_at: i64,
    /// Last write (ms).
    pub modified_at: i64,
    /// Every version, in any order.
    pub versions: Vec<VersionSource>,
    /// Tag → version.
    pub dist_tags: BTreeMap<String, String>,
    /// `(name, email)` of each maintainer, by name.
    pub maintainers: Vec<(String, String)>,
    /// The stored manifest and README of the version `latest` points at.
    pub latest: Option<(String, Option<String>)>,
}

/// Stored renderings, implemented by every metadata store.
#[async_trait::async_trait]
pub trait RenderingStore: Send + Sync {
    /// The package's stored rendering, if there is one of its current rev (one keyed read).
    async fn stored_rendering(&self, name: &str) -> Result<Option<StoredRendering>, StoreError>;

    /// Renders the package from its rows (keeping the base of the rendering it had, else `base`),
    /// stores the rendering and returns it; `None` when the package does not exist. For
    /// packages stored before renderings were (read lazily, once).
    async fn render_and_store(
        &self,
        name: &str,
        base: &str,
    ) -> Result<Option<StoredRendering>, StoreError>;

    /// Replaces a rendering made on no base (`""`) with `rendering`, made on a real one, if the
    /// package is still at `rendering.rev`; otherwise leaves it.
    async fn adopt_base(&self, name: &str, rendering: StoredRendering) -> Result<(), StoreError>;
}
