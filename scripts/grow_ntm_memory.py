#!/usr/bin/env python3
# Grow the learned first memory of an NTM checkpoint from N to N' rows (N' a multiple of N),
# keeping every other weight: each new row is the linear interpolation (circular, as the NTM's
# memory is) of the two nearest old rows. A run can then start from the result with `init`.
# Usage: python3 scripts/grow_ntm_memory.py CHECKPOINT ROWS OUT_DIR
import json, os, re, shutil, struct, sys

src, rows, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
blob = open(os.path.join(src, 'model.safetensors'), 'rb').read()
n_header = struct.unpack('<Q', blob[:8])[0]
header = json.loads(blob[8:8 + n_header])
data = blob[8 + n_header:]
name = 'Ntm.memory0'
if name not in header:
    sys.exit(f'{src}: no learned first memory ({name}); train with memory_init = "learned"')
n, m = header[name]['shape']
if rows <= n or rows % n:
    sys.exit(f'ROWS must be a multiple of the checkpoint\'s {n} rows and larger')
start, end = header[name]['data_offsets']
old = struct.unpack(f'<{n * m}f', data[start:end])
new = []
for i in range(rows):
    x = (i + 0.5) * n / rows - 0.5  # the new row's centre in old-row units
    lo = int(x // 1)
    t = x - lo
    a, b = lo % n, (lo + 1) % n
    new.extend((1 - t) * old[a * m + j] + t * old[b * m + j] for j in range(m))
grown = struct.pack(f'<{rows * m}f', *new)

# Rebuild the file: tensors in their old order, offsets recomputed.
tensors = sorted((k for k in header if k != '__metadata__'), key=lambda k: header[k]['data_offsets'][0])
out_header, body = {}, b''
if '__metadata__' in header:
    out_header['__metadata__'] = header['__metadata__']
for k in tensors:
    s, e = header[k]['data_offsets']
    raw = grown if k == name else data[s:e]
    shape = [rows, m] if k == name else header[k]['shape']
    out_header[k] = {'dtype': header[k]['dtype'], 'shape': shape, 'data_offsets': [len(body), len(body) + len(raw)]}
    body += raw
text = json.dumps(out_header, separators=(',', ':')).encode()
text += b' ' * (-len(text) % 8)
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, 'model.safetensors'), 'wb') as f:
    f.write(struct.pack('<Q', len(text)) + text + body)
config = open(os.path.join(src, 'config.toml')).read()
config = re.sub(r'(?m)^memory_n = \d+', f'memory_n = {rows}', config)
open(os.path.join(out, 'config.toml'), 'w').write(config)
for extra in ['meta.json']:
    if os.path.exists(os.path.join(src, extra)):
        shutil.copy(os.path.join(src, extra), os.path.join(out, extra))
print(f'{name}: ({n}, {m}) -> ({rows}, {m}); written to {out}')
