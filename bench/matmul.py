"""The products of crates/glimpse/examples/matmul_rate.rs in PyTorch, in GFLOP/s (median of
seven timings of a loop of at least 0.2 s): `python3 bench/matmul.py --threads 2`."""
import argparse
import time

import torch

SHAPES = [(64, 784, 256), (64, 256, 1024), (64, 512, 1024), (1280, 256, 256), (1280, 512, 2048), (1280, 256, 1024)]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    torch.set_num_threads(p.parse_args().threads)
    for m, k, n in SHAPES:
        a = torch.rand(m, k) * 2 - 1
        b = torch.rand(k, n) * 2 - 1
        torch.mm(a, b)
        start, reps = time.perf_counter(), 0
        while time.perf_counter() - start < 0.05:
            torch.mm(a, b)
            reps += 1
        per_loop = int(0.2 / ((time.perf_counter() - start) / reps)) + 1
        rates = []
        for _ in range(7):
            t = time.perf_counter()
            for _ in range(per_loop):
                torch.mm(a, b)
            rates.append(2 * m * k * n * per_loop / (time.perf_counter() - t) / 1e9)
        print(f"{m}x{k}x{n} {sorted(rates)[3]:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
