#!/usr/bin/env bash
# Builds every release binary with one of exactly two feature sets, always with the same cargo
# invocation, so CI, the benchmarks and Schemathesis build each set once and then find it fresh
# (a different package selection or feature list would rebuild every Paracell crate):
#   scripts/build-release.sh            # the binaries as shipped, memory store only (target/release)
#   scripts/build-release.sh --stores   # the same binaries with DynamoDB and Cosmos DB compiled in,
#                                       # and the conformance drills that drive them through the stand-ins
# Both sets land in target/release (the later build's binaries replace the earlier's there; cargo keeps
# both sets' objects, so switching back only re-copies the binaries).
# `paracell-conformance` is in both selections: it turns on the domain's `testing` feature, which only
# adds test-support modules, and leaving it out would give the shipped binaries a set of their own.
set -euo pipefail
cd "$(dirname "$0")/.."
features=()
case "${1:-}" in
  "") ;;
  --stores) features=(--features paracell-examples/dynamodb,paracell-examples/cosmos,paracell-conformance/drill-binaries) ;;
  *) echo "usage: scripts/build-release.sh [--stores]" >&2; exit 2 ;;
esac
cargo build --release -p paracell-examples -p paracell-conformance "${features[@]}" --bins
