#!/usr/bin/env bash
# Publishes the real corpus (../shared/corpus: 555 versions of 527 packages) into a registry, the way
# `npm publish <tarball> --tag latest` would (prereleases with --tag next), versions of a package in
# semver order.
#
#   bench/load-corpus.sh REGISTRY_URL TOKEN [--concurrency N] [--corpus DIR]
set -euo pipefail
exec node "$(dirname "${BASH_SOURCE[0]}")/lib/load-corpus.mjs" "$@"
