//! The packument cache: rendered bytes (plain and gzip) with ETags, dropped on every write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

/// One representation of a packument, ready to send.
#[derive(Debug)]
pub struct Rendered {
    /// The JSON bytes.
    pub plain: Bytes,
    /// The same bytes, gzip-compressed.
    pub gzip: Bytes,
    /// Strong ETag of the plain bytes (quoted).
    pub etag: String,
    /// Strong ETag of the gzip bytes (quoted).
    pub gzip_etag: String,
}

/// Both representations of a package's packument.
#[derive(Debug)]
pub struct PackumentSet {
    /// The full document (`application/json`).
    pub full: Rendered,
    /// The abbreviated document (`application/vnd.npm.install-v1+json`).
    pub abbreviated: Rendered,
    /// `time.modified` in ms, for `Last-Modified`.
    pub modified_ms: i64,
}

#[derive(Default)]
struct Entry {
    // Bumped by every invalidation, so a render that raced a write is never stored.
    epoch: u64,
    by_base_url: HashMap<String, Arc<PackumentSet>>,
}

/// Rendered packuments by package name and public base URL.
#[derive(Default)]
pub struct PackumentCache {
    entries: Mutex<HashMap<String, Entry>>,
}

impl PackumentCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, Entry>> {
        // A panic while holding the lock cannot leave a half-written entry; keep serving.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached set, if fresh.
    pub fn get(&self, name: &str, base_url: &str) -> Option<Arc<PackumentSet>> {
        self.lock()
            .get(name)
            .and_then(|e| e.by_base_url.get(base_url))
            .cloned()
    }

    /// The invalidation count of a name; take it before reading the database.
    pub fn epoch(&self, name: &str) -> u64 {
        self.lock().get(name).map_or(0, |e| e.epoch)
    }

    /// Stores a set rendered from data read at `epoch`, unless a write came since.
    pub fn insert(&self, name: &str, base_url: &str, epoch: u64, set: Arc<PackumentSet>) {
        let mut entries = self.lock();
        let entry = entries.entry(name.to_owned()).or_default();
        if entry.epoch == epoch {
            entry.by_base_url.insert(base_url.to_owned(), set);
        }
    }

    /// Drops every cached representation of a name.
    pub fn invalidate(&self, name: &str) {
        let mut entries = self.lock();
        let entry = entries.entry(name.to_owned()).or_default();
        entry.epoch += 1;
        entry.by_base_url.clear();
    }
}
