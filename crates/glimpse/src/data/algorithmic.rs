//! The algorithmic tasks of the Neural Turing Machine paper (Graves et al. 2014, §4), generated
//! from a seed: copy, repeat copy, associative recall, dynamic N-grams and priority sort.
//!
//! An [`Episode`] is a batch of equal-length sequences, time-major: `inputs (T, B, I)`,
//! `targets (T, B, O)` in `{0, 1}` (N-grams: the next bit) and `mask (T, B)`, 1 where the
//! output is scored. Every sequence of a batch has the same length, drawn once per batch.

use serde::{Deserialize, Serialize};

use super::babi;
use crate::rng::Rng;

/// A task and its sizes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Task {
    /// Copy (§4.1): read `L` random `bits`-wide vectors, a delimiter, then write them back.
    Copy {
        /// Vector width (paper: 8).
        bits: usize,
        /// Shortest training sequence.
        min_len: usize,
        /// Longest training sequence (paper: 20).
        max_len: usize,
    },
    /// Repeat copy (§4.2): a sequence and a repeat count `n`; output the sequence `n` times,
    /// then an end marker.
    RepeatCopy {
        /// Vector width (paper: 8).
        bits: usize,
        /// Shortest sequence.
        min_len: usize,
        /// Longest sequence (paper: 10).
        max_len: usize,
        /// Fewest repeats.
        min_repeats: usize,
        /// Most repeats (paper: 10); the count is fed as `n / max_repeats`.
        max_repeats: usize,
        /// The divisor of the fed count when it is not `max_repeats`: a model trained on
        /// `1..=10` repeats and tested on 20 keeps its scale with `count_scale = 10`
        /// ([`Task::with_repeats`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        count_scale: Option<usize>,
    },
    /// Associative recall (§4.3): items of `item_len` vectors, each after a delimiter; then a
    /// query item after a second delimiter; output the item that followed it.
    AssociativeRecall {
        /// Vector width (paper: 6).
        bits: usize,
        /// Vectors per item (paper: 3).
        item_len: usize,
        /// Fewest items.
        min_items: usize,
        /// Most items (paper: 6).
        max_items: usize,
    },
    /// Dynamic N-grams (§4.4): bits from a random `n`-gram table (each of the `2^(n−1)`
    /// contexts has a next-bit probability drawn from Beta(½, ½)); predict each next bit.
    NGrams {
        /// The `n` of the N-gram (paper: 6).
        n: usize,
        /// Bits per sequence (paper: 200).
        len: usize,
    },
    /// Priority sort (§4.5): `inputs` vectors, each with a priority in `[−1, 1]`; output the
    /// `outputs` highest-priority vectors, highest first.
    PrioritySort {
        /// Vector width (paper: 8).
        bits: usize,
        /// Input vectors (paper: 20).
        inputs: usize,
        /// Output vectors (paper: 16).
        outputs: usize,
    },
    /// bAbI-style question answering ([`babi`](super::babi)): a story of `min_facts..=max_facts`
    /// statements and one question, word by word; the answer is a categorical output.
    Babi {
        /// bAbI task numbers to mix (1, 2, 6, 7).
        tasks: Vec<u8>,
        /// Fewest statements per story.
        min_facts: usize,
        /// Most statements per story.
        max_facts: usize,
    },
}

/// A batch of sequences, time-major.
#[derive(Debug, Clone)]
pub struct Episode {
    /// Steps `T`.
    pub steps: usize,
    /// Batch `B`.
    pub batch: usize,
    /// `(T, B, I)`.
    pub inputs: Vec<f32>,
    /// `(T, B, O)`.
    pub targets: Vec<f32>,
    /// `(T, B)`: 1 where the output is scored.
    pub mask: Vec<f32>,
    /// The task's length parameter of this batch (sequence length, items, …).
    pub len: usize,
    /// Targets are one-hot categorical choices (scored by softmax cross-entropy), not bits.
    pub categorical: bool,
}

impl Episode {
    /// The sequences `rows` of the batch, as an episode of their own (a shard of a step).
    pub fn rows(&self, rows: std::ops::Range<usize>) -> Episode {
        let (t, b, n) = (self.steps, self.batch, rows.len());
        let take = |v: &[f32]| -> Vec<f32> {
            let w = v.len() / (t * b).max(1);
            (0..t).flat_map(|s| v[(s * b + rows.start) * w..(s * b + rows.end) * w].iter().copied()).collect()
        };
        Episode {
            steps: t,
            batch: n,
            inputs: take(&self.inputs),
            targets: take(&self.targets),
            mask: take(&self.mask),
            len: self.len,
            categorical: self.categorical,
        }
    }
}

