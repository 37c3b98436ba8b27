//! An LSTM encoder-decoder with content attention (Bahdanau et al. 2014; Luong et al. 2015),
//! and the same network without attention (Cho et al. 2014's RNN encoder-decoder).
//!
//! - Encoder: a bidirectional LSTM over the source embeddings; the annotation of word `j` is
//!   `h_j = [→h_j; ←h_j]` (Bahdanau, section 3.2). Padded steps leave the state unchanged, so
//!   each direction sees only its own sentence.
//! - Decoder start: `s_0 = tanh(W_init [→h_S; ←h_1])` (Bahdanau, appendix A.2.2).
//! - Decoder step (Luong's global attention, section 3.1): `s_t = LSTM([E y_{t−1}; h̃_{t−1}], s_{t−1})`
//!   (the `h̃_{t−1}` input is Luong's *input feeding*, optional), weights
//!   `a_t = softmax(score(s_t, h_j))` over the unpadded source, context `c_t = Σ_j a_tj h_j`,
//!   attentional state `h̃_t = tanh(W_c [c_t; s_t])` (eq. 5), `p(y_t) = softmax(W_s h̃_t)` (eq. 6).
//!   With the additive score this is Bahdanau's score function inside Luong's step.
//! - Without attention the context is the fixed summary `c = [→h_S; ←h_1]` at every step,
//!   with the same layer sizes (Cho et al. 2014 feed the summary to every step too).

use crate::defaults;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::decoding::{StepDecoder, StepOutput};
use super::lstm::LstmCell;
use crate::attention::content::{ContentAttention, Keys, Score, length_mask};

/// Sizes and choices of a [`Seq2seq`] model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seq2seqConfig {
    /// Source vocabulary size.
    pub src_vocab: usize,
    /// Target vocabulary size.
    pub tgt_vocab: usize,
    /// Embedding width (source and target).
    pub embed: usize,
    /// Hidden units of each encoder direction.
    pub encoder: usize,
    /// Hidden units of the decoder.
    pub decoder: usize,
    /// The score function, or none for the no-attention baseline.
    pub attention: Option<Score>,
    /// Hidden width of the additive score.
    #[serde(default = "defaults::usize::<128>")]
    pub attention_hidden: usize,
    /// Feed `h̃_{t−1}` to the decoder's next step (Luong's input feeding).
    #[serde(default = "defaults::yes")]
    pub input_feeding: bool,
}

impl Seq2seqConfig {
    /// Builds the model.
    pub fn init(&self, device: &Device) -> Seq2seq {
        let embed = |n| {
            EmbeddingConfig::new(n, self.embed)
                .with_initializer(Initializer::Normal { mean: 0.0, std: 0.1 })
                .init(device)
        };
        let annotation = 2 * self.encoder;
        let feed = if self.input_feeding { self.decoder } else { 0 };
        Seq2seq {
            src_embed: embed(self.src_vocab),
            tgt_embed: embed(self.tgt_vocab),
            enc_fwd: LstmCell::new(self.embed, self.encoder, device),
            enc_bwd: LstmCell::new(self.embed, self.encoder, device),
            init: LinearConfig::new(annotation, self.decoder).init(device),
            dec: LstmCell::new(self.embed + feed, self.decoder, device),
            attention: self
                .attention
                .map(|s| ContentAttention::new(s, self.decoder, annotation, self.attention_hidden, device)),
            combine: LinearConfig::new(annotation + self.decoder, self.decoder).init(device),
            output: LinearConfig::new(self.decoder, self.tgt_vocab).init(device),
            input_feeding: self.input_feeding,
        }
    }
}

/// The encoder-decoder; see the module documentation.
#[derive(Module, Debug)]
pub struct Seq2seq {
    src_embed: Embedding,
    tgt_embed: Embedding,
    enc_fwd: LstmCell,
    enc_bwd: LstmCell,
    init: Linear,
    dec: LstmCell,
    attention: Option<ContentAttention>,
    combine: Linear,
    output: Linear,
    #[module(skip)]
    input_feeding: bool,
}

/// The encoded source.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Annotations `(B, S, 2E)`.
    pub memory: Tensor<3>,
    /// Projected keys of the attention (if any).
    pub keys: Option<Keys>,
    /// `true` at padded source positions, `(B, S)`.
    pub mask: Tensor<2, Bool>,
    /// `[→h_S; ←h_1]`, `(B, 2E)`.
    pub summary: Tensor<2>,
}

/// The decoder's recurrent state.
#[derive(Debug, Clone)]
pub struct DecoderState {
    /// LSTM hidden `(B, D)`.
    pub h: Tensor<2>,
    /// LSTM cell `(B, D)`.
    pub c: Tensor<2>,
    /// `h̃_{t−1}` `(B, D)`.
    pub feed: Tensor<2>,
}

impl Seq2seq {
    /// Whether the decoder attends.
    pub fn attends(&self) -> bool {
        self.attention.is_some()
    }

