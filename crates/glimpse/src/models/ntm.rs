//! The Neural Turing Machine (Graves, Wayne, Danihelka 2014, "Neural Turing Machines"): a
//! controller network that reads and writes an external memory `M_t (N × M)` through
//! differentiable heads.
//!
//! Per step t:
//! - the controller (an LSTM, or one feed-forward layer) reads `[x_t, r_{t−1}]` and emits `h_t`,
//!   clipped to `[−clip, clip]` (controller-output clipping, as in Collier & Beel 2018);
//! - one linear layer maps `h_t` to every head's raw parameters;
//! - each write head addresses the memory (eq. 5–9, [`memory::address`]) and the memory is
//!   erased and added to (eq. 3–4), `e = sigmoid(·)`, `a = tanh(·)`;
//! - each read head addresses the written memory and reads `r_t = w_t M_t` (eq. 2);
//! - the output is `y_t = Linear([h_t, r_t])` (logits of Bernoulli outputs).
//!
//! The memory starts as a small constant (Collier & Beel found constant initialisation
//! converges fastest), every head's weighting on location 0 (a uniform start on a constant
//! memory could never focus: nothing would tell the locations apart), and the first read
//! vectors are learned. With `memory_init = "learned"` the first memory is a parameter
//! instead: its rows can then differ, so content addressing can tell locations apart from the
//! first step (priority sort writes each vector to a place chosen by its priority).

use crate::defaults;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use super::lstm::LstmCell;
use crate::attention::memory::{self, HeadParams};

/// The controller network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ControllerKind {
    /// An LSTM (the paper's best on most tasks).
    #[default]
    Lstm,
    /// One `tanh` layer.
    FeedForward,
}

/// How the memory `M_0` starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryInit {
    /// Every cell `1e-6` (Collier & Beel 2018's fastest on copy).
    #[default]
    Constant,
    /// A learned `N × M` parameter, initialised uniform in `±0.5` (distinct rows).
    Learned,
}

/// Sizes of an NTM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtmConfig {
    /// Input width.
    pub inputs: usize,
    /// Output width.
    pub outputs: usize,
    /// Controller kind.
    #[serde(default)]
    pub controller: ControllerKind,
    /// Controller width (paper's copy task: one LSTM layer of 100).
    #[serde(default = "defaults::usize::<100>")]
    pub controller_size: usize,
    /// Memory locations `N`.
    #[serde(default = "defaults::usize::<128>")]
    pub memory_n: usize,
    /// Memory width `M`.
    #[serde(default = "defaults::usize::<20>")]
    pub memory_m: usize,
    /// Read heads `R`.
    #[serde(default = "defaults::usize::<1>")]
    pub read_heads: usize,
    /// Write heads `W`.
    #[serde(default = "defaults::usize::<1>")]
    pub write_heads: usize,
    /// Shift range `K`: shifts `−K..=K` are allowed.
    #[serde(default = "defaults::usize::<1>")]
    pub shift_range: usize,
    /// Controller outputs are clipped to `[−clip, clip]`.
    #[serde(default = "defaults::f32::<20, 1>")]
    pub clip: f32,
    /// How the memory starts.
    #[serde(default, skip_serializing_if = "is_constant")]
    pub memory_init: MemoryInit,
    /// Clamp the gradient of the state carried between steps (memory, controller state, read
    /// vectors, weightings) elementwise to `[−limit, limit]` in the backward pass: bounds a
    /// gradient exploding through time (Graves 2013 clipped LSTM derivatives alike). None: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grad_clamp: Option<f32>,
}

fn is_constant(m: &MemoryInit) -> bool {
    *m == MemoryInit::Constant
}