/// Fills an `(T, B, W)` buffer.
struct Grid {
    data: Vec<f32>,
    b: usize,
    w: usize,
}

impl Grid {
    fn new(t: usize, b: usize, w: usize) -> Self {
        Self { data: vec![0.0; t * b * w], b, w }
    }
    fn set(&mut self, t: usize, b: usize, c: usize, v: f32) {
        self.data[(t * self.b + b) * self.w + c] = v;
    }
}

fn random_bits(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| (rng.next_u64() >> 63) as f32).collect()
}

impl Task {
    /// Input width `I`.
    pub fn input_size(&self) -> usize {
        match *self {
            Task::Copy { bits, .. } => bits + 1,
            Task::RepeatCopy { bits, .. } | Task::AssociativeRecall { bits, .. } | Task::PrioritySort { bits, .. } => {
                bits + 2
            }
            Task::NGrams { .. } => 1,
            Task::Babi { .. } => babi::VOCAB_SIZE,
        }
    }

    /// Whether outputs are one categorical choice per scored step (softmax over `O`) rather
    /// than `O` independent bits.
    pub fn categorical(&self) -> bool {
        matches!(self, Task::Babi { .. })
    }

    /// Output width `O`.
    pub fn output_size(&self) -> usize {
        match *self {
            Task::Copy { bits, .. } | Task::AssociativeRecall { bits, .. } | Task::PrioritySort { bits, .. } => bits,
            Task::RepeatCopy { bits, .. } => bits + 1,
            Task::NGrams { .. } => 1,
            Task::Babi { .. } => babi::VOCAB_SIZE,
        }
    }

