#!/usr/bin/env bash
# Mutation testing of the adapters' translation code (issue 17; scope in .cargo/mutants.toml, results
# in docs/conformance.md, "Mutation testing"). Not part of CI: it takes over an hour on 2 cores.
#
#   pass 1 — every mutant against the conformance suite alone (`cargo test -p paracell-conformance`);
#   pass 2 — the mutants pass 1 missed, again, with the adapters' own tests added.
#
# Then `scripts/mutants_summary.py` turns both passes into the dated table in docs/conformance.md.
# Usage: scripts/mutants.sh [-j N]   (outputs under target/mutants/)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=1
if [[ "${1:-}" == "-j" ]]; then jobs="$2"; fi
if ! cargo mutants --version 2>/dev/null | grep -q '^cargo-mutants 27\.'; then
  cargo install --locked cargo-mutants@27.1.0
fi
out=target/mutants
mkdir -p "$out"
# Pass 1: the suite alone. cargo-mutants exits non-zero when mutants survive; that is a result here.
cargo mutants --jobs "$jobs" --output "$out/suite" || true
# Pass 2: only what pass 1 did not catch (`--iterate` reads the previous run in the same directory),
# with the adapters' unit and wire tests added.
rm -rf "$out/all" && mkdir -p "$out/all" && cp -r "$out/suite/mutants.out" "$out/all/"
cargo mutants --jobs "$jobs" --output "$out/all" --iterate \
  --test-package paracell-conformance --test-package paracell-aws --test-package paracell-azure || true
python3 scripts/mutants_summary.py --suite "$out/suite/mutants.out" --all "$out/all/mutants.out"
