//! Stored packument renderings: the bytes a cache miss serves.
//!
//! A rendering is assembled from per-version [`Fragment`]s, each rendered once (again after a
//! deprecation or a signature changes it), by concatenating their JSON, then hashing and gzipping
//! the documents. A change of a small package replaces its [`StoredRendering`] in the change's own
//! transaction (see [`RENDER_IN_WRITE_VERSIONS`]); a change of a big one leaves it stale (its rev
//! moved), and the first miss assembles it outside any transaction and stores it back, unless the
//! package changed meanwhile. So a miss is one keyed read, and a write costs what it changes. The
//! rendering rules live in `crate::packages::rendering`; the stores load the [`RenderSource`] and
//! keep the bytes.
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
    /// A big document's gzip bytes with the deflate stream cut around each base URL, for
    /// splicing another base in (see `gzip_at`); empty for a small document, whose `gzip` is cut
    /// itself.
    pub cut_gzip: Vec<u8>,
    /// Where in the cut gzip bytes (`cut_gzip`, else `gzip`) each base URL's stored deflate block
    /// starts (little-endian `u32`s): another base is spliced into them as into the JSON, with
    /// nothing compressed again.
    pub gzip_at: Vec<u8>,
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

/// A version's rendered JSON, with the base URL of its tarball URL (and of its attestations URL,
/// if any) left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fragment {
    /// The full version object.
    pub full: String,
    /// Where the base URL goes in `full`, each as a little-endian `u32`.
    pub full_at: Vec<u8>,
    /// The abbreviated version object.
    pub abbreviated: String,
    /// Where the base URL goes in `abbreviated`, each as a little-endian `u32`.
    pub abbreviated_at: Vec<u8>,
}

/// One version as a rendering needs it.
#[derive(Debug, Clone)]
pub struct VersionSource {
    /// The version string.
    pub version: String,
    /// Publish time (ms), for `time`.
    pub published_at: i64,
    /// Its fragment.
    pub fragment: Fragment,
    /// The fragment was rendered for this source and is not stored yet.
    pub fresh: bool,
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

/// A version row as a fragment needs it (the other fields do not show in a version object).
pub fn fragment_row(
    version: &str,
    manifest: String,
    deprecated: Option<String>,
    signatures: Vec<super::packages::Signature>,
) -> super::packages::VersionRow {
    super::packages::VersionRow {
        version: version.to_owned(),
        manifest,
        integrity: String::new(),
        shasum: String::new(),
        blob_key: String::new(),
        size: 0,
        deprecated,
        readme: None,
        published_at: 0,
        signatures,
    }
}

/// Packages of at most this many versions get their rendering replaced inside every change's
/// transaction (a few KB of JSON to hash and gzip); a change of a bigger one only moves its rev,
/// which leaves its stored rendering stale, and the first miss renders it from the fragments and
/// stores it back ([`RenderingStore::store_rendering`]). Either way a write costs the size of the
/// change, not of the package.
pub const RENDER_IN_WRITE_VERSIONS: i64 = 64;

/// Stored renderings, implemented by every metadata store.
#[async_trait::async_trait]
pub trait RenderingStore: Send + Sync {
    /// The package's stored rendering, if there is one of its current rev (one keyed read).
    async fn stored_rendering(&self, name: &str) -> Result<Option<StoredRendering>, StoreError>;

    /// What the package's documents are assembled from, read in one snapshot and without writing:
    /// versions whose fragment is not stored come with one rendered now, marked `fresh`. `None`
    /// when there is no such package.
    async fn render_source(&self, name: &str) -> Result<Option<RenderSource>, StoreError>;

    /// Stores `rendering` (made from a [`Self::render_source`] at `rendering.rev`) and the fresh
    /// `fragments` it was made from, only if the package is still at that rev and holds no
    /// rendering of it on a real base already (one made on no base, `""`, is replaced). A stored
    /// rendering never goes back to an older rev. Answers whether it stored.
    async fn store_rendering(
        &self,
        name: &str,
        rendering: &StoredRendering,
        fragments: Vec<(String, Fragment)>,
    ) -> Result<bool, StoreError>;
}
