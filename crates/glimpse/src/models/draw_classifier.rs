//! The "differentiable RAM" of the DRAW paper (Gregor et al. 2015, §4.1): a classifier that
//! looks at an image through DRAW's read attention for `T` glimpses and answers at the end.
//! Unlike the RAM it is trained end to end by backpropagation: the filterbank is a smooth
//! function of the LSTM state, so where to look gets exact gradients, not REINFORCE.
//!
//! Per step t: the window `(g̃_X, g̃_Y, log σ², log δ̃, log γ) = W h_{t−1}` (eq. 21), the glimpse
//! `r_t = γ F_Y x F_Xᵀ` (`N × N`, eq. 27), `h_t = LSTM(h_{t−1}, r_t)`; after the last glimpse
//! the class logits are `W_a h_T`. The paper's cluttered 100×100 MNIST model: `N = 12`,
//! 256 LSTM units, 8 glimpses.

use burn::module::{Module, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::draw::{Window, windows};
use super::image_classifier::{ImageClassifier, Labelled};
use super::lstm::{LstmCell, widen_rows};
use crate::attention::filterbank::{self, Filterbank};
use crate::rng::Rng;

/// Sizes of a [`DrawClassifier`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawClassifierConfig {
    /// Image `[rows, cols]`.
    pub input: [usize; 2],
    /// Glimpses `T`.
    pub glimpses: usize,
    /// Read grid side `N`.
    pub read: usize,
    /// LSTM width.
    pub hidden: usize,
    /// Number of classes.
    pub classes: usize,
    /// Dropout on the last state fed to the classifier while training: each unit kept with
    /// probability `1 − dropout` and scaled by its inverse. 0, the default, is the paper's model.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropout: f32,
    /// The same on each glimpse fed to the LSTM (Zaremba et al. 2014's dropout on the
    /// non-recurrent connections). 0 by default.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub read_dropout: f32,
    /// Deep supervision while training: the classifier also answers after each glimpse
    /// `t = ⌈T/2⌉ … T − 1` (the same layer `W_a` on `h_t`), and the mean cross-entropy of
    /// those answers is added to the loss with this weight. It asks for the digit to be found
    /// early rather than by the last glimpse. 0, the default, is the paper's loss; the model
    /// (and its evaluation) is the same either way.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub step_loss: f32,
    /// Location supervision while training (not in the paper; a training signal only): the
    /// data generator knows where it put the digit, and this weight adds the squared distance
    /// between each read window's centre and the digit's, beyond a margin of
    /// [`LOCATE_MARGIN`] pixels on each axis and in units of the image side, averaged over the
    /// glimpses `locate_from … T` ([`locate_loss`]). Classification alone only pulls a window
    /// that already overlaps the digit; this also pulls one that went to a distractor.
    /// Evaluation never sees the digit's position. 0, the default, is the paper's loss.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub locate: f32,
    /// The first glimpse (counted from 1) whose window `locate` supervises: 2 (the default)
    /// supervises every window after the fixed first view; a later one leaves the glimpses
    /// before it free to look around.
    #[serde(default = "second_glimpse", skip_serializing_if = "is_second")]
    pub locate_from: usize,
}

fn is_zero(p: &f32) -> bool {
    *p == 0.0
}

/// The default first supervised glimpse: the first one after the fixed whole-image view.
const SECOND_GLIMPSE: usize = 2;

fn second_glimpse() -> usize {
    SECOND_GLIMPSE
}

fn is_second(t: &usize) -> bool {
    *t == SECOND_GLIMPSE
}

/// The margin, in pixels on each axis, within which [`DrawClassifierConfig::locate`] does not
/// pull a window's centre towards the digit's: a window that near reads the digit, and
/// classification alone places it from there.
pub const LOCATE_MARGIN: f32 = 4.0;