    /// The task's short name.
    pub fn name(&self) -> &'static str {
        match self {
            Task::Copy { .. } => "copy",
            Task::RepeatCopy { .. } => "repeat-copy",
            Task::AssociativeRecall { .. } => "associative-recall",
            Task::NGrams { .. } => "n-grams",
            Task::PrioritySort { .. } => "priority-sort",
            Task::Babi { .. } => "babi",
        }
    }

    /// Repeat copy with exactly `repeats` repeats, the count still fed on the training scale
    /// (generalisation to more repeats, the NTM paper's figure 7); `None` for other tasks.
    pub fn with_repeats(&self, repeats: usize) -> Option<Task> {
        match *self {
            Task::RepeatCopy { bits, min_len, max_len, max_repeats, count_scale, .. } => Some(Task::RepeatCopy {
                bits,
                min_len,
                max_len,
                min_repeats: repeats,
                max_repeats: repeats,
                count_scale: Some(count_scale.unwrap_or(max_repeats)),
            }),
            _ => None,
        }
    }

    /// The training range of the length parameter (sequence length, items, …).
    pub fn len_range(&self) -> (usize, usize) {
        match *self {
            Task::Copy { min_len, max_len, .. } | Task::RepeatCopy { min_len, max_len, .. } => (min_len, max_len),
            Task::AssociativeRecall { min_items, max_items, .. } => (min_items, max_items),
            Task::NGrams { len, .. } => (len, len),
            Task::PrioritySort { inputs, .. } => (inputs, inputs),
            Task::Babi { min_facts, max_facts, .. } => (min_facts, max_facts),
        }
    }

    /// Checks the sizes; a clear message for impossible ones.
    pub fn validate(&self) -> Result<(), String> {
        let (lo, hi) = self.len_range();
        if lo == 0 || lo > hi {
            return Err(format!("{}: need 1 ≤ min ≤ max (got {lo}..{hi})", self.name()));
        }
        match *self {
            Task::RepeatCopy { min_repeats, max_repeats, .. } if min_repeats == 0 || min_repeats > max_repeats => {
                Err("repeat-copy: need 1 ≤ min_repeats ≤ max_repeats".into())
            }
            Task::RepeatCopy { count_scale: Some(0), .. } => Err("repeat-copy: count_scale must be ≥ 1".into()),
            Task::AssociativeRecall { item_len: 0, .. } => Err("associative-recall: item_len must be ≥ 1".into()),
            Task::AssociativeRecall { min_items: 1, .. } => Err("associative-recall: need at least 2 items".into()),
            Task::NGrams { n, .. } if !(2..=16).contains(&n) => Err("n-grams: n must be in 2..=16".into()),
            Task::PrioritySort { inputs, outputs, .. } if outputs == 0 || outputs > inputs => {
                Err("priority-sort: need 1 ≤ outputs ≤ inputs".into())
            }
            Task::Babi { ref tasks, .. } if tasks.is_empty() || tasks.iter().any(|t| ![1, 2, 6, 7].contains(t)) => {
                Err("babi: tasks must be a non-empty list of 1, 2, 6, 7".into())
            }
            _ => Ok(()),
        }
    }

    /// A batch with the length parameter drawn uniformly from `max_len`'s range (capped at
    /// `cap`, for curricula).
    pub fn sample(&self, batch: usize, cap: Option<usize>, rng: &mut Rng) -> Episode {
        let (lo, hi) = self.len_range();
        let hi = cap.map_or(hi, |c| c.clamp(lo, hi));
        let len = lo + rng.below(hi - lo + 1);
        self.sample_len(batch, len, rng)
    }

    /// A batch whose length parameter is exactly `len` (generalisation tests go beyond the
    /// training range).
    pub fn sample_len(&self, batch: usize, len: usize, rng: &mut Rng) -> Episode {
        let io = (self.input_size(), self.output_size());
        match self {
            Task::Copy { bits, .. } => copy_episode(*bits, batch, len, io, rng),
            Task::RepeatCopy { bits, min_repeats, max_repeats, count_scale, .. } => {
                // The repeat count is drawn per batch too, so every sequence has one length.
                let n = min_repeats + rng.below(max_repeats - min_repeats + 1);
                let scale = count_scale.unwrap_or(*max_repeats).max(1);
                repeat_copy_episode(*bits, n, scale, batch, len, io, rng)
            }
            Task::AssociativeRecall { bits, item_len, .. } => recall_episode(*bits, *item_len, batch, len, io, rng),
            Task::NGrams { n, .. } => ngrams_episode(*n, batch, len, rng),
            Task::PrioritySort { bits, outputs, .. } => sort_episode(*bits, *outputs, batch, len, io, rng),
            Task::Babi { tasks, .. } => babi_episode(tasks, batch, len, io, rng),
        }
    }
}

/// The inputs `(T, B, I)`, targets `(T, B, O)` and mask `(T, B, 1)` of an episode being written.
struct Frames {
    x: Grid,
    y: Grid,
    m: Grid,
    steps: usize,
    batch: usize,
}

impl Frames {
    fn new(steps: usize, batch: usize, (i, o): (usize, usize)) -> Self {
        Self {
            x: Grid::new(steps, batch, i),
            y: Grid::new(steps, batch, o),
            m: Grid::new(steps, batch, 1),
            steps,
            batch,
        }
    }

    /// The finished episode of length parameter `len`.
    fn episode(self, len: usize, categorical: bool) -> Episode {
        Episode {
            steps: self.steps,
            batch: self.batch,
            inputs: self.x.data,
            targets: self.y.data,
            mask: self.m.data,
            len,
            categorical,
        }
    }
}

/// Copy: x_1..x_L, a delimiter, then L blank steps while the copy is written.
fn copy_episode(bits: usize, batch: usize, len: usize, io: (usize, usize), rng: &mut Rng) -> Episode {
    let mut f = Frames::new(2 * len + 1, batch, io);
    for b in 0..batch {
        let seq = random_bits(rng, len * bits);
        copy_frames(&mut f, b, bits, &seq);
    }
    f.episode(len, false)
}

/// Sequence `b` of a copy episode: the `seq.len() / bits` vectors of `seq`, the delimiter,
/// then the same vectors as targets.
fn copy_frames(f: &mut Frames, b: usize, bits: usize, seq: &[f32]) {
    let len = seq.len() / bits;
    for s in 0..len {
        for c in 0..bits {
            f.x.set(s, b, c, seq[s * bits + c]);
            f.y.set(len + 1 + s, b, c, seq[s * bits + c]);
        }
        f.m.set(len + 1 + s, b, 0, 1.0);
    }
    f.x.set(len, b, bits, 1.0);
}

