//! The packument cache: rendered bytes (plain and gzip) with ETags, dropped on every write.
//!
//! Tarball URLs in a packument are built on the public base URL, which without `PACKR_PUBLIC_URL`
//! comes from the request's `Host` header, so a client chooses it. Each package therefore keeps
//! the rendering for one base URL only: a request with another `Host` replaces it, and a flood of
//! made-up hosts costs re-rendering, never memory.

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
    /// `time.modified` as an HTTP date, for `Last-Modified` (formatted once, not per request).
    pub last_modified: String,
}

impl PackumentSet {
    /// Bytes held by this set.
    pub fn size(&self) -> usize {
        [&self.full, &self.abbreviated]
            .iter()
            .map(|r| r.plain.len() + r.gzip.len())
            .sum()
    }
}

#[derive(Default)]
struct Entry {
    // Bumped by every invalidation, so a render that raced a write is never stored.
    epoch: u64,
    /// The rendering and the base URL it was built on.
    rendered: Option<(String, Arc<PackumentSet>)>,
}

impl Entry {
    /// Drops the rendering; the bytes it held.
    fn clear(&mut self) -> usize {
        self.rendered.take().map_or(0, |(_, set)| set.size())
    }
}

#[derive(Default)]
struct Entries {
    by_name: HashMap<String, Entry>,
    bytes: usize,
    /// Bumped by [`PackumentCache::invalidate_all`]; part of every epoch, so a render of a name
    /// that had no entry then is not stored either.
    epoch_floor: u64,
}

/// Rendered packuments by package name (each for one public base URL), bounded in bytes.
pub struct PackumentCache {
    entries: Mutex<Entries>,
    max_bytes: usize,
}

impl PackumentCache {
    /// A cache holding at most `max_bytes` of rendered documents.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            entries: Mutex::default(),
            max_bytes,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave a half-written entry; keep serving.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The cached set, if fresh.
    pub fn get(&self, name: &str, base_url: &str) -> Option<Arc<PackumentSet>> {
        self.lock()
            .by_name
            .get(name)
            .and_then(|e| e.rendered.as_ref())
            .filter(|(url, _)| url == base_url)
            .map(|(_, set)| Arc::clone(set))
    }

    /// The invalidation count of a name; take it before reading the database.
    pub fn epoch(&self, name: &str) -> u64 {
        let entries = self.lock();
        entries.epoch_floor << 32 | entries.by_name.get(name).map_or(0, |e| e.epoch)
    }

    /// Stores a set rendered from data read at `epoch`, unless a write came since; evicts other
    /// documents while the cache is over its byte bound.
    pub fn insert(&self, name: &str, base_url: &str, epoch: u64, set: Arc<PackumentSet>) {
        let size = set.size();
        if size > self.max_bytes {
            return;
        }
        let mut entries = self.lock();
        let entries = &mut *entries;
        let floor = entries.epoch_floor << 32;
        let entry = entries.by_name.entry(name.to_owned()).or_default();
        if floor | entry.epoch != epoch {
            return;
        }
        entries.bytes -= entry.clear();
        entry.rendered = Some((base_url.to_owned(), set));
        entries.bytes += size;
        if entries.bytes > self.max_bytes {
            // No recency is tracked: any other document goes. Hot ones come back on their next read.
            for (other, entry) in entries.by_name.iter_mut() {
                if entries.bytes <= self.max_bytes {
                    break;
                }
                if other != name {
                    entries.bytes -= entry.clear();
                }
            }
        }
    }

    /// Drops every cached representation of a name.
    pub fn invalidate(&self, name: &str) {
        let mut entries = self.lock();
        let entries = &mut *entries;
        let entry = entries.by_name.entry(name.to_owned()).or_default();
        entry.epoch += 1;
        entries.bytes -= entry.clear();
    }

    /// Drops every cached representation; renders in flight are not stored.
    pub fn invalidate_all(&self) {
        let mut entries = self.lock();
        let entries = &mut *entries;
        entries.epoch_floor += 1;
        for entry in entries.by_name.values_mut() {
            entry.epoch += 1;
            entry.clear();
        }
        entries.bytes = 0;
    }

    /// Bytes of rendered documents held.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Renderings held.
    pub fn renderings(&self) -> usize {
        self.lock()
            .by_name
            .values()
            .filter(|e| e.rendered.is_some())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(bytes: usize) -> Arc<PackumentSet> {
        let rendered = || Rendered {
            plain: Bytes::from(vec![b'x'; bytes / 4]),
            gzip: Bytes::from(vec![b'x'; bytes / 4]),
            etag: String::new(),
            gzip_etag: String::new(),
        };
        Arc::new(PackumentSet {
            full: rendered(),
            abbreviated: rendered(),
            last_modified: String::new(),
        })
    }

    #[test]
    fn the_cache_stays_under_its_byte_bound() {
        let cache = PackumentCache::new(1000);
        for name in ["a", "b", "c", "d"] {
            cache.insert(name, "http://r", 0, set(400));
        }
        assert!(cache.lock().bytes <= 1000);
        assert!(
            cache.get("d", "http://r").is_some(),
            "the newest document stays"
        );
    }

    #[test]
    fn a_flood_of_base_urls_keeps_one_rendering_per_package() {
        let cache = PackumentCache::new(1000);
        for host in 0..10_000 {
            cache.insert("a", &format!("http://x{host}"), 0, set(400));
        }
        assert_eq!(cache.renderings(), 1);
        assert_eq!(cache.bytes(), 400);
        assert!(cache.get("a", "http://x9999").is_some());
        assert!(cache.get("a", "http://x0").is_none());
        cache.insert("b", "http://r", 0, set(400));
        cache.insert("c", "http://r", 0, set(400));
        assert!(cache.bytes() <= 1000, "{}", cache.bytes());
        cache.invalidate("c");
        assert!(cache.bytes() <= 400, "{}", cache.bytes());
    }

    #[test]
    fn a_render_that_raced_a_write_is_not_stored() {
        let cache = PackumentCache::new(10_000);
        let epoch = cache.epoch("a");
        cache.invalidate("a");
        cache.insert("a", "http://r", epoch, set(100));
        assert!(cache.get("a", "http://r").is_none());
        assert_eq!(cache.lock().bytes, 0);
    }
}
