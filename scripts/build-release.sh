#!/usr/bin/env bash
# Builds the release binaries with one of exactly two feature sets, always with the same cargo
# invocation, so CI, the benchmarks and Schemathesis build each set once and then find it fresh
# (a different package selection or feature list would rebuild every Paracell crate). CI builds only
# the first; its phases on the database stand-ins use the test step's debug build (see .ci/run):
#   scripts/build-release.sh            # the binaries as shipped, memory store only (target/release)
#   scripts/build-release.sh --stores   # the same binaries with DynamoDB and Cosmos DB compiled in,
#                                       # and the conformance drills that drive them through the stand-ins
# Both sets land in target/release (the later build's binaries replace the earlier's there; cargo keeps
# both sets' objects, so switching back only re-copies the binaries).
# `paracell-conformance` is in both selections: it turns on the domain's `testing` feature, which only
# adds test-support modules, and leaving it out would give the shipped binaries a set of their own.
set -euo pipefail
cd "$(dirname "$0")/.."
# Only the binaries something runs from target/release (each one links the SDKs with LTO in the store
# set: minutes apiece). Which binaries are picked does not change how features resolve.
case "${1:-}" in
  "")
    # Schemathesis and the benchmarks (local-cell, azure-cell, edge-router), the corpus and drills.
    flags=(--bin local-cell --bin azure-cell --bin edge-router --bin paracell-conformance) ;;
  --stores)
    # The benchmarks' store requests (local-cell), the corpus and drills through the binaries.
    flags=(--features paracell-examples/dynamodb,paracell-examples/cosmos,paracell-conformance/drill-binaries
      --bin local-cell --bin lambda-cell --bin azure-cell --bin lambda-consumer --bin azure-consumer
      --bin paracell-conformance) ;;
  *) echo "usage: scripts/build-release.sh [--stores]" >&2; exit 2 ;;
esac
cargo build --release -p paracell-examples -p paracell-conformance "${flags[@]}"
