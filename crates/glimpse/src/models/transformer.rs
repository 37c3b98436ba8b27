//! The encoder-decoder Transformer (Vaswani et al. 2017), pre-norm (Xiong et al. 2020: layer
//! norm inside each residual branch, and once more at the end of each stack).
//!
//! - Inputs: token embeddings × √d plus sinusoidal positions (section 3.5):
//!   `PE(pos, 2i) = sin(pos / 10000^{2i/d})`, `PE(pos, 2i+1) = cos(…)`.
//! - Encoder layer: `x += MHA(LN x, LN x)` over the unpadded source, `x += FFN(LN x)`.
//! - Decoder layer: `x += MHA(LN x)` over earlier target positions (causal mask),
//!   `x += MHA(LN x, memory)` over the source (cross-attention), `x += FFN(LN x)`.
//! - `FFN(x) = W_2 relu(W_1 x)` (eq. 2); output `softmax(W LN x)`.
//!
//! The weights drawn in alignment pictures are the last decoder layer's cross-attention,
//! averaged over heads.

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::decoding::{StepDecoder, StepOutput};
use crate::attention::content::{MultiHeadAttention, length_mask};
use crate::data::text::BOS;

/// Sizes of a [`Transformer`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// Source vocabulary size.
    pub src_vocab: usize,
    /// Target vocabulary size.
    pub tgt_vocab: usize,
    /// Model width `d`.
    pub d_model: usize,
    /// Attention heads.
    pub heads: usize,
    /// Inner width of the feed-forward layers.
    pub ff: usize,
    /// Encoder layers.
    pub encoder_layers: usize,
    /// Decoder layers.
    pub decoder_layers: usize,
}

impl TransformerConfig {
    /// Builds the model.
    pub fn init(&self, device: &Device) -> Transformer {
        let d = self.d_model;
        let embed = |n| {
            EmbeddingConfig::new(n, d)
                .with_initializer(Initializer::Normal { mean: 0.0, std: (d as f64).powf(-0.5) })
                .init(device)
        };
        let ln = || LayerNormConfig::new(d).init(device);
        let ffn =
            || Ffn { w1: LinearConfig::new(d, self.ff).init(device), w2: LinearConfig::new(self.ff, d).init(device) };
        Transformer {
            src_embed: embed(self.src_vocab),
            tgt_embed: embed(self.tgt_vocab),
            encoder: (0..self.encoder_layers)
                .map(|_| EncoderLayer {
                    norm1: ln(),
                    attn: MultiHeadAttention::new(d, self.heads, device),
                    norm2: ln(),
                    ffn: ffn(),
                })
                .collect(),
            enc_norm: ln(),
            decoder: (0..self.decoder_layers)
                .map(|_| DecoderLayer {
                    norm1: ln(),
                    self_attn: MultiHeadAttention::new(d, self.heads, device),
                    norm2: ln(),
                    cross_attn: MultiHeadAttention::new(d, self.heads, device),
                    norm3: ln(),
                    ffn: ffn(),
                })
                .collect(),
            dec_norm: ln(),
            output: LinearConfig::new(d, self.tgt_vocab).init(device),
            d_model: d,
        }
    }
}

/// `W_2 relu(W_1 x)`.
#[derive(Module, Debug)]
pub struct Ffn {
    w1: Linear,
    w2: Linear,
}

impl Ffn {
    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.w2.forward(relu(self.w1.forward(x)))
    }
}

/// One pre-norm encoder layer.
#[derive(Module, Debug)]
pub struct EncoderLayer {
    norm1: LayerNorm,
    attn: MultiHeadAttention,
    norm2: LayerNorm,
    ffn: Ffn,
}

/// One pre-norm decoder layer.
#[derive(Module, Debug)]
pub struct DecoderLayer {
    norm1: LayerNorm,
    self_attn: MultiHeadAttention,
    norm2: LayerNorm,
    cross_attn: MultiHeadAttention,
    norm3: LayerNorm,
    ffn: Ffn,
}

/// The Transformer; see the module documentation.
#[derive(Module, Debug)]
pub struct Transformer {
    src_embed: Embedding,
    tgt_embed: Embedding,
    encoder: Vec<EncoderLayer>,
    enc_norm: LayerNorm,
    decoder: Vec<DecoderLayer>,
    dec_norm: LayerNorm,
    output: Linear,
    #[module(skip)]
    d_model: usize,
}

/// The encoded source.
#[derive(Debug, Clone)]
pub struct TransformerMemory {
    /// `(B, S, d)`.
    pub memory: Tensor<3>,
    /// `true` at padded source positions, `(B, S)`.
    pub mask: Tensor<2, Bool>,
}

/// Sinusoidal positions `(T, d)`.
pub fn positions(t: usize, d: usize, device: &Device) -> Tensor<2> {
    let mut pe = vec![0.0f32; t * d];
    for pos in 0..t {
        for i in 0..d {
            let angle = pos as f64 / 10_000f64.powf((2 * (i / 2)) as f64 / d as f64);
            pe[pos * d + i] = if i % 2 == 0 { angle.sin() } else { angle.cos() } as f32;
        }
    }
    Tensor::from_data(TensorData::new(pe, [t, d]), device)
}