/// The location loss of one glimpse: window centres `(g_X, g_Y)` `(B, 1)` each, in the
/// filterbank's 1-based pixel coordinates, against the digits' centres `(B, 2)` as 0-based
/// `(row, col)`: the mean over the batch of `Σ_axis relu(|g − c| − margin)² / side²`.
pub fn locate_loss(gx: Tensor<2>, gy: Tensor<2>, centres: Tensor<2>, side: [usize; 2], margin: f32) -> Tensor<1> {
    let [b, _] = centres.dims();
    let miss = |g: Tensor<2>, c: Tensor<2>, len: usize| -> Tensor<2> {
        // 1-based filterbank coordinates → 0-based pixels, as `windows` does.
        let off = (g.sub_scalar(1.0) - c).abs().sub_scalar(margin);
        burn::tensor::activation::relu(off).div_scalar(len as f32).square()
    };
    let dy = miss(gy, centres.clone().narrow(1, 0, 1), side[0]);
    let dx = miss(gx, centres.narrow(1, 1, 1), side[1]);
    (dy + dx).sum().div_scalar(b as f32).reshape([1])
}

impl DrawClassifierConfig {
    /// The paper's settings for an `side × side` image: 12×12 reads, 256 units, 8 glimpses.
    pub fn new(side: usize) -> Self {
        Self {
            input: [side, side],
            glimpses: 8,
            read: 12,
            hidden: 256,
            classes: 10,
            dropout: 0.0,
            read_dropout: 0.0,
            step_loss: 0.0,
            locate: 0.0,
            locate_from: SECOND_GLIMPSE,
        }
    }

    /// Refuses training options out of range: a dropout outside `[0, 1)`, a negative or
    /// non-finite `step_loss` or `locate`, or a `locate_from` that is not one of the glimpses
    /// `1..=T` (0 would supervise the fixed first view too; beyond `T`, nothing).
    pub fn validate(&self) -> anyhow::Result<()> {
        if !((0.0..1.0).contains(&self.dropout) && (0.0..1.0).contains(&self.read_dropout)) {
            anyhow::bail!("dropout = {} and read_dropout = {} must be in [0, 1)", self.dropout, self.read_dropout);
        }
        if !(self.step_loss >= 0.0 && self.step_loss.is_finite()) {
            anyhow::bail!("step_loss = {} must be a finite weight ≥ 0", self.step_loss);
        }
        if !(self.locate >= 0.0 && self.locate.is_finite() && (1..=self.glimpses).contains(&self.locate_from)) {
            anyhow::bail!(
                "locate = {} must be a finite weight ≥ 0 and locate_from = {} a glimpse in 1..={}",
                self.locate,
                self.locate_from,
                self.glimpses
            );
        }
        Ok(())
    }

    /// Builds the model. The first glimpse starts as a blurred view of the whole image
    /// ([`filterbank::tiling_bias`]).
    pub fn init(&self, device: &Device) -> DrawClassifier {
        let attention = filterbank::attention_layer(self.hidden, self.input, self.read, device);
        DrawClassifier {
            attention,
            core: LstmCell::new(self.read * self.read, self.hidden, device),
            action: LinearConfig::new(self.hidden, self.classes).init(device),
            input: self.input,
            glimpses: self.glimpses,
            read: self.read,
            dropout: self.dropout,
            read_dropout: self.read_dropout,
            step_loss: self.step_loss,
            locate: self.locate,
            locate_from: self.locate_from,
        }
    }
}

/// Read attention + LSTM + linear classifier.
#[derive(Module, Debug)]
pub struct DrawClassifier {
    /// `h_{t−1} → (g̃_X, g̃_Y, log σ², log δ̃, log γ)`.
    attention: Linear,
    core: LstmCell,
    /// `h_T → logits`.
    action: Linear,
    #[module(skip)]
    input: [usize; 2],
    #[module(skip)]
    glimpses: usize,
    #[module(skip)]
    read: usize,
    #[module(skip)]
    dropout: f32,
    #[module(skip)]
    read_dropout: f32,
    #[module(skip)]
    step_loss: f32,
    #[module(skip)]
    locate: f32,
    #[module(skip)]
    locate_from: usize,
}

impl DrawClassifier {
    /// Images `(B, 1, rows, cols)` → logits, and (when `windows_out` is given) the read window
    /// of every glimpse, per batch element.
    pub fn run(&self, images: Tensor<4>, windows_out: Option<&mut Vec<Vec<Window>>>) -> Tensor<2> {
        self.run_with(images, windows_out, None, None, None)
    }

