//! Recently served tarballs: where each `name@version` lives (so a download needs no database
//! call) and, for small tarballs, the bytes themselves, bounded in total size.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

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

#[derive(Default)]
struct Entries {
    by_package: HashMap<String, HashMap<String, Arc<CachedTarball>>>,
    bytes: usize,
}

/// The cache, keyed by package and version; a package's entries go on every write to it.
pub struct TarballCache {
    entries: Mutex<Entries>,
    max_bytes: usize,
}

impl TarballCache {
    /// A cache holding at most `max_bytes` of tarball bytes.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            entries: Mutex::default(),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached tarball of `package@version`.
    pub fn get(&self, package: &str, version: &str) -> Option<Arc<CachedTarball>> {
        self.lock().by_package.get(package)?.get(version).cloned()
    }

    /// Remembers a tarball, dropping its bytes when they would not fit.
    pub fn insert(
        &self,
        package: &str,
        version: &str,
        mut tarball: CachedTarball,
    ) -> Arc<CachedTarball> {
        let mut entries = self.lock();
        let size = tarball.bytes.as_ref().map_or(0, Bytes::len);
        if entries.bytes + size > self.max_bytes {
            tarball.bytes = None;
        }
        entries.bytes += tarball.bytes.as_ref().map_or(0, Bytes::len);
        let tarball = Arc::new(tarball);
        let old = entries
            .by_package
            .entry(package.to_owned())
            .or_default()
            .insert(version.to_owned(), Arc::clone(&tarball));
        if let Some(old) = old {
            entries.bytes -= old.bytes.as_ref().map_or(0, Bytes::len);
        }
        tarball
    }

    /// Forgets every package's tarballs.
    pub fn invalidate_all(&self) {
        let mut entries = self.lock();
        entries.by_package.clear();
        entries.bytes = 0;
    }

    /// Forgets a package's tarballs (after an unpublish, or any write to it).
    pub fn invalidate(&self, package: &str) {
        let mut entries = self.lock();
        if let Some(versions) = entries.by_package.remove(package) {
            let freed: usize = versions
                .values()
                .map(|t| t.bytes.as_ref().map_or(0, Bytes::len))
                .sum();
            entries.bytes -= freed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tarball(bytes: usize) -> CachedTarball {
        CachedTarball {
            key: "k".into(),
            shasum: "s".into(),
            bytes: Some(Bytes::from(vec![0u8; bytes])),
        }
    }

    #[test]
    fn bytes_beyond_the_bound_are_not_kept_but_the_location_is() {
        let cache = TarballCache::new(100);
        cache.insert("a", "1.0.0", tarball(80));
        let second = cache.insert("a", "1.0.1", tarball(80));
        assert!(second.bytes.is_none());
        assert_eq!(second.key, "k");
        assert_eq!(cache.lock().bytes, 80);
        cache.invalidate("a");
        assert_eq!(cache.lock().bytes, 0);
        assert!(cache.get("a", "1.0.0").is_none());
    }
}
