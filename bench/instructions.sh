#!/usr/bin/env bash
# Instructions per create, per path, under callgrind (stable on a shared machine, unlike times):
# each path runs 200 and then 1,200 creates; the difference divided by 1,000 is one create without
# the set-up. Needs valgrind.   bash bench/instructions.sh   (part of bench/run.sh when valgrind is there)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -q -p paracell-examples --bench create_cost --no-run 2>/dev/null
bin=$(ls -t target/release/deps/create_cost-* | grep -v '\.d$' | head -1)
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" --instructions "$1" "$2" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
echo "| path | instructions per create |"
echo "|---|---|"
for path in direct aws-rest-v1 aws-http-v2 aws-alb azure-payload; do
  small=$(count "$path" 200)
  large=$(count "$path" 1200)
  echo "| $path | $(( (large - small) / 1000 )) |"
done
