//! Associative (content-based) attention: a query scores every position of a memory by
//! content, a softmax over the scores gives the weights, and the context is the weighted sum
//! of the values.
//!
//! Score functions, for a query `s` (the decoder state) and a key `h_j` (an encoder state):
//! - additive (Bahdanau et al. 2014, eq. 6 and appendix A.1.2): `vᵀ tanh(W s + U h_j)`;
//! - dot (Luong et al. 2015, eq. 8): `sᵀ h_j`;
//! - general (Luong et al. 2015, eq. 8): `sᵀ W h_j`;
//! - scaled dot-product (Vaswani et al. 2017, eq. 1): `sᵀ h_j / √d`.
//!
//! Padded positions are excluded by a boolean mask (`true` = padding): their scores are set to
//! `−∞` before the softmax, so their weights are exactly zero and no gradient flows to them.
//! Every function returns the weights as well as the context, for alignment pictures.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Device, Tensor};
use serde::{Deserialize, Serialize};

/// Softmax over the last axis with masked positions (`mask == true`) given exactly zero weight.
/// Every row must keep at least one unmasked position.
pub fn masked_softmax<const D: usize>(scores: Tensor<D>, mask: Option<Tensor<D, Bool>>) -> Tensor<D> {
    let scores = match mask {
        Some(m) => scores.mask_fill(m, f32::NEG_INFINITY),
        None => scores,
    };
    softmax(scores, D - 1)
}

/// `Σ_j a_j v_j`: weights `(B, S)` and values `(B, S, D)` → context `(B, D)`.
pub fn weighted_sum(weights: Tensor<2>, values: Tensor<3>) -> Tensor<2> {
    let [b, _, d] = values.dims();
    weights.unsqueeze_dim::<3>(1).matmul(values).reshape([b, d]) // (B, 1, S) · (B, S, D)
}

/// The padding mask `(B, S)` of a batch of sequences of the given lengths (`true` past the end).
pub fn length_mask(lengths: &[usize], s: usize, device: &Device) -> Tensor<2, Bool> {
    let flags: Vec<bool> = lengths.iter().flat_map(|&l| (0..s).map(move |j| j >= l)).collect();
    Tensor::from_bool(burn::tensor::TensorData::new(flags, [lengths.len(), s]), device)
}

/// The score function of a [`ContentAttention`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Score {
    /// `vᵀ tanh(W s + U h_j)` (Bahdanau).
    #[default]
    Additive,
    /// `sᵀ h_j` (Luong); query and key widths must agree.
    Dot,
    /// `sᵀ W h_j` (Luong).
    General,
    /// `sᵀ h_j / √d` (Vaswani); query and key widths must agree.
    ScaledDot,
}

/// Content attention of a query `(B, Dq)` over a memory `(B, S, Dk)`, with one of the
/// [`Score`] functions and its weights.
#[derive(Module, Debug)]
pub struct ContentAttention {
    /// Additive: `W` (query → A); general: unused.
    w_query: Option<Linear>,
    /// Additive: `U` (key → A); general: `W` (key → Dq).
    w_key: Option<Linear>,
    /// Additive: `v` (A → 1).
    v: Option<Linear>,
    #[module(skip)]
    score: Score,
}

/// The memory's keys, projected once per sequence (`U h_j` for additive, `W h_j` for general).
#[derive(Debug, Clone)]
pub struct Keys {
    /// `(B, S, ·)`.
    pub keys: Tensor<3>,
}

impl ContentAttention {
    /// Attention from queries of width `query` to keys of width `key`; `hidden` is the width of
    /// the additive score's hidden layer (ignored otherwise).
    pub fn new(score: Score, query: usize, key: usize, hidden: usize, device: &Device) -> Self {
        let lin = |i, o, bias| LinearConfig::new(i, o).with_bias(bias).init(device);
        match score {
            Score::Additive => Self {
                w_query: Some(lin(query, hidden, true)),
                w_key: Some(lin(key, hidden, false)),
                v: Some(lin(hidden, 1, false)),
                score,
            },
            Score::General => Self { w_query: None, w_key: Some(lin(key, query, false)), v: None, score },
            Score::Dot | Score::ScaledDot => {
                assert_eq!(query, key, "{score:?} attention needs equal query and key widths");
                Self { w_query: None, w_key: None, v: None, score }
            }
        }
    }

    /// The score function.
    pub fn score(&self) -> Score {
        self.score
    }

    /// Projects the memory `(B, S, Dk)` once; reuse the result for every query.
    pub fn keys(&self, memory: Tensor<3>) -> Keys {
        match &self.w_key {
            Some(w) => Keys { keys: w.forward(memory) },
            None => Keys { keys: memory },
        }
    }

