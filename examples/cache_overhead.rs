//! Measures what the read cache really costs, against the weights it charges: the source of
//! `packages::cache::ENTRY_OVERHEAD`. Runs with jemalloc, configured as the server is.
//!
//! ```text
//! cargo run --release --example cache_overhead -- calibrate 200000
//!     N small packuments under an unbounded budget: RSS growth per entry, minus what the weights
//!     count themselves, is the per-entry overhead the constant must cover.
//! cargo run --release --example cache_overhead -- bound 32 2000000
//!     N packuments (small ones, every 100th big, many hosts) through a 32 MiB cache from four
//!     threads: RSS growth must stay within the budget.
//! ```

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use packr::packages::cache::{ENTRY_OVERHEAD, Form, PackumentCache, Rendered, Variant};

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// A buffer of `len` bytes in a vector that grew by doubling, as a rendering's does.
fn grown(len: usize, seed: u64) -> Bytes {
    let mut v = Vec::with_capacity(len.next_power_of_two());
    let mut x = seed | 1;
    for _ in 0..len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.push(b' ' + (x % 90) as u8);
    }
    v.into()
}

fn rendered(len: usize, seed: u64) -> Rendered {
    let tag = format!("{seed:032x}");
    Rendered {
        body: grown(len, seed),
        gzip: false,
        etag: format!("\"{tag}\""),
        gzip_etag: format!("\"{tag}-gz\""),
        last_modified: "Fri, 04 Dec 2026 19:00:00 GMT".into(),
        base_cuts: Some(Box::new([0])),
        template: Some([0; 16]),
    }
}

/// Stores the four representations of a packument of about `scale` bytes per document, with the
/// proportions of a small package (each by the miss that asks for it, as the server does).
fn fill(cache: &PackumentCache, name: &str, host: &str, i: u64, scale: usize) {
    let jitter = (i % 7) as usize * scale / 10;
    let sizes = [
        (Form::Full, false, scale + jitter),
        (Form::Full, true, scale / 2 + jitter / 3),
        (Form::Abbreviated, false, scale / 2 + jitter / 2),
        (Form::Abbreviated, true, scale / 3 + jitter / 4),
    ];
    let epoch = cache.epoch(name);
    for (k, (form, gzip, len)) in sizes.into_iter().enumerate() {
        let variant = Variant { form, gzip };
        if let Err(siblings) = cache.get(name, host, variant) {
            cache.insert(
                name,
                host,
                epoch,
                siblings,
                variant,
                &rendered(len, i * 4 + k as u64),
            );
        }
    }
}

fn settle() -> u64 {
    // jemalloc returns freed pages after dirty_decay_ms (1 s, .cargo/config.toml).
    std::thread::sleep(Duration::from_secs(3));
    rss_bytes()
}

fn calibrate(n: u64) {
    let cache = PackumentCache::new(usize::MAX / 2);
    let before = settle();
    for i in 0..n {
        let name = format!("pkg-{i:06}");
        fill(&cache, &name, "http://127.0.0.1:4873", i, 900);
        if i % 3 == 0 {
            // Served once: what a hit allocates (nothing that stays) is part of the picture.
            let variant = Variant {
                form: Form::Abbreviated,
                gzip: true,
            };
            let _ = cache.get(&name, "http://127.0.0.1:4873", variant);
        }
    }
    let stats = cache.stats();
    let after = settle();
    let growth = after.saturating_sub(before);
    let counted = stats.bytes - stats.entries * ENTRY_OVERHEAD as u64;
    println!(
        "{} entries; weights {:.1} MiB ({:.1} MiB of it counted allocations, the rest {} B/entry overhead); RSS growth {:.1} MiB",
        stats.entries,
        stats.bytes as f64 / 1048576.0,
        counted as f64 / 1048576.0,
        ENTRY_OVERHEAD,
        growth as f64 / 1048576.0
    );
    println!(
        "measured overhead beyond the counted allocations: {:.0} B/entry; RSS growth / weights = {:.3}",
        (growth as f64 - counted as f64) / stats.entries as f64,
        growth as f64 / stats.bytes as f64
    );
}

fn bound(mib: usize, n: u64) {
    let max = mib * 1024 * 1024;
    let cache = Arc::new(PackumentCache::new(max));
    let before = settle();
    let knob = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (threads, hosts, big_every) = (
        knob("THREADS", 4),
        knob("HOSTS", 1000),
        knob("BIG_EVERY", 100),
    );
    let mut peak = 0;
    std::thread::scope(|s| {
        let mut workers = Vec::new();
        for t in 0..threads {
            let cache = Arc::clone(&cache);
            workers.push(s.spawn(move || {
                for i in (t..n).step_by(threads as usize) {
                    let name = format!("pkg-{:07}", i % (n / 4).max(1));
                    let host = format!("http://host-{}.example", i % hosts);
                    let scale = if big_every > 0 && i % big_every == 0 {
                        60_000
                    } else {
                        900
                    };
                    fill(&cache, &name, &host, i, scale);
                }
            }));
        }
        while !workers.iter().all(|w| w.is_finished()) {
            peak = peak.max(rss_bytes());
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    let stats = cache.stats();
    let after = settle();
    let mb = |b: u64| b as f64 / 1048576.0;
    println!(
        "budget {mib} MiB: {} entries, weights {:.1} MiB; RSS before {:.1} MiB, peak {:.1}, after {:.1}: growth {:.1} MiB (peak growth {:.1})",
        stats.entries,
        mb(stats.bytes),
        mb(before),
        mb(peak.max(after)),
        mb(after),
        mb(after.saturating_sub(before)),
        mb(peak.max(after).saturating_sub(before)),
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    match args.first().map(String::as_str) {
        Some("bound") => bound(num(1, 32) as usize, num(2, 2_000_000)),
        _ => calibrate(num(1, 200_000)),
    }
}