/// `(B, T, S)` mask hiding the padded keys of `key_mask (B, S)` from every query.
fn key_mask(key_mask: &Tensor<2, Bool>, t: usize) -> Tensor<3, Bool> {
    let [b, s] = key_mask.dims();
    key_mask.clone().unsqueeze_dim::<3>(1).expand([b, t, s])
}

/// `(B, T, T)` mask hiding later positions.
fn causal_mask(b: usize, t: usize, device: &Device) -> Tensor<3, Bool> {
    let flags: Vec<bool> = (0..t).flat_map(|i| (0..t).map(move |j| j > i)).collect();
    Tensor::<2, Bool>::from_bool(TensorData::new(flags, [t, t]), device).unsqueeze_dim::<3>(0).expand([b, t, t])
}

impl Transformer {
    fn embed(&self, table: &Embedding, ids: Tensor<2, Int>) -> Tensor<3> {
        let [_, t] = ids.dims();
        let device = ids.device();
        let x = table.forward(ids) * (self.d_model as f32).sqrt();
        x + positions(t, self.d_model, &device).unsqueeze_dim::<3>(0)
    }

    /// Encodes `src (B, S)` with its lengths.
    pub fn encode(&self, src: Tensor<2, Int>, lengths: &[usize]) -> TransformerMemory {
        let [_, s] = src.dims();
        let mask = length_mask(lengths, s, &src.device());
        let mut x = self.embed(&self.src_embed, src);
        let self_mask = key_mask(&mask, s);
        for layer in &self.encoder {
            let n = layer.norm1.forward(x.clone());
            x = x + layer.attn.forward(n.clone(), n, Some(self_mask.clone())).0;
            x = x.clone() + layer.ffn.forward(layer.norm2.forward(x));
        }
        TransformerMemory { memory: self.enc_norm.forward(x), mask }
    }

    /// Teacher forcing: logits `(B, T, V)` for `tgt_in (B, T)`, and the last layer's
    /// cross-attention averaged over heads `(B, T, S)`.
    pub fn forward(&self, mem: &TransformerMemory, tgt_in: Tensor<2, Int>) -> (Tensor<3>, Option<Tensor<3>>) {
        let [b, t] = tgt_in.dims();
        let device = tgt_in.device();
        let mut x = self.embed(&self.tgt_embed, tgt_in);
        let causal = causal_mask(b, t, &device);
        let cross = key_mask(&mem.mask, t);
        let mut weights = None;
        for layer in &self.decoder {
            let n = layer.norm1.forward(x.clone());
            x = x + layer.self_attn.forward(n.clone(), n, Some(causal.clone())).0;
            let (y, w) =
                layer.cross_attn.forward(layer.norm2.forward(x.clone()), mem.memory.clone(), Some(cross.clone()));
            x = x + y;
            x = x.clone() + layer.ffn.forward(layer.norm3.forward(x));
            weights = Some(w.mean_dim(1).squeeze_dim::<3>(1)); // (B, T, S)
        }
        (self.output.forward(self.dec_norm.forward(x)), weights)
    }
}

impl StepDecoder for Transformer {
    type Memory = TransformerMemory;
    type State = ();

    fn encode(&self, src: Tensor<2, Int>, lengths: &[usize]) -> TransformerMemory {
        Transformer::encode(self, src, lengths)
    }

    fn start(&self, _memory: &TransformerMemory) {}

    /// Re-reads the whole prefix (no cache: the sequences here are short).
    fn step(
        &self,
        memory: &TransformerMemory,
        _state: (),
        prefix: &[Vec<u32>],
        last: Tensor<1, Int>,
    ) -> StepOutput<()> {
        let device = last.device();
        let (l, t) = (prefix.len(), prefix.first().map_or(1, Vec::len));
        let ids: Vec<i64> = prefix.iter().flat_map(|p| p.iter().map(|&x| x as i64)).collect();
        debug_assert!(prefix.iter().all(|p| p.len() == t && p[0] == BOS));
        let (logits, weights) = self.forward(memory, Tensor::from_data(TensorData::new(ids, [l, t]), &device));
        let v = logits.dims()[2];
        let last_logits = logits.narrow(1, t - 1, 1).reshape([l, v]);
        let weights = weights.map(|w| {
            let s = w.dims()[2];
            w.narrow(1, t - 1, 1).reshape([l, s])
        });
        StepOutput { log_probs: log_softmax(last_logits, 1), state: (), weights }
    }

    fn select_memory(&self, memory: &TransformerMemory, rows: Tensor<1, Int>) -> TransformerMemory {
        TransformerMemory {
            memory: memory.memory.clone().select(0, rows.clone()),
            mask: memory.mask.clone().select(0, rows),
        }
    }

    fn select_state(&self, _state: (), _rows: Tensor<1, Int>) {}
}
