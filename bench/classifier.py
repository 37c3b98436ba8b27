"""PyTorch baseline for `glimpse bench mlp|cnn`: the same classifier, plainly written.

Trains on a fixed random batch (same sizes as ours) with Adam and prints one JSON line:
{"per_s": training samples per second (median over steps), "threads": ..., "torch": version}.
Run: python3 bench/classifier.py --model cnn --batch 64 --steps 50 --threads 2
"""
import argparse, json, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Mlp(nn.Module):
    def __init__(self, h, w, hidden, classes):
        super().__init__()
        sizes = [h * w] + hidden
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes, sizes[1:]))
        self.out = nn.Linear(sizes[-1], classes)

    def forward(self, x):
        x = x.flatten(1)
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.out(x)


class Cnn(nn.Module):
    def __init__(self, h, w, channels, hidden, classes):
        super().__init__()
        blocks, c_in = [], 1
        for c in channels:
            blocks.append(nn.ModuleList([nn.Conv2d(c_in, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)]))
            c_in = c
        self.blocks = nn.ModuleList(blocks)
        down = 2 ** len(channels)
        self.fc = nn.Linear(c_in * (h // down) * (w // down), hidden)
        self.out = nn.Linear(hidden, classes)

    def forward(self, x):
        for a, b in self.blocks:
            x = F.max_pool2d(F.relu(b(F.relu(a(x)))), 2)
        return self.out(F.relu(self.fc(x.flatten(1))))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["mlp", "cnn"], required=True)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--side", type=int, default=28)
    p.add_argument("--hidden", type=str, default="256,256")
    p.add_argument("--channels", type=str, default="16,32")
    p.add_argument("--fc", type=int, default=128)
    p.add_argument("--inference", action="store_true", help="time evaluation (no_grad) instead of training")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.model == "mlp":
        model = Mlp(a.side, a.side, [int(v) for v in a.hidden.split(",")], 10)
    else:
        model = Cnn(a.side, a.side, [int(v) for v in a.channels.split(",")], a.fc, 10)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    x = torch.rand(a.batch, 1, a.side, a.side)
    y = torch.randint(0, 10, (a.batch,))
    if a.inference:
        model.eval()
        forward = lambda: model(x).argmax(1).tolist()
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        if a.inference:
            with torch.no_grad():
                forward()
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
            continue
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"per_s": a.batch / med, "threads": a.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