impl NtmConfig {
    /// The paper's copy-task sizes for `inputs → outputs`.
    pub fn new(inputs: usize, outputs: usize) -> Self {
        Self {
            inputs,
            outputs,
            controller: ControllerKind::Lstm,
            controller_size: 100,
            memory_n: 128,
            memory_m: 20,
            read_heads: 1,
            write_heads: 1,
            shift_range: 1,
            clip: 20.0,
            memory_init: MemoryInit::Constant,
            grad_clamp: None,
        }
    }

    fn head_len(&self) -> usize {
        HeadParams::len(self.memory_m, self.shift_range)
    }

    /// Raw controller outputs for all heads: addressing for each, plus erase and add vectors
    /// for each write head.
    fn all_heads_len(&self) -> usize {
        (self.read_heads + self.write_heads) * self.head_len() + self.write_heads * 2 * self.memory_m
    }

    /// Builds the model.
    pub fn init(&self, device: &Device) -> Ntm {
        let ctrl_in = self.inputs + self.read_heads * self.memory_m;
        let (lstm, feed_forward) = match self.controller {
            ControllerKind::Lstm => (Some(LstmCell::new(ctrl_in, self.controller_size, device)), None),
            ControllerKind::FeedForward => (None, Some(LinearConfig::new(ctrl_in, self.controller_size).init(device))),
        };
        let r0 = Tensor::<1>::random([self.read_heads * self.memory_m], Distribution::Uniform(-0.1, 0.1), device);
        let memory0 = (self.memory_init == MemoryInit::Learned).then(|| {
            Param::from_tensor(Tensor::<2>::random(
                [self.memory_n, self.memory_m],
                Distribution::Uniform(-0.5, 0.5),
                device,
            ))
        });
        Ntm {
            lstm,
            feed_forward,
            heads: LinearConfig::new(self.controller_size, self.all_heads_len()).init(device),
            output: LinearConfig::new(self.controller_size + self.read_heads * self.memory_m, self.outputs)
                .init(device),
            read0: Param::from_tensor(r0),
            memory0,
            config: self.clone(),
        }
    }
}

/// The model.
#[derive(Module, Debug)]
pub struct Ntm {
    lstm: Option<LstmCell>,
    feed_forward: Option<Linear>,
    heads: Linear,
    output: Linear,
    /// Learned first read vectors `r_0`, `(R·M)`.
    read0: Param<Tensor<1>>,
    /// Learned first memory `M_0`, `(N, M)` (`memory_init = "learned"`).
    memory0: Option<Param<Tensor<2>>>,
    #[module(skip)]
    config: NtmConfig,
}

/// Where the heads looked, for one batch element, step by step (pictures).
#[derive(Debug, Clone, Default)]
pub struct Trace {
    /// Read weightings: per step, `R` rows of `N`.
    pub reads: Vec<Vec<Vec<f32>>>,
    /// Write weightings: per step, `W` rows of `N`.
    pub writes: Vec<Vec<Vec<f32>>>,
}

/// The recurrent state between steps.
struct State {
    memory: Tensor<3>,       // (B, N, M)
    h: Tensor<2>,            // (B, C)
    c: Tensor<2>,            // (B, C)
    reads: Tensor<2>,        // (B, R·M)
    w_read: Vec<Tensor<2>>,  // R × (B, N)
    w_write: Vec<Tensor<2>>, // W × (B, N)
}

impl State {
    /// Every tensor of the state through [`crate::fused::grad_clamp`](fn@crate::fused::grad_clamp).
    fn clamp_gradients(&mut self, limit: f32) {
        let clamp2 = |t: &mut Tensor<2>| *t = crate::fused::grad_clamp(t.clone(), limit);
        self.memory = crate::fused::grad_clamp(self.memory.clone(), limit);
        [&mut self.h, &mut self.c, &mut self.reads].into_iter().for_each(clamp2);
        self.w_read.iter_mut().chain(self.w_write.iter_mut()).for_each(clamp2);
    }
}

