#!/bin/bash
# Flat perf profiles of the benchmark rows below target (docs/notes/benchmarks.md, issue 32),
# the PyTorch twin skipped. Usage (repository root, a release build, GLIMPSE_DATA set):
#   bash bench/profile.sh OUT_DIR && python3 bench/profile_kinds.py OUT_DIR/*.txt
set -eu
out=${1:?usage: bench/profile.sh OUT_DIR}
mkdir -p "$out"
export GLIMPSE_PYTHON=/bin/false
while IFS='|' read -r name args; do
  # shellcheck disable=SC2086 # the arguments are split on purpose
  perf record -F 999 -o "$out/$name.data" -- target/release/glimpse --threads 2 $args --json > "$out/$name.out" 2>&1
  perf report -i "$out/$name.data" --no-children --sort symbol --stdio 2>/dev/null | sed -e '/^#/d' -e '/^$/d' > "$out/$name.txt"
done < bench/profile-rows.txt
