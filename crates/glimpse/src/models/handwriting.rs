//! Graves (2013), "Generating Sequences With Recurrent Neural Networks": the handwriting
//! prediction network (section 4) and the synthesis network with its soft window over the
//! text (section 5).
//!
//! Both read pen offsets `x_t = (Δx, Δy, end-of-stroke)` and predict the next one with a
//! mixture density output ([`crate::models::mdn`]). `L` stacked LSTMs with skip connections
//! (fig. 1): every layer sees the input `x_t`, layer `n > 1` also sees `hⁿ⁻¹_t`, and the
//! output reads all layers `[h¹_t … hᴸ_t]` (eq. 1–4 / 17).
//!
//! The synthesis network (fig. 12) adds the window `w_t` ([`crate::attention::window`]): its
//! parameters come from the first layer's `h¹_t` (eq. 48), the first layer reads `w_{t−1}`
//! (eq. 52) and the upper layers read `w_t` (eq. 53).
//!
//! Training runs layer by layer (the first layer and the window over the whole sequence, then
//! each upper layer), with the read-out of all steps in one matrix product. Sampling
//! ([`Handwriting::generate`]) runs all layers one step at a time with the same weights; a
//! test checks both give the same outputs.

use crate::defaults;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::lstm::LstmCell;
use super::mdn;
use crate::attention::window;
use crate::rng::Rng;

/// Sizes of a handwriting network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandwritingConfig {
    /// LSTM cells per layer (the paper: 400).
    pub hidden: usize,
    /// Stacked layers (the paper: 3).
    pub layers: usize,
    /// Mixture components `M` of the output (the paper: 20).
    pub mixtures: usize,
    /// Gaussians `K` of the soft window over the text (the paper: 10); absent for the
    /// unconditional prediction network.
    pub window: Option<usize>,
    /// Width of the one-hot characters `c_u` (the alphabet's size).
    pub alphabet: usize,
    /// Characters per point the window advances at the start of training (`κ̂`'s initial
    /// bias is its log). Set it near the data's rate: the window learns to track the pen
    /// from there, while a window started far too slow can settle on reading the whole
    /// (short) text from its first few characters' tails instead of moving.
    #[serde(default = "defaults::f32::<1, 10>")]
    pub window_rate: f32,
}

impl HandwritingConfig {
    /// The paper's synthesis network (3 × 400, M = 20, K = 10) for an alphabet of `c`.
    pub fn paper_synthesis(c: usize) -> Self {
        Self { hidden: 400, layers: 3, mixtures: 20, window: Some(10), alphabet: c, window_rate: 0.1 }
    }

    /// Builds the network.
    pub fn init(&self, device: &Device) -> Handwriting {
        let (h, l) = (self.hidden, self.layers.max(1));
        let c = if self.window.is_some() { self.alphabet } else { 0 };
        let cells = (0..l).map(|n| LstmCell::new(if n == 0 { 3 + c } else { 3 + h + c }, h, device)).collect();
        let window = self.window.map(|k| {
            let mut lin = LinearConfig::new(h, 3 * k).init(device);
            // κ starts moving at `window_rate` characters per point; α and β start at e⁰ = 1.
            let speed = self.window_rate.max(1e-6).ln();
            let bias: Vec<f32> = (0..3 * k).map(|i| if i >= 2 * k { speed } else { 0.0 }).collect();
            lin.bias =
                Some(burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(bias, [3 * k]), device)));
            lin
        });
        Handwriting {
            cells,
            window,
            output: LinearConfig::new(l * h, mdn::outputs(self.mixtures)).init(device),
            hidden: h,
            chars: c,
            components: self.window.unwrap_or(0),
        }
    }
}

/// The prediction network, or the synthesis network when it has a window.
#[derive(Module, Debug)]
pub struct Handwriting {
    cells: Vec<LstmCell>,
    /// `h¹_t → (α̂, β̂, κ̂)` (eq. 48).
    window: Option<Linear>,
    /// `[h¹ … hᴸ] → ŷ` (eq. 17).
    output: Linear,
    #[module(skip)]
    hidden: usize,
    #[module(skip)]
    chars: usize,
    #[module(skip)]
    components: usize,
}

