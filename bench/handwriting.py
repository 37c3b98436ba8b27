"""PyTorch baseline for `glimpse bench handwriting`: Graves' (2013) synthesis network written
the way a PyTorch user would: an nn.LSTMCell loop for the first layer and the soft window
(eq. 46-51), nn.LSTMCell loops for the upper layers (each reading x_t, the layer below and
w_t), a linear mixture-density read-out of all layers and the bivariate-Gaussian mixture loss
(eq. 17-26) in log space. Same sizes, same batch as ours.

Trains on a fixed random batch (every line --len points, every text --chars characters) with
Adam and gradient clipping, and prints one JSON line:
{"per_s": training points per second (median step), "threads": ..., "torch": version}.
Run: python3 bench/handwriting.py --batch 32 --len 200 --steps 10 --threads 2
(--window 0: the prediction network, section 4: the same stack without the window and text.)

With --inference it times sampling instead (no_grad): --batch lines written point by point for
--len points each (texts long enough not to end sooner); "per_s" is points written per second.
"""
import argparse, json, math, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Synthesis(nn.Module):
    def __init__(self, hidden, layers, mixtures, k, chars):
        super().__init__()
        chars = chars if k else 0  # --window 0: the unconditional prediction network (no window, no text)
        self.k, self.m, self.chars = k, mixtures, chars
        self.cells = nn.ModuleList(
            [nn.LSTMCell(3 + chars if n == 0 else 3 + hidden + chars, hidden) for n in range(layers)])
        self.window = nn.Linear(hidden, 3 * k) if k else None
        self.output = nn.Linear(layers * hidden, 1 + 6 * mixtures)

    def forward(self, x, text):  # x (B, T, 3); text (B, U, C) one-hot
        b, t, _ = x.shape
        u = text.shape[1]
        pos = torch.arange(1, u + 1, dtype=x.dtype)[None, None, :]
        hid = self.cells[0].hidden_size
        h, c = x.new_zeros(b, hid), x.new_zeros(b, hid)
        kappa = x.new_zeros(b, self.k)
        w = x.new_zeros(b, self.chars)
        below, ws = [], []
        for s in range(t):
            h, c = self.cells[0](torch.cat([x[:, s], w], 1), (h, c))
            if self.k:
                a, beta, k_hat = self.window(h).exp().chunk(3, 1)
                kappa = kappa + k_hat
                phi = (a[:, :, None] * torch.exp(-beta[:, :, None] * (kappa[:, :, None] - pos) ** 2)).sum(1)
                w = torch.bmm(phi[:, None], text).squeeze(1)
            below.append(h)
            ws.append(w)
        layers = [torch.stack(below, 1)]
        for cell in self.cells[1:]:
            h, c = x.new_zeros(b, hid), x.new_zeros(b, hid)
            hs = []
            for s in range(t):
                h, c = cell(torch.cat([x[:, s], below[s], ws[s]], 1), (h, c))
                hs.append(h)
            layers.append(torch.stack(hs, 1))
            below = hs
        return self.output(torch.cat(layers, 2))


    def sample(self, text, steps, bias):
        """Writes `text` (B, U, C) one point at a time for at most `steps` points (Graves'
        biased sampling, eq. 61-62), stopping a row once phi past the text's end exceeds
        phi at every character (section 5.3)."""
        b, u, _ = text.shape
        text = torch.cat([text, text.new_zeros(b, 1, text.shape[2])], 1)  # one empty position past the end
        pos = torch.arange(1, u + 2, dtype=text.dtype)[None, None, :]
        hid = self.cells[0].hidden_size
        hs = [text.new_zeros(b, hid) for _ in self.cells]
        cs = [text.new_zeros(b, hid) for _ in self.cells]
        kappa = text.new_zeros(b, self.k)
        w = text.new_zeros(b, self.chars)
        x = text.new_zeros(b, 3)
        done = torch.zeros(b, dtype=torch.bool)
        points = []
        m = self.m
        for _ in range(steps):
            for n, cell in enumerate(self.cells):
                inp = torch.cat([x, w], 1) if n == 0 else torch.cat([x, hs[n - 1], w], 1)
                hs[n], cs[n] = cell(inp, (hs[n], cs[n]))
                if n == 0:
                    a, beta, k_hat = self.window(hs[0]).exp().chunk(3, 1)
                    kappa = kappa + k_hat
                    phi = (a[:, :, None] * torch.exp(-beta[:, :, None] * (kappa[:, :, None] - pos) ** 2)).sum(1)
                    w = torch.bmm(phi[:, None], text).squeeze(1)
            y = self.output(torch.cat(hs, 1))
            e_hat = y[:, 0]
            pi_hat, mu1, mu2, s1, s2, rho = y[:, 1:].split(m, 1)
            j = torch.multinomial(torch.softmax(pi_hat * (1 + bias), 1), 1)
            pick = lambda t: t.gather(1, j).squeeze(1)
            r = torch.tanh(pick(rho))
            z1, z2 = torch.randn(b), torch.randn(b)
            dx = pick(mu1) + torch.exp(pick(s1) - bias) * z1
            dy = pick(mu2) + torch.exp(pick(s2) - bias) * (r * z1 + (1 - r ** 2).clamp_min(0).sqrt() * z2)
            eos = torch.bernoulli(torch.sigmoid(-e_hat))
            done |= (phi[:, u:u + 1] > phi[:, :u]).all(1)
            if bool(done.all()):
                break
            x = torch.stack([dx, dy, eos], 1)
            points.append(x)
        return torch.stack(points, 1)


