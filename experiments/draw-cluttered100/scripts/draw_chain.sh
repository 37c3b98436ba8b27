#!/bin/bash
# Usage: experiments/draw-cluttered100/scripts/draw_chain.sh PREFIX SEED [CONFIG_PREFIX] (from the repository root, after
# `cargo build --release`): the DRAW classifier's curriculum, stages 1-5 (40x40 translated,
# 100x100 translated, then cluttered 100x100 three times), each from the previous stage's best
# weights, into runs/PREFIX-stage1..5, one thread. Stages 1-3 use SEED, stage 4 SEED+1 and
# stage 5 SEED+2 (new clutter layouts each), as the committed chain used 0, 1 and 2.
# CONFIG_PREFIX defaults to experiments/draw-cluttered100/configs/draw-cluttered100-stage (the
# paper's loss; stage 1 is then configs/draw-cluttered100.toml);
# experiments/draw-cluttered100/configs/draw-cluttered100-ds-stage adds deep supervision
# (stages 1-4 only: no stage-5 config). A stage already finished (its metrics.jsonl ends with
# the test line a finished run writes) is skipped, so the script resumes a chain; an unfinished
# stage resumes from its last/.
set -e
prefix=$1; seed=$2; cfg=${3:-experiments/draw-cluttered100/configs/draw-cluttered100-stage}
G=./target/release/glimpse
for s in 1 2 3 4 5; do
  config=$cfg$s.toml
  [ $s = 1 ] && [ ! -f $config ] && config=configs/draw-cluttered100.toml
  [ -f $config ] || break
  out=runs/$prefix-stage$s
  if [ -f $out/metrics.jsonl ] && grep -q "\"split\":\"test\"" $out/metrics.jsonl; then continue; fi
  st=$seed; [ $s -ge 4 ] && st=$((seed + s - 3))
  init=(); [ $s -gt 1 ] && init=(--init runs/$prefix-stage$((s - 1))/best)
  resume=(); [ -d $out/last ] && resume=(--resume)
  $G --threads 1 train draw-classifier --config $config --seed $st "${init[@]}" "${resume[@]}" --out $out
done
