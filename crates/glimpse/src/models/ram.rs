//! The Recurrent Attention Model (Mnih, Heess, Graves, Kavukcuoglu 2014, "Recurrent Models of
//! Visual Attention"): a recurrent network that looks at an image through a small foveal
//! glimpse at a time, decides where to look next, and classifies after `T` glimpses.
//!
//! Per step t (paper §3.1):
//! - glimpse sensor `ρ(x, l_{t-1})` ([`Retina`]) reads `k` scales of `g × g` pixels;
//! - glimpse network `f_g`: `h_g = ReLU(Linear(ρ))`, `h_l = ReLU(Linear(l))`,
//!   `g_t = ReLU(Linear(h_g) + Linear(h_l))`;
//! - core network `f_h`: `h_t = ReLU(Linear(h_{t-1}) + Linear(g_t))` (or an LSTM);
//! - location network `f_l`: `μ_t = tanh(Linear(h_t))`, `l_t ~ π(· | μ_t)`;
//! - action network `f_a`: after the last glimpse, class logits `Linear(h_T)`.
//!
//! Training (paper §3.2, "hybrid" loss): cross-entropy for the action network, REINFORCE for the
//! location network with reward `R = 1` for a correct final answer, and a learned baseline
//! `b_t = Linear(h_t)` to reduce variance. The sampled locations are constants for the
//! classification gradient, and the location and baseline networks read `h_t` detached, so
//! only the reward trains where the model looks.

use crate::defaults;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{relu, sigmoid, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::attention::glimpse_sensor::Retina;
use crate::attention::policy::{DiscretePolicy, GaussianPolicy};
use crate::rng::Rng;

/// How the next location is chosen.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum LocationPolicy {
    /// `l ~ N(μ, σ²)` (the paper's).
    Gaussian {
        /// σ.
        std: f32,
    },
    /// A categorical choice among a `grid × grid` set of locations.
    Discrete {
        /// Grid side.
        grid: usize,
    },
}

/// The recurrent core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CoreKind {
    /// `h_t = ReLU(W_h h_{t-1} + W_g g_t)`, the paper's for these tasks.
    #[default]
    Rnn,
    /// An LSTM cell.
    Lstm,
}

/// Sizes and choices of a [`Ram`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RamConfig {
    /// Image height and width.
    pub input: [usize; 2],
    /// The sensor: patch side `g` and number of scales `k`.
    pub retina: Retina,
    /// Glimpses per image `T`.
    pub glimpses: usize,
    /// Width of `h_g` and `h_l` (paper: 128).
    #[serde(default = "defaults::usize::<128>")]
    pub what_where: usize,
    /// Width of `g_t` and of the core state (paper: 256).
    #[serde(default = "defaults::usize::<256>")]
    pub hidden: usize,
    /// Recurrent core.
    #[serde(default)]
    pub core: CoreKind,
    /// Location policy.
    #[serde(default = "default_policy")]
    pub policy: LocationPolicy,
    /// Number of classes.
    #[serde(default = "defaults::usize::<10>")]
    pub classes: usize,
    /// Monte-Carlo trajectories averaged at test time (1: the mean path, no sampling).
    #[serde(default = "defaults::usize::<1>")]
    pub test_samples: usize,
    /// Let the REINFORCE gradient reach the core and glimpse networks, as in the paper, where
    /// all parameters follow the policy gradient (false: the location and baseline networks
    /// read the core state detached, as many reimplementations do).
    #[serde(default)]
    pub policy_gradient_to_core: bool,
    /// Width of a hidden ReLU layer in the location network (0: `μ = tanh(Linear(h))` directly).
    #[serde(default)]
    pub location_hidden: usize,
    /// Weight of the REINFORCE term in the hybrid loss.
    #[serde(default = "defaults::f32::<1, 1>")]
    pub reinforce_weight: f32,
}

fn default_policy() -> LocationPolicy {
    LocationPolicy::Gaussian { std: 0.17 }
}

impl RamConfig {
    /// The paper's settings for an `side × side` task: 8×8 × 1 scale and 6 glimpses for 28×28
    /// MNIST; 12×12 × 3 scales (4 from 100 on) and 8 glimpses for translated / cluttered tasks.
    pub fn for_side(side: usize) -> Self {
        let (retina, glimpses) = match side {
            0..=32 => (Retina { patch: 8, scales: 1 }, 6),
            33..=80 => (Retina { patch: 12, scales: 3 }, 8),
            _ => (Retina { patch: 12, scales: 4 }, 8),
        };
        Self {
            input: [side, side],
            retina,
            glimpses,
            what_where: 128,
            hidden: 256,
            core: CoreKind::Rnn,
            policy: default_policy(),
            classes: 10,
            test_samples: 1,
            policy_gradient_to_core: false,
            location_hidden: 0,
            reinforce_weight: 1.0,
        }
    }

