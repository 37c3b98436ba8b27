#!/usr/bin/env python3
"""Validation curves of DRAW runs as one SVG line plot (standard library only).

    python3 experiments/draw-mnist/plot.py OUT.svg "TITLE" LABEL=RUN/metrics.jsonl[#BATCH][@OFFSET][@0:VALUE] ...

Each series is the `"split": "valid"` rows of a run's metrics.jsonl: the bound (`nll_nats`)
against epochs of the 50,000 training images, `(step + OFFSET) · BATCH / 50,000` (BATCH 64
unless given; OFFSET a fine-tuned run's starting step). `@0:VALUE` adds the starting point
(step OFFSET, VALUE) that a fine-tuned run does not log. A first argument `ymax:V` drops the
points above V.
"""

import json
import sys

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf"]
W, H, L, R, T, B = 720, 420, 70, 190, 40, 50


def series(spec):
    label, rest = spec.split("=", 1)
    start = None
    if "@0:" in rest:
        rest, start = rest.split("@0:")
        start = float(start)
    offset = 0
    if "@" in rest:
        rest, offset = rest.rsplit("@", 1)
        offset = int(offset)
    batch = 64
    if "#" in rest:
        rest, batch = rest.rsplit("#", 1)
        batch = int(batch)
    points = []
    with open(rest) as f:
        for line in f:
            row = json.loads(line)
            if row.get("split") == "valid":
                points.append(((row["step"] + offset) * batch / 50000, row["nll_nats"]))
    if start is not None:
        points.insert(0, (offset * batch / 50000, start))
    return label, sorted(points)


def nice_ticks(lo, hi, n=6):
    span = hi - lo
    step = 10 ** len(str(int(span / n))) / 10 if span >= n else 0.5
    for m in (1, 2, 5, 10):
        if span / (step * m) <= n:
            step *= m
            break
    first = int(lo / step) * step
    ticks = []
    v = first
    while v <= hi + 1e-9:
        if v >= lo - 1e-9:
            ticks.append(v)
        v += step
    return ticks


def main():
    out, title, specs = sys.argv[1], sys.argv[2], sys.argv[3:]
    ymax = float("inf")
    if specs and specs[0].startswith("ymax:"):
        ymax = float(specs.pop(0)[5:])
    runs = [(label, [(x, y) for x, y in p if y <= ymax]) for label, p in map(series, specs)]
    xs = [x for _, p in runs for x, _ in p]
    ys = [y for _, p in runs for _, y in p]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    pad = (y1 - y0) * 0.05 or 1
    y0, y1 = y0 - pad, y1 + pad

    def px(x):
        return L + (x - x0) / ((x1 - x0) or 1) * (W - L - R)

    def py(y):
        return T + (y1 - y) / (y1 - y0) * (H - T - B)

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="12">',
           f'<rect width="{W}" height="{H}" fill="white"/>',
           f'<text x="{L}" y="22" font-size="14">{title}</text>',
           f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="black"/>',
           f'<line x1="{L}" y1="{T}" x2="{L}" y2="{H - B}" stroke="black"/>',
           f'<text x="{(L + W - R) / 2}" y="{H - 12}" text-anchor="middle">epochs (50,000 images each)</text>',
           f'<text x="16" y="{(T + H - B) / 2}" transform="rotate(-90 16 {(T + H - B) / 2})" text-anchor="middle">'
           'validation bound, nats (1,000 images)</text>']
    for t in nice_ticks(x0, x1):
        svg.append(f'<line x1="{px(t):.1f}" y1="{H - B}" x2="{px(t):.1f}" y2="{H - B + 5}" stroke="black"/>')
        svg.append(f'<text x="{px(t):.1f}" y="{H - B + 18}" text-anchor="middle">{t:g}</text>')
    for t in nice_ticks(y0, y1):
        svg.append(f'<line x1="{L}" y1="{py(t):.1f}" x2="{W - R}" y2="{py(t):.1f}" stroke="#ddd"/>')
        svg.append(f'<text x="{L - 6}" y="{py(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
    for i, (label, points) in enumerate(runs):
        c = COLOURS[i % len(COLOURS)]
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in points)
        svg.append(f'<polyline points="{path}" fill="none" stroke="{c}" stroke-width="2"/>')
        for x, y in points:
            svg.append(f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{c}"/>')
        ly = T + 16 + 18 * i
        svg.append(f'<line x1="{W - R + 10}" y1="{ly - 4}" x2="{W - R + 30}" y2="{ly - 4}" stroke="{c}" stroke-width="2"/>')
        svg.append(f'<text x="{W - R + 35}" y="{ly}">{label} ({points[-1][1]:.2f})</text>')
    svg.append("</svg>")
    with open(out, "w") as f:
        f.write("\n".join(svg) + "\n")


if __name__ == "__main__":
    main()