/// The copy episode (batch 1) of the given sequence: `rows` vectors of `bits` 0/1 values each
/// (a sequence someone typed, rather than a drawn one).
pub fn copy_episode_of(bits: usize, rows: &[Vec<f32>]) -> Episode {
    let len = rows.len();
    let seq: Vec<f32> = rows.iter().flatten().copied().collect();
    let mut f = Frames::new(2 * len + 1, 1, (bits + 1, bits));
    copy_frames(&mut f, 0, bits, &seq);
    f.episode(len, false)
}

/// Repeat copy: the sequence, a delimiter with the repeat count `n` (fed as `n / scale`), then
/// `n` copies and an end marker.
fn repeat_copy_episode(
    bits: usize,
    n: usize,
    scale: usize,
    batch: usize,
    len: usize,
    io: (usize, usize),
    rng: &mut Rng,
) -> Episode {
    let t = len + 1 + n * len + 1;
    let mut f = Frames::new(t, batch, io);
    for b in 0..batch {
        let seq = random_bits(rng, len * bits);
        for s in 0..len {
            for c in 0..bits {
                f.x.set(s, b, c, seq[s * bits + c]);
                for r in 0..n {
                    f.y.set(len + 1 + r * len + s, b, c, seq[s * bits + c]);
                }
            }
        }
        f.x.set(len, b, bits, 1.0); // delimiter
        f.x.set(len, b, bits + 1, n as f32 / scale as f32); // repeat count
        f.y.set(t - 1, b, bits, 1.0); // end marker
        for s in len + 1..t {
            f.m.set(s, b, 0, 1.0);
        }
    }
    f.episode(len, false)
}

/// Associative recall of `items` items: [delim, item]×items, query delim, query item, query
/// delim, then the item that followed the query.
fn recall_episode(
    bits: usize,
    item_len: usize,
    batch: usize,
    items: usize,
    io: (usize, usize),
    rng: &mut Rng,
) -> Episode {
    let mut f = Frames::new(items * (item_len + 1) + 2 * (item_len + 1), batch, io);
    for b in 0..batch {
        let all = random_bits(rng, items * item_len * bits);
        let q = rng.below(items - 1); // the query has a successor
        for it in 0..items {
            let start = it * (item_len + 1);
            f.x.set(start, b, bits, 1.0);
            for s in 0..item_len {
                for c in 0..bits {
                    f.x.set(start + 1 + s, b, c, all[(it * item_len + s) * bits + c]);
                }
            }
        }
        let qs = items * (item_len + 1);
        f.x.set(qs, b, bits + 1, 1.0);
        for s in 0..item_len {
            for c in 0..bits {
                f.x.set(qs + 1 + s, b, c, all[(q * item_len + s) * bits + c]);
                f.y.set(qs + item_len + 2 + s, b, c, all[((q + 1) * item_len + s) * bits + c]);
            }
            f.m.set(qs + item_len + 2 + s, b, 0, 1.0);
        }
        f.x.set(qs + item_len + 1, b, bits + 1, 1.0);
    }
    f.episode(items, false)
}

/// Dynamic n-grams: input bit x_t, target x_{t+1}; scored once a full context has been seen.
fn ngrams_episode(n: usize, batch: usize, len: usize, rng: &mut Rng) -> Episode {
    let t = len - 1;
    let mut f = Frames::new(t, batch, (1, 1));
    for b in 0..batch {
        let table = ngram_table(n, rng);
        let bits = ngram_sequence(&table, n, len, rng);
        for s in 0..t {
            f.x.set(s, b, 0, bits[s] as f32);
            f.y.set(s, b, 0, bits[s + 1] as f32);
            if s + 1 >= n - 1 {
                f.m.set(s, b, 0, 1.0);
            }
        }
    }
    f.episode(len, false)
}