    /// Builds the model on `device`.
    pub fn init(&self, device: &Device) -> Ram {
        let lin = |i, o| LinearConfig::new(i, o).init(device);
        let (gates, n_loc) = match (self.core, self.policy) {
            (CoreKind::Rnn, p) => (1, p),
            (CoreKind::Lstm, p) => (4, p),
        };
        let loc_out = match n_loc {
            LocationPolicy::Gaussian { .. } => 2,
            LocationPolicy::Discrete { grid } => grid * grid,
        };
        Ram {
            glimpse_what: lin(self.retina.len(), self.what_where),
            glimpse_where: lin(2, self.what_where),
            glimpse_what_out: lin(self.what_where, self.hidden),
            glimpse_where_out: lin(self.what_where, self.hidden),
            core_h: lin(self.hidden, gates * self.hidden),
            core_g: lin(self.hidden, gates * self.hidden),
            location_hidden: (self.location_hidden > 0).then(|| lin(self.hidden, self.location_hidden)),
            location: lin(if self.location_hidden > 0 { self.location_hidden } else { self.hidden }, loc_out),
            action: lin(self.hidden, self.classes),
            baseline: lin(self.hidden, 1),
            config: self.clone(),
        }
    }
}

/// The model.
#[derive(Module, Debug)]
pub struct Ram {
    glimpse_what: Linear,
    glimpse_where: Linear,
    glimpse_what_out: Linear,
    glimpse_where_out: Linear,
    core_h: Linear,
    core_g: Linear,
    location_hidden: Option<Linear>,
    location: Linear,
    action: Linear,
    baseline: Linear,
    #[module(skip)]
    config: RamConfig,
}

/// How locations are picked during a forward pass.
pub enum Gaze<'a> {
    /// Sample from the policy (training, Monte-Carlo testing).
    Sample(&'a mut Rng),
    /// Take the policy's mean / mode (deterministic testing, pictures).
    Greedy,
}

/// Everything a forward pass produced.
pub struct Trajectory {
    /// Class logits after the last glimpse, `(B, classes)`.
    pub logits: Tensor<2>,
    /// `log π(l_t)` of each chosen location `t = 1..T-1`, each `(B,)`.
    pub log_probs: Vec<Tensor<1>>,
    /// Baseline `b_t` for each of those choices, each `(B,)`.
    pub baselines: Vec<Tensor<1>>,
    /// Every location looked at, `T` of them, each `(B, 2)` row-major.
    pub locations: Vec<Vec<f32>>,
    /// The core state `h_t` after each glimpse, `T` of them, each `(B, hidden)`: what the
    /// action network would answer after `t` glimpses ([`Ram::classify`]).
    pub hidden: Vec<Tensor<2>>,
}

impl Ram {
    /// The configuration.
    pub fn config(&self) -> &RamConfig {
        &self.config
    }

    /// One core step: `(h, c) ← f_h(h, c, g)`.
    fn core_step(&self, h: Tensor<2>, c: Tensor<2>, g: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let pre = self.core_h.forward(h) + self.core_g.forward(g);
        match self.config.core {
            CoreKind::Rnn => (relu(pre), c),
            CoreKind::Lstm => {
                let mut gates = pre.chunk(4, 1).into_iter();
                let (i, f, u, o) =
                    (gates.next().unwrap(), gates.next().unwrap(), gates.next().unwrap(), gates.next().unwrap());
                let c = sigmoid(f) * c + sigmoid(i) * u.tanh();
                (sigmoid(o) * c.clone().tanh(), c)
            }
        }
    }

    /// Runs `T` glimpses over `images` (`(B, H, W)` row-major on the CPU).
    pub fn run(&self, images: &[f32], gaze: Gaze, device: &Device) -> Trajectory {
        self.run_on(images, None, gaze, device)
    }

