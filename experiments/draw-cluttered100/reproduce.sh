#!/bin/bash
# The whole chain behind checkpoints/draw-cluttered100 (DRAW classifier, cluttered 100×100 MNIST,
# test 3.16% on clutter seed 2), from a clean clone into runs/, one step after another: the
# curriculum (stages 1-5), the fine-tunes and soups of stages 6-9, three distillation rounds
# (stages 10-12), the deep-supervision soup and two more curricula (chains c, d) as teachers,
# and the location-supervised rounds locate-d, -e, -h, -j, -k (stages 19-22): 37 steps (31
# training runs, 6 soups) and a last evaluation. The training behind them is ≈ 84,100 s ≈ 23.4
# core-hours, summed from the recorded times (README.md, "Wall time").
#
# Usage, from anywhere in the repository, after `cargo build --release` and with GLIMPSE_DATA
# set (MNIST):
#   experiments/draw-cluttered100/reproduce.sh            # runs the chain (resumable: a finished
#                                                         # step is skipped, an unfinished run resumes)
#   DRY_RUN=1 experiments/draw-cluttered100/reproduce.sh  # prints every command and checks that
#                                                         # every path a step reads is made by an
#                                                         # earlier step or committed; runs nothing
# Every step runs on one thread (stage 5 on two, as recorded). Steps whose epoch-end weights a
# later soup or round reads run with `--checkpoint-every 0` (the state is written at epoch ends
# only) and scripts/keep_epochs.sh beside them, which copies each epoch's state to OUT/epoch-N.
# Each step's settings are its config's (configs/ and experiments/draw-cluttered100/configs/);
# where a soup's ingredients were once chosen greedily (scripts/greedy_soup.py), the recorded
# choice is averaged directly (`glimpse average`). The last step evaluates the result on the
# committed figure's clutter (`--data-seed 2`); the recorded run gave {"test_error":0.0316}.
set -euo pipefail
cd "$(dirname "$0")/../.."
X=experiments/draw-cluttered100
C=$X/configs
# shellcheck source=../chain.sh
source experiments/chain.sh

# The `init` and distillation teachers a config names, and its epochs: one per line,
# "epochs N" first.
config_reads() {
  python3 - "$1" <<'EOF'
import sys, tomllib
with open(sys.argv[1], 'rb') as f:
    t = tomllib.load(f)['train']
print('epochs', t.get('epochs', 10))
if 'init' in t:
    print('init', t['init'])
for p in t.get('distill', {}).get('teachers', []):
    print('teacher', p)
EOF
}