    /// Unnormalised scores `(B, S)` of a query `(B, Dq)`.
    pub fn scores(&self, query: Tensor<2>, keys: &Keys) -> Tensor<2> {
        let [b, s, d] = keys.keys.dims();
        match self.score {
            Score::Additive => {
                let wq = crate::fused::linear(query, self.w_query.as_ref().expect("additive query layer")); // (B, A)
                let v = self.v.as_ref().expect("additive v").weight.val(); // (A, 1)
                let a = v.dims()[0];
                // vᵀ tanh(U k_s + W q), fused on the CPU.
                crate::fused::additive_scores(keys.keys.clone(), wq, v.reshape([a])) // (B, S)
            }
            Score::Dot | Score::General | Score::ScaledDot => {
                let dot = keys.keys.clone().matmul(query.unsqueeze_dim::<3>(2)).reshape([b, s]); // (B, S, D) · (B, D, 1)
                if self.score == Score::ScaledDot { dot / (d as f32).sqrt() } else { dot }
            }
        }
    }

    /// Context `(B, Dv)` and weights `(B, S)` of a query `(B, Dq)` over `values (B, S, Dv)`;
    /// `mask (B, S)` is `true` at padded positions.
    pub fn forward(
        &self,
        query: Tensor<2>,
        keys: &Keys,
        values: Tensor<3>,
        mask: Option<Tensor<2, Bool>>,
    ) -> (Tensor<2>, Tensor<2>) {
        let weights = masked_softmax(self.scores(query, keys), mask);
        (weighted_sum(weights.clone(), values), weights)
    }
}

/// Scaled dot-product attention (Vaswani et al. 2017, eq. 1), batched over heads:
/// `q (B, H, T, d)`, `k (B, H, S, d)`, `v (B, H, S, dv)`, `mask (B, H, T, S)` (`true` = blocked)
/// → output `(B, H, T, dv)` and weights `(B, H, T, S)`.
pub fn scaled_dot_product(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    mask: Option<Tensor<4, Bool>>,
) -> (Tensor<4>, Tensor<4>) {
    let d = q.dims()[3];
    let scores = q.matmul(k.swap_dims(2, 3)) / (d as f32).sqrt(); // (B, H, T, S)
    let weights = masked_softmax(scores, mask);
    (weights.clone().matmul(v), weights)
}

/// Multi-head attention (Vaswani et al. 2017, section 3.2.2): `h` heads of scaled dot-product
/// attention over learned projections, concatenated and projected back.
#[derive(Module, Debug)]
pub struct MultiHeadAttention {
    w_q: Linear,
    w_k: Linear,
    w_v: Linear,
    w_o: Linear,
    #[module(skip)]
    heads: usize,
}

impl MultiHeadAttention {
    /// `heads` heads over a model width `d_model` (divisible by `heads`).
    pub fn new(d_model: usize, heads: usize, device: &Device) -> Self {
        assert!(heads > 0 && d_model.is_multiple_of(heads), "d_model {d_model} is not divisible by {heads} heads");
        let lin = || LinearConfig::new(d_model, d_model).init(device);
        Self { w_q: lin(), w_k: lin(), w_v: lin(), w_o: lin(), heads }
    }

    /// Heads.
    pub fn heads(&self) -> usize {
        self.heads
    }

    fn split(&self, x: Tensor<3>) -> Tensor<4> {
        let [b, t, d] = x.dims();
        x.reshape([b, t, self.heads, d / self.heads]).swap_dims(1, 2) // (B, H, T, d/H)
    }

