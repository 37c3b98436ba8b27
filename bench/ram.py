"""PyTorch baseline for `glimpse bench ram`: the Recurrent Attention Model, plainly written.

The same network as Glimpse's models/ram.rs (glimpse network 128/128 -> 256, ReLU RNN core 256,
Gaussian location policy with tanh mean, baseline, action network), the same hybrid loss
(cross-entropy + REINFORCE with baseline + baseline MSE), Adam, one fixed random batch.
The retina is vectorised with advanced indexing (no per-sample Python loop).
Prints one JSON line: {"per_s": training samples/s (median step), "threads", "torch"}; with
--inference, samples evaluated per second (no_grad, the policy's mean path, no sampling).
Run: python3 bench/ram.py --batch 64 --side 28 --patch 8 --scales 1 --glimpses 6 --threads 2
"""
import argparse, json, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def retina(x, loc, patch, scales):
    """x (B, H, W), loc (B, 2) in [-1, 1] (row, col) -> (B, scales*patch*patch)."""
    b, h, w = x.shape
    out = []
    big = patch << (scales - 1)
    xp = F.pad(x, (big, big, big, big))
    centre = torch.round((loc.clamp(-1, 1) + 1) * 0.5 * torch.tensor([h, w], dtype=x.dtype)).long()
    for i in range(scales):
        s = patch << i
        top = centre[:, 0] - s // 2 + big
        left = centre[:, 1] - s // 2 + big
        ar = torch.arange(s)
        rows = (top[:, None] + ar)[:, :, None]
        cols = (left[:, None] + ar)[:, None, :]
        crop = xp[torch.arange(b)[:, None, None], rows, cols]  # (B, s, s)
        if i > 0:
            crop = F.avg_pool2d(crop[:, None], 1 << i)[:, 0]
        out.append(crop.reshape(b, -1))
    return torch.cat(out, 1)


class Ram(nn.Module):
    def __init__(self, patch, scales, what_where=128, hidden=256, classes=10):
        super().__init__()
        self.glimpse_what = nn.Linear(scales * patch * patch, what_where)
        self.glimpse_where = nn.Linear(2, what_where)
        self.glimpse_what_out = nn.Linear(what_where, hidden)
        self.glimpse_where_out = nn.Linear(what_where, hidden)
        self.core_h = nn.Linear(hidden, hidden)
        self.core_g = nn.Linear(hidden, hidden)
        self.location = nn.Linear(hidden, 2)
        self.action = nn.Linear(hidden, classes)
        self.baseline = nn.Linear(hidden, 1)
        self.patch, self.scales, self.hidden = patch, scales, hidden

    def forward(self, x, glimpses, std, sample=True):
        b = x.shape[0]
        h = x.new_zeros(b, self.hidden)
        loc = x.new_zeros(b, 2)
        log_probs, baselines = [], []
        for t in range(glimpses):
            rho = retina(x, loc, self.patch, self.scales)
            what = F.relu(self.glimpse_what(rho))
            where = F.relu(self.glimpse_where(loc))
            g = F.relu(self.glimpse_what_out(what) + self.glimpse_where_out(where))
            h = F.relu(self.core_h(h) + self.core_g(g))
            if t + 1 == glimpses:
                break
            hd = h.detach()
            mean = torch.tanh(self.location(hd))
            if not sample:  # evaluation: the policy's mean path
                loc = mean
                continue
            loc = (mean + std * torch.randn_like(mean)).clamp(-1, 1).detach()
            log_probs.append(torch.distributions.Normal(mean, std).log_prob(loc).sum(1))
            baselines.append(self.baseline(hd).squeeze(1))
        return self.action(h), log_probs, baselines


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--side", type=int, default=28)
    p.add_argument("--patch", type=int, default=8)
    p.add_argument("--scales", type=int, default=1)
    p.add_argument("--glimpses", type=int, default=6)
    p.add_argument("--std", type=float, default=0.17)
    p.add_argument("--inference", action="store_true", help="time evaluation (no_grad, mean path) instead of training")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Ram(a.patch, a.scales)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-8)
    x = torch.rand(a.batch, a.side, a.side)
    y = torch.randint(0, 10, (a.batch,))
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        if a.inference:
            with torch.no_grad():
                model(x, a.glimpses, a.std, sample=False)[0].argmax(1).tolist()
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
            continue
        opt.zero_grad()
        logits, log_probs, baselines = model(x, a.glimpses, a.std)
        ce = F.cross_entropy(logits, y)
        reward = (logits.detach().argmax(1) == y).float()
        loss = ce
        for lp, b in zip(log_probs, baselines):
            loss = loss - (lp * (reward - b.detach())).mean() + ((b - reward) ** 2).mean()
        loss.backward()
        opt.step()
        loss.item()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    print(json.dumps({"per_s": a.batch / times[len(times) // 2], "threads": a.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
