#!/usr/bin/env bash
# Reproduces every number in BENCHMARKS.md: bench/run.sh (about 10 minutes on 2 cores)
# Smoke check for CI (builds and runs everything once, briefly): bench/run.sh --quick
set -euo pipefail
cd "$(dirname "$0")/.."
QUICK=""
[ "${1:-}" = "--quick" ] && QUICK="--quick"

# What the measurements need: cargo-lambda (emulator and builder), the Python baseline, wrk.
python3 -m venv .venv-tools
.venv-tools/bin/pip install --quiet --disable-pip-version-check -r .ci/requirements-tools.txt
export PATH="$PWD/.venv-tools/bin:$PATH"
python3 -m venv bench/.venv
bench/.venv/bin/pip install --quiet --disable-pip-version-check -r bench/baselines/python/requirements.txt
if ! command -v wrk >/dev/null; then
  (apt-get install -y -q wrk || (apt-get update -q && apt-get install -y -q wrk)) >/dev/null
fi

# The deployable binaries, as shipped (release, stripped).
cargo lambda build --release --bin lambda-cell
cargo build --release -p paracell-examples --bin azure-cell --bin local-cell --bin edge-router

# In-process cost per request of every path and its serde_json floor (criterion).
if [ -n "$QUICK" ]; then
  cargo bench -p paracell-examples --bench paths -- --test
else
  cargo bench -p paracell-examples --bench paths
fi

# A tenant's write ceiling (the replication sequence serialises one tenant's writes): memory in the
# smoke check, memory and both database stand-ins in the full run.
if [ -n "$QUICK" ]; then
  cargo bench -p paracell-examples --bench write_ceiling -- --seconds 1
else
  scripts/dev-services.sh cargo bench -p paracell-examples --features dynamodb,cosmos --bench write_ceiling -- --seconds 10
fi

python3 bench/harness.py $QUICK
python3 bench/report.py