    /// The training loss and the final logits ([`DrawClassifier::run`] with dropout masks
    /// drawn from `rng`; the same as `run` when the model's dropout is 0): the cross-entropy
    /// of the last answer, plus `step_loss` times the mean cross-entropy of the answers after
    /// glimpses `⌈T/2⌉ … T − 1` ([`DrawClassifierConfig::step_loss`]; no dropout on those).
    pub fn train_loss(&self, images: Tensor<4>, labels: Tensor<1, Int>, rng: &mut Rng) -> (Tensor<1>, Tensor<2>) {
        self.train_loss_at(Labelled { images, labels, centres: None }, rng)
    }

    /// [`DrawClassifier::train_loss`], plus `locate` times the location loss of the windows
    /// from glimpse `locate_from` on ([`DrawClassifierConfig::locate`]) when the digits'
    /// centres `(B, 2)` (0-based `(row, col)` pixels) are given; without them, or with
    /// `locate` 0, it is `train_loss`.
    ///
    /// # Panics
    /// With centres and `locate > 0`, if `locate_from` is not a glimpse `1..=T`
    /// ([`DrawClassifierConfig::validate`] refuses such a configuration up front).
    pub fn train_loss_at(&self, batch: Labelled, rng: &mut Rng) -> (Tensor<1>, Tensor<2>) {
        let Labelled { images, labels, centres } = batch;
        let rng = (self.dropout > 0.0 || self.read_dropout > 0.0).then_some(rng);
        let mut early = Vec::new();
        let want = (self.step_loss > 0.0).then_some(&mut early);
        let mut found = Vec::new();
        let centres = centres.filter(|_| self.locate > 0.0);
        assert!(
            centres.is_none() || (1..=self.glimpses).contains(&self.locate_from),
            "locate_from = {} must be a glimpse in 1..={}",
            self.locate_from,
            self.glimpses
        );
        let seen = centres.is_some().then_some(&mut found);
        let [_, _, rows, cols] = images.dims();
        let logits = self.run_with(images, None, rng, want, seen);
        let ce = CrossEntropyLossConfig::new().init(&logits.device());
        let mut loss = ce.forward(logits.clone(), labels.clone());
        if !early.is_empty() {
            let k = early.len() as f64;
            let steps = early.into_iter().map(|l| ce.forward(l, labels.clone())).reduce(|a, b| a + b);
            loss = loss + steps.expect("at least one early answer").mul_scalar(self.step_loss as f64 / k);
        }
        if let Some(c) = centres {
            let k = found.len().max(1) as f64;
            let miss = found
                .into_iter()
                .map(|(gx, gy)| locate_loss(gx, gy, c.clone(), [rows, cols], LOCATE_MARGIN))
                .reduce(|a, b| a + b);
            if let Some(miss) = miss {
                loss = loss + miss.mul_scalar(self.locate as f64 / k);
            }
        }
        (loss, logits)
    }

    /// `early`, when given, collects the logits after glimpses `⌈T/2⌉ … T − 1`; `seen`, the
    /// window centres `(g_X, g_Y)` of glimpses `locate_from … T`.
    fn run_with(
        &self,
        images: Tensor<4>,
        mut windows_out: Option<&mut Vec<Vec<Window>>>,
        mut dropout: Option<&mut Rng>,
        mut early: Option<&mut Vec<Tensor<2>>>,
        mut seen: Option<&mut Vec<(Tensor<2>, Tensor<2>)>>,
    ) -> Tensor<2> {
        let [b, _, rows, cols] = images.dims();
        let x = images.reshape([b, rows, cols]);
        let device = x.device();
        let n = self.read;
        let hidden = self.core.hidden();
        let (mut h, mut c) = (Tensor::<2>::zeros([b, hidden], &device), Tensor::<2>::zeros([b, hidden], &device));
        for t in 1..=self.glimpses {
            let fb = Filterbank::from_raw(self.attention.forward(h.clone()), [rows, cols], n);
            if let Some(w) = windows_out.as_deref_mut() {
                w.push(windows(&fb));
            }
            if let Some(s) = seen.as_deref_mut().filter(|_| t >= self.locate_from) {
                s.push((fb.gx.clone(), fb.gy.clone()));
            }
            let (fx, fy) = fb.matrices([rows, cols]);
            let mut r = filterbank::read(x.clone(), fx, fy, fb.gamma).reshape([b, n * n]); // (B, N²)
            if let Some(rng) = dropout.as_deref_mut().filter(|_| self.read_dropout > 0.0) {
                r = r * dropout_mask([b, n * n], self.read_dropout, rng, &device);
            }
            (h, c) = self.core.step(r, h, c);
            if let Some(e) = early.as_deref_mut().filter(|_| t >= self.glimpses.div_ceil(2) && t < self.glimpses) {
                e.push(self.action.forward(h.clone()));
            }
        }
        if let Some(rng) = dropout.filter(|_| self.dropout > 0.0) {
            h = h * dropout_mask([b, hidden], self.dropout, rng, &device);
        }
        self.action.forward(h)
    }

