#!/usr/bin/env bash
# The Packr benchmark, in one command: Packr (on SQLite, and on PostgreSQL) vs Verdaccio 6 vs a bare
# hyper server (the ceiling) on the real corpus of ../shared/corpus, same machine, same run. See
# BENCHMARKS.md.
#
#   bench/run.sh                    # everything (builds, installs tools, measures: ~20 min + ~5 min of building)
#   bench/run.sh --seconds 1 --rounds 1 --install-reps 1 --ready-reps 1 --wait-quiet 0   # a quick smoke run
#   bench/run.sh --skip-scale       # without the scale phase (50,000 packages: a few minutes)
#   bench/run.sh --scale-only [--scale-packages 5000]   # the scale phase alone (no Verdaccio, no corpus)
#   bench/run.sh --skip-postgres    # without the PostgreSQL column (and without installing PostgreSQL and
#                                   # s3s-fs): about 4 minutes less
#
# Options after the script name go to bench/lib/bench.mjs: --seconds N (per measured round, default 3),
# --rounds N (3), --warmup N (1), --connections N (64), --install-reps N (3), --ready-reps N (5),
# --skip-installs, --wait-quiet N (seconds to wait for other processes to go quiet first, default 300),
# --busy-limit PCT (a read figure is measured again when others used more than PCT% of a core; 10),
# --install-dir DIR (default /dev/shm), --corpus DIR, --out DIR (default bench/results),
# --work DIR --keep-work (keep the data directories and logs), --skip-scale, and the scale phase's
# --scale-packages N (50000), --scale-hot N (500), --scale-seconds N (4), --scale-random-seconds N (8),
# --scale-cold-seconds N (15), --scale-big-versions N (3000), --scale-cache-bytes N (Packr's default),
# --skip-postgres, --visibility-publishes N (publishes timed from one instance to another, 250) and
# --pg-stat-statements (loads pg_stat_statements and writes the slowest statements of the PostgreSQL
# publish rounds into the JSON report: a diagnosis, it costs a little throughput).
set -euo pipefail

BENCH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
CACHE="$BENCH/.cache"
mkdir -p "$CACHE"

say() { printf '[run.sh] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# 1. System tools: wrk (load generator), taskset (util-linux), GNU time.
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v taskset >/dev/null || missing+=(util-linux)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} from Debian"
  as_root apt-get update -qq
  as_root apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v node >/dev/null || { say "Node.js is required"; exit 1; }
command -v npm >/dev/null || { say "npm is required"; exit 1; }
skip_pg=false
scale_only=false
for arg in "$@"; do
  [ "$arg" = "--skip-postgres" ] && skip_pg=true
  [ "$arg" = "--scale-only" ] && scale_only=true
done
if ! $skip_pg && ! $scale_only && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  # The PostgreSQL column runs a throwaway cluster of Debian's PostgreSQL (bench/lib/postgres.mjs).
  say "installing postgresql from Debian"
  as_root apt-get update -qq
  as_root apt-get install -y -qq postgresql >/dev/null
fi

# 2. Packr (release) and the ceiling server.
say "building Packr (cargo build --release)"
(cd "$ROOT" && cargo build --release --quiet)
for arg in "$@"; do
  if [ "$arg" = "--scale-only" ]; then
    args=()
    for a in "$@"; do [ "$a" = "--scale-only" ] || args+=("$a"); done
    exec node "$BENCH/lib/scale.mjs" --packr "$ROOT/target/release/packr" "${args[@]}"
  fi
done
say "building the ceiling server (bench/ceiling)"
cargo build --release --quiet --manifest-path "$BENCH/ceiling/Cargo.toml" --target-dir "$CACHE/ceiling-target"
# The registry signature's cost, through the publish path's own call (examples/signing_cost.rs).
say "building examples/signing_cost"
(cd "$ROOT" && cargo build --release --quiet --example signing_cost)
pg_args=()
if ! $skip_pg; then
  # s3s-fs, the S3 server the test suite uses, for the two-instance publish-to-visible figure: the one
  # `cargo test` installed, else installed into bench/.cache (a few minutes, once).
  S3S_FS_RELEASE="s3s-fs@0.14.1"
  s3s="$CACHE/s3s-fs/bin/s3s-fs"
  tested="$ROOT/target/test-tools"
  if [ ! -x "$s3s" ] && [ -x "$tested/bin/s3s-fs" ] && [ "$(cat "$tested/.installed" 2>/dev/null)" = "$S3S_FS_RELEASE" ]; then
    s3s="$tested/bin/s3s-fs"
  fi
  if [ ! -x "$s3s" ]; then
    say "installing $S3S_FS_RELEASE into bench/.cache/s3s-fs (first run only; takes minutes)"
    env -u CARGO_TARGET_DIR cargo install "$S3S_FS_RELEASE" --features binary --locked --quiet --root "$CACHE/s3s-fs"
  fi
  pg_args=(--s3s-fs "$s3s")
fi

# 3. Verdaccio and pnpm from the npm registry, pinned by bench/tools/package-lock.json.
if ! cmp -s "$BENCH/tools/package-lock.json" "$CACHE/node/package-lock.json" || [ ! -d "$CACHE/node/node_modules/verdaccio" ]; then
  say "installing Verdaccio and pnpm into bench/.cache/node"
  rm -rf "$CACHE/node"
  mkdir -p "$CACHE/node"
  cp "$BENCH/tools/package.json" "$BENCH/tools/package-lock.json" "$CACHE/node/"
  (cd "$CACHE/node" && npm ci --no-audit --no-fund --loglevel=error)
fi

# 4. Measure.
exec node "$BENCH/lib/bench.mjs" \
  --packr "$ROOT/target/release/packr" \
  --ceiling "$CACHE/ceiling-target/release/packr-ceiling" \
  --node-modules "$CACHE/node/node_modules" \
  --signing-cost "$ROOT/target/release/examples/signing_cost" \
  "${pg_args[@]}" \
  "$@"