/// `(B, N)` weightings all on location 0. A constant memory and uniform weightings would be
/// symmetric under any permutation of the locations, so no head could ever focus; a focused
/// start lets the location shifts (eq. 8) break the symmetry.
fn first_location(b: usize, n: usize, device: &Device) -> Tensor<2> {
    let mut w = vec![0.0f32; b * n];
    w.iter_mut().step_by(n).for_each(|v| *v = 1.0);
    Tensor::from_data(burn::tensor::TensorData::new(w, [b, n]), device)
}

/// A memory of `rows` rows from `old (n, m)` (`rows` a multiple of `n`): new row `i` sits at
/// `x = (i + ½)·n/rows − ½` in old-row units and is the linear interpolation of old rows `⌊x⌋`
/// and `⌊x⌋ + 1`, taken circularly as the location shifts take the memory.
pub fn interpolate_rows(old: &[f32], n: usize, m: usize, rows: usize) -> Vec<f32> {
    assert_eq!(old.len(), n * m, "old memory is (n, m)");
    let mut out = Vec::with_capacity(rows * m);
    for i in 0..rows {
        let x = (i as f64 + 0.5) * n as f64 / rows as f64 - 0.5;
        let lo = x.floor();
        let t = (x - lo) as f32;
        let a = (lo as i64).rem_euclid(n as i64) as usize;
        let b = (a + 1) % n;
        out.extend((0..m).map(|j| (1.0 - t) * old[a * m + j] + t * old[b * m + j]));
    }
    out
}

fn row0(t: &Tensor<2>) -> Vec<f32> {
    t.clone().narrow(0, 0, 1).into_data().try_to_vec().expect("f32")
}

impl Ntm {
    /// The configuration.
    pub fn config(&self) -> &NtmConfig {
        &self.config
    }

    /// This model with its learned first memory grown to `rows` rows ([`interpolate_rows`]),
    /// every other weight kept: nothing else depends on `N`, so a model trained on a small
    /// memory can go on training on a larger one (finer locations for priority sort).
    pub fn with_memory_rows(mut self, rows: usize) -> anyhow::Result<Ntm> {
        let (n, m) = (self.config.memory_n, self.config.memory_m);
        let Some(memory0) = self.memory0.take() else {
            anyhow::bail!("the model has no learned first memory (memory_init = \"learned\") to grow");
        };
        if rows <= n || !rows.is_multiple_of(n) {
            anyhow::bail!("rows = {rows}: must be a multiple of the model's {n} rows, and larger");
        }
        let device = memory0.val().device();
        let old: Vec<f32> = memory0.val().into_data().try_to_vec().expect("f32");
        let grown = interpolate_rows(&old, n, m, rows);
        let data = burn::tensor::TensorData::new(grown, [rows, m]);
        self.memory0 = Some(Param::from_tensor(Tensor::<2>::from_data(data, &device)));
        self.config.memory_n = rows;
        Ok(self)
    }

    /// The first state; `memory0 (N, M)`: the first memory, else the constant `1e-6`.
    fn initial_state(&self, b: usize, memory0: Option<Tensor<2>>, device: &Device) -> State {
        let cfg = &self.config;
        let (n, m) = (cfg.memory_n, cfg.memory_m);
        State {
            memory: match memory0 {
                Some(m0) => m0.unsqueeze_dim::<3>(0).expand([b, n, m]), // (B, N, M)
                None => Tensor::full([b, n, m], 1e-6, device),
            },
            h: Tensor::zeros([b, cfg.controller_size], device),
            c: Tensor::zeros([b, cfg.controller_size], device),
            reads: self.read0.val().unsqueeze_dim::<2>(0).expand([b, cfg.read_heads * m]),
            w_read: (0..cfg.read_heads).map(|_| first_location(b, n, device)).collect(),
            w_write: (0..cfg.write_heads).map(|_| first_location(b, n, device)).collect(),
        }
    }