    /// [`run`](Self::run), with the glimpses read from `differentiable` (`(B, H·W)`, the same
    /// pixels as a tensor) when given, so that gradients reach the pixels (saliency).
    pub fn run_on(
        &self,
        images: &[f32],
        differentiable: Option<&Tensor<2>>,
        mut gaze: Gaze,
        device: &Device,
    ) -> Trajectory {
        let cfg = &self.config;
        let [hgt, wid] = cfg.input;
        let b = images.len() / (hgt * wid);
        let mut h = Tensor::<2>::zeros([b, cfg.hidden], device);
        let mut c = h.clone();
        let mut loc = vec![0.0f32; 2 * b]; // l_0: the centre
        let (mut log_probs, mut baselines, mut locations, mut hidden) = (vec![], vec![], vec![], vec![]);
        for t in 0..cfg.glimpses {
            let rho = match differentiable {
                Some(x) => cfg.retina.read_tensor(x.clone(), hgt, wid, &loc),
                None => {
                    let rho = cfg.retina.read(images, hgt, wid, &loc); // (B, k·g·g)
                    Tensor::<2>::from_data(TensorData::new(rho, [b, cfg.retina.len()]), device)
                }
            };
            let l = Tensor::<2>::from_data(TensorData::new(loc.clone(), [b, 2]), device);
            locations.push(std::mem::take(&mut loc));
            let what = relu(self.glimpse_what.forward(rho)); // h_g (B, 128)
            let wher = relu(self.glimpse_where.forward(l)); // h_l (B, 128)
            let g = relu(self.glimpse_what_out.forward(what) + self.glimpse_where_out.forward(wher)); // (B, 256)
            (h, c) = self.core_step(h, c, g);
            hidden.push(h.clone());
            if t + 1 == cfg.glimpses {
                break;
            }
            // Where next: location and baseline networks read h_t (detached unless the policy
            // gradient is to reach the core).
            let hd = if cfg.policy_gradient_to_core { h.clone() } else { h.clone().detach() };
            let feat = match &self.location_hidden {
                Some(layer) => relu(layer.forward(hd)),
                None => hd,
            };
            let out = self.location.forward(feat);
            match cfg.policy {
                LocationPolicy::Gaussian { std } => {
                    let p = GaussianPolicy { std };
                    let mean = out.tanh(); // μ_t (B, 2)
                    let mean_v: Vec<f32> = mean.clone().into_data().try_to_vec().expect("f32");
                    let sample = match &mut gaze {
                        Gaze::Sample(rng) => p.sample(&mean_v, rng),
                        Gaze::Greedy => mean_v,
                    };
                    loc = GaussianPolicy::clamp(&sample); // where the sensor looks
                    let lt = Tensor::<2>::from_data(TensorData::new(sample, [b, 2]), device);
                    log_probs.push(p.log_prob(mean, lt)); // scored at the unclamped sample
                }
                LocationPolicy::Discrete { grid } => {
                    let p = DiscretePolicy { grid };
                    let logits_v: Vec<f32> = out.clone().into_data().try_to_vec().expect("f32");
                    let chosen = match &mut gaze {
                        Gaze::Sample(rng) => p.sample(&logits_v, rng),
                        Gaze::Greedy => p.mode(&logits_v),
                    };
                    loc = chosen.iter().flat_map(|&i| p.location(i)).collect();
                    let idx: Vec<i64> = chosen.iter().map(|&i| i as i64).collect();
                    log_probs.push(p.log_prob(out, Tensor::<1, Int>::from_data(TensorData::new(idx, [b]), device)));
                }
            }
            baselines.push(self.baseline.forward(h.clone().detach()).reshape([b])); // b_t (B,)
        }
        Trajectory { logits: self.action.forward(h), log_probs, baselines, locations, hidden }
    }

    /// The action network's class logits `f_a(h_t)` for a core state, `(B, hidden)` →
    /// `(B, classes)`.
    pub fn classify(&self, h: Tensor<2>) -> Tensor<2> {
        self.action.forward(h)
    }

    /// The hybrid loss (paper §3.2) of one batch: cross-entropy + REINFORCE with baseline +
    /// the baseline's squared error. Returns the loss and the logits.
    pub fn hybrid_loss(
        &self,
        images: &[f32],
        labels: Tensor<1, Int>,
        rng: &mut Rng,
        device: &Device,
    ) -> (Tensor<1>, Tensor<2>) {
        let tr = self.run(images, Gaze::Sample(rng), device);
        let b = labels.dims()[0];
        let ce = CrossEntropyLossConfig::new().init(device).forward(tr.logits.clone(), labels.clone());
        // R = 1 for a correct answer, 0 otherwise; a constant for every gradient.
        let reward = tr.logits.clone().detach().argmax(1).reshape([b]).equal(labels).float(); // (B,)
        let mut reinforce = Tensor::<1>::zeros([1], device);
        let mut baseline_mse = Tensor::<1>::zeros([1], device);
        for (lp, base) in tr.log_probs.into_iter().zip(tr.baselines) {
            let advantage = (reward.clone() - base.clone().detach()).detach();
            reinforce = reinforce - (lp * advantage).mean();
            baseline_mse = baseline_mse + (base - reward.clone()).square().mean();
        }
        (ce + reinforce.mul_scalar(self.config.reinforce_weight) + baseline_mse, tr.logits)
    }

