"""PyTorch baseline for `glimpse bench seq2seq` and `glimpse bench transformer`: the same
encoder-decoders as ours, written the way a PyTorch user would (nn.LSTM for the bidirectional
encoder, an nn.LSTMCell decoder loop with additive attention and input feeding; nn.Transformer,
pre-norm, for the Transformer), same sizes, same batch.

Trains on a fixed random batch (every source `--src-len` tokens, every target `--tgt-len`)
with Adam and gradient clipping, and prints one JSON line:
{"per_s": target tokens per second (median step), "threads": ..., "torch": version}.
Run: python3 bench/seq2seq.py --model seq2seq --batch 64 --steps 20 --threads 2

With --inference greedy|beam it times decoding instead (torch.no_grad(), eval mode): greedy
decoding of the batch, or beam search (--beam, length penalty --alpha, Wu et al. 2016) of each
source in turn, at most --tgt-len + 1 tokens; "per_s" is then sources decoded per second.
"""
import argparse, json, math, time
import torch
import torch.nn as nn
import torch.nn.functional as F


class Seq2seq(nn.Module):
    def __init__(self, src_vocab, tgt_vocab, embed, enc, dec, att_hidden, attention, input_feeding):
        super().__init__()
        self.src_embed = nn.Embedding(src_vocab, embed)
        self.tgt_embed = nn.Embedding(tgt_vocab, embed)
        self.encoder = nn.LSTM(embed, enc, batch_first=True, bidirectional=True)
        self.init = nn.Linear(2 * enc, dec)
        self.input_feeding = input_feeding
        self.decoder = nn.LSTMCell(embed + (dec if input_feeding else 0), dec)
        self.attention = attention
        if attention:
            self.w_query = nn.Linear(dec, att_hidden)
            self.w_key = nn.Linear(2 * enc, att_hidden, bias=False)
            self.v = nn.Linear(att_hidden, 1, bias=False)
        self.combine = nn.Linear(2 * enc + dec, dec)
        self.output = nn.Linear(dec, tgt_vocab)

    def forward(self, src, tgt_in):
        memory, (h_n, _) = self.encoder(self.src_embed(src))  # (B, S, 2E); h_n (2, B, E)
        summary = torch.cat([h_n[0], h_n[1]], 1)
        h = torch.tanh(self.init(summary))
        c = torch.zeros_like(h)
        feed = torch.zeros_like(h)
        keys = self.w_key(memory) if self.attention else None
        y = self.tgt_embed(tgt_in)
        outs = []
        for t in range(tgt_in.shape[1]):
            inp = torch.cat([y[:, t], feed], 1) if self.input_feeding else y[:, t]
            h, c = self.decoder(inp, (h, c))
            if self.attention:
                scores = self.v(torch.tanh(keys + self.w_query(h)[:, None])).squeeze(2)  # (B, S)
                a = torch.softmax(scores, 1)
                context = torch.bmm(a[:, None], memory).squeeze(1)
            else:
                context = summary
            feed = torch.tanh(self.combine(torch.cat([context, h], 1)))
            outs.append(feed)
        return self.output(torch.stack(outs, 1))

    # Decoding, one token at a time: the encoded source, then (state, last tokens) -> log p.
    def encode(self, src):
        memory, (h_n, _) = self.encoder(self.src_embed(src))
        summary = torch.cat([h_n[0], h_n[1]], 1)
        keys = self.w_key(memory) if self.attention else None
        return memory, summary, keys

    def start(self, enc):
        h = torch.tanh(self.init(enc[1]))
        return h, torch.zeros_like(h), torch.zeros_like(h)

    def step(self, enc, state, prefix):
        memory, summary, keys = enc
        h, c, feed = state
        y = self.tgt_embed(prefix[:, -1])
        h, c = self.decoder(torch.cat([y, feed], 1) if self.input_feeding else y, (h, c))
        if self.attention:
            a = torch.softmax(self.v(torch.tanh(keys + self.w_query(h)[:, None])).squeeze(2), 1)
            context = torch.bmm(a[:, None], memory).squeeze(1)
        else:
            context = summary
        feed = torch.tanh(self.combine(torch.cat([context, h], 1)))
        return F.log_softmax(self.output(feed), 1), (h, c, feed)

    def select_memory(self, enc, rows):
        memory, summary, keys = enc
        return memory[rows], summary[rows], keys[rows] if keys is not None else None

    def select_state(self, state, rows):
        return tuple(x[rows] for x in state)