    /// One step of the machine; returns the output logits `(B, O)`.
    fn step(&self, x: Tensor<2>, s: &mut State) -> Tensor<2> {
        let cfg = &self.config;
        let (m, k, hl) = (cfg.memory_m, cfg.shift_range, cfg.head_len());
        let b = x.dims()[0];
        if let Some(limit) = cfg.grad_clamp {
            s.clamp_gradients(limit);
        }
        let inp = Tensor::cat(vec![x, s.reads.clone()], 1); // (B, I + R·M)
        let out = match (&self.lstm, &self.feed_forward) {
            (Some(cell), _) => {
                let (h, c) = cell.step(inp, s.h.clone(), s.c.clone());
                (s.h, s.c) = (h.clone(), c);
                h
            }
            (None, Some(layer)) => layer.forward(inp).tanh(),
            _ => unreachable!("an NTM has a controller"),
        }
        .clamp(-cfg.clip, cfg.clip); // (B, C)
        let raw = crate::fused::linear(out.clone(), &self.heads); // (B, all heads)

        // Write heads: address, then erase and add (eq. 3–9).
        let mut ws = Vec::with_capacity(cfg.write_heads);
        let (mut erase, mut add) = (Vec::new(), Vec::new());
        let ea_start = (cfg.read_heads + cfg.write_heads) * hl;
        for j in 0..cfg.write_heads {
            let head = raw.clone().narrow(1, (cfg.read_heads + j) * hl, hl);
            let w = memory::address_raw(s.memory.clone(), s.w_write[j].clone(), head, k); // (B, N)
            s.w_write[j] = w.clone();
            ws.push(w.unsqueeze_dim::<3>(1));
            let ea = raw.clone().narrow(1, ea_start + j * 2 * m, 2 * m);
            erase.push(sigmoid(ea.clone().narrow(1, 0, m)).unsqueeze_dim::<3>(1));
            add.push(ea.narrow(1, m, m).tanh().unsqueeze_dim::<3>(1));
        }
        s.memory = memory::write(s.memory.clone(), Tensor::cat(ws, 1), Tensor::cat(erase, 1), Tensor::cat(add, 1));

        // Read heads address the written memory (eq. 2).
        let mut wr = Vec::with_capacity(cfg.read_heads);
        for j in 0..cfg.read_heads {
            let head = raw.clone().narrow(1, j * hl, hl);
            let w = memory::address_raw(s.memory.clone(), s.w_read[j].clone(), head, k);
            s.w_read[j] = w.clone();
            wr.push(w.unsqueeze_dim::<3>(1));
        }
        s.reads = memory::read(s.memory.clone(), Tensor::cat(wr, 1)).reshape([b, cfg.read_heads * m]);
        crate::fused::linear2(out, s.reads.clone(), &self.output)
    }

    /// Runs the machine over a sequence: one `(B, I)` input per step → one `(B, O)` logit
    /// tensor per step. With `trace`, records batch element 0's weightings.
    pub fn forward(&self, inputs: Vec<Tensor<2>>, trace: Option<&mut Trace>) -> Vec<Tensor<2>> {
        self.run(self.memory0.as_ref().map(Param::val), inputs, trace)
    }

