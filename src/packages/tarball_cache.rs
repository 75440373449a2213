//! Recently served tarballs: where each `name@version` lives (so a download needs no database
//! call) and, for small tarballs, the bytes themselves. The entries live in the packument cache's
//! `moka` cache ([`super::cache`]), so both share `PACKR_CACHE_BYTES` and its admission policy.

use std::sync::Arc;

use bytes::Bytes;

use super::cache::{Cached, Key, KeyRef, Shared};

/// Tarballs up to this size are kept in memory once served.
pub const SMALL_TARBALL_BYTES: u64 = 256 * 1024;

/// What is known about one version's tarball.
#[derive(Debug)]
pub struct CachedTarball {
    /// Blob key (hex SHA-512).
    pub key: String,
    /// Hex SHA-1, the ETag.
    pub shasum: String,
    /// The bytes, for small tarballs.
    pub bytes: Option<Bytes>,
}

/// The cache, keyed by package and version; a package's entries go on every write to it.
pub struct TarballCache {
    shared: Arc<Shared>,
}

impl TarballCache {
    /// The tarball side of a packument cache ([`super::cache::PackumentCache::tarballs`]).
    pub(super) fn on(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The cached tarball of `package@version`, unless the package was written since it was read.
    pub fn get(&self, package: &str, version: &str) -> Option<Arc<CachedTarball>> {
        match self
            .shared
            .entries
            .get(&KeyRef::Tarball(package, version))?
        {
            Cached::Tarball { epoch, tarball } if epoch == self.shared.epoch(package) => {
                Some(tarball)
            }
            _ => None,
        }
    }

    /// Remembers a tarball read from the store at `epoch` (taken before the read): a write to the
    /// package since then makes the entry stale, never served.
    pub fn insert(
        &self,
        package: &str,
        version: &str,
        epoch: u64,
        tarball: CachedTarball,
    ) -> Arc<CachedTarball> {
        let tarball = Arc::new(tarball);
        let bytes = tarball.bytes.as_ref().map(|b| {
            // An exact-size buffer with its shared header allocated: its weight is its cost.
            let copy = Bytes::copy_from_slice(b);
            drop(copy.clone());
            copy
        });
        let stored = Arc::new(CachedTarball {
            key: tarball.key.as_str().into(),
            shasum: tarball.shasum.as_str().into(),
            bytes,
        });
        self.shared.insert(
            Key::Tarball(package.into(), version.into()),
            Cached::Tarball {
                epoch,
                tarball: stored,
            },
        );
        tarball
    }
}

#[cfg(test)]
mod tests {
    use super::super::cache::PackumentCache;
    use super::*;

    fn tarball(bytes: usize) -> CachedTarball {
        CachedTarball {
            key: "k".into(),
            shasum: "s".into(),
            bytes: Some(Bytes::from(vec![0u8; bytes])),
        }
    }

    #[test]
    fn a_write_to_the_package_makes_its_tarballs_stale() {
        let packuments = PackumentCache::new(1 << 20);
        let cache = packuments.tarballs();
        let epoch = packuments.epoch("a");
        cache.insert("a", "1.0.0", epoch, tarball(80));
        assert_eq!(cache.get("a", "1.0.0").unwrap().key, "k");
        packuments.invalidate("a");
        assert!(cache.get("a", "1.0.0").is_none());
        // A read that raced the write is stored stale, and never served.
        cache.insert("a", "1.0.1", epoch, tarball(80));
        assert!(cache.get("a", "1.0.1").is_none());
    }

    #[test]
    fn tarballs_and_packuments_share_one_budget() {
        let packuments = PackumentCache::new(64 * 1024);
        let cache = packuments.tarballs();
        for v in 0..100 {
            cache.insert("a", &format!("1.0.{v}"), 0, tarball(10 * 1024));
        }
        assert!(packuments.stats().bytes <= 64 * 1024);
    }
}