/// A text to write, as a batch: one-hot characters and which positions are real.
#[derive(Debug, Clone)]
pub struct Text {
    /// `c_u` `(B, U, C)`.
    pub chars: Tensor<3>,
    /// `(B, U)`: 1 for a character, 0 for padding.
    pub mask: Tensor<2>,
}

impl Text {
    /// One-hot batch of character indices (each `< c`), padded to the longest plus `extra`
    /// empty positions (the sampler's stopping rule looks one position past the end).
    pub fn from_indices(texts: &[Vec<usize>], c: usize, extra: usize, device: &Device) -> Self {
        let b = texts.len();
        let u = texts.iter().map(Vec::len).max().unwrap_or(0) + extra;
        let mut chars = vec![0.0f32; b * u * c];
        let mut mask = vec![0.0f32; b * u];
        for (i, t) in texts.iter().enumerate() {
            for (j, &k) in t.iter().enumerate() {
                chars[(i * u + j) * c + k] = 1.0;
            }
            mask[i * u..i * u + t.len() + extra].fill(1.0);
        }
        Self {
            chars: Tensor::from_data(TensorData::new(chars, [b, u, c]), device),
            mask: Tensor::from_data(TensorData::new(mask, [b, u]), device),
        }
    }

    fn len(&self) -> usize {
        self.chars.dims()[1]
    }
}

/// Recurrent state between sampling steps.
#[derive(Debug, Clone)]
pub struct State {
    h: Vec<Tensor<2>>,
    c: Vec<Tensor<2>>,
    /// `κ_{t−1}` `(B, K)` and `w_{t−1}` `(B, C)` (synthesis only).
    kappa: Option<Tensor<2>>,
    w: Option<Tensor<2>>,
}

/// One generated sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Generated {
    /// Pen offsets `(Δx, Δy, eos)` in the model's (normalised) units.
    pub offsets: Vec<[f32; 3]>,
    /// Synthesis: `φ(t, u)` at each step, over the text's characters and one position past
    /// the end (`U + 1` values).
    pub phi: Vec<Vec<f32>>,
    /// Synthesis: the stopping rule fired (the window moved past the last character) before
    /// the step limit.
    pub finished: bool,
}

impl Generated {
    /// Whether the window's peak `argmax_u φ(t, u)` never moved back.
    pub fn monotonic(&self) -> bool {
        let peaks: Vec<usize> = self
            .phi
            .iter()
            .map(|p| p.iter().enumerate().fold((0, f32::MIN), |a, (i, &v)| if v > a.1 { (i, v) } else { a }).0)
            .collect();
        peaks.windows(2).all(|w| w[1] >= w[0])
    }
}

/// How to sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// Graves' bias `b` (section 5.4): `π ∝ π^(1+b)`, `σ = exp(σ̂ − b)`; 0 samples the model
    /// as trained, larger values write more neatly.
    pub bias: f32,
    /// Longest sequence generated.
    pub max_steps: usize,
}

impl Handwriting {
    /// Whether this is the synthesis network.
    pub fn is_synthesis(&self) -> bool {
        self.window.is_some()
    }

    /// The width of the one-hot characters it reads (synthesis), or `None` (prediction).
    pub fn alphabet(&self) -> Option<usize> {
        self.is_synthesis().then_some(self.chars)
    }

    /// Mixture components `M`.
    pub fn mixtures(&self) -> usize {
        (self.output.weight.dims()[1] - 1) / 6
    }

    /// The window and its vector for one step: `h¹ (B, H)` → `(κ_t, φ (B, U), w_t (B, C))`.
    fn attend(&self, h1: Tensor<2>, kappa: Tensor<2>, text: &Text) -> (Tensor<2>, Tensor<2>, Tensor<2>) {
        let lin = self.window.as_ref().expect("synthesis network");
        let p = window::window_params(lin.forward(h1), kappa); // eq. 48–51
        let phi = window::phi(&p, text.len(), text.mask.clone()); // eq. 46
        let w = window::window_vector(phi.clone(), text.chars.clone()); // eq. 47
        (p.kappa, phi, w)
    }

