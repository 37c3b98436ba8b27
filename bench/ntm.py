"""PyTorch baselines for `glimpse bench ntm`, `bench dnc` and `bench lstm`: the memory models
and the LSTM baseline, plainly written.

`--model ntm`: the same machine as Glimpse's models/ntm.rs: an LSTM controller reading
[x_t, r_{t-1}], output clipping, one linear layer for all head parameters, NTM addressing
(cosine content weighting with key strength, interpolation gate, circular shift convolution,
sharpening), erase/add writes then reads, output Linear([h, r]).
`--model dnc`: models/dnc.rs (Graves et al. 2016): the same controller, an interface vector
split and squashed, retention, usage and allocation (sorted usage, exclusive cumulative
product), content and allocation write weighting, erase/add write, temporal link matrix and
precedence, read weightings mixing backward, content and forward modes.
`--model lstm`: nn.LSTM (stacked) and an output layer, the sequence models' LSTM baseline.
All: Bernoulli cross-entropy on the copy task's output half; RMSProp with momentum, global
norm clipping; one fixed random copy batch of the given length.
Prints one JSON line: {"per_s": training sequences/s (median step), "threads", "torch"}.
Run: python3 bench/ntm.py --model ntm --batch 1 --len 20 --threads 2
"""
import argparse, json, time
import torch
import torch.nn as nn
import torch.nn.functional as F

EPS = 1e-6


class Ntm(nn.Module):
    def __init__(self, inputs, outputs, ctrl=100, n=128, m=20, reads=1, writes=1, shift=1, clip=20.0):
        super().__init__()
        self.n, self.m, self.reads, self.writes, self.k, self.clip = n, m, reads, writes, shift, clip
        self.head_len = m + 1 + 1 + (2 * shift + 1) + 1
        self.lstm = nn.LSTMCell(inputs + reads * m, ctrl)
        self.heads = nn.Linear(ctrl, (reads + writes) * self.head_len + writes * 2 * m)
        self.out = nn.Linear(ctrl + reads * m, outputs)
        self.read0 = nn.Parameter(torch.empty(reads * m).uniform_(-0.1, 0.1))
        self.ctrl = ctrl

    def address(self, mem, w_prev, raw):
        m, s = self.m, 2 * self.k + 1
        key = raw[:, :m]
        beta = F.softplus(raw[:, m:m + 1])
        g = torch.sigmoid(raw[:, m + 1:m + 2])
        shift = torch.softmax(raw[:, m + 2:m + 2 + s], 1)
        gamma = 1 + F.softplus(raw[:, m + 2 + s:m + 3 + s])
        dot = torch.bmm(mem, key.unsqueeze(2)).squeeze(2)
        sim = dot / ((mem.pow(2).sum(2) + EPS).sqrt() * (key.pow(2).sum(1, keepdim=True) + EPS).sqrt())
        wc = torch.softmax(beta * sim, 1)
        wg = w_prev + (wc - w_prev) * g
        ws = sum(torch.roll(wg, j - self.k, 1) * shift[:, j:j + 1] for j in range(s))
        return torch.softmax(torch.log(ws + EPS) * gamma, 1)

    def forward(self, xs):
        b = xs.shape[1]
        mem = torch.full((b, self.n, self.m), 1e-6)
        h = torch.zeros(b, self.ctrl)
        c = torch.zeros(b, self.ctrl)
        reads = self.read0.unsqueeze(0).expand(b, -1)
        w0 = torch.zeros(b, self.n)
        w0[:, 0] = 1
        w_read = [w0 for _ in range(self.reads)]
        w_write = [w0 for _ in range(self.writes)]
        hl, m = self.head_len, self.m
        ys = []
        for x in xs:
            h, c = self.lstm(torch.cat([x, reads], 1), (h, c))
            out = h.clamp(-self.clip, self.clip)
            raw = self.heads(out)
            ea0 = (self.reads + self.writes) * hl
            for j in range(self.writes):
                w = self.address(mem, w_write[j], raw[:, (self.reads + j) * hl:(self.reads + j + 1) * hl])
                w_write[j] = w
                ea = raw[:, ea0 + j * 2 * m:ea0 + (j + 1) * 2 * m]
                e, a = torch.sigmoid(ea[:, :m]), torch.tanh(ea[:, m:])
                mem = mem * (1 - w.unsqueeze(2) * e.unsqueeze(1)) + w.unsqueeze(2) * a.unsqueeze(1)
            rs = []
            for j in range(self.reads):
                w = self.address(mem, w_read[j], raw[:, j * hl:(j + 1) * hl])
                w_read[j] = w
                rs.append(torch.bmm(w.unsqueeze(1), mem).squeeze(1))
            reads = torch.cat(rs, 1)
            ys.append(self.out(torch.cat([out, reads], 1)))
        return torch.stack(ys)


def oneplus(x):
    return 1 + F.softplus(x)


def content(mem, key, beta):
    """softmax_i(beta * cos(M_i, k)): mem (B, N, W), key (B, W), beta (B, 1) -> (B, N)."""
    dot = torch.bmm(mem, key.unsqueeze(2)).squeeze(2)
    sim = dot / ((mem.pow(2).sum(2) + EPS).sqrt() * (key.pow(2).sum(1, keepdim=True) + EPS).sqrt())
    return torch.softmax(beta * sim, 1)


