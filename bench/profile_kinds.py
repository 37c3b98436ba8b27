"""Groups a flat `perf report --sort symbol` listing into the kinds of work that lead it."""
import re, sys

KINDS = [
    ("matmul (gemm)", r"gemm"),
    ("copies and zeroing (memmove/memset/clear_page)", r"memmove|memcpy|memset|clear_page|copy_"),
    ("allocation (mimalloc, page faults)", r"_mi_|mi_|malloc|free|page_fault|do_anonymous|handle_mm|alloc_pages|zap_|unmap|mmap"),
    ("thread sync and scheduling (kernel)", r"sched|spin|futex|yield|switch|wake|idle|crossbeam"),
    ("elementwise/reductions (burn-flex, macerator)", r"burn_flex|macerator|burn_"),
    ("activations (exp/tanh)", r"exp|tanh|log"),
]

def kinds(path):
    shares = {k: 0.0 for k, _ in KINDS}
    shares["other"] = 0.0
    top = []
    for line in open(path):
        m = re.match(r"\s*([\d.]+)%\s+\[[.k]\]\s+(.*)", line)
        if not m:
            continue
        pct, sym = float(m.group(1)), m.group(2).strip()
        if len(top) < 5:
            top.append(f"{pct:.0f}% {sym[:60]}")
        for k, pat in KINDS:
            if re.search(pat, sym):
                shares[k] += pct
                break
        else:
            shares["other"] += pct
    return shares, top

for path in sys.argv[1:]:
    shares, top = kinds(path)
    s = ", ".join(f"{k} {v:.0f}%" for k, v in sorted(shares.items(), key=lambda kv: -kv[1]) if v >= 3)
    print(f"{path[:-4]}: {s}\n    top: " + "; ".join(top))