    /// Mixture parameters `ŷ_t` `(B, T, 1 + 6M)` for inputs `x (B, T, 3)` (teacher forcing:
    /// `x_t` is the previous point), and `φ` `(B, T, U)` for the synthesis network.
    pub fn forward(&self, x: Tensor<3>, text: Option<&Text>) -> (Tensor<3>, Option<Tensor<3>>) {
        let [b, t, _] = x.dims();
        let (hd, device) = (self.hidden, x.device());
        let zeros = |n: usize| Tensor::<2>::zeros([b, n], &device);
        // Per-step slices are taken once, from the (untracked) inputs. Slicing a tracked
        // (B, T, ·) tensor per step would cost a full-size gradient buffer per slice.
        let xs: Vec<Tensor<2>> = (0..t).map(|s| x.clone().narrow(1, s, 1).reshape([b, 3])).collect();
        // First layer and window, step by step (eq. 52, 46–51).
        let (mut h, mut c) = (zeros(hd), zeros(hd));
        let mut kappa = zeros(self.components);
        let mut w = zeros(self.chars);
        let (mut below, mut ws, mut phis) = (Vec::with_capacity(t), Vec::with_capacity(t), Vec::new());
        for x_s in &xs {
            let input = if self.is_synthesis() { Tensor::cat(vec![x_s.clone(), w.clone()], 1) } else { x_s.clone() };
            (h, c) = self.cells[0].step(input, h, c);
            if let Some(text) = text.filter(|_| self.is_synthesis()) {
                let phi;
                (kappa, phi, w) = self.attend(h.clone(), kappa, text);
                phis.push(phi);
                ws.push(w.clone());
            }
            below.push(h.clone());
        }
        let mut layers = vec![Tensor::stack::<3>(below, 1)]; // (B, T, H)
        let w_all = (!ws.is_empty()).then(|| Tensor::stack::<3>(ws, 1)); // (B, T, C)
        // Upper layers read [x_t, hⁿ⁻¹_t, w_t] (eq. 53): known for every step once the layer
        // below has run, so each upper layer runs as one sequence.
        for cell in &self.cells[1..] {
            let mut input = vec![x.clone(), layers.last().expect("the first layer ran").clone()];
            input.extend(w_all.clone());
            let (hs, _) = cell.sequence(Tensor::cat(input, 2), zeros(hd), zeros(hd), None);
            layers.push(hs);
        }
        let all = Tensor::cat(layers, 2); // (B, T, L·H)
        let l = all.dims()[2];
        let y = self.output.forward(all.reshape([b * t, l])).reshape([b, t, mdn::outputs(self.mixtures())]);
        (y, (!phis.is_empty()).then(|| Tensor::stack::<3>(phis, 1)))
    }

    /// Eq. 26 summed over each sequence's real points: `x (B, T, 3)` inputs, `targets (B, T, 3)`,
    /// `mask (B, T)` → `(B)` nats per sequence.
    pub fn nll(&self, x: Tensor<3>, targets: Tensor<3>, mask: Tensor<2>, text: Option<&Text>) -> Tensor<1> {
        let [b, t, _] = x.dims();
        let (y, _) = self.forward(x, text);
        let y = y.reshape([b * t, mdn::outputs(self.mixtures())]);
        let per_point = mdn::nll(&mdn::mixture(y), targets.reshape([b * t, 3])).reshape([b, t]);
        (per_point * mask).sum_dim(1).reshape([b])
    }

    /// The zero state of a batch of `b`.
    pub fn start(&self, b: usize, device: &Device) -> State {
        let z = |n: usize| Tensor::<2>::zeros([b, n], device);
        State {
            h: self.cells.iter().map(|_| z(self.hidden)).collect(),
            c: self.cells.iter().map(|_| z(self.hidden)).collect(),
            kappa: self.is_synthesis().then(|| z(self.components)),
            w: self.is_synthesis().then(|| z(self.chars)),
        }
    }

    /// One step of all layers: input `x (B, 3)` → `(ŷ (B, 1 + 6M), φ (B, U))`.
    pub fn step(&self, x: Tensor<2>, state: &mut State, text: Option<&Text>) -> (Tensor<2>, Option<Tensor<2>>) {
        let mut phi = None;
        let mut below: Option<Tensor<2>> = None;
        for (n, cell) in self.cells.iter().enumerate() {
            let mut input = vec![x.clone()];
            input.extend(below.take());
            // The first layer reads w_{t−1} (eq. 52); the window then moves, and the upper
            // layers read w_t (eq. 53).
            input.extend(state.w.clone());
            let (h, c) = cell.step(Tensor::cat(input, 1), state.h[n].clone(), state.c[n].clone());
            if n == 0
                && let (Some(text), Some(kappa)) = (text, state.kappa.clone())
            {
                let (k, p, w) = self.attend(h.clone(), kappa, text);
                (state.kappa, state.w, phi) = (Some(k), Some(w), Some(p));
            }
            below = Some(h.clone());
            (state.h[n], state.c[n]) = (h, c);
        }
        let y = self.output.forward(Tensor::cat(state.h.clone(), 1));
        (y, phi)
    }