    /// Runs the bidirectional encoder over `src (B, S)` with the given lengths.
    pub fn encode(&self, src: Tensor<2, Int>, lengths: &[usize]) -> Encoded {
        let device = src.device();
        let [b, s] = src.dims();
        let x = self.src_embed.forward(src); // (B, S, E_emb)
        let hidden = self.enc_fwd.hidden();
        // pad (B, S): 1 where a position is padding; the state is held through it.
        let pad: Vec<f32> = lengths.iter().flat_map(|&l| (0..s).map(move |j| if j >= l { 1.0 } else { 0.0 })).collect();
        let pad = Tensor::<2>::from_data(TensorData::new(pad, [b, s]), &device);
        let zeros = || Tensor::<2>::zeros([b, hidden], &device);
        // Each direction as one sequence: the backward one reads the flipped source (its
        // padding comes first then, and the state stays zero through it).
        let (fwd, (fwd_last, _)) = self.enc_fwd.sequence(x.clone(), zeros(), zeros(), Some(pad.clone()));
        let (bwd, (h, _)) = self.enc_bwd.sequence(x.flip([1]), zeros(), zeros(), Some(pad.flip([1])));
        let bwd = bwd.flip([1]);
        let summary = Tensor::cat(vec![fwd_last, h], 1); // (B, 2E)
        let memory = Tensor::cat(vec![fwd, bwd], 2); // (B, S, 2E)
        let keys = self.attention.as_ref().map(|a| a.keys(memory.clone()));
        Encoded { memory, keys, mask: length_mask(lengths, s, &device), summary }
    }

    /// The decoder's first state.
    pub fn start(&self, enc: &Encoded) -> DecoderState {
        let h = crate::ops::tanh(self.init.forward(enc.summary.clone()));
        let zeros = h.zeros_like();
        DecoderState { c: zeros.clone(), feed: zeros, h }
    }

    /// One decoder step on the previous tokens' embeddings `(B, E)`: the new state, `h̃_t`
    /// `(B, D)` and the attention weights `(B, S)` (none without attention).
    fn step_embedded(&self, enc: &Encoded, y: Tensor<2>, st: DecoderState) -> (DecoderState, Option<Tensor<2>>) {
        let input = if self.input_feeding { Tensor::cat(vec![y, st.feed], 1) } else { y };
        let (h, c) = self.dec.step(input, st.h, st.c);
        let (context, weights) = match (&self.attention, &enc.keys) {
            (Some(att), Some(keys)) => {
                let (ctx, w) = att.forward(h.clone(), keys, enc.memory.clone(), Some(enc.mask.clone()));
                (ctx, Some(w))
            }
            _ => (enc.summary.clone(), None),
        };
        let feed = crate::ops::tanh(crate::fused::linear2(context, h.clone(), &self.combine)); // h̃_t = tanh(W_c [c_t; s_t])
        (DecoderState { h, c, feed }, weights)
    }

    /// Teacher forcing: logits `(B, T, V)` for the target inputs `tgt_in (B, T)` (start mark
    /// first), and the attention weights of each step `(B, T, S)` if the model attends.
    pub fn forward(&self, enc: &Encoded, tgt_in: Tensor<2, Int>) -> (Tensor<3>, Option<Tensor<3>>) {
        let [b, t] = tgt_in.dims();
        let y = self.tgt_embed.forward(tgt_in); // (B, T, E)
        let e = y.dims()[2];
        let mut st = self.start(enc);
        let mut outs = Vec::with_capacity(t);
        let mut weights = Vec::new();
        for i in 0..t {
            // Slices of the (B, T, E) embeddings: each slice's backward writes a full-size
            // gradient, so slicing a wider tensor here (the embeddings already through the
            // decoder's input weights, (B, T, 4D)) measured slower than the per-step product.
            let (next, w) = self.step_embedded(enc, y.clone().narrow(1, i, 1).reshape([b, e]), st);
            outs.push(next.feed.clone());
            weights.extend(w);
            st = next;
        }
        let d = outs[0].dims()[1];
        let h = Tensor::stack::<3>(outs, 1).reshape([b * t, d]); // (B·T, D)
        let logits = crate::fused::linear(h, &self.output); // (B·T, V)
        let v = logits.dims()[1];
        let logits = logits.reshape([b, t, v]);
        let weights = (!weights.is_empty()).then(|| Tensor::stack::<3>(weights, 1));
        (logits, weights)
    }
}

impl StepDecoder for Seq2seq {
    type Memory = Encoded;
    type State = DecoderState;

    fn encode(&self, src: Tensor<2, Int>, lengths: &[usize]) -> Encoded {
        Seq2seq::encode(self, src, lengths)
    }

    fn start(&self, memory: &Encoded) -> DecoderState {
        Seq2seq::start(self, memory)
    }

    fn step(
        &self,
        memory: &Encoded,
        state: DecoderState,
        _prefix: &[Vec<u32>],
        last: Tensor<1, Int>,
    ) -> StepOutput<DecoderState> {
        let b = last.dims()[0];
        let y = self.tgt_embed.forward(last.reshape([b, 1]));
        let e = y.dims()[2];
        let (state, weights) = self.step_embedded(memory, y.reshape([b, e]), state);
        StepOutput { log_probs: log_softmax(crate::fused::linear(state.feed.clone(), &self.output), 1), state, weights }
    }

    fn select_memory(&self, memory: &Encoded, rows: Tensor<1, Int>) -> Encoded {
        Encoded {
            memory: memory.memory.clone().select(0, rows.clone()),
            keys: memory.keys.as_ref().map(|k| Keys { keys: k.keys.clone().select(0, rows.clone()) }),
            mask: memory.mask.clone().select(0, rows.clone()),
            summary: memory.summary.clone().select(0, rows),
        }
    }

    fn select_state(&self, state: DecoderState, rows: Tensor<1, Int>) -> DecoderState {
        DecoderState {
            h: state.h.select(0, rows.clone()),
            c: state.c.select(0, rows.clone()),
            feed: state.feed.select(0, rows),
        }
    }
}
