#!/usr/bin/env python3
"""The figures of docs/notes/draw.md's study read off a run's metrics.jsonl (standard library).

    python3 experiments/draw-mnist/fit.py checkpoints/draw-mnist/metrics.jsonl

Prints, for stretches of the run, the mean validation bound beside the mean training bound
(the tally of the training batches), and per learning-rate phase the least-squares slope of the
validation bound against log2(epochs) with that line's value at 300 epochs.
"""

import json
import math
import sys

PER_EPOCH = 50000 / 64
GAPS = [(2, 3), (4, 5), (9, 10), (18, 15000 / PER_EPOCH), (20.5, 21.5), (29000 / PER_EPOCH, 30000 / PER_EPOCH),
        (33250 / PER_EPOCH, 34500 / PER_EPOCH)]
PHASES = [("1e-3", 3000, 15000), ("1e-3", 7500, 15000), ("3e-4", 16000, 30000), ("3e-4", 20000, 30000),
          ("9e-5", 30500, 34500)]


def mean(xs):
    return sum(xs) / len(xs)


def main():
    rows = [json.loads(line) for line in open(sys.argv[1])]
    valid = [(r["step"], r["nll_nats"]) for r in rows if r["split"] == "valid"]
    train = [(r["step"], r["nll_nats"]) for r in rows if r["split"] == "train"]
    for a, b in GAPS:
        v = mean([n for s, n in valid if a * PER_EPOCH <= s < b * PER_EPOCH])
        t = mean([n for s, n in train if a * PER_EPOCH <= s < b * PER_EPOCH])
        print(f"epochs {a:5.1f}-{b:5.1f}: validation {v:.2f}, training {t:.2f}, gap {v - t:.2f}")
    for lr, a, b in PHASES:
        pts = [(math.log2(s / PER_EPOCH), n) for s, n in valid if a <= s < b]
        mx, my = mean([x for x, _ in pts]), mean([y for _, y in pts])
        slope = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
        at300 = my + slope * (math.log2(300) - mx)
        print(f"{lr}, epochs {a / PER_EPOCH:.1f}-{b / PER_EPOCH:.1f}: {slope:.2f} nats per doubling "
              f"({len(pts)} points), the line at 300 epochs {at300:.2f}")


if __name__ == "__main__":
    main()
