#!/usr/bin/env python3
# Greedy soup of DRAW-classifier checkpoints (Wortsman et al. 2022) with `glimpse average`.
# Usage (from the repository root, after `cargo build --release`):
#   python3 scripts/greedy_soup.py ANCHOR CHECKPOINT...
# ANCHOR is the soup's first ingredient: the common parent the others were fine-tuned from, or
# one of them (stage 10 used a copy of its last weights whose config.toml says seed = 2, the
# clutter of stage 5 every DRAW figure is compared on). A soup takes its first checkpoint's data
# settings, the anchor's; single ingredients are evaluated on the anchor's clutter too
# (`--data-seed`), so every figure is on one clutter. Needs GLIMPSE_DATA (or the cache) to
# find MNIST.
# Writes the soup to /tmp/greedy-soup and prints its validation and test error.
# Greedy soup (Wortsman et al. 2022): ingredients sorted by their validation error on the
# soup's validation set; each kept if the soup's validation error does not rise.
import json, os, subprocess, sys, tomllib
G = './target/release/glimpse'
cands = sys.argv[1:]
# The soup starts from the common parent.
anchor = cands[0]
with open(os.path.join(anchor, 'config.toml'), 'rb') as f:
    seed = str(tomllib.load(f)['seed'])
def valid_of(dirs, out='/tmp/g-soup'):
    if len(dirs) == 1:
        r = subprocess.run([G, '--threads', '1', 'eval', dirs[0], '--split', 'valid', '--data-seed', seed, '--json'], capture_output=True, text=True, check=True)
        return json.loads(r.stdout)['valid_error'], None
    r = subprocess.run([G, '--threads', '1', 'average', *dirs, '--out', out, '--json'], capture_output=True, text=True, check=True)
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