    /// Samples sequences: `texts` (character indices) for the synthesis network, one sequence
    /// each; `n` unconditional sequences otherwise. `prime` (offsets, and their text for the
    /// synthesis network) is fed first, teacher-forced, as Graves' priming (section 5.5): the
    /// samples continue in the primer's style; its text is written before each text.
    pub fn generate(
        &self,
        texts: Option<&[Vec<usize>]>,
        n: usize,
        prime: Option<(&[[f32; 3]], &[usize])>,
        how: Sampling,
        rng: &mut Rng,
        device: &Device,
    ) -> Vec<Generated> {
        self.generate_streamed(texts, n, prime, how, rng, device, &mut |_, _| {})
    }

    /// [`generate`](Self::generate), calling `on_point(i, g)` each time sample `i` gains a
    /// point (the newest of `g.offsets`, with its window `g.phi`), so that a caller can show
    /// the writing as it is written.
    #[allow(clippy::too_many_arguments)]
    pub fn generate_streamed(
        &self,
        texts: Option<&[Vec<usize>]>,
        n: usize,
        prime: Option<(&[[f32; 3]], &[usize])>,
        how: Sampling,
        rng: &mut Rng,
        device: &Device,
        on_point: &mut dyn FnMut(usize, &Generated),
    ) -> Vec<Generated> {
        let full: Option<Vec<Vec<usize>>> = texts.map(|ts| {
            ts.iter()
                .map(|t| match prime {
                    Some((_, p)) if !p.is_empty() => p.iter().chain(t).copied().collect(),
                    _ => t.clone(),
                })
                .collect()
        });
        let b = full.as_ref().map_or(n, Vec::len);
        // One empty position past each text: the stopping rule compares φ there (section 5.3).
        let text = full.as_ref().filter(|_| self.is_synthesis()).map(|f| Text::from_indices(f, self.chars, 1, device));
        let lens: Vec<usize> = full.as_ref().map_or(vec![0; b], |f| f.iter().map(Vec::len).collect());
        let mut state = self.start(b, device);
        let mut x = Tensor::<2>::zeros([b, 3], device);
        for p in prime.map_or(&[][..], |(o, _)| o) {
            self.step(x, &mut state, text.as_ref());
            x = Tensor::from_data(TensorData::new(p.repeat(b), [b, 3]), device);
        }
        let mut out = vec![Generated { offsets: vec![], phi: vec![], finished: false }; b];
        for _ in 0..how.max_steps {
            let (y, phi) = self.step(x, &mut state, text.as_ref());
            let y: Vec<f32> = y.into_data().try_to_vec().expect("f32");
            let phi: Option<Vec<f32>> = phi.map(|p| p.into_data().try_to_vec().expect("f32"));
            let k = y.len() / b;
            let mut next = Vec::with_capacity(3 * b);
            for (i, g) in out.iter_mut().enumerate() {
                let point = sample_point(&y[i * k..(i + 1) * k], how.bias, rng);
                next.extend_from_slice(&point);
                if g.finished {
                    continue;
                }
                if let Some(phi) = &phi {
                    let u = phi.len() / b;
                    let row = phi[i * u..i * u + lens[i] + 1].to_vec();
                    // Stop once φ(t, U + 1) exceeds φ(t, u) for every character u.
                    let past = row[lens[i]];
                    g.finished = row[..lens[i]].iter().all(|&v| past > v);
                    g.phi.push(row);
                    if g.finished {
                        continue;
                    }
                }
                g.offsets.push(point);
                on_point(i, g);
            }
            if self.is_synthesis() && out.iter().all(|g| g.finished) {
                break;
            }
            x = Tensor::from_data(TensorData::new(next, [b, 3]), device);
        }
        out
    }
}