    /// Queries `(B, T, D)` attend to `memory (B, S, D)`; `mask (B, T, S)` is `true` where a
    /// query may not look (padding, or the future in a decoder). Returns `(B, T, D)` and the
    /// weights `(B, H, T, S)`.
    pub fn forward(
        &self,
        query: Tensor<3>,
        memory: Tensor<3>,
        mask: Option<Tensor<3, Bool>>,
    ) -> (Tensor<3>, Tensor<4>) {
        let [b, t, d] = query.dims();
        let s = memory.dims()[1];
        let q = self.split(self.w_q.forward(query));
        let k = self.split(self.w_k.forward(memory.clone()));
        let v = self.split(self.w_v.forward(memory));
        let mask = mask.map(|m| m.unsqueeze_dim::<4>(1).expand([b, self.heads, t, s]));
        let (out, weights) = scaled_dot_product(q, k, v, mask);
        let out = out.swap_dims(1, 2).reshape([b, t, d]); // concatenate the heads
        (self.w_o.forward(out), weights)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{grad_check, uniform};
    use crate::testing::{tensor as t3, values as vec_of};
    use burn::tensor::TensorData;

    #[test]
    fn masked_positions_get_exactly_zero_weight_and_rows_sum_to_one() {
        let dev = Device::flex();
        let scores = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 50.0, -3.0, 0.5, 2.0, 80.0], [2, 3]), &dev);
        let mask = length_mask(&[1, 2], 3, &dev);
        let w = vec_of(masked_softmax(scores, Some(mask)));
        assert_eq!(&w[..3], &[1.0, 0.0, 0.0]);
        assert_eq!(w[5], 0.0);
        assert!((w[3] + w[4] - 1.0).abs() < 1e-6 && w[4] > w[3]);
    }

    #[test]
    fn every_score_gives_shapes_and_ignores_padding_content() {
        let dev = Device::flex();
        for (k, score) in [Score::Additive, Score::Dot, Score::General, Score::ScaledDot].into_iter().enumerate() {
            let att = crate::device::seeded(&dev, 1 + k as u64, || ContentAttention::new(score, 4, 4, 5, &dev));
            let mut mem = uniform(2 * 3 * 4, -1.0, 1.0, 2);
            let query = Tensor::<2>::from_data(TensorData::new(uniform(8, -1.0, 1.0, 3), [2, 4]), &dev);
            let mask = || Some(length_mask(&[2, 3], 3, &dev));
            let m = t3(mem.clone(), [2, 3, 4], &dev);
            let (ctx, w) = att.forward(query.clone(), &att.keys(m.clone()), m, mask());
            assert_eq!(ctx.dims(), [2, 4]);
            assert_eq!(w.dims(), [2, 3]);
            // Changing the padded position of sequence 0 changes nothing.
            mem[2 * 4..3 * 4].fill(100.0);
            let m2 = t3(mem, [2, 3, 4], &dev);
            let (ctx2, w2) = att.forward(query, &att.keys(m2.clone()), m2, mask());
            let (a, b) = (vec_of(ctx), vec_of(ctx2));
            assert_eq!(&a[..4], &b[..4], "{score:?}");
            assert_eq!(vec_of(w.clone())[2], 0.0);
            assert_eq!(vec_of(w2)[2], 0.0);
        }
    }

    #[test]
    fn content_attention_gradients_match_finite_differences() {
        let dev = Device::flex();
        for (k, score) in [Score::Additive, Score::Dot, Score::General, Score::ScaledDot].into_iter().enumerate() {
            let att = crate::device::seeded(&dev, 10 + k as u64, || ContentAttention::new(score, 3, 3, 4, &dev));
            let (b, s, d) = (2, 4, 3);
            let inputs = [uniform(b * d, -1.0, 1.0, 5), uniform(b * s * d, -1.0, 1.0, 6)];
            grad_check(&inputs, 1e-3, 1e-2, |x| {
                let [q, m]: [Tensor<1>; 2] = x.try_into().unwrap();
                let dev = q.device();
                let att = att.clone().fork(&dev);
                let m = m.reshape([b, s, d]);
                let (ctx, w) =
                    att.forward(q.reshape([b, d]), &att.keys(m.clone()), m, Some(length_mask(&[4, 2], s, &dev)));
                Tensor::cat(vec![ctx.reshape([b * d]), w.reshape([b * s])], 0)
            });
        }
    }

    #[test]
    fn multi_head_attention_shapes_mask_and_gradients() {
        let dev = Device::flex();
        let mha = crate::device::seeded(&dev, 4, || MultiHeadAttention::new(4, 2, &dev));
        let (b, t, s, d) = (2, 3, 4, 4);
        // A causal-and-padding mask: query i sees keys ≤ i, sequence 1 has 2 keys.
        let flags: Vec<bool> =
            (0..b).flat_map(|bi| (0..t).flat_map(move |i| (0..s).map(move |j| j > i || (bi == 1 && j >= 2)))).collect();
        let mask = |dev: &Device| Tensor::<3, Bool>::from_bool(TensorData::new(flags.clone(), [b, t, s]), dev);
        let q = Tensor::<3>::from_data(TensorData::new(uniform(b * t * d, -1.0, 1.0, 7), [b, t, d]), &dev);
        let m = Tensor::<3>::from_data(TensorData::new(uniform(b * s * d, -1.0, 1.0, 8), [b, s, d]), &dev);
        let (out, w) = mha.forward(q, m, Some(mask(&dev)));
        assert_eq!(out.dims(), [b, t, d]);
        assert_eq!(w.dims(), [b, 2, t, s]);
        let w = vec_of(w);
        for bi in 0..b {
            for h in 0..2 {
                for i in 0..t {
                    let row = &w[((bi * 2 + h) * t + i) * s..][..s];
                    for (j, &x) in row.iter().enumerate() {
                        if flags[(bi * t + i) * s + j] {
                            assert_eq!(x, 0.0);
                        }
                    }
                    assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
                }
            }
        }
        let inputs = [uniform(b * t * d, -1.0, 1.0, 7), uniform(b * s * d, -1.0, 1.0, 8)];
        grad_check(&inputs, 1e-3, 1e-2, |x| {
            let [q, m]: [Tensor<1>; 2] = x.try_into().unwrap();
            let dev = q.device();
            let mha = mha.clone().fork(&dev);
            let (out, w) = mha.forward(q.reshape([b, t, d]), m.reshape([b, s, d]), Some(mask(&dev)));
            Tensor::cat(vec![out.reshape([b * t * d]), w.reshape([b * 2 * t * s])], 0)
        });
    }
}