def positions(t, d):
    pos = torch.arange(t, dtype=torch.float32)[:, None]
    i = torch.arange(d)[None, :]
    angle = pos / torch.pow(10000.0, (2 * (i // 2)).float() / d)
    return torch.where(i % 2 == 0, torch.sin(angle), torch.cos(angle))


class Transformer(nn.Module):
    def __init__(self, src_vocab, tgt_vocab, d, heads, ff, enc_layers, dec_layers):
        super().__init__()
        self.d = d
        self.src_embed = nn.Embedding(src_vocab, d)
        self.tgt_embed = nn.Embedding(tgt_vocab, d)
        self.net = nn.Transformer(d, heads, enc_layers, dec_layers, ff, dropout=0.0, batch_first=True, norm_first=True)
        self.output = nn.Linear(d, tgt_vocab)

    def forward(self, src, tgt_in):
        s, t = src.shape[1], tgt_in.shape[1]
        x = self.src_embed(src) * math.sqrt(self.d) + positions(s, self.d)
        y = self.tgt_embed(tgt_in) * math.sqrt(self.d) + positions(t, self.d)
        causal = nn.Transformer.generate_square_subsequent_mask(t)
        return self.output(self.net(x, y, tgt_mask=causal, tgt_is_causal=True))

    # Decoding: nn.Transformer keeps no cache, so each step runs the decoder over the prefix.
    def encode(self, src):
        x = self.src_embed(src) * math.sqrt(self.d) + positions(src.shape[1], self.d)
        return self.net.encoder(x)

    def start(self, enc):
        return ()

    def step(self, enc, state, prefix):
        t = prefix.shape[1]
        y = self.tgt_embed(prefix) * math.sqrt(self.d) + positions(t, self.d)
        causal = nn.Transformer.generate_square_subsequent_mask(t)
        out = self.net.decoder(y, enc, tgt_mask=causal, tgt_is_causal=True)
        return F.log_softmax(self.output(out[:, -1]), 1), ()

    def select_memory(self, enc, rows):
        return enc[rows]

    def select_state(self, state, rows):
        return ()


BOS, EOS = 1, 2


def greedy(model, src, max_len):
    """Greedy decoding of a batch, until every row has ended or max_len tokens."""
    enc = model.encode(src)
    state = model.start(enc)
    prefix = torch.full((src.shape[0], 1), BOS, dtype=torch.long)
    done = torch.zeros(src.shape[0], dtype=torch.bool)
    for _ in range(max_len):
        logp, state = model.step(enc, state, prefix)
        best = logp.argmax(1)
        prefix = torch.cat([prefix, best[:, None]], 1)
        done |= best == EOS
        if bool(done.all()):
            break
    return prefix


def beam_search(model, src, beam, alpha, max_len):
    """Beam search for one source (1, S): `beam` live hypotheses, the finished one with the
    best log p / ((5 + len) / 6)^alpha."""
    enc0 = model.encode(src)
    enc, state, enc_rows = enc0, model.start(enc0), 1
    prefix = torch.full((1, 1), BOS, dtype=torch.long)
    scores = torch.zeros(1)
    finished = []
    for t in range(max_len):
        logp, state = model.step(enc, state, prefix)
        v = logp.shape[1]
        top, idx = (scores[:, None] + logp).view(-1).topk(min(beam, logp.numel()))
        parents, toks = idx // v, idx % v
        keep = []
        for k in range(len(top)):
            if int(toks[k]) == EOS or t + 1 == max_len:
                length = t + 1 if int(toks[k]) == EOS else t + 2
                finished.append((float(top[k]) / ((5 + length) / 6) ** alpha, prefix[parents[k]]))
            else:
                keep.append(k)
        if len(finished) >= beam or not keep:
            break
        keep = torch.tensor(keep)
        rows = parents[keep]
        prefix = torch.cat([prefix[rows], toks[keep][:, None]], 1)
        scores = top[keep]
        state = model.select_state(state, rows)
        if enc_rows != len(rows):
            enc_rows = len(rows)
            enc = model.select_memory(enc0, torch.zeros(enc_rows, dtype=torch.long))
    return max(finished, key=lambda f: f[0])[1]


def decoding_per_s(model, src, a):
    """Sources decoded per second (median over steps of the whole batch), under no_grad; at
    most --tgt-len + 1 tokens each (the training target and its end mark)."""
    model.eval()
    max_len = a.tgt_len + 1
    times = []
    with torch.no_grad():
        for i in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            if a.inference == "greedy":
                greedy(model, src, max_len)
            else:
                for row in range(src.shape[0]):
                    beam_search(model, src[row:row + 1], a.beam, a.alpha, max_len)
            if i >= a.warmup:
                times.append(time.perf_counter() - t0)
    times.sort()
    return src.shape[0] / times[len(times) // 2]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", choices=["seq2seq", "transformer"], default="seq2seq")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--src-vocab", type=int, default=2000)
    p.add_argument("--tgt-vocab", type=int, default=2000)
    p.add_argument("--src-len", type=int, default=16)
    p.add_argument("--tgt-len", type=int, default=16)
    p.add_argument("--embed", type=int, default=128)
    p.add_argument("--encoder", type=int, default=128)
    p.add_argument("--decoder", type=int, default=256)
    p.add_argument("--attention-hidden", type=int, default=256)
    p.add_argument("--no-attention", action="store_true")
    p.add_argument("--no-input-feeding", action="store_true")
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--ff", type=int, default=1024)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--inference", choices=["greedy", "beam"], help="time decoding instead of training")
    p.add_argument("--beam", type=int, default=5)
    p.add_argument("--alpha", type=float, default=0.6)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    if a.model == "seq2seq":
        model = Seq2seq(a.src_vocab, a.tgt_vocab, a.embed, a.encoder, a.decoder, a.attention_hidden,
                        not a.no_attention, not a.no_input_feeding)
    else:
        model = Transformer(a.src_vocab, a.tgt_vocab, a.d_model, a.heads, a.ff, a.layers, a.layers)
    src = torch.randint(4, a.src_vocab, (a.batch, a.src_len))
    tgt = torch.randint(4, a.tgt_vocab, (a.batch, a.tgt_len))
    tgt_in = torch.cat([torch.ones(a.batch, 1, dtype=torch.long), tgt], 1)  # <s> y
    tgt_out = torch.cat([tgt, torch.full((a.batch, 1), 2, dtype=torch.long)], 1)  # y </s>
    if a.inference:
        print(json.dumps({"per_s": decoding_per_s(model, src, a), "threads": a.threads, "torch": torch.__version__}))
        return
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad()
        logits = model(src, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        loss.item()
        if i >= a.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    tokens = a.batch * (a.tgt_len + 1)
    print(json.dumps({"per_s": tokens / times[len(times) // 2], "threads": a.threads, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
