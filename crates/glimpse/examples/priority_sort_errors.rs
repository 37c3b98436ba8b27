//! Where a priority-sort NTM makes its mistakes: the bit errors of each output, grouped by how
//! close the priority of the vector it should output lies to the nearest other priority of the
//! sequence, beside the floor of the strategy the NTM paper describes (§4.5: each vector is
//! written at a location set by its priority, and the locations are read in order), which
//! loses a vector whenever two priorities fall on the same of the `N` memory rows. Then how
//! sharp the heads' weightings are (the first sequence of each evaluation batch): each write
//! head's while the inputs come in, each read head's while the outputs go out.
//!
//! ```text
//! cargo run --release --example priority_sort_errors -- checkpoints/ntm-priority-sort [sequences]
//! ```

use std::path::PathBuf;

use anyhow::{Result, bail};
use glimpse::burn::tensor::Device;
use glimpse::data::algorithmic::{Task, priority_order};
use glimpse::models::ntm::Trace;
use glimpse::rng::Rng;
use glimpse::train::sequence::{SequenceModelConfig, episode_tensors, evaluation_batches, load_sequence_model};

/// Gap buckets (upper edges) in units of the priority range `[−1, 1]`.
const EDGES: [f32; 6] = [1.0 / 256.0, 1.0 / 128.0, 1.0 / 64.0, 1.0 / 32.0, 1.0 / 16.0, f32::INFINITY];

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "checkpoints/ntm-priority-sort".into()));
    let n: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1024);
    let device = Device::flex();
    let (cfg, model) = load_sequence_model(&dir, &device)?;
    let Task::PrioritySort { bits, inputs, outputs } = cfg.task else {
        bail!("{} is not a priority-sort checkpoint", dir.display());
    };
    let (mut errors, mut count) = ([0.0f64; EDGES.len()], [0usize; EDGES.len()]);
    let mut total = 0.0;
    let (mut writes, mut reads) = (Sharpness::default(), Sharpness::default());
    for e in evaluation_batches(&cfg.task, None, n, cfg.seed, "test") {
        let (t, b) = (e.steps, e.batch);
        let ins = e.len;
        let (i, o) = (e.inputs.len() / (t * b), e.targets.len() / (t * b));
        let ep = episode_tensors(&e, &device);
        let mut trace = Trace::default();
        let logits: Vec<f32> =
            model.forward(ep.inputs.clone(), Some(&mut trace)).into_data().try_to_vec::<f32>().unwrap();
        writes.add(&trace.writes[..ins.min(trace.writes.len())]);
        reads.add(trace.reads.get(ins + 1..).unwrap_or(&[]));
        for s in 0..b {
            // Priorities (input column bits + 1) and the order the targets follow.
            let prio: Vec<f32> = (0..ins).map(|k| e.inputs[(k * b + s) * i + bits + 1]).collect();
            for (k, &src) in priority_order(&prio).iter().take(outputs.min(ins)).enumerate() {
                let step = ins + 1 + k;
                let wrong = (0..o)
                    .filter(|&c| {
                        let row = (step * b + s) * o + c;
                        (logits[row] > 0.0) != (e.targets[row] > 0.5)
                    })
                    .count() as f64;
                let gap =
                    (0..ins).filter(|&q| q != src).map(|q| (prio[q] - prio[src]).abs()).fold(f32::INFINITY, f32::min);
                let bucket = EDGES.iter().position(|&edge| gap / 2.0 < edge).unwrap();
                errors[bucket] += wrong;
                count[bucket] += 1;
                total += wrong;
            }
        }
    }
    println!("{}: {n} test sequences, {:.2} bit errors per sequence", dir.display(), total / n as f64);
    println!(
        "gap to the nearest other priority (fraction of [-1, 1]) | outputs | share of outputs | bit errors per output | share of all errors"
    );
    let outs: usize = count.iter().sum();
    let mut lower = 0.0;
    for (k, &edge) in EDGES.iter().enumerate() {
        println!(
            "[{lower:.4}, {edge:.4}) | {} | {:.1}% | {:.3} | {:.1}%",
            count[k],
            100.0 * count[k] as f64 / outs as f64,
            errors[k] / count[k].max(1) as f64,
            100.0 * errors[k] / total.max(1e-9)
        );
        lower = edge;
    }
    writes.print("write", "input");
    reads.print("read", "output");
    // The floor of "write at the row set by the priority": priorities mapped linearly onto
    // `N` rows; every vector that shares its row with an earlier one is lost, costing half
    // its bits on average.
    let mut rng = Rng::new(1);
    let trials = 20_000;
    let memory_n = match &cfg.model {
        SequenceModelConfig::Ntm(c) => c.memory_n,
        _ => 128,
    };
    let mut sizes = vec![memory_n, 128, 256, 512, 1024, 2048, 4096, 8192];
    sizes.sort_unstable();
    sizes.dedup();
    for rows in sizes {
        let mut lost = 0usize;
        for _ in 0..trials {
            let mut prio: Vec<f32> = (0..inputs).map(|_| rng.uniform() as f32 * 2.0 - 1.0).collect();
            prio.sort_by(|p, q| q.total_cmp(p));
            let mut used: Vec<usize> =
                prio.iter().take(outputs).map(|p| ((p + 1.0) / 2.0 * rows as f32) as usize).collect();
            used.dedup();
            lost += outputs.min(inputs) - used.len();
        }
        println!(
            "floor of priority-addressed writes on {rows} rows: {:.2} bit errors per sequence",
            lost as f64 / trials as f64 * bits as f64 / 2.0
        );
    }
    Ok(())
}

/// Per head, over the steps seen: the largest weight of each step and the effective number of
/// locations, `1 / Σ_i w_i²` (1 for a weighting on one row, `k` for one spread evenly over `k`).
#[derive(Default)]
struct Sharpness {
    max: Vec<Vec<f32>>,
    effective: Vec<Vec<f32>>,
}

impl Sharpness {
    /// Adds steps of `(heads, N)` weightings.
    fn add(&mut self, steps: &[Vec<Vec<f32>>]) {
        for heads in steps {
            self.max.resize(heads.len(), Vec::new());
            self.effective.resize(heads.len(), Vec::new());
            for (h, w) in heads.iter().enumerate() {
                self.max[h].push(w.iter().copied().fold(0.0, f32::max));
                self.effective[h].push(1.0 / w.iter().map(|v| v * v).sum::<f32>().max(1e-12));
            }
        }
    }

    fn print(&self, kind: &str, steps: &str) {
        let median = |v: &[f32]| {
            let mut v = v.to_vec();
            v.sort_by(f32::total_cmp);
            v.get(v.len() / 2).copied().unwrap_or(f32::NAN)
        };
        for h in 0..self.max.len() {
            println!(
                "{kind} head {h} on {} {steps} steps: median largest weight {:.3}, median effective locations {:.1}",
                self.max[h].len(),
                median(&self.max[h]),
                median(&self.effective[h])
            );
        }
    }
}