    /// [`Ntm::forward`] from the first memory `memory0 (N, M)` (else the constant).
    fn run(&self, memory0: Option<Tensor<2>>, inputs: Vec<Tensor<2>>, mut trace: Option<&mut Trace>) -> Vec<Tensor<2>> {
        let Some(first) = inputs.first() else { return vec![] };
        let mut s = self.initial_state(first.dims()[0], memory0, &first.device());
        inputs
            .into_iter()
            .map(|x| {
                let y = self.step(x, &mut s);
                if let Some(tr) = trace.as_deref_mut() {
                    tr.reads.push(s.w_read.iter().map(row0).collect());
                    tr.writes.push(s.w_write.iter().map(row0).collect());
                }
                y
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{grad_check, uniform};

    #[test]
    fn interpolated_rows_keep_a_constant_and_wrap_around() {
        // A constant memory stays constant; a doubled memory's rows pair up around each old row.
        assert_eq!(interpolate_rows(&[2.0; 6], 3, 2, 12), vec![2.0; 24]);
        let old = [0.0, 4.0, 8.0, 4.0]; // n = 4, m = 1
        let new = interpolate_rows(&old, 4, 1, 8);
        assert_eq!(new, vec![1.0, 1.0, 3.0, 5.0, 7.0, 7.0, 5.0, 3.0]);
        // Row 0 lies a quarter of an old row before old row 0: 3/4·old[0] + 1/4·old[3] (circular).
        assert_eq!(new[0], 0.75 * old[0] + 0.25 * old[3]);
        // Each pair of new rows averages to its old row smoothed by its neighbours.
        for (k, pair) in new.chunks(2).enumerate() {
            let mid = (pair[0] + pair[1]) / 2.0;
            let expect = 0.75 * old[k] + 0.125 * (old[(k + 3) % 4] + old[(k + 1) % 4]);
            assert!((mid - expect).abs() < 1e-6, "pair {k}: {mid} vs {expect}");
        }
    }

    #[test]
    fn a_grown_model_runs_and_refuses_impossible_sizes() {
        let dev = Device::flex();
        let cfg = NtmConfig { memory_init: MemoryInit::Learned, ..small() };
        let grown = crate::device::seeded(&dev, 1, || cfg.init(&dev)).with_memory_rows(cfg.memory_n * 4).unwrap();
        assert_eq!(grown.config().memory_n, cfg.memory_n * 4);
        assert_eq!(grown.memory0.as_ref().map(|p| p.val().dims()), Some([cfg.memory_n * 4, cfg.memory_m]));
        let x = vec![Tensor::<2>::zeros([2, cfg.inputs], &dev); 3];
        assert_eq!(grown.forward(x, None)[2].dims(), [2, cfg.outputs]);
        let err = crate::device::seeded(&dev, 1, || cfg.init(&dev))
            .with_memory_rows(cfg.memory_n + 1)
            .unwrap_err()
            .to_string();
        assert!(err.contains("multiple"), "{err}");
        let err = crate::device::seeded(&dev, 1, || small().init(&dev))
            .with_memory_rows(cfg.memory_n * 2)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no learned first memory"), "{err}");
    }

    fn small() -> NtmConfig {
        NtmConfig {
            memory_n: 6,
            memory_m: 3,
            controller_size: 5,
            read_heads: 2,
            write_heads: 1,
            ..NtmConfig::new(3, 2)
        }
    }

    #[test]
    fn shapes_and_weightings_are_distributions() {
        let dev = Device::flex();
        for controller in [ControllerKind::Lstm, ControllerKind::FeedForward] {
            let cfg = NtmConfig { controller, ..small() };
            let ntm = crate::device::seeded(&dev, 1, || cfg.init(&dev));
            let xs: Vec<Tensor<2>> = (0..4).map(|t| Tensor::full([2, 3], t as f32 * 0.3, &dev)).collect();
            let mut tr = Trace::default();
            let ys = ntm.forward(xs, Some(&mut tr));
            assert_eq!(ys.len(), 4);
            assert!(ys.iter().all(|y| y.dims() == [2, 2]));
            assert_eq!((tr.reads.len(), tr.reads[0].len(), tr.writes[0].len()), (4, 2, 1));
            for w in tr.reads.iter().chain(&tr.writes).flatten() {
                assert_eq!(w.len(), 6);
                assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-4 && w.iter().all(|v| *v >= 0.0));
            }
        }
    }

    /// The whole machine, inputs → outputs over 3 steps, against central differences.
    #[test]
    fn gradient_through_three_steps_matches_finite_differences() {
        let dev = Device::flex();
        let ntm = crate::device::seeded(&dev, 2, || small().init(&dev));
        crate::testing::sequence_grad_check([3, 2, 3], 9, |xs, d| ntm.clone().fork(d).forward(xs, None));
    }

    /// A learned first memory: the outputs' gradient with respect to it (through content
    /// addressing, erase/add and reads) against central differences; the parameter is saved
    /// with the model, and configurations without the field still read as constant.
    #[test]
    fn a_learned_first_memory_gets_exact_gradients() {
        let dev = Device::flex();
        let cfg = NtmConfig { memory_init: MemoryInit::Learned, ..small() };
        let ntm = crate::device::seeded(&dev, 4, || cfg.init(&dev));
        assert_eq!(ntm.memory0.as_ref().map(|p| p.val().dims()), Some([6, 3]));
        assert_eq!(ntm.num_params(), crate::device::seeded(&dev, 4, || small().init(&dev)).num_params() + 18);
        let (t, b, i) = (3, 2, 3);
        let xs: Vec<f32> = uniform(t * b * i, -1.0, 1.0, 5);
        grad_check(&[uniform(18, -0.5, 0.5, 6)], 1e-2, 3e-2, |m0| {
            let [m0]: [Tensor<1>; 1] = m0.try_into().unwrap();
            let d = m0.device();
            let net = ntm.clone().fork(&d);
            let x = Tensor::<1>::from_data(burn::tensor::TensorData::new(xs.clone(), [t * b * i]), &d);
            let steps: Vec<Tensor<2>> = (0..t).map(|s| x.clone().narrow(0, s * b * i, b * i).reshape([b, i])).collect();
            Tensor::cat(net.run(Some(m0.reshape([6, 3])), steps, None), 1).reshape([t * b * 2])
        });
        let text = toml::to_string(&small()).unwrap();
        assert!(!text.contains("memory_init"), "the default stays out of saved configs: {text}");
        let back: NtmConfig = toml::from_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(back.memory_init, MemoryInit::Learned);
    }
    /// The state's gradient clamp: off, or with a limit never reached, the gradient is exact;
    /// a tiny limit changes the gradient reaching earlier steps' inputs only (the last step's
    /// input reaches its output without crossing a step boundary).
    #[test]
    fn grad_clamp_bounds_only_the_gradient_carried_between_steps() {
        let dev = Device::flex().autodiff();
        let (t, b, i) = (4, 2, 3);
        let xs = uniform(t * b * i, -1.0, 1.0, 8);
        // One set of weights for all three: burn's generator is global, so re-seeding before
        // each init would race with other tests drawing at the same time.
        let base = crate::device::seeded(&dev, 3, || small().init(&dev));
        let input_grad = |limit: Option<f32>| -> Vec<f32> {
            let mut ntm = base.clone();
            ntm.config.grad_clamp = limit;
            let x = Tensor::<1>::from_data(burn::tensor::TensorData::new(xs.clone(), [t * b * i]), &dev).require_grad();
            let steps: Vec<Tensor<2>> = (0..t).map(|s| x.clone().narrow(0, s * b * i, b * i).reshape([b, i])).collect();
            let loss = Tensor::cat(ntm.forward(steps, None), 1).mul_scalar(50.0).sum();
            x.grad(&loss.backward()).unwrap().into_data().try_to_vec().unwrap()
        };
        let (exact, loose, tight) = (input_grad(None), input_grad(Some(1e30)), input_grad(Some(1e-6)));
        // Equal up to rounding (the extra nodes change the order gradients are summed in).
        let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5 * x.abs().max(1.0));
        assert!(same(&exact, &loose));
        let last = (t - 1) * b * i;
        assert!(same(&exact[last..], &tight[last..]));
        let moved = exact[..last].iter().zip(&tight[..last]).filter(|(a, b)| (*a - *b).abs() > 1e-3).count();
        assert!(moved > last / 2, "{moved} of {last} earlier-step entries changed");
        let text = toml::to_string(&small()).unwrap();
        assert!(!text.contains("grad_clamp"), "off stays out of saved configs: {text}");
    }
}
