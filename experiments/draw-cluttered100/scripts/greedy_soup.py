#!/usr/bin/env python3
# Greedy soup of DRAW-classifier checkpoints (Wortsman et al. 2022) with `glimpse average`.
# Usage (from the repository root, after `cargo build --release`):
#   python3 experiments/draw-cluttered100/scripts/greedy_soup.py [--data-seed S] ANCHOR CHECKPOINT...
# ANCHOR is the soup's first ingredient: the common parent the others were fine-tuned from, or
# one of them. Every candidate and every soup is scored on one clutter: seed S (the DRAW
# figures use 2, stage 5's clutter), or without --data-seed the anchor's. (Stages 10-12 gave a
# copy of their last weights with `seed = 2` in its config.toml as the anchor; `--data-seed 2`
# does that without the copy, which `glimpse average` took for another run and so counted
# that run's training time twice.) Needs GLIMPSE_DATA (or the cache) to find MNIST.
# Writes the soup to /tmp/greedy-soup and prints its validation and test error.
# Greedy soup (Wortsman et al. 2022): ingredients sorted by their validation error on the
# soup's validation set; each kept if the soup's validation error does not rise.
import json, os, subprocess, sys, tomllib
G = './target/release/glimpse'
args = sys.argv[1:]
seed = None
if args[:1] == ['--data-seed']:
    seed, args = args[1], args[2:]
cands = args
# The soup starts from the common parent.
anchor = cands[0]
if seed is None:
    with open(os.path.join(anchor, 'config.toml'), 'rb') as f:
        seed = str(tomllib.load(f)['seed'])
def valid_of(dirs, out='/tmp/g-soup'):
    if len(dirs) == 1:
        r = subprocess.run([G, '--threads', '1', 'eval', dirs[0], '--split', 'valid', '--data-seed', seed, '--json'], capture_output=True, text=True, check=True)
        return json.loads(r.stdout)['valid_error'], None
    r = subprocess.run([G, '--threads', '1', 'average', *dirs, '--out', out, '--data-seed', seed, '--json'], capture_output=True, text=True, check=True)
    v = json.loads(r.stdout)
    return v['valid_error'], v['test_error']
scored = sorted((valid_of([c])[0], c) for c in cands)
for v, c in scored:
    print(f'ingredient {c}: valid {100*v:.2f}%', flush=True)
soup = [anchor]
best = next(v for v, c in scored if c == anchor)
for v, c in [x for x in scored if x[1] != anchor]:
    e, _ = valid_of(soup + [c])
    if e <= best:
        soup.append(c); best = e
        print(f'+ {c}: soup valid {100*e:.2f}%', flush=True)
    else:
        print(f'  {c}: soup valid {100*e:.2f}% (not kept)', flush=True)
e, t = valid_of(soup, '/tmp/greedy-soup')
print('greedy soup:', ' '.join(soup))
print(f'greedy soup: valid {100*e:.2f}%, test {100*t:.2f}%')