class Dnc(nn.Module):
    def __init__(self, inputs, outputs, ctrl=128, n=128, w=20, reads=1, clip=20.0):
        super().__init__()
        self.n, self.w, self.r, self.clip, self.ctrl = n, w, reads, clip, ctrl
        self.lstm = nn.LSTMCell(inputs + reads * w, ctrl)
        self.interface = nn.Linear(ctrl, reads * w + reads + w + 1 + 2 * w + reads + 2 + 3 * reads)
        self.out = nn.Linear(ctrl + reads * w, outputs)
        self.read0 = nn.Parameter(torch.empty(reads * w).uniform_(-0.1, 0.1))
        self.register_buffer("off_diagonal", 1 - torch.eye(n))

    def allocation(self, u):
        u = u.clamp(1e-6, 1.0)
        sorted_u, order = torch.sort(u.detach(), 1)
        sorted_u = u.gather(1, order)
        prod = torch.cumprod(torch.cat([torch.ones_like(u[:, :1]), sorted_u[:, :-1]], 1), 1)
        a_sorted = (1 - sorted_u) * prod
        return torch.zeros_like(u).scatter(1, order, a_sorted)

    def forward(self, xs):
        b, n, w, r = xs.shape[1], self.n, self.w, self.r
        mem = torch.zeros(b, n, w)
        h = torch.zeros(b, self.ctrl)
        c = torch.zeros(b, self.ctrl)
        reads = self.read0.unsqueeze(0).expand(b, -1)
        w_read = torch.zeros(b, r, n)
        w_write = torch.zeros(b, n)
        usage = torch.zeros(b, n)
        link = torch.zeros(b, n, n)
        prec = torch.zeros(b, n)
        ys = []
        for x in xs:
            h, c = self.lstm(torch.cat([x, reads], 1), (h, c))
            out = h.clamp(-self.clip, self.clip)
            xi = self.interface(out)
            sizes = [r * w, r, w, 1, w, w, r, 1, 1, 3 * r]
            rk, rs, wk, ws, er, wv, fg, ag, wg, rm = torch.split(xi, sizes, 1)
            rk, rs, ws = rk.view(b, r, w), oneplus(rs), oneplus(ws)
            er, fg, ag, wg = torch.sigmoid(er), torch.sigmoid(fg), torch.sigmoid(ag), torch.sigmoid(wg)
            rm = torch.softmax(rm.view(b, r, 3), 2)
            psi = torch.prod(1 - fg.unsqueeze(2) * w_read, 1)
            usage = (usage + w_write - usage * w_write) * psi
            alloc = self.allocation(usage)
            cw = content(mem, wk, ws)
            w_write = wg * (ag * alloc + (1 - ag) * cw)
            mem = mem * (1 - w_write.unsqueeze(2) * er.unsqueeze(1)) + w_write.unsqueeze(2) * wv.unsqueeze(1)
            link = (1 - w_write.unsqueeze(2) - w_write.unsqueeze(1)) * link + w_write.unsqueeze(2) * prec.unsqueeze(1)
            link = link * self.off_diagonal
            prec = (1 - w_write.sum(1, keepdim=True)) * prec + w_write
            fwd = torch.bmm(w_read, link.transpose(1, 2))
            bwd = torch.bmm(w_read, link)
            cr = torch.stack([content(mem, rk[:, i], rs[:, i:i + 1]) for i in range(r)], 1)
            w_read = rm[:, :, 0:1] * bwd + rm[:, :, 1:2] * cr + rm[:, :, 2:3] * fwd
            reads = torch.bmm(w_read, mem).view(b, r * w)
            ys.append(self.out(torch.cat([out, reads], 1)))
        return torch.stack(ys)


class Lstm(nn.Module):
    def __init__(self, inputs, outputs, hidden=256, layers=3):
        super().__init__()
        self.lstm = nn.LSTM(inputs, hidden, layers)
        self.out = nn.Linear(hidden, outputs)

    def forward(self, xs):
        return self.out(self.lstm(xs)[0])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["ntm", "dnc", "lstm"], default="ntm")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--len", type=int, default=20)
    p.add_argument("--bits", type=int, default=8)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    L, bits, b = a.len, a.bits, a.batch
    seq = torch.randint(0, 2, (L, b, bits)).float()
    x = torch.zeros(2 * L + 1, b, bits + 1)
    x[:L, :, :bits] = seq
    x[L, :, bits] = 1
    y = torch.zeros(2 * L + 1, b, bits)
    y[L + 1:] = seq
    mask = torch.zeros(2 * L + 1, b, 1)
    mask[L + 1:] = 1
    model = {"ntm": Ntm, "dnc": Dnc, "lstm": Lstm}[a.model](bits + 1, bits)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4, alpha=0.95, momentum=0.9, eps=1e-4)
    times = []
    for i in range(5 + a.steps):
        t0 = time.perf_counter()
        logits = model(x)
        loss = (F.binary_cross_entropy_with_logits(logits, y, reduction="none") * mask).sum() / b
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        loss.item()
        if i >= 5:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    print(json.dumps({"per_s": b / med, "threads": a.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