# train OUT CONFIG KEEP [FLAG...]: one training run of the DRAW classifier into OUT. KEEP=1 keeps
# each epoch's weights as OUT/epoch-N. A --init among the flags replaces the config's init.
train() {
  local out=$1 config=$2 keep=$3
  shift 3
  STEP=$((STEP + 1))
  [ -f "$config" ] || fail "no config $config"
  local epochs=0 init="" teachers=() kind value
  while read -r kind value; do
    case $kind in
      epochs) epochs=$value ;;
      init) init=$value ;;
      teacher) teachers+=("$value") ;;
    esac
  done < <(config_reads "$config")
  local flags=("$@") i
  for ((i = 0; i < ${#flags[@]}; i++)); do
    [ "${flags[i]}" = --init ] && init=${flags[i + 1]}
  done
  local threads=1
  [ "$out" = runs/draw-cluttered100-stage5 ] && threads=2
  [ "$keep" = 1 ] && flags+=(--checkpoint-every 0)
  need ${init:+"$init"} ${teachers[@]+"${teachers[@]}"}
  local cmd=("$G" --threads $threads train draw-classifier --config "$config" ${flags[@]+"${flags[@]}"} --out "$out")
  echo "[$STEP] ${cmd[*]}${init:+   # init $init}${teachers[0]:+, ${#teachers[@]} teachers}"
  MADE[$out/best]=1
  MADE[$out/last]=1
  if [ "$keep" = 1 ]; then
    for ((i = 1; i <= epochs; i++)); do MADE[$out/epoch-$i]=1; done
  fi
  [ "$DRY" = 1 ] && return
  if [ -f "$out/metrics.jsonl" ] && grep -q '"split":"test"' "$out/metrics.jsonl"; then
    echo "    finished before: skipped"
  else
    [ -d "$out/last" ] && cmd+=(--resume)
    local keeper=""
    if [ "$keep" = 1 ]; then
      mkdir -p "$out"
      $X/scripts/keep_epochs.sh "$out" &
      keeper=$!
    fi
    "${cmd[@]}"
    [ -n "$keeper" ] && kill "$keeper"
  fi
  # The last epoch's state is the run's last/ (epoch N, batch 0), which the keeper may not
  # have seen before the run ended.
  if [ "$keep" = 1 ]; then
    [ -d "$out/epoch-$epochs" ] || cp -r "$out/last" "$out/epoch-$epochs"
    for ((i = 1; i <= epochs; i++)); do
      [ -d "$out/epoch-$i" ] || echo "    warning: $out/epoch-$i was not kept" >&2
    done
  fi
}

# average OUT CHECKPOINT...: the parameter-wise mean (a "model soup"), scored on clutter seed 2.
average() {
  local out=$1
  shift
  STEP=$((STEP + 1))
  need "$@"
  MADE[$out]=1
  step "$out/model.safetensors" "$G" --threads 1 average "$@" --out "$out" --data-seed 2 --json
}

# chain PREFIX SEED: the curriculum, stages 1-5 into runs/PREFIX-stage1..5, each from the
# previous stage's best weights; seeds SEED (stages 1-3), SEED+1 (4), SEED+2 (5), as
# scripts/draw_chain.sh ran chains c and d.
chain() {
  local prefix=$1 seed=$2 s config st
  for s in 1 2 3 4 5; do
    config=$C/draw-cluttered100-stage$s.toml
    [ $s = 1 ] && config=configs/draw-cluttered100.toml
    st=$seed
    [ $s -ge 4 ] && st=$((seed + s - 3))
    if [ $s = 1 ]; then
      train runs/$prefix-stage1 $config 0 --seed $st
    else
      train runs/$prefix-stage$s $config 0 --seed $st --init runs/$prefix-stage$((s - 1))/best
    fi
  done
}

[ "$DRY" = 1 ] || [ -x "$G" ] || fail "no $G: run cargo build --release first"
S5=runs/draw-cluttered100-stage5/best

# Stages 1-5, the curriculum: 40×40 translated, 100×100 translated, cluttered 100×100 (seeds 0, 1, 2).
train runs/draw-cluttered100-stage1 configs/draw-cluttered100.toml 0
for s in 2 3 4 5; do train runs/draw-cluttered100-stage$s $C/draw-cluttered100-stage$s.toml 0; done
# Stages 6a, 6b, 7, 8a (o5), 8b (s8): fine-tunes of stage 5.
train runs/draw-s6a $C/draw-cluttered100-stage6a.toml 0
train runs/draw-s6b $C/draw-cluttered100-stage6b.toml 0
train runs/draw-s7 $C/draw-cluttered100-stage7.toml 0
train runs/draw-o5 $C/draw-cluttered100-stage8-o5.toml 1
train runs/draw-s8 $C/draw-cluttered100-stage8-s8.toml 1
# The stage-8 greedy soup (test 3.74%), its recorded ingredients.
average runs/draw-soup8 $S5 runs/draw-s8/best runs/draw-s8/last runs/draw-s8/epoch-8 runs/draw-o5/epoch-12 runs/draw-o5/epoch-14
# Stage 9a from it, then the stage-9 greedy soup (test 3.69%; was checkpoints/draw-cluttered100-soup).
train runs/draw-s9a $C/draw-cluttered100-stage9-a.toml 1
average runs/draw-soup9 $S5 runs/draw-s9a/epoch-5 runs/draw-s9a/epoch-10 runs/draw-s9a/epoch-12 \
  runs/draw-s8/best runs/draw-s8/last runs/draw-s8/epoch-6 runs/draw-s8/epoch-8 runs/draw-o5/epoch-13 runs/draw-s6a/best
# Stages 10-12: three rounds of distillation, each followed by its soup (stage 12 is kd3's last weights).
train runs/draw-kd $C/draw-cluttered100-distill.toml 1
average runs/draw-kd-soup runs/draw-kd/last runs/draw-kd/epoch-4 runs/draw-kd/epoch-8 runs/draw-kd/epoch-9
train runs/draw-kd2 $C/draw-cluttered100-distill-2.toml 1
average runs/draw-kd2-soup runs/draw-kd2/last runs/draw-kd2/epoch-3 runs/draw-kd2/epoch-5 runs/draw-kd2/epoch-6 \
  runs/draw-kd2/epoch-7 runs/draw-kd2/epoch-8
train runs/draw-kd3 $C/draw-cluttered100-distill-3.toml 0
# Stage 17's deep-supervision soup (a teacher below; was checkpoints/draw-cluttered100-steps-soup).
train runs/draw-steps-05 $C/draw-cluttered100-steps-05.toml 1
train runs/draw-steps-10 $C/draw-cluttered100-steps-10.toml 1
average runs/draw-steps-soup runs/draw-steps-05/epoch-6 runs/draw-steps-10/epoch-6
# Stage 18's two new curricula (teachers: c stages 4 and 5, d stages 4 and 5).
chain draw-c 50
chain draw-d 60
# Stages 19-22: location supervision. 19 = locate-d epoch 5, 19e = locate-e epoch 5, 20 = the
# soup of locate-h's epochs 3 and 4, locate-j's epoch 4, 22 = locate-k's epoch 3.
train runs/draw-loc-d $C/draw-cluttered100-locate-d.toml 1
train runs/draw-loc-e $C/draw-cluttered100-locate-e.toml 1
train runs/draw-loc-h $C/draw-cluttered100-locate-h.toml 1
average runs/draw-loc-soup-h34 runs/draw-loc-h/epoch-3 runs/draw-loc-h/epoch-4
train runs/draw-loc-j $C/draw-cluttered100-locate-j.toml 1
train runs/draw-loc-k $C/draw-cluttered100-locate-k.toml 1

# The result: locate-k's epoch 3 on the committed figure's test clutter.
STEP=$((STEP + 1))
need runs/draw-loc-k/epoch-3
echo "[$STEP] $G --threads 1 eval runs/draw-loc-k/epoch-3 --data-seed 2 --json   # recorded: test_error 0.0316"
if [ "$DRY" = 1 ]; then
  echo "dry run: $STEP steps; every path a step reads is made by an earlier step or committed"
else
  $G --threads 1 eval runs/draw-loc-k/epoch-3 --data-seed 2 --json
  echo "the committed checkpoint is this state with seed = 2 in its config.toml (checkpoints/draw-cluttered100)"
fi
