#!/bin/bash
# Usage: experiments/draw-cluttered100/scripts/fresh_valid.sh CKPT [CKPT …] (from the repository root, after `cargo build
# --release`, with GLIMPSE_DATA set): the selection rule docs/results.md uses for the DRAW
# classifier. Each checkpoint is scored on the 2,000 held-out validation digits with ten fresh
# clutter layouts (`glimpse eval CKPT --split valid --data-seed S`, S = 10…19), layouts no
# training run or earlier selection has seen; prints the ten errors, their mean and the mean loss.
set -eo pipefail
G=./target/release/glimpse
for ckpt in "$@"; do
  for s in $(seq 10 19); do $G --threads 1 eval "$ckpt" --split valid --data-seed "$s" --json; done |
    python3 -c "
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.startswith('{')]
if len(rows) != 10:
    sys.exit('%s: %d of the ten evaluations answered' % (sys.argv[1], len(rows)))
err = [r['valid_error'] for r in rows]
loss = [r['valid_loss'] for r in rows]
print(sys.argv[1], ' '.join('%.2f' % (100 * e) for e in err),
      'mean %.3f%%' % (100 * sum(err) / len(err)), 'loss %.4f' % (sum(loss) / len(loss)))
" "$ckpt"
done