    /// Image `[rows, cols]`.
    pub fn input(&self) -> [usize; 2] {
        self.input
    }

    /// LSTM width.
    pub fn hidden(&self) -> usize {
        self.core.hidden()
    }

    /// This model with `hidden` LSTM units, computing the same logits ([`LstmCell::widened`]):
    /// the new units start from a fresh initialisation drawn on `device` and have zero weights
    /// into the old units, the window and the classifier, so training grows them from a
    /// model that already works. A larger student for the same teachers.
    pub fn widened(self, hidden: usize, device: &Device) -> anyhow::Result<DrawClassifier> {
        let h0 = self.core.hidden();
        let cfg = DrawClassifierConfig {
            input: self.input,
            glimpses: self.glimpses,
            read: self.read,
            hidden,
            classes: self.action.weight.dims()[1],
            dropout: self.dropout,
            read_dropout: self.read_dropout,
            step_loss: self.step_loss,
            locate: self.locate,
            locate_from: self.locate_from,
        };
        let fresh = cfg.init(device);
        let core = self.core.widened(fresh.core)?;
        let pad = |mut layer: Linear| -> Linear {
            let [_, cols] = layer.weight.dims();
            let old: Vec<f32> = layer.weight.val().into_data().try_to_vec().expect("f32 weights");
            let w = widen_rows(&old, h0, hidden);
            layer.weight = Param::from_tensor(Tensor::from_data(TensorData::new(w, [hidden, cols]), device));
            layer
        };
        Ok(DrawClassifier { attention: pad(self.attention), core, action: pad(self.action), ..fresh })
    }
}