/// Priority sort: `len` vectors with a priority each, a delimiter, then the `outputs`
/// highest-priority vectors in order.
fn sort_episode(bits: usize, outputs: usize, batch: usize, len: usize, io: (usize, usize), rng: &mut Rng) -> Episode {
    let outs = outputs.min(len);
    let mut f = Frames::new(len + 1 + outs, batch, io);
    for b in 0..batch {
        let seq = random_bits(rng, len * bits);
        let prio: Vec<f32> = (0..len).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect();
        for s in 0..len {
            for c in 0..bits {
                f.x.set(s, b, c, seq[s * bits + c]);
            }
            f.x.set(s, b, bits + 1, prio[s]);
        }
        f.x.set(len, b, bits, 1.0);
        for (k, &src) in priority_order(&prio).iter().take(outs).enumerate() {
            for c in 0..bits {
                f.y.set(len + 1 + k, b, c, seq[src * bits + c]);
            }
            f.m.set(len + 1 + k, b, 0, 1.0);
        }
    }
    f.episode(len, false)
}

/// bAbI-style stories of `len` statements, one task type each, left-padded to one length; the
/// answer is scored at the last step.
fn babi_episode(tasks: &[u8], batch: usize, len: usize, io: (usize, usize), rng: &mut Rng) -> Episode {
    let stories: Vec<babi::Story> = (0..batch).map(|_| babi::story(tasks[rng.below(tasks.len())], len, rng)).collect();
    let t = stories.iter().map(|s| s.words.len()).max().unwrap_or(1);
    let mut f = Frames::new(t, batch, io);
    for (b, s) in stories.iter().enumerate() {
        let pad = t - s.words.len();
        for (k, &w) in s.words.iter().enumerate() {
            f.x.set(pad + k, b, w, 1.0);
        }
        f.y.set(t - 1, b, s.answer, 1.0);
        f.m.set(t - 1, b, 0, 1.0);
    }
    f.episode(len, true)
}

/// Priority sort's output order: the indices of `prio`, highest priority first.
pub fn priority_order(prio: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..prio.len()).collect();
    order.sort_by(|&p, &q| prio[q].total_cmp(&prio[p]));
    order
}

/// `P(next = 1 | previous n−1 bits)` for each of the `2^(n−1)` contexts, from Beta(½, ½)
/// (the arcsine law: `sin²(πU/2)`).
pub fn ngram_table(n: usize, rng: &mut Rng) -> Vec<f64> {
    (0..1usize << (n - 1)).map(|_| (std::f64::consts::FRAC_PI_2 * rng.uniform()).sin().powi(2)).collect()
}

/// `len` bits drawn from `table`; the first `n−1` bits are fair coins.
pub fn ngram_sequence(table: &[f64], n: usize, len: usize, rng: &mut Rng) -> Vec<u8> {
    let mut bits: Vec<u8> = Vec::with_capacity(len);
    let mask = (1usize << (n - 1)) - 1;
    let mut ctx = 0usize;
    for s in 0..len {
        let p = if s < n - 1 { 0.5 } else { table[ctx] };
        let bit = (rng.uniform() < p) as u8;
        bits.push(bit);
        ctx = ((ctx << 1) | bit as usize) & mask;
    }
    bits
}

