//! Decoding for any encoder-decoder that predicts one token at a time ([`StepDecoder`]): greedy
//! search over a batch, and beam search with length normalisation (Wu et al. 2016,
//! `lp(Y) = ((5 + |Y|) / 6)^α`).
//!
//! Both return the tokens (without start and end marks), the summed log-probability and, when
//! the model attends, the attention weights of each produced token over the source — the rows
//! of an alignment picture.

use burn::tensor::{Device, Int, Tensor, TensorData};

use crate::data::text::{BOS, EOS, PAD};

/// Source ids `(B, S)` padded with [`PAD`], and the lengths.
pub fn pad_batch(seqs: &[Vec<u32>], device: &Device) -> (Tensor<2, Int>, Vec<usize>) {
    let s = seqs.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let ids: Vec<i64> =
        seqs.iter().flat_map(|q| (0..s).map(move |j| q.get(j).copied().unwrap_or(PAD) as i64)).collect();
    (Tensor::from_data(TensorData::new(ids, [seqs.len(), s]), device), seqs.iter().map(|q| q.len().max(1)).collect())
}

/// One decoder step's results for `L` rows.
#[derive(Debug, Clone)]
pub struct StepOutput<S> {
    /// `log p(y_t | y_<t, x)`, `(L, V)`.
    pub log_probs: Tensor<2>,
    /// The state after the step.
    pub state: S,
    /// Attention over the source, `(L, S)` (the last layer's, averaged over heads, for a
    /// Transformer), if the model attends.
    pub weights: Option<Tensor<2>>,
}

/// A model that encodes a source batch and then predicts the target one token at a time.
pub trait StepDecoder {
    /// The encoded source.
    type Memory: Clone;
    /// The decoder's recurrent state (or nothing, for a model that reads the prefix).
    type State: Clone;
    /// Encodes `src (B, S)` padded, with its lengths.
    fn encode(&self, src: Tensor<2, Int>, lengths: &[usize]) -> Self::Memory;
    /// The state before the first token.
    fn start(&self, memory: &Self::Memory) -> Self::State;
    /// One step: `prefix` holds each row's tokens so far (start mark first), `last (L)` their
    /// last tokens.
    fn step(
        &self,
        memory: &Self::Memory,
        state: Self::State,
        prefix: &[Vec<u32>],
        last: Tensor<1, Int>,
    ) -> StepOutput<Self::State>;
    /// The memory rows `rows`.
    fn select_memory(&self, memory: &Self::Memory, rows: Tensor<1, Int>) -> Self::Memory;
    /// The state rows `rows`.
    fn select_state(&self, state: Self::State, rows: Tensor<1, Int>) -> Self::State;
}

/// A decoded sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    /// Tokens, without start and end marks.
    pub tokens: Vec<u32>,
    /// Summed log-probability of the tokens and the end mark (if produced).
    pub log_prob: f32,
    /// Attention weights over the source for each produced token (and the end mark).
    pub weights: Vec<Vec<f32>>,
}

fn rows_tensor(rows: &[usize], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = rows.iter().map(|&r| r as i64).collect();
    Tensor::from_data(TensorData::new(v, [rows.len()]), device)
}

fn host(t: Tensor<2>) -> (Vec<f32>, usize) {
    let cols = t.dims()[1];
    (t.into_data().convert::<f32>().try_to_vec().expect("f32 data"), cols)
}

