//! What a registry signature costs a publish, measured through the very call the publish path
//! makes (`Signing::sign` in `packages/publish.rs`: the key ring lookup, the message, the P-256
//! signature, its base64), with the signing key made as `packr serve` makes it, in a throwaway
//! SQLite store. `bench/run.sh` runs it pinned to the server's CPU and divides the result by the
//! time per version it measured publishing at concurrency 8 (issue 11: "signing adds under 10% to
//! publish time").
//!
//! ```text
//! cargo run --release --example signing_cost -- [SIGNATURES_PER_ROUND] [ROUNDS]   (2000, 5)
//! ```
//!
//! Prints one JSON line: `{"signatures":…,"rounds":…,"us_per_signature":[…],"median_us":…}`.

use std::sync::Arc;
use std::time::Instant;

use packr::signing::Signing;
use packr::store::{Sqlite, Store};
use packr::webhooks::SecretBox;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A real sha512 integrity string's length and shape: the message signed is `name@version:integrity`.
const INTEGRITY: &str = "sha512-FxVgek9nnFPVRbwaY7X+VnIZpURN1XDdjUZzS7k0Wv+ezBwWSlGl5ydp/M3mBAsLk9CScAp4f9YHybX4MGy6sA==";

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let per_round: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let rounds: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    anyhow::ensure!(per_round > 0 && rounds > 0, "both counts must be positive");

    let dir = std::env::temp_dir().join(format!("packr-signing-cost-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = measure(&dir, per_round, rounds).await;
    let _ = std::fs::remove_dir_all(&dir);
    let mut per_signature = result?;
    let all = per_signature.clone();
    per_signature.sort_by(f64::total_cmp);
    let median = per_signature[per_signature.len() / 2];
    println!(
        "{}",
        serde_json::json!({
            "signatures": per_round,
            "rounds": rounds,
            "us_per_signature": all,
            "median_us": median,
        })
    );
    Ok(())
}

/// Microseconds per signature, one figure per round (after one unmeasured round of warm-up).
async fn measure(dir: &std::path::Path, per_round: u32, rounds: u32) -> anyhow::Result<Vec<f64>> {
    let store: Store = Arc::new(Sqlite::open(dir)?);
    let sealer = SecretBox::from_key(&[7; 32])?;
    let signing = Signing::start(store, sealer, None).await?;
    let mut figures = Vec::new();
    for round in 0..=rounds {
        let start = Instant::now();
        for i in 0..per_round {
            let version = semver::Version::new(1, u64::from(round), u64::from(i));
            let signatures = signing
                .sign("@acme/widget", &version.to_string(), INTEGRITY)
                .await?;
            anyhow::ensure!(signatures.len() == 1, "no active signing key");
            std::hint::black_box(signatures);
        }
        if round > 0 {
            figures.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(per_round));
        }
    }
    Ok(figures)
}
