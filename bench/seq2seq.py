"""PyTorch baseline for `glimpse bench seq2seq` and `glimpse bench transformer`: the same
encoder-decoders as ours, written the way a PyTorch user would (nn.LSTM for the bidirectional
encoder, an nn.LSTMCell decoder loop with additive attention and input feeding; nn.Transformer,
pre-norm, for the Transformer), same sizes, same batch.

Trains on a fixed random batch (every source `--src-len` tokens, every target `--tgt-len`)
with Adam and gradient clipping, and prints one JSON line:
{"per_s": target tokens per second (median step), "threads": ..., "torch": version}.
Run: python3 bench/seq2seq.py --model seq2seq --batch 64 --steps 20 --threads 2
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