def mdn_nll(y, target):  # y (..., 1 + 6M), target (..., 3)
    m = (y.shape[-1] - 1) // 6
    e_hat = y[..., 0]
    pi_hat, mu1, mu2, s1, s2, rho = y[..., 1:].split(m, -1)
    log_pi = F.log_softmax(pi_hat, -1)
    rho = torch.tanh(rho)
    z1 = (target[..., :1] - mu1) / s1.exp()
    z2 = (target[..., 1:2] - mu2) / s2.exp()
    om = 1 - rho ** 2
    zz = z1 ** 2 + z2 ** 2 - 2 * rho * z1 * z2
    log_n = -zz / (2 * om) - s1 - s2 - 0.5 * om.log() - math.log(2 * math.pi)
    log_mix = torch.logsumexp(log_pi + log_n, -1)
    eos = target[..., 2]
    log_eos = F.logsigmoid(-e_hat) * eos + F.logsigmoid(e_hat) * (1 - eos)
    return -(log_mix + log_eos)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--len", type=int, default=200)
    p.add_argument("--chars", type=int, default=20)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--mixtures", type=int, default=20)
    p.add_argument("--window", type=int, default=10)
    p.add_argument("--alphabet", type=int, default=95)
    p.add_argument("--inference", action="store_true", help="time sampling (no_grad) instead of training")
    p.add_argument("--bias", type=float, default=0.5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Synthesis(a.hidden, a.layers, a.mixtures, a.window, a.alphabet)
    if a.window:
        with torch.no_grad():  # the window starts slow, as ours (0.1 characters per point)
            model.window.bias[2 * a.window:] = math.log(0.1)
    pts = torch.randn(a.batch, a.len, 3) * 0.5
    pts[..., 2] = (torch.rand(a.batch, a.len) < 0.1).float()
    x = torch.cat([torch.zeros(a.batch, 1, 3), pts[:, :-1]], 1)
    text = F.one_hot(torch.randint(0, a.alphabet, (a.batch, a.chars)), a.alphabet).float()
    if not a.window:
        text = text[..., :0]
    if a.inference:
        times = []
        with torch.no_grad():
            for i in range(a.warmup + a.steps):
                t0 = time.perf_counter()
                model.sample(text, a.len, a.bias).tolist()
                if i >= a.warmup:
                    times.append(time.perf_counter() - t0)
        times.sort()
        print(json.dumps({"per_s": a.batch * a.len / times[len(times) // 2], "threads": a.threads, "torch": torch.__version__}))
        return
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = mdn_nll(model(x, text), pts).sum() / (a.batch * a.len)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        loss.item()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    print(json.dumps({"per_s": a.batch * a.len / times[len(times) // 2], "threads": a.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