/// Greedy decoding of a batch of sources, at most `max_len` tokens each.
pub fn greedy<M: StepDecoder>(model: &M, sources: &[Vec<u32>], max_len: usize, device: &Device) -> Vec<Hypothesis> {
    let b = sources.len();
    if b == 0 {
        return vec![];
    }
    let (src, lengths) = pad_batch(sources, device);
    let memory = model.encode(src, &lengths);
    let mut state = model.start(&memory);
    let mut prefix = vec![vec![BOS]; b];
    let mut out: Vec<Hypothesis> = vec![Hypothesis { tokens: vec![], log_prob: 0.0, weights: vec![] }; b];
    let mut done = vec![false; b];
    for _ in 0..max_len {
        let last: Vec<usize> = prefix.iter().map(|p| *p.last().expect("prefix") as usize).collect();
        let step = model.step(&memory, state, &prefix, rows_tensor(&last, device));
        state = step.state;
        let (lp, v) = host(step.log_probs);
        let weights = step.weights.map(host);
        for r in 0..b {
            let row = &lp[r * v..(r + 1) * v];
            let (best, &score) =
                row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).expect("non-empty vocabulary");
            prefix[r].push(best as u32);
            if done[r] {
                continue;
            }
            out[r].log_prob += score;
            if let Some((w, s)) = &weights {
                out[r].weights.push(w[r * s..(r + 1) * s].to_vec());
            }
            if best as u32 == EOS {
                done[r] = true;
            } else {
                out[r].tokens.push(best as u32);
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
    }
    out
}

/// Wu et al.'s length penalty `((5 + len) / 6)^α`.
pub fn length_penalty(len: usize, alpha: f32) -> f32 {
    ((5.0 + len as f32) / 6.0).powf(alpha)
}

/// Beam search for one source: `beam` hypotheses kept per step, the finished one with the best
/// `log p / lp(Y)` returned (`alpha = 0`: no length normalisation).
pub fn beam_search<M: StepDecoder>(
    model: &M,
    source: &[u32],
    beam: usize,
    alpha: f32,
    max_len: usize,
    device: &Device,
) -> Hypothesis {
    let beam = beam.max(1);
    let (src, lengths) = pad_batch(&[source.to_vec()], device);
    let base = model.encode(src, &lengths);
    let mut state = model.start(&base);
    let mut memory = base.clone();
    let mut memory_rows = 1;
    let mut live: Vec<(Vec<u32>, Hypothesis)> =
        vec![(vec![BOS], Hypothesis { tokens: vec![], log_prob: 0.0, weights: vec![] })];
    let mut finished: Vec<(f32, Hypothesis)> = Vec::new();
    for t in 0..max_len {
        let prefix: Vec<Vec<u32>> = live.iter().map(|(p, _)| p.clone()).collect();
        let last: Vec<usize> = prefix.iter().map(|p| *p.last().expect("prefix") as usize).collect();
        let step = model.step(&memory, state, &prefix, rows_tensor(&last, device));
        let (lp, v) = host(step.log_probs);
        let weights = step.weights.map(host);
        // The best `beam` extensions over all live hypotheses.
        let mut cand: Vec<(f32, usize, usize)> = Vec::with_capacity(live.len() * v);
        for (i, (_, h)) in live.iter().enumerate() {
            cand.extend(lp[i * v..(i + 1) * v].iter().enumerate().map(|(tok, &l)| (h.log_prob + l, i, tok)));
        }
        let k = beam.min(cand.len());
        cand.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        cand.truncate(k);
        cand.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut next = Vec::new();
        let mut parents = Vec::new();
        for (score, i, tok) in cand {
            let (p, h) = &live[i];
            let mut h = h.clone();
            h.log_prob = score;
            if let Some((w, s)) = &weights {
                h.weights.push(w[i * s..(i + 1) * s].to_vec());
            }
            if tok as u32 == EOS || t + 1 == max_len {
                if tok as u32 != EOS {
                    h.tokens.push(tok as u32);
                }
                let len = h.tokens.len() + 1;
                finished.push((score / length_penalty(len, alpha), h));
            } else {
                h.tokens.push(tok as u32);
                let mut p = p.clone();
                p.push(tok as u32);
                next.push((p, h));
                parents.push(i);
            }
        }
        if finished.len() >= beam || next.is_empty() {
            break;
        }
        let rows = rows_tensor(&parents, device);
        state = model.select_state(step.state, rows);
        if memory_rows != parents.len() {
            memory_rows = parents.len();
            memory = model.select_memory(&base, rows_tensor(&vec![0; memory_rows], device));
        }
        live = next;
    }
    finished.into_iter().max_by(|a, b| a.0.total_cmp(&b.0)).map(|(_, h)| h).unwrap_or(Hypothesis {
        tokens: vec![],
        log_prob: f32::NEG_INFINITY,
        weights: vec![],
    })
}
