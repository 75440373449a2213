//! Stored packument renderings: the JSON a cache miss serves, so that a miss is one keyed read
//! instead of loading every version row and writing the document anew.
//!
//! A rendering is made on no base URL (`""`): each tarball URL starts with its path, and the
//! rendering records where, so a read for any base splices its own in. It is made after a change
//! commits, off the change's path (`crate::packages::renderer`), and stored only if the package
//! is still at the rev it was made from; a read serves it only while the
//! package is at that rev. Every write bumps the rev, so a stale rendering is never served, and a
//! change never waits for one to be made.

use super::StoreError;
use crate::packages::cache::Form;

/// One document as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    /// The JSON, with every tarball URL's base left out.
    pub plain: Vec<u8>,
    /// Where in `plain` a base URL goes, in order.
    pub cuts: Vec<u32>,
    /// `time.modified` as an HTTP date.
    pub last_modified: String,
    /// The digest of `plain` the ETags are made of (`None`: stored without it, worked out on
    /// a read).
    pub digest: Option<crate::packages::packument::EtagDigest>,
}

/// A rendering to store: one document of a package, as of one write.
#[derive(Debug, Clone)]
pub struct NewRendering {
    /// Package name.
    pub package: String,
    /// Which document.
    pub form: Form,
    /// The package's write counter the document was made from (revs only grow, across an
    /// unpublish of the whole package too).
    pub rev: i64,
    /// The document.
    pub document: StoredDocument,
}

/// Stored renderings, implemented by every metadata store.
#[async_trait::async_trait]
pub trait RenderingStore: Send + Sync {
    /// The package's stored document in `form`, if one of its current rev is stored (one keyed
    /// read, from wherever the store reads that package's rows).
    async fn stored_document(
        &self,
        name: &str,
        form: Form,
    ) -> Result<Option<StoredDocument>, StoreError>;

    /// Stores each rendering whose package is still at its rev, replacing the package's older
    /// one; answers how many were stored.
    async fn store_renderings(&self, renderings: Vec<NewRendering>) -> Result<usize, StoreError>;

    /// Up to `limit` packages after `after` (in name order) missing a current rendering of
    /// either form, in name order: what a sweep renders after a start or a move.
    async fn unrendered(&self, after: &str, limit: usize) -> Result<Vec<String>, StoreError>;
}

/// `cuts` as stored: little-endian `u32`s.
pub fn encode_cuts(cuts: &[u32]) -> Vec<u8> {
    cuts.iter().flat_map(|cut| cut.to_le_bytes()).collect()
}

/// The ETag digest of a stored column, `None` when it is missing or not one.
pub fn decode_digest(bytes: Option<&[u8]>) -> Option<crate::packages::packument::EtagDigest> {
    bytes.and_then(|bytes| bytes.try_into().ok())
}

/// The cuts of a stored column, or `None` when it is not a whole number of them.
pub fn decode_cuts(bytes: &[u8]) -> Option<Vec<u32>> {
    let chunks = bytes.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return None;
    }
    Some(
        chunks
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

/// How a form is stored (the `form` column).
pub fn form_code(form: Form) -> i64 {
    match form {
        Form::Full => 0,
        Form::Abbreviated => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_round_trip() {
        let cuts = vec![0, 17, 70_000, u32::MAX];
        assert_eq!(decode_cuts(&encode_cuts(&cuts)), Some(cuts));
        assert_eq!(decode_cuts(&[1, 2, 3]), None);
        assert_eq!(decode_cuts(&[]), Some(Vec::new()));
    }
}