/// The Bayes-optimal predictor of the N-grams task (paper §4.4): `P(1 | c) = (N₁ + ½) / (N₀ + N₁
/// + 1)` from the counts seen so far after context `c`. Returns its cost in bits over the
/// scored steps of `bits` (the lower bound the NTM is compared against).
pub fn ngram_optimal_cost_bits(bits: &[u8], n: usize) -> f64 {
    let mask = (1usize << (n - 1)) - 1;
    let mut counts = vec![[0u32; 2]; 1 << (n - 1)];
    let mut ctx = 0usize;
    let mut cost = 0.0;
    for s in 0..bits.len() {
        if s >= n - 1 {
            let [c0, c1] = counts[ctx];
            let p1 = (c1 as f64 + 0.5) / (c0 as f64 + c1 as f64 + 1.0);
            let p = if bits[s] == 1 { p1 } else { 1.0 - p1 };
            cost -= p.log2();
            counts[ctx][bits[s] as usize] += 1;
        }
        ctx = ((ctx << 1) | bits[s] as usize) & mask;
    }
    cost
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(e: &Episode, v: &[f32], w: usize, t: usize, b: usize) -> Vec<f32> {
        v[(t * e.batch + b) * w..(t * e.batch + b + 1) * w].to_vec()
    }

    #[test]
    fn a_typed_copy_sequence_makes_the_episode_a_drawn_one_would() {
        let task = Task::Copy { bits: 8, min_len: 1, max_len: 20 };
        let drawn = task.sample_len(1, 5, &mut Rng::derive(3, "t", 0));
        let rows: Vec<Vec<f32>> = (0..5).map(|t| at(&drawn, &drawn.inputs, 9, t, 0)[..8].to_vec()).collect();
        let typed = copy_episode_of(8, &rows);
        assert_eq!((typed.steps, typed.batch, typed.len), (11, 1, 5));
        assert_eq!(typed.inputs, drawn.inputs);
        assert_eq!(typed.targets, drawn.targets);
        assert_eq!(typed.mask, drawn.mask);
    }

    #[test]
    fn copy_targets_are_the_inputs_after_the_delimiter() {
        let task = Task::Copy { bits: 4, min_len: 3, max_len: 3 };
        let e = task.sample(2, None, &mut Rng::new(1));
        assert_eq!((e.steps, e.len), (7, 3));
        for b in 0..2 {
            assert_eq!(at(&e, &e.inputs, 5, 3, b), vec![0.0, 0.0, 0.0, 0.0, 1.0]);
            for s in 0..3 {
                assert_eq!(at(&e, &e.inputs, 5, s, b)[..4], at(&e, &e.targets, 4, 4 + s, b)[..]);
                assert_eq!(at(&e, &e.mask, 1, 4 + s, b), vec![1.0]);
                assert_eq!(at(&e, &e.mask, 1, s, b), vec![0.0]);
                assert_eq!(at(&e, &e.inputs, 5, 4 + s, b), vec![0.0; 5]);
            }
        }
        let ones = e.inputs.iter().filter(|&&v| v == 1.0).count();
        assert!(ones > 6 && ones < 26, "random bits, about half set: {ones}");
    }

    #[test]
    fn repeat_copy_repeats_and_ends_with_a_marker() {
        let task =
            Task::RepeatCopy { bits: 3, min_len: 2, max_len: 2, min_repeats: 3, max_repeats: 4, count_scale: None };
        let e = task.sample(1, None, &mut Rng::new(2));
        let n = (e.steps - 4) / 2;
        assert!(n == 3 || n == 4);
        assert_eq!(at(&e, &e.inputs, 5, 2, 0)[4], n as f32 / 4.0);
        for r in 0..n {
            for s in 0..2 {
                assert_eq!(at(&e, &e.inputs, 5, s, 0)[..3], at(&e, &e.targets, 4, 3 + r * 2 + s, 0)[..3]);
            }
        }
        assert_eq!(at(&e, &e.targets, 4, e.steps - 1, 0), vec![0.0, 0.0, 0.0, 1.0]);
        assert_eq!(e.mask.iter().sum::<f32>() as usize, n * 2 + 1);
    }

    #[test]
    fn more_repeats_than_trained_keep_the_training_scale_of_the_count() {
        let task =
            Task::RepeatCopy { bits: 3, min_len: 2, max_len: 2, min_repeats: 1, max_repeats: 10, count_scale: None };
        let twenty = task.with_repeats(20).expect("repeat copy");
        let e = twenty.sample(1, None, &mut Rng::new(3));
        assert_eq!(e.steps, 2 + 1 + 20 * 2 + 1);
        assert_eq!(at(&e, &e.inputs, 5, 2, 0)[4], 2.0, "20 repeats on the scale of 10");
        assert!(Task::Copy { bits: 8, min_len: 1, max_len: 20 }.with_repeats(3).is_none());
        let bad =
            Task::RepeatCopy { bits: 3, min_len: 1, max_len: 2, min_repeats: 1, max_repeats: 2, count_scale: Some(0) };
        assert!(bad.validate().unwrap_err().contains("count_scale"));
    }

    #[test]
    fn associative_recall_answers_with_the_item_after_the_query() {
        let task = Task::AssociativeRecall { bits: 6, item_len: 3, min_items: 4, max_items: 4 };
        for seed in 0..5 {
            let e = task.sample(1, None, &mut Rng::new(seed));
            let item = |k: usize| -> Vec<Vec<f32>> { (0..3).map(|s| at(&e, &e.inputs, 8, k * 4 + 1 + s, 0)).collect() };
            let query: Vec<Vec<f32>> = (0..3).map(|s| at(&e, &e.inputs, 8, 16 + 1 + s, 0)).collect();
            let q = (0..4).find(|&k| item(k) == query).expect("the query is one of the items");
            for s in 0..3 {
                assert_eq!(at(&e, &e.targets, 6, 21 + s, 0)[..], item(q + 1)[s][..6]);
            }
            assert_eq!(e.mask.iter().sum::<f32>(), 3.0);
            assert_eq!(e.steps, 24);
        }
    }

    #[test]
    fn priority_sort_outputs_the_highest_priorities_in_order() {
        let task = Task::PrioritySort { bits: 4, inputs: 6, outputs: 4 };
        let e = task.sample(1, None, &mut Rng::new(3));
        let mut rows: Vec<(f32, Vec<f32>)> =
            (0..6).map(|s| (at(&e, &e.inputs, 6, s, 0)[5], at(&e, &e.inputs, 6, s, 0)[..4].to_vec())).collect();
        rows.sort_by(|a, b| b.0.total_cmp(&a.0));
        for (k, (_, v)) in rows.iter().take(4).enumerate() {
            assert_eq!(&at(&e, &e.targets, 4, 7 + k, 0), v);
        }
    }

    #[test]
    fn ngram_bits_follow_their_table_and_the_optimal_predictor_beats_a_coin() {
        let mut rng = Rng::new(4);
        let table = ngram_table(3, &mut rng);
        let bits = ngram_sequence(&table, 3, 20000, &mut rng);
        // Empirical next-bit frequency per context matches the table.
        let mut counts = [[0f64; 2]; 4];
        for w in bits.windows(3) {
            counts[(w[0] as usize) << 1 | w[1] as usize][w[2] as usize] += 1.0;
        }
        for (c, [n0, n1]) in counts.iter().enumerate() {
            if n0 + n1 > 500.0 {
                assert!((n1 / (n0 + n1) - table[c]).abs() < 0.05, "context {c}");
            }
        }
        let optimal = ngram_optimal_cost_bits(&bits, 3) / (bits.len() - 2) as f64;
        assert!(optimal < 0.95, "the optimal predictor costs {optimal} bits/bit, a coin 1");
        let e = Task::NGrams { n: 6, len: 200 }.sample(2, None, &mut Rng::new(5));
        assert_eq!((e.steps, e.mask.iter().sum::<f32>() as usize), (199, 2 * 195));
    }

    #[test]
    fn babi_episodes_are_left_padded_one_hot_words_with_the_answer_last() {
        let task = Task::Babi { tasks: vec![1, 7], min_facts: 2, max_facts: 4 };
        let v = babi::VOCAB_SIZE;
        let e = task.sample(8, None, &mut Rng::new(6));
        assert!(e.categorical && e.mask.iter().sum::<f32>() == 8.0);
        for b in 0..8 {
            let rows: Vec<Vec<f32>> = (0..e.steps).map(|t| at(&e, &e.inputs, v, t, b)).collect();
            let first = rows.iter().position(|r| r.iter().sum::<f32>() == 1.0).unwrap();
            assert!(rows[..first].iter().all(|r| r.iter().all(|&x| x == 0.0)), "padding is empty");
            assert!(rows[first..].iter().all(|r| r.iter().sum::<f32>() == 1.0), "one word per step");
            assert_eq!(rows[e.steps - 1][babi::word_id("-")], 1.0);
            assert_eq!(at(&e, &e.targets, v, e.steps - 1, b).iter().sum::<f32>(), 1.0);
        }
        assert!(Task::Babi { tasks: vec![3], min_facts: 1, max_facts: 2 }.validate().is_err());
    }

    #[test]
    fn same_seed_same_batch_and_lengths_cover_the_range_and_respect_the_cap() {
        let task = Task::Copy { bits: 8, min_len: 1, max_len: 20 };
        let a = task.sample(3, None, &mut Rng::new(7));
        let b = task.sample(3, None, &mut Rng::new(7));
        assert_eq!(a.inputs, b.inputs);
        let mut rng = Rng::new(8);
        let lens: std::collections::HashSet<usize> = (0..400).map(|_| task.sample(1, None, &mut rng).len).collect();
        assert_eq!(lens.len(), 20);
        assert!((0..100).all(|_| task.sample(1, Some(5), &mut rng).len <= 5));
        assert!(Task::Copy { bits: 8, min_len: 0, max_len: 3 }.validate().is_err());
        assert!(Task::PrioritySort { bits: 8, inputs: 3, outputs: 5 }.validate().is_err());
    }
}