    /// Class logits for testing: the mean path (`test_samples = 1`) or the log of the average
    /// softmax over `test_samples` sampled paths (paper: Monte-Carlo averaging), with samples
    /// drawn from a fixed seed so that evaluation is deterministic.
    pub fn predict(&self, images: &[f32], device: &Device) -> Tensor<2> {
        let m = self.config.test_samples;
        if m <= 1 {
            return self.run(images, Gaze::Greedy, device).logits;
        }
        let mut rng = Rng::derive(0, "ram-test", 0);
        let mut p = softmax(self.run(images, Gaze::Sample(&mut rng), device).logits, 1);
        for _ in 1..m {
            p = p + softmax(self.run(images, Gaze::Sample(&mut rng), device).logits, 1);
        }
        p.div_scalar(m as f32).clamp_min(1e-12).log()
    }
}

/// `(B, 1, H, W)` images as a CPU buffer `(B, H, W)`.
pub fn pixels(images: &Tensor<4>) -> Vec<f32> {
    images.clone().into_data().try_to_vec().expect("f32 images")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy_batch(b: usize, side: usize, rng: &mut Rng) -> (Vec<f32>, Vec<i64>) {
        // Class 0: a bright square in the top-left quarter, class 1: in the bottom-right one.
        let mut x = vec![0.0f32; b * side * side];
        let mut y = vec![];
        for n in 0..b {
            let cls = rng.below(2);
            let q = side / 2;
            let (r0, c0) = (cls * q + rng.below(q - 4), cls * q + rng.below(q - 4));
            for r in r0..r0 + 4 {
                for c in c0..c0 + 4 {
                    x[n * side * side + r * side + c] = 1.0;
                }
            }
            y.push(cls as i64);
        }
        (x, y)
    }

    #[test]
    fn shapes_and_trajectory_lengths() {
        let dev = Device::flex().autodiff();
        for policy in [LocationPolicy::Gaussian { std: 0.1 }, LocationPolicy::Discrete { grid: 4 }] {
            for core in [CoreKind::Rnn, CoreKind::Lstm] {
                let location_hidden = if core == CoreKind::Lstm { 8 } else { 0 };
                let cfg = RamConfig {
                    policy,
                    core,
                    location_hidden,
                    glimpses: 4,
                    hidden: 32,
                    what_where: 16,
                    ..RamConfig::for_side(28)
                };
                let m = crate::device::seeded(&dev, 1, || cfg.init(&dev));
                let mut rng = Rng::new(0);
                let (x, _) = toy_batch(3, 28, &mut rng);
                let tr = m.run(&x, Gaze::Sample(&mut rng), &dev);
                assert_eq!(tr.logits.dims(), [3, 10]);
                assert_eq!((tr.log_probs.len(), tr.baselines.len(), tr.locations.len()), (3, 3, 4));
                assert!(tr.locations.iter().flatten().all(|v| v.abs() <= 1.0));
                assert_eq!(m.predict(&x, &dev).dims(), [3, 10]);
            }
        }
    }

    /// RAM learns, in seconds, a two-class task where the class is where a square is.
    #[test]
    fn learns_a_tiny_where_task_in_seconds() {
        let dev = Device::flex().autodiff();
        let cfg = RamConfig {
            input: [16, 16],
            retina: Retina { patch: 4, scales: 2 },
            glimpses: 3,
            what_where: 32,
            hidden: 64,
            classes: 2,
            ..RamConfig::for_side(16)
        };
        let mut model = crate::device::seeded(&dev, 1, || cfg.init(&dev));
        let mut optim = burn::optim::AdamConfig::new().init();
        let mut rng = Rng::new(3);
        for _ in 0..150 {
            let (x, y) = toy_batch(32, 16, &mut rng);
            let labels = Tensor::<1, Int>::from_data(TensorData::new(y, [32]), &dev);
            let (loss, _) = model.hybrid_loss(&x, labels, &mut rng, &dev);
            let grads = burn::optim::GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(3e-3, model, grads);
        }
        let (x, y) = toy_batch(200, 16, &mut rng);
        let pred: Vec<i64> = model.predict(&x, &dev).argmax(1).into_data().convert::<i64>().try_to_vec().unwrap();
        let acc = pred.iter().zip(&y).filter(|(a, b)| a == b).count() as f64 / 200.0;
        assert!(acc > 0.9, "accuracy {acc}");
    }
}
