#!/bin/bash
# The chain behind checkpoints/ntm-priority-sort (NTM, priority sort, 1,024 × 20 learned memory,
# test 2.40 bits wrong per sequence with --data-seed 5), from a clean clone into runs/: two
# 128-row stages, then grow-memory 128 → 256 → 512 → 1,024 rows with a run after each, and a
# last 1,024-row stage at a lower rate. 9 steps (6 training runs, 3 grow-memory); the recorded
# training behind them is 30,830 s ≈ 8.6 core-hours (README.md).
#
# Usage, from anywhere in the repository, after `cargo build --release`:
#   experiments/ntm-priority-sort/reproduce.sh             # runs it (a finished run is skipped)
#   DRY_RUN=1 experiments/ntm-priority-sort/reproduce.sh   # prints every command and checks that
#                                                          # every path a step reads is made by an
#                                                          # earlier step or committed
set -euo pipefail
cd "$(dirname "$0")/../.."
C=experiments/ntm-priority-sort/configs
# shellcheck source=../chain.sh
source experiments/chain.sh

# train OUT CONFIG: one NTM run; it reads the config's init.
train() {
  local out=$1 config=$2 init
  STEP=$((STEP + 1))
  init=$(python3 -c "import sys,tomllib;print(tomllib.load(open(sys.argv[1],'rb'))['train'].get('init',''))" "$config")
  [ -n "$init" ] && need "$init"
  MADE[$out/best]=1
  MADE[$out/last]=1
  local resume=()
  [ "$DRY" = 1 ] || [ ! -d "$out/last" ] || resume=(--resume)
  step "$out/.finished" "$G" --threads 1 train ntm --config "$config" ${resume[@]+"${resume[@]}"} --out "$out"
  [ "$DRY" = 1 ] || touch "$out/.finished"
}

# grow FROM ROWS OUT: the learned first memory given ROWS rows.
grow() {
  STEP=$((STEP + 1))
  need "$1"
  MADE[$3]=1
  step "$3/model.safetensors" "$G" grow-memory "$1" --rows "$2" --out "$3"
}

[ "$DRY" = 1 ] || [ -x "$G" ] || fail "no $G: run cargo build --release first"
train runs/ntm-priority-sort configs/ntm-priority-sort.toml                # stage 1, 128 rows, from scratch
train runs/ntm-priority-sort-stage2 $C/ntm-priority-sort-stage2.toml       # stage 2 (was checkpoints/ntm-priority-sort-128)
grow runs/ntm-priority-sort-stage2/best 256 runs/ntm-priority-sort-256-init
train runs/ntm-priority-sort-256 $C/ntm-priority-sort-256.toml             # stage 3 (was -256)
grow runs/ntm-priority-sort-256/best 512 runs/ntm-priority-sort-512-init
train runs/ntm-priority-sort-512 $C/ntm-priority-sort-512.toml             # stage 4 (was -512)
grow runs/ntm-priority-sort-512/best 1024 runs/ntm-priority-sort-1024g-init
train runs/ntm-priority-sort-1024g $C/ntm-priority-sort-1024-grown.toml    # stage 5
train runs/ntm-priority-sort-1024b $C/ntm-priority-sort-1024-b.toml        # stage 6: its last/ is the result
STEP=$((STEP + 1))
need runs/ntm-priority-sort-1024b/last
echo "[$STEP] $G eval runs/ntm-priority-sort-1024b/last --data-seed 5 --json   # recorded (committed checkpoint): 2.40"
if [ "$DRY" = 1 ]; then
  echo "dry run: $STEP steps; every path a step reads is made by an earlier step or committed"
else
  $G eval runs/ntm-priority-sort-1024b/last --data-seed 5 --json
fi