/// Draws one point from a step's raw mixture outputs `ŷ` with Graves' bias (eq. 61–62).
pub fn sample_point(raw: &[f32], bias: f32, rng: &mut Rng) -> [f32; 3] {
    let m = (raw.len() - 1) / 6;
    let r = |k: usize, j: usize| raw[1 + k * m + j] as f64;
    let b = bias as f64;
    // π_j ∝ exp(π̂_j (1 + b)), stabilised by the largest.
    let top = (0..m).map(|j| r(0, j)).fold(f64::MIN, f64::max);
    let weights: Vec<f64> = (0..m).map(|j| ((r(0, j) - top) * (1.0 + b)).exp()).collect();
    let mut u = rng.uniform() * weights.iter().sum::<f64>();
    let mut j = m - 1;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            j = i;
            break;
        }
        u -= w;
    }
    let (s1, s2, rho) = ((r(3, j) - b).exp(), (r(4, j) - b).exp(), r(5, j).tanh());
    let (z1, z2) = (rng.normal(), rng.normal());
    let dx = r(1, j) + s1 * z1;
    let dy = r(2, j) + s2 * (rho * z1 + (1.0 - rho * rho).max(0.0).sqrt() * z2);
    let e = 1.0 / (1.0 + (raw[0] as f64).exp()); // eq. 18
    let eos = if rng.uniform() < e { 1.0 } else { 0.0 };
    [dx as f32, dy as f32, eos]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(window: Option<usize>) -> HandwritingConfig {
        HandwritingConfig { hidden: 8, layers: 3, mixtures: 3, window, alphabet: 5, window_rate: 0.1 }
    }

    fn points(b: usize, t: usize, seed: u64, dev: &Device) -> Tensor<3> {
        let v = crate::testing::uniform(b * t * 3, -1.0, 1.0, seed);
        let v: Vec<f32> =
            v.iter().enumerate().map(|(i, &x)| if i % 3 == 2 { (x > 0.5) as u8 as f32 } else { x }).collect();
        Tensor::from_data(TensorData::new(v, [b, t, 3]), dev)
    }

    #[test]
    fn shapes_and_stepping_equals_the_layerwise_forward() {
        let dev = Device::flex();
        for window in [None, Some(2)] {
            let model = crate::device::seeded(&dev, 3, || cfg(window).init(&dev));
            let (b, t) = (2, 6);
            let x = points(b, t, 1, &dev);
            let text = Text::from_indices(&[vec![1, 2, 3], vec![4, 0]], 5, 0, &dev);
            let (y, phi) = model.forward(x.clone(), Some(&text));
            assert_eq!(y.dims(), [b, t, mdn::outputs(3)]);
            assert_eq!(phi.as_ref().map(|p| p.dims()), window.map(|_| [b, t, 3]));
            let mut state = model.start(b, &dev);
            for s in 0..t {
                let xs = x.clone().narrow(1, s, 1).reshape([b, 3]);
                let (ys, ps) = model.step(xs, &mut state, Some(&text));
                let want: Vec<f32> =
                    y.clone().narrow(1, s, 1).reshape([b, mdn::outputs(3)]).into_data().try_to_vec().unwrap();
                let got: Vec<f32> = ys.into_data().try_to_vec().unwrap();
                for (a, w) in got.iter().zip(&want) {
                    assert!((a - w).abs() < 1e-5, "step {s}: {a} vs {w}");
                }
                if let (Some(ps), Some(phi)) = (ps, &phi) {
                    let want: Vec<f32> = phi.clone().narrow(1, s, 1).reshape([b, 3]).into_data().try_to_vec().unwrap();
                    let got: Vec<f32> = ps.into_data().try_to_vec().unwrap();
                    assert!(got.iter().zip(&want).all(|(a, w)| (a - w).abs() < 1e-5));
                    // The second text has 2 characters: φ is 0 on its padding.
                    assert_eq!(got[5], 0.0);
                }
            }
        }
    }

    #[test]
    fn the_loss_ignores_padded_points_and_gradients_match_finite_differences() {
        let dev = Device::flex();
        let model = crate::device::seeded(&dev, 5, || cfg(Some(2)).init(&dev));
        let text = Text::from_indices(&[vec![1, 2]], 5, 0, &dev);
        let x = points(1, 5, 2, &dev);
        let y = points(1, 5, 3, &dev);
        let mask = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 1.0, 1.0, 0.0, 0.0], [1, 5]), &dev);
        let a: f32 = model.nll(x.clone(), y.clone(), mask.clone(), Some(&text)).into_scalar();
        // Changing a padded target changes nothing; changing a real one does.
        let mut yv: Vec<f32> = y.clone().into_data().try_to_vec().unwrap();
        yv[12] += 5.0;
        let y2 = Tensor::<3>::from_data(TensorData::new(yv.clone(), [1, 5, 3]), &dev);
        let b: f32 = model.nll(x.clone(), y2, mask.clone(), Some(&text)).into_scalar();
        assert_eq!(a, b);
        yv[0] += 5.0;
        let y3 = Tensor::<3>::from_data(TensorData::new(yv, [1, 5, 3]), &dev);
        let c: f32 = model.nll(x, y3, mask, Some(&text)).into_scalar();
        assert!((a - c).abs() > 1e-3);
        // d(loss)/d(inputs) through the LSTMs, the window and the mixture.
        let text_ad = |d: &Device| Text::from_indices(&[vec![1, 2]], 5, 0, d);
        let targets = crate::testing::uniform(15, -1.0, 1.0, 4);
        crate::testing::grad_check(&[crate::testing::uniform(15, -1.0, 1.0, 7)], 1e-2, 3e-2, |v| {
            let [xs]: [Tensor<1>; 1] = v.try_into().unwrap();
            let d = xs.device();
            let m = model.clone().fork(&d);
            let tg = Tensor::<3>::from_data(TensorData::new(targets.clone(), [1, 5, 3]), &d);
            let ones = Tensor::<2>::ones([1, 5], &d);
            m.nll(xs.reshape([1, 5, 3]), tg, ones, Some(&text_ad(&d)))
        });
    }

    #[test]
    fn sampling_follows_the_mixture_and_the_bias_sharpens_it() {
        let mut rng = Rng::new(1);
        // One component at (2, −1) with σ = e⁰ and e = σ(−ê) with ê = −20: always end of stroke.
        let raw = [-20.0f32, 0.0, 2.0, -1.0, 0.0, 0.0, 0.0];
        let pts: Vec<[f32; 3]> = (0..2000).map(|_| sample_point(&raw, 0.0, &mut rng)).collect();
        let mean = |k: usize| pts.iter().map(|p| p[k] as f64).sum::<f64>() / pts.len() as f64;
        assert!((mean(0) - 2.0).abs() < 0.1 && (mean(1) + 1.0).abs() < 0.1);
        assert!(pts.iter().all(|p| p[2] == 1.0));
        let spread = |b: f32, rng: &mut Rng| {
            (0..2000).map(|_| (sample_point(&raw, b, rng)[0] as f64 - 2.0).powi(2)).sum::<f64>() / 2000.0
        };
        let (loose, tight) = (spread(0.0, &mut rng), spread(2.0, &mut rng));
        assert!((loose - 1.0).abs() < 0.15 && (tight - (-4f64).exp()).abs() < 0.01, "{loose} {tight}");
    }

    #[test]
    fn generation_stops_when_the_window_passes_the_end() {
        let dev = Device::flex();
        let model = crate::device::seeded(&dev, 9, || cfg(Some(2)).init(&dev));
        let mut rng = Rng::new(2);
        let how = Sampling { bias: 0.0, max_steps: 400 };
        let g = model.generate(Some(&[vec![1, 2], vec![3]]), 0, None, how, &mut rng, &dev);
        assert_eq!(g.len(), 2);
        for s in &g {
            // κ grows by ≥ e^(κ̂) every step, so an untrained window still drifts off the end.
            assert!(s.finished, "{} steps", s.phi.len());
            assert_eq!(s.phi.len(), s.offsets.len() + 1);
            assert!(s.phi.iter().all(|p| p.len() == s.phi[0].len()));
        }
        let u = model.generate(
            None,
            3,
            Some((&[[0.1, 0.0, 0.0]], &[])),
            Sampling { bias: 1.0, max_steps: 7 },
            &mut rng,
            &dev,
        );
        assert_eq!(u.iter().map(|s| s.offsets.len()).collect::<Vec<_>>(), vec![7, 7, 7]);
    }
}
