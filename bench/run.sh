#!/usr/bin/env bash
# Reproduces every number in BENCHMARKS.md: bench/run.sh (about 10 minutes on 2 cores)
# Smoke check for CI (builds and runs everything once, briefly): bench/run.sh --quick
# The smoke check measures nothing, so it builds nothing of its own: the benches compile in the test
# profile with the test step's selection (`cargo test --workspace --all-features`, whose crates CI has
# already built: a `cargo bench` would rebuild every Paracell crate in the bench profile, ~7 minutes)
# and the store requests run against the test step's `target/debug/local-cell` (every feature on).
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=""
[ "${1:-}" = "--quick" ] && QUICK="--quick"
# A bench target, run: `bench NAME -- ARGS…`. Quick: built as a test (criterion then runs each
# benchmark once, unmeasured); full: the bench profile.
bench() {
  local name=$1; shift
  if [ -n "$QUICK" ]; then
    cargo test -q --workspace --all-features --bench "$name" "$@"
  else
    cargo bench -p paracell-examples --bench "$name" "$@"
  fi
}

# Which step is running, and how long the remaining steps took last time on this machine (kept in
# bench/out/step-seconds$QUICK.txt; the first run has nothing to compare with).
mkdir -p bench/out
TIMES="bench/out/step-seconds${QUICK:+-quick}.txt"
PREVIOUS=()
[ -f "$TIMES" ] && mapfile -t PREVIOUS < "$TIMES"
CURRENT=()
STEP=0
STEP_STARTED=$SECONDS
step() {
  if [ "$STEP" -gt 0 ]; then CURRENT+=("$((SECONDS - STEP_STARTED))"); fi
  STEP=$((STEP + 1)); STEP_STARTED=$SECONDS
  local remaining=0 i
  for ((i = STEP - 1; i < ${#PREVIOUS[@]}; i++)); do remaining=$((remaining + PREVIOUS[i])); done
  if [ "${#PREVIOUS[@]}" -gt 0 ]; then
    printf '\n--- bench step %s/8: %s (last run: the remaining steps took %ss)\n' "$STEP" "$1" "$remaining"
  else
    printf '\n--- bench step %s/8: %s\n' "$STEP" "$1"
  fi
}
finish() { CURRENT+=("$((SECONDS - STEP_STARTED))"); printf '%s\n' "${CURRENT[@]}" > "$TIMES"; }

step "tools (cargo-lambda, the Python baseline, wrk)"

# What the measurements need: cargo-lambda (emulator and builder), the Python baseline, wrk.
python3 -m venv .venv-tools
.venv-tools/bin/pip install --quiet --disable-pip-version-check -r .ci/requirements-tools.txt
export PATH="$PWD/.venv-tools/bin:$PATH"
python3 -m venv bench/.venv
bench/.venv/bin/pip install --quiet --disable-pip-version-check -r bench/baselines/python/requirements.txt
if ! command -v wrk >/dev/null; then
  (apt-get install -y -q wrk || (apt-get update -q && apt-get install -y -q wrk)) >/dev/null
fi

step "release builds"
# The deployable binaries, as shipped (release, stripped).
cargo lambda build --release --bin lambda-cell
scripts/build-release.sh

step "in-process cost per path (criterion)"
# In-process cost per request of every path and its serde_json floor (criterion).
bench paths

step "a tenant's write ceiling (memory, DynamoDB and Cosmos DB stand-ins)"
# A tenant's write ceiling (the replication sequence serialises one tenant's writes): memory in the
# smoke check, memory and both database stand-ins in the full run.
if [ -n "$QUICK" ]; then
  bench write_ceiling -- --seconds 1
else
  scripts/dev-services.sh cargo bench -p paracell-examples --features dynamodb,cosmos --bench write_ceiling -- --seconds 10
fi

step "database requests per answer and create latency through local-cell (DynamoDB and Cosmos DB stand-ins)"
# Full run: the release build with both stores (scripts/build-release.sh --stores). Quick: the test
# step's debug build, every feature on (the counts are what is checked; its latencies mean nothing).
if [ -n "$QUICK" ]; then
  # Builds (or, after CI's test step, finds fresh) every test target and bin; `cargo build` would
  # resolve features without the dev-dependencies and rebuild.
  cargo test -q --workspace --all-features --no-run
  cp target/debug/local-cell bench/out/local-cell-stores
else
  scripts/build-release.sh --stores
  cp target/release/local-cell bench/out/local-cell-stores
fi
scripts/dev-services.sh python3 bench/store_requests.py $QUICK --binary bench/out/local-cell-stores

step "the in-memory store's create cost as it grows; instructions per create (callgrind, when valgrind is there)"
if [ -n "$QUICK" ]; then
  bench create_cost -- --growth 10000
else
  bench create_cost -- --growth 1000000 | tee bench/out/growth.md
  if command -v valgrind >/dev/null; then bash bench/instructions.sh | tee bench/out/instructions.md; fi
fi

step "cold starts, RSS, sizes, loopback load, the edge router (harness.py)"
# The shipped binaries again, as in step 2 (fresh: cargo only copies them back over step 5's).
scripts/build-release.sh
python3 bench/harness.py $QUICK
step "report"
python3 bench/report.py
finish
