"""PyTorch baseline for `glimpse bench draw` and `glimpse bench draw-classifier`: DRAW
(Gregor et al. 2015) and its read-attention classifier, plainly written, same sizes as ours.

Trains on a fixed random batch with Adam and prints one JSON line:
{"per_s": training samples per second (median over steps), "threads": ..., "torch": version}.
With --inference: samples evaluated per second under no_grad (the bound, or the classifier's
loss).
Run: python3 bench/draw.py --model draw --batch 64 --steps 10 --threads 2
"""
import argparse, json, time
import torch
import torch.nn as nn
import torch.nn.functional as F


def filterbank(params, rows, cols, n):
    """(B, 5) raw -> F_X (B, N, cols), F_Y (B, N, rows), gamma (B, 1, 1); pixel coords 1..A."""
    gx_, gy_, log_s2, log_d, log_g = params.unbind(1)
    gx = (cols + 1) / 2 * (gx_ + 1)
    gy = (rows + 1) / 2 * (gy_ + 1)
    delta = (max(rows, cols) - 1) / (max(n, 2) - 1) * torch.exp(log_d)
    s2 = torch.exp(log_s2)
    offs = torch.arange(1, n + 1, dtype=params.dtype) - n / 2 - 0.5

    def axis(g, length):
        mu = g[:, None] + offs[None, :] * delta[:, None]  # (B, N)
        a = torch.arange(1, length + 1, dtype=params.dtype)
        f = torch.exp(-((a[None, None, :] - mu[:, :, None]) ** 2) / (2 * s2[:, None, None]))
        return f / f.sum(2, keepdim=True).clamp_min(1e-8)

    return axis(gx, cols), axis(gy, rows), torch.exp(log_g)[:, None, None]


class Draw(nn.Module):
    def __init__(self, rows, cols, steps, enc, dec, z, read, write):
        super().__init__()
        self.rows, self.cols, self.T, self.z, self.N, self.W = rows, cols, steps, z, read, write
        read_len = 2 * (read * read if read else rows * cols)
        self.enc = nn.LSTMCell(read_len + dec, enc)
        self.dec = nn.LSTMCell(z, dec)
        self.q = nn.Linear(enc, 2 * z)
        self.read_attn = nn.Linear(dec, 5) if read else None
        self.write_attn = nn.Linear(dec, 5) if write else None
        self.write_patch = nn.Linear(dec, write * write if write else rows * cols)

    def forward(self, x, noise):
        b = x.shape[0]
        he = ce = torch.zeros(b, self.enc.hidden_size)
        hd = cd = torch.zeros(b, self.dec.hidden_size)
        canvas = torch.zeros(b, self.rows, self.cols)
        kl = 0.0
        for t in range(self.T):
            x_hat = x - torch.sigmoid(canvas)
            if self.read_attn is None:
                r = torch.cat([x.flatten(1), x_hat.flatten(1)], 1)
            else:
                fx, fy, g = filterbank(self.read_attn(hd), self.rows, self.cols, self.N)
                rd = lambda img: (g * fy @ img @ fx.transpose(1, 2)).flatten(1)
                r = torch.cat([rd(x), rd(x_hat)], 1)
            he, ce = self.enc(torch.cat([r, hd], 1), (he, ce))
            mu, log_sigma = self.q(he).chunk(2, 1)
            z = mu + torch.exp(log_sigma) * noise[t]
            kl = kl + 0.5 * (mu ** 2 + torch.exp(2 * log_sigma) - 2 * log_sigma - 1).sum(1)
            hd, cd = self.dec(z, (hd, cd))
            w = self.write_patch(hd)
            if self.write_attn is None:
                canvas = canvas + w.view(b, self.rows, self.cols)
            else:
                fx, fy, g = filterbank(self.write_attn(hd), self.rows, self.cols, self.W)
                canvas = canvas + fy.transpose(1, 2) @ w.view(b, self.W, self.W) @ fx / g
        rec = F.binary_cross_entropy_with_logits(canvas.flatten(1), x.flatten(1), reduction="none").sum(1)
        return (rec + kl).mean()


class DrawClassifier(nn.Module):
    def __init__(self, side, glimpses, read, hidden):
        super().__init__()
        self.side, self.T, self.N = side, glimpses, read
        self.attn = nn.Linear(hidden, 5)
        self.core = nn.LSTMCell(read * read, hidden)
        self.action = nn.Linear(hidden, 10)

    def forward(self, x):
        b = x.shape[0]
        h = c = torch.zeros(b, self.core.hidden_size)
        for _ in range(self.T):
            fx, fy, g = filterbank(self.attn(h), self.side, self.side, self.N)
            r = (g * fy @ x @ fx.transpose(1, 2)).flatten(1)
            h, c = self.core(r, (h, c))
        return self.action(h)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["draw", "classifier"], default="draw")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--side", type=int, default=28)
    p.add_argument("--glimpses", type=int, default=64)
    p.add_argument("--encoder", type=int, default=256)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--latent", type=int, default=100)
    p.add_argument("--read", type=int, default=2)
    p.add_argument("--write", type=int, default=5)
    p.add_argument("--inference", action="store_true", help="time evaluation (no_grad) instead of training")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x = torch.rand(a.batch, a.side, a.side)
    if a.model == "draw":
        model = Draw(a.side, a.side, a.glimpses, a.encoder, a.hidden, a.latent, a.read, a.write)
        x = (x > 0.5).float()
        loss_fn = lambda: model(x, torch.randn(a.glimpses, a.batch, a.latent))
    else:
        model = DrawClassifier(a.side, a.glimpses, a.read, a.hidden)
        y = torch.randint(0, 10, (a.batch,))
        loss_fn = lambda: F.cross_entropy(model(x), y)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        if a.inference:
            with torch.no_grad():
                loss_fn().item()
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
            continue
        opt.zero_grad()
        loss = loss_fn()
        loss.backward()
        opt.step()
        loss.item()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    print(json.dumps({"per_s": a.batch / times[len(times) // 2], "threads": a.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