/// An inverted-dropout mask: each entry `1/(1 − p)` with probability `1 − p`, else 0.
pub fn dropout_mask(shape: [usize; 2], p: f32, rng: &mut Rng, device: &Device) -> Tensor<2> {
    let keep = 1.0 / (1.0 - p);
    let v: Vec<f32> = (0..shape[0] * shape[1]).map(|_| if rng.uniform() < p as f64 { 0.0 } else { keep }).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

impl ImageClassifier for DrawClassifier {
    fn logits(&self, images: Tensor<4>) -> Tensor<2> {
        self.run(images, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{grad_check, uniform};
    use burn::optim::{AdamConfig, GradientsParams};

    /// A configuration of these sizes, without dropout.
    fn sizes(input: [usize; 2], glimpses: usize, read: usize, hidden: usize, classes: usize) -> DrawClassifierConfig {
        DrawClassifierConfig { input, glimpses, read, hidden, classes, ..DrawClassifierConfig::new(input[0]) }
    }

    #[test]
    fn shapes_and_windows() {
        let dev = Device::flex();
        let m = crate::device::seeded(&dev, 1, || sizes([9, 7], 3, 2, 6, 4).init(&dev));
        let x = Tensor::<4>::from_data(TensorData::new(uniform(2 * 63, 0.0, 1.0, 1), [2, 1, 9, 7]), &dev);
        let mut w = Vec::new();
        assert_eq!(m.run(x, Some(&mut w)).dims(), [2, 4]);
        assert_eq!((w.len(), w[0].len()), (3, 2));
    }

    #[test]
    fn gradient_with_respect_to_the_image_matches_finite_differences() {
        let dev = Device::flex();
        let m = crate::device::seeded(&dev, 2, || sizes([5, 4], 2, 2, 5, 3).init(&dev));
        grad_check(&[uniform(2 * 20, 0.0, 1.0, 3)], 1e-2, 2e-2, |v| {
            let [x]: [Tensor<1>; 1] = v.try_into().unwrap();
            let m = m.clone().fork(&x.device());
            m.logits(x.reshape([2, 1, 5, 4])).reshape([6])
        });
    }

    #[test]
    fn a_widened_model_gives_the_same_logits_and_trains_its_new_units() {
        let dev = Device::flex().autodiff();
        let m = crate::device::seeded(&dev, 6, || sizes([9, 7], 3, 2, 5, 4).init(&dev));
        let x = Tensor::<4>::from_data(TensorData::new(uniform(3 * 63, 0.0, 1.0, 2), [3, 1, 9, 7]), &dev);
        let before: Vec<f32> = m.run(x.clone(), None).into_data().try_to_vec().unwrap();
        let wide = m.clone().widened(8, &dev).unwrap();
        assert_eq!(wide.hidden(), 8);
        let after: Vec<f32> = wide.run(x.clone(), None).into_data().try_to_vec().unwrap();
        for (a, b) in before.iter().zip(&after) {
            assert!((a - b).abs() < 1e-5, "{before:?} vs {after:?}");
        }
        // The new units' weights into the classifier get a gradient, so training grows them.
        let loss = wide.run(x, None).square().sum();
        let grads = loss.backward();
        let g: Vec<f32> = wide.action.weight.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
        assert!(g[5 * 4..].iter().any(|v| v.abs() > 1e-6), "no gradient into the new units' rows");
        assert!(m.clone().widened(5, &dev).is_err() && m.widened(3, &dev).is_err());
    }

    #[test]
    fn dropout_masks_only_training_and_follows_the_seed() {
        let dev = Device::flex();
        let cfg = DrawClassifierConfig { dropout: 0.5, read_dropout: 0.2, ..sizes([9, 7], 3, 2, 6, 4) };
        let m = crate::device::seeded(&dev, 5, || cfg.init(&dev));
        let x = Tensor::<4>::from_data(TensorData::new(uniform(2 * 63, 0.0, 1.0, 1), [2, 1, 9, 7]), &dev);
        let plain: Vec<f32> = m.run(x.clone(), None).into_data().try_to_vec::<f32>().unwrap();
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 3], [2]), &dev);
        let train_logits = |m: &DrawClassifier, x: Tensor<4>, rng: &mut Rng| m.train_loss(x, y.clone(), rng).1;
        let a: Vec<f32> = train_logits(&m, x.clone(), &mut Rng::new(7)).into_data().try_to_vec::<f32>().unwrap();
        let b: Vec<f32> = train_logits(&m, x.clone(), &mut Rng::new(7)).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(a, b);
        assert!(a.iter().zip(&plain).any(|(p, q)| (p - q).abs() > 1e-4));
        // Without dropout, training and evaluation agree.
        let m0 = crate::device::seeded(&dev, 5, || {
            DrawClassifierConfig { dropout: 0.0, read_dropout: 0.0, ..cfg }.init(&dev)
        });
        let p0: Vec<f32> = m0.run(x.clone(), None).into_data().try_to_vec::<f32>().unwrap();
        let t0: Vec<f32> = train_logits(&m0, x, &mut Rng::new(7)).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(p0, t0);
        // The mask keeps about 1 − p of the units, scaled by 1/(1 − p): mean ≈ 1.
        let mask: Vec<f32> =
            dropout_mask([100, 100], 0.3, &mut Rng::new(8), &dev).into_data().try_to_vec::<f32>().unwrap();
        let kept = mask.iter().filter(|&&v| v > 0.0).count() as f32 / 1e4;
        let mean = mask.iter().sum::<f32>() / 1e4;
        assert!((kept - 0.7).abs() < 0.02 && (mean - 1.0).abs() < 0.03, "kept {kept}, mean {mean}");
        assert!(mask.iter().all(|&v| v == 0.0 || (v - 1.0 / 0.7).abs() < 1e-6));
    }

    /// `step_loss` adds the mean cross-entropy of the answers after glimpses ⌈T/2⌉ … T − 1
    /// (here 2 and 3 of 4) to the last answer's, and its gradient matches finite differences.
    #[test]
    fn step_loss_adds_the_early_answers_and_its_gradient_checks() {
        let dev = Device::flex();
        let m = crate::device::seeded(&dev, 8, || {
            DrawClassifierConfig { step_loss: 0.6, ..sizes([6, 5], 4, 2, 5, 3) }.init(&dev)
        });
        let x = Tensor::<4>::from_data(TensorData::new(uniform(2 * 30, 0.0, 1.0, 4), [2, 1, 6, 5]), &dev);
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0], [2]), &dev);
        let ce = CrossEntropyLossConfig::new().init(&dev);
        let after = |t: usize| -> f32 {
            let mt = DrawClassifier { glimpses: t, ..m.clone() };
            ce.forward(mt.run(x.clone(), None), y.clone()).into_scalar()
        };
        let want = after(4) + 0.6 * (after(2) + after(3)) / 2.0;
        let (loss, logits) = m.train_loss(x.clone(), y.clone(), &mut Rng::new(1));
        let got: f32 = loss.into_scalar();
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        assert_eq!(logits.dims(), [2, 3]);
        // Without it, the paper's loss: the last answer's cross-entropy only.
        let plain = DrawClassifier { step_loss: 0.0, ..m.clone() };
        let p: f32 = plain.train_loss(x.clone(), y.clone(), &mut Rng::new(1)).0.into_scalar();
        assert!((p - after(4)).abs() < 1e-6 && (got - p).abs() > 1e-3);
        grad_check(&[uniform(2 * 30, 0.0, 1.0, 4)], 1e-2, 2e-2, |v| {
            let [x]: [Tensor<1>; 1] = v.try_into().unwrap();
            let d = x.device();
            let m = m.clone().fork(&d);
            let y = Tensor::<1, Int>::from_data(TensorData::new(vec![2i64, 0], [2]), &d);
            m.train_loss(x.reshape([2, 1, 6, 5]), y, &mut Rng::new(1)).0.reshape([1])
        });
    }

    /// The location loss: zero within the margin, the squared excess in image sides beyond
    /// it (windows in 1-based coordinates, centres 0-based), and its gradient checks.
    #[test]
    fn locate_loss_counts_only_the_miss_beyond_the_margin() {
        let dev = Device::flex();
        let t2 = |v: Vec<f32>, shape: [usize; 2]| Tensor::<2>::from_data(TensorData::new(v, shape), &dev);
        // Two windows on a 50 (rows) × 40 (cols) image: one 3 px off (inside a 4 px margin),
        // one 14 px off in rows and 9 in columns.
        let gx = t2(vec![11.0, 31.0], [2, 1]);
        let gy = t2(vec![21.0, 6.0], [2, 1]);
        let c = t2(vec![23.0, 10.0, 19.0, 21.0], [2, 2]);
        let got: f32 = locate_loss(gx, gy, c, [50, 40], 4.0).into_scalar();
        let want = ((10.0f32 / 50.0).powi(2) + (5.0f32 / 40.0).powi(2)) / 2.0;
        assert!((got - want).abs() < 1e-7, "{got} vs {want}");
        grad_check(&[vec![11.0, 31.0, 25.0], vec![21.0, 6.0, 30.0]], 1e-2, 2e-2, |v| {
            let [gx, gy]: [Tensor<1>; 2] = v.try_into().unwrap();
            let d = gx.device();
            let c = Tensor::<2>::from_data(TensorData::new(vec![23.0f32, 10.0, 19.0, 21.0, 5.0, 5.0], [3, 2]), &d);
            locate_loss(gx.reshape([3, 1]), gy.reshape([3, 1]), c, [50, 40], 4.0)
        });
    }

    /// `locate` adds the mean location loss of the windows from glimpse `locate_from` on to
    /// the cross-entropy (checked against the windows `run` reports), nothing without centres,
    /// and the whole loss's gradient matches finite differences.
    #[test]
    fn locate_adds_the_windows_distance_and_its_gradient_checks() {
        let dev = Device::flex();
        let m = crate::device::seeded(&dev, 9, || {
            DrawClassifierConfig { locate: 2.0, locate_from: 3, ..sizes([12, 10], 4, 2, 5, 3) }.init(&dev)
        });
        let x = Tensor::<4>::from_data(TensorData::new(uniform(2 * 120, 0.0, 1.0, 5), [2, 1, 12, 10]), &dev);
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 2], [2]), &dev);
        let centres = [0.0f32, 9.0, 11.0, 0.0]; // corners: every window is well off
        let c = Tensor::<2>::from_data(TensorData::new(centres.to_vec(), [2, 2]), &dev);
        let mut w = Vec::new();
        let logits = m.run(x.clone(), Some(&mut w));
        let ce: f32 = CrossEntropyLossConfig::new().init(&dev).forward(logits, y.clone()).into_scalar();
        let mut miss = 0.0;
        for glimpse in &w[2..] {
            for (k, win) in glimpse.iter().enumerate() {
                let over = |d: f32, len: f32| ((d.abs() - LOCATE_MARGIN).max(0.0) / len).powi(2);
                miss += over(win.row - centres[2 * k], 12.0) + over(win.col - centres[2 * k + 1], 10.0);
            }
        }
        let want = ce + 2.0 * miss / 2.0 / 2.0; // mean over 2 images and 2 glimpses
        let got: f32 = m
            .train_loss_at(Labelled { images: x.clone(), labels: y.clone(), centres: Some(c) }, &mut Rng::new(1))
            .0
            .into_scalar();
        assert!(miss > 0.01 && (got - want).abs() < 1e-5, "{got} vs {want} (miss {miss})");
        let plain: f32 = m.train_loss(x, y, &mut Rng::new(1)).0.into_scalar();
        assert!((plain - ce).abs() < 1e-6);
        grad_check(&[uniform(2 * 120, 0.0, 1.0, 5)], 1e-2, 2e-2, |v| {
            let [x]: [Tensor<1>; 1] = v.try_into().unwrap();
            let d = x.device();
            let m = m.clone().fork(&d);
            let y = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64, 2], [2]), &d);
            let c = Tensor::<2>::from_data(TensorData::new(centres.to_vec(), [2, 2]), &d);
            m.train_loss_at(
                Labelled { images: x.reshape([2, 1, 12, 10]), labels: y, centres: Some(c) },
                &mut Rng::new(1),
            )
            .0
            .reshape([1])
        });
    }

    /// `validate` refuses each option out of range, and a model built from a bad `locate_from`
    /// anyway refuses to train with centres rather than supervising the wrong glimpses.
    #[test]
    fn options_out_of_range_are_refused() {
        let ok = DrawClassifierConfig { locate: 1.0, ..sizes([12, 10], 4, 2, 5, 3) };
        ok.validate().unwrap();
        for (bad, want) in [
            (DrawClassifierConfig { dropout: 1.0, ..ok.clone() }, "dropout = 1"),
            (DrawClassifierConfig { read_dropout: -0.1, ..ok.clone() }, "read_dropout = -0.1"),
            (DrawClassifierConfig { step_loss: f32::NAN, ..ok.clone() }, "step_loss = NaN"),
            (DrawClassifierConfig { locate: -1.0, ..ok.clone() }, "locate = -1"),
            (DrawClassifierConfig { locate_from: 0, ..ok.clone() }, "locate_from = 0 a glimpse in 1..=4"),
            (DrawClassifierConfig { locate_from: 5, ..ok.clone() }, "locate_from = 5 a glimpse in 1..=4"),
        ] {
            let err = bad.validate().unwrap_err().to_string();
            assert!(err.contains(want), "{err}");
        }
        let dev = Device::flex();
        let m = crate::device::seeded(&dev, 1, || DrawClassifierConfig { locate_from: 5, ..ok.clone() }.init(&dev));
        let x = Tensor::<4>::zeros([1, 1, 12, 10], &dev);
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![1i64], [1]), &dev);
        // Without centres there is nothing to supervise: the plain loss.
        assert!(
            m.train_loss_at(Labelled { images: x.clone(), labels: y.clone(), centres: None }, &mut Rng::new(1))
                .0
                .into_scalar::<f32>()
                .is_finite()
        );
        let c = Tensor::<2>::zeros([1, 2], &dev);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            m.train_loss_at(Labelled { images: x, labels: y, centres: Some(c) }, &mut Rng::new(1));
        }));
        assert!(panicked.is_err());
    }

    /// With the location loss alone (the classes say nothing), the last window learns to go
    /// to a blob placed anywhere on a 24×24 field in a few hundred steps.
    #[test]
    fn locate_teaches_the_window_to_find_the_blob_in_seconds() {
        let dev = Device::flex().autodiff();
        let mut model = crate::device::seeded(&dev, 4, || {
            DrawClassifierConfig { locate: 1.0, ..sizes([24, 24], 3, 4, 24, 2) }.init(&dev)
        });
        let mut rng = Rng::new(5);
        let mut batch = |n: usize| {
            let (mut x, mut c) = (vec![0.0f32; n * 576], vec![0.0f32; n * 2]);
            for k in 0..n {
                let (r0, c0) = (rng.below(21), rng.below(21));
                for r in r0..r0 + 4 {
                    for q in c0..c0 + 4 {
                        x[k * 576 + r * 24 + q] = 1.0;
                    }
                }
                (c[2 * k], c[2 * k + 1]) = (r0 as f32 + 1.5, c0 as f32 + 1.5);
            }
            (Tensor::<4>::from_data(TensorData::new(x, [n, 1, 24, 24]), &dev), c)
        };
        let off = |model: &DrawClassifier, x: Tensor<4>, c: &[f32]| -> f32 {
            let mut w = Vec::new();
            model.run(x, Some(&mut w));
            let last = w.last().unwrap();
            let d: f32 =
                last.iter().enumerate().map(|(k, w)| (w.row - c[2 * k]).abs().max((w.col - c[2 * k + 1]).abs())).sum();
            d / last.len() as f32
        };
        let (xt, ct) = batch(100);
        let before = off(&model, xt.clone(), &ct);
        let mut optim = AdamConfig::new().init();
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64; 32], [32]), &dev);
        for _ in 0..300 {
            let (x, c) = batch(32);
            let c = Tensor::<2>::from_data(TensorData::new(c, [32, 2]), &dev);
            let (loss, _) =
                model.train_loss_at(Labelled { images: x, labels: labels.clone(), centres: Some(c) }, &mut Rng::new(0));
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-2, model, grads);
        }
        let after = off(&model, xt, &ct);
        assert!(before > 4.0 && after < 3.0, "mean distance of the last window {before:.2} → {after:.2} px");
    }

    /// Which quadrant holds a bright 3×3 blob on a 12×12 field with a dim distractor: learned
    /// to near-perfect accuracy in a few hundred steps.
    #[test]
    fn learns_where_the_blob_is_in_seconds() {
        let dev = Device::flex().autodiff();
        let mut model = crate::device::seeded(&dev, 3, || sizes([12, 12], 2, 3, 24, 4).init(&dev));
        let mut rng = crate::rng::Rng::new(4);
        let mut batch = |n: usize| {
            let (mut x, mut y) = (vec![0.0f32; n * 144], vec![0i64; n]);
            for k in 0..n {
                let q = rng.below(4);
                let (r0, c0) = ((q / 2) * 6 + rng.below(4), (q % 2) * 6 + rng.below(4));
                for r in r0..r0 + 3 {
                    for c in c0..c0 + 3 {
                        x[k * 144 + r * 12 + c] = 1.0;
                    }
                }
                x[k * 144 + rng.below(144)] = 0.3;
                y[k] = q as i64;
            }
            (x, y)
        };
        let ce = CrossEntropyLossConfig::new().init(&dev);
        let mut optim = AdamConfig::new().init();
        for _ in 0..250 {
            let (x, y) = batch(32);
            let x = Tensor::<4>::from_data(TensorData::new(x, [32, 1, 12, 12]), &dev);
            let y = Tensor::<1, Int>::from_data(TensorData::new(y, [32]), &dev);
            let loss = ce.forward(model.logits(x), y);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-2, model, grads);
        }
        let (x, y) = batch(200);
        let x = Tensor::<4>::from_data(TensorData::new(x, [200, 1, 12, 12]), &dev);
        let pred: Vec<i64> = model.logits(x).argmax(1).into_data().convert::<i64>().try_to_vec().unwrap();
        let right = pred.iter().zip(&y).filter(|(a, b)| a == b).count();
        assert!(right >= 190, "{right}/200 right");
    }
}
