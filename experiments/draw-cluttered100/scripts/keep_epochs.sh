#!/bin/bash
# Usage: experiments/draw-cluttered100/scripts/keep_epochs.sh RUN_DIR... & (beside the training runs)
# Keep a copy of each epoch-end state of the given runs (for weight averaging).
while true; do
  for r in "$@"; do
    m=$r/last/meta.json
    [ -f $m ] || continue
    read e b < <(python3 -c "import json;d=json.load(open('$m'))['state'];print(d['epoch'],d['batch_in_epoch'])" 2>/dev/null)
    [ -n "$e" ] || continue
    if [ "$b" = "0" ] && [ ! -d $r/epoch-$e ]; then cp -r $r/last $r/.epoch-tmp && mv $r/.epoch-tmp $r/epoch-$e; fi
  done
  sleep 15
done
