//! The image panels: the CNN and its saliency (implicit), RAM's glimpses (hard), DRAW writing
//! a digit and the DRAW classifier's reads (soft).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use glimpse::burn::tensor::activation::softmax;
use glimpse::burn::tensor::{Tensor, TensorData};
use glimpse::models::Classifier;
use glimpse::models::draw::{DrawTrace, Window};
use glimpse::models::ram::Gaze;
use glimpse::rng::Rng;
use serde::{Deserialize, Serialize};

use super::panels::{ImageModel, find, pick};
use super::{ApiError, Body, Panels, answer};

/// A drawn digit's side: the page sends 28×28 (MNIST's size).
pub(crate) const DIGIT_SIDE: usize = 28;

/// The values of a tensor, as the server's answers hold them.
fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec().unwrap_or_default()
}

/// The index of the largest of `v`.
fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i)
}

/// Softmax over one row of logits.
fn probabilities(logits: &[f32]) -> Vec<f32> {
    let top = logits.iter().copied().fold(f32::MIN, f32::max);
    let e: Vec<f32> = logits.iter().map(|&l| (l - top).exp()).collect();
    let s: f32 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// A drawn digit laid out as MNIST's are (LeCun et al.): its ink's bounding box scaled so
/// that the longer side is 20 pixels, placed in a 28×28 image with its centre of mass at the
/// centre. `pixels` is a `side × side` image with values in `[0, 1]`; an error when it holds
/// no ink.
pub(crate) fn mnist_layout(pixels: &[f32], side: usize) -> Result<Vec<f32>, ApiError> {
    let ink = |y: usize, x: usize| pixels[y * side + x];
    let inked: Vec<(usize, usize)> =
        (0..side).flat_map(|y| (0..side).map(move |x| (y, x))).filter(|&(y, x)| ink(y, x) > 0.05).collect();
    let (Some(y0), Some(y1)) = (inked.iter().map(|p| p.0).min(), inked.iter().map(|p| p.0).max()) else {
        return Err(ApiError::bad("the image is blank: draw a digit"));
    };
    let x0 = inked.iter().map(|p| p.1).min().unwrap_or(0);
    let x1 = inked.iter().map(|p| p.1).max().unwrap_or(0);
    let (h, w) = ((y1 - y0 + 1) as f32, (x1 - x0 + 1) as f32);
    let s = 20.0 / h.max(w); // source pixels → target pixels
    let (th, tw) = (h * s, w * s);
    // Bilinear sampling of the box into a th × tw patch at the top-left of a 28×28 image.
    let n = DIGIT_SIDE;
    let mut box_img = vec![0.0f32; n * n];
    let sample = |fy: f32, fx: f32| -> f32 {
        let (yf, xf) = (fy.floor(), fx.floor());
        let (dy, dx) = (fy - yf, fx - xf);
        let at = |y: f32, x: f32| {
            let (y, x) = (y as isize + y0 as isize, x as isize + x0 as isize);
            if y < y0 as isize || x < x0 as isize || y > y1 as isize || x > x1 as isize {
                0.0
            } else {
                ink(y as usize, x as usize)
            }
        };
        at(yf, xf) * (1.0 - dy) * (1.0 - dx)
            + at(yf, xf + 1.0) * (1.0 - dy) * dx
            + at(yf + 1.0, xf) * dy * (1.0 - dx)
            + at(yf + 1.0, xf + 1.0) * dy * dx
    };
    for ty in 0..th.ceil() as usize {
        for tx in 0..tw.ceil() as usize {
            let v = sample((ty as f32 + 0.5) / s - 0.5, (tx as f32 + 0.5) / s - 0.5);
            box_img[ty * n + tx] = v.clamp(0.0, 1.0);
        }
    }
    // Shift so that the centre of mass lands on (14, 14).
    let mass: f32 = box_img.iter().sum();
    let (cy, cx) =
        box_img.iter().enumerate().fold((0.0, 0.0), |(a, b), (i, &v)| (a + v * (i / n) as f32, b + v * (i % n) as f32));
    let (sy, sx) = ((n as f32 / 2.0 - cy / mass).round() as isize, (n as f32 / 2.0 - cx / mass).round() as isize);
    let mut out = vec![0.0f32; n * n];
    for y in 0..n as isize {
        for x in 0..n as isize {
            let (fy, fx) = (y - sy, x - sx);
            if (0..n as isize).contains(&fy) && (0..n as isize).contains(&fx) {
                out[(y * n as isize + x) as usize] = box_img[(fy * n as isize + fx) as usize];
            }
        }
    }
    Ok(out)
}

/// Checks an image sent to a panel: `side × side` values, every one finite and in `[0, 1]`.
fn checked_image(pixels: &[f32], side: [usize; 2]) -> Result<(), ApiError> {
    let want = side[0] * side[1];
    if pixels.len() != want {
        return Err(ApiError::bad(format!(
            "`pixels` holds {} values; this model reads {}×{} = {want}",
            pixels.len(),
            side[0],
            side[1]
        )));
    }
    if let Some(i) = pixels.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(ApiError::bad(format!("pixel {i} is {}: values must lie in [0, 1]", pixels[i])));
    }
    Ok(())
}

/// Default for a request's `normalise`.
fn yes() -> bool {
    true
}

/// `POST /api/classify`: a drawn digit.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DigitRequest {
    /// 28×28 values in `[0, 1]`, row by row.
    pixels: Vec<f32>,
    /// Lay the ink out as MNIST's digits are first ([`mnist_layout`]; default true).
    #[serde(default = "yes")]
    normalise: bool,
}

/// The CNN's answer: the image it read, its class probabilities and `|∂ logit / ∂ x|`.
#[derive(Serialize)]
pub(crate) struct DigitAnswer {
    checkpoint: &'static str,
    /// The 28×28 image the model read (after the layout).
    pixels: Vec<f32>,
    prediction: usize,
    probabilities: Vec<f32>,
    /// The saliency of the predicted class, scaled so that its largest value is 1.
    saliency: Vec<f32>,
}

/// The 28×28 image a digit request asks for.
fn digit_pixels(pixels: &[f32], normalise: bool) -> Result<Vec<f32>, ApiError> {
    checked_image(pixels, [DIGIT_SIDE, DIGIT_SIDE])?;
    if normalise { mnist_layout(pixels, DIGIT_SIDE) } else { Ok(pixels.to_vec()) }
}

/// `POST /api/classify`.
pub(crate) async fn classify(
    State(p): State<Arc<Panels>>,
    Body(req): Body<DigitRequest>,
) -> Result<Json<DigitAnswer>, ApiError> {
    answer(p, move |p| {
        let pixels = digit_pixels(&req.pixels, req.normalise)?;
        let picked = find(&p.implicit, None)?;
        let m = picked.lock()?;
        let s = glimpse::attention::saliency::input_gradient(
            &m.model,
            &pixels,
            [DIGIT_SIDE, DIGIT_SIDE],
            None,
            &p.autodiff,
        );
        Ok(DigitAnswer {
            checkpoint: picked.name,
            saliency: glimpse::viz::heatmap::normalise_abs(&s.gradient),
            prediction: s.class,
            probabilities: probabilities(&s.logits),
            pixels,
        })
    })
    .await
}

/// An image from a request: the pixels sent, or test image `test_index` of the model's test set.
fn image_of(
    m: &ImageModel,
    pixels: Option<Vec<f32>>,
    test_index: Option<usize>,
    normalise: bool,
) -> Result<(Vec<f32>, Option<usize>), ApiError> {
    let side = m.cfg.model.input();
    match (pixels, test_index) {
        (Some(px), None) if side == [DIGIT_SIDE, DIGIT_SIDE] => Ok((digit_pixels(&px, normalise)?, None)),
        (Some(px), None) => {
            checked_image(&px, side)?;
            Ok((px, None))
        }
        (None, Some(i)) => {
            let test = m.test()?;
            if i >= test.len() {
                return Err(ApiError::bad(format!("`test_index` {i} is past the {} test images", test.len())));
            }
            let (x, y) = test.batch(&[i]);
            Ok((x, Some(y[0] as usize)))
        }
        _ => Err(ApiError::bad("give either `pixels` or `test_index`")),
    }
}

/// `POST /api/ram`: RAM's glimpses over a drawn digit or a test image.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RamRequest {
    /// Which RAM (default `ram-mnist28-6g`).
    #[serde(default)]
    checkpoint: Option<String>,
    /// The image, row by row (28×28 for the MNIST model).
    #[serde(default)]
    pixels: Option<Vec<f32>>,
    /// Or: this test image.
    #[serde(default)]
    test_index: Option<usize>,
    /// Lay a drawn digit out as MNIST's (default true).
    #[serde(default = "yes")]
    normalise: bool,
}

/// A square patch of the image, in pixels.
#[derive(Serialize)]
pub(crate) struct Square {
    top: isize,
    left: isize,
    side: usize,
}

/// One glimpse: where it looked (`[row, column]` in pixels), its scales' squares, and the
/// class probabilities the action network gives after it.
#[derive(Serialize)]
pub(crate) struct Glimpse {
    centre: [f32; 2],
    scales: Vec<Square>,
    probabilities: Vec<f32>,
}

/// RAM's answer.
#[derive(Serialize)]
pub(crate) struct RamAnswer {
    checkpoint: &'static str,
    side: [usize; 2],
    pixels: Vec<f32>,
    /// The test image's label, when it was one.
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<usize>,
    prediction: usize,
    glimpses: Vec<Glimpse>,
}

/// `POST /api/ram`.
pub(crate) async fn ram(
    State(p): State<Arc<Panels>>,
    Body(req): Body<RamRequest>,
) -> Result<Json<RamAnswer>, ApiError> {
    answer(p, move |p| {
        let picked = find(&p.hard, req.checkpoint.as_deref())?;
        let m = picked.lock()?;
        let Classifier::Ram(ram) = &m.model else { return Err(ApiError::bad("not a RAM checkpoint")) };
        let (pixels, label) = image_of(&m, req.pixels, req.test_index, req.normalise)?;
        let tr = ram.run(&pixels, Gaze::Greedy, &p.dev);
        let side = ram.config().input;
        let retina = ram.config().retina;
        let glimpses: Vec<Glimpse> = tr
            .locations
            .iter()
            .zip(&tr.hidden)
            .map(|(l, h)| {
                let l = [l[0], l[1]];
                let scales: Vec<Square> = (0..retina.scales)
                    .map(|i| {
                        let (top, left) = retina.corner(l, side[0], side[1], i);
                        Square { top, left, side: retina.side(i) }
                    })
                    .collect();
                let centre = [(l[0] + 1.0) / 2.0 * side[0] as f32, (l[1] + 1.0) / 2.0 * side[1] as f32];
                Glimpse { centre, scales, probabilities: probabilities(&values(ram.classify(h.clone()))) }
            })
            .collect();
        let prediction = argmax(&values(tr.logits));
        Ok(RamAnswer { checkpoint: picked.name, side, pixels, label, prediction, glimpses })
    })
    .await
}

/// A DRAW window (centre row and column, side `N δ`, in pixels).
#[derive(Serialize)]
pub(crate) struct Frame {
    row: f32,
    col: f32,
    side: f32,
}

impl From<&Window> for Frame {
    fn from(w: &Window) -> Self {
        Frame { row: w.row, col: w.col, side: w.side }
    }
}

/// `POST /api/draw/generate`: a digit drawn from DRAW's prior.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct GenerateRequest {
    /// The seed of the latent draws (default 0).
    #[serde(default)]
    seed: u64,
}

/// DRAW's canvas `σ(c_t)` after each step, and each step's write window.
#[derive(Serialize)]
pub(crate) struct GenerateAnswer {
    side: [usize; 2],
    canvases: Vec<Vec<f32>>,
    writes: Vec<Frame>,
}

/// `POST /api/draw/generate`.
pub(crate) async fn draw_generate(
    State(p): State<Arc<Panels>>,
    Body(req): Body<GenerateRequest>,
) -> Result<Json<GenerateAnswer>, ApiError> {
    answer(p, move |p| {
        let m = pick(&p.generate, None)?;
        let c = &m.cfg.model;
        let mut rng = Rng::derive(req.seed, "serve-draw", 0);
        let z = glimpse::train::generative::noise(c.steps, 1, c.latent, &mut rng, &p.dev);
        let mut trace = DrawTrace::default();
        m.model.generate(z, Some(&mut trace));
        Ok(GenerateAnswer {
            side: c.side,
            canvases: trace.canvases,
            writes: trace.writes.iter().filter_map(|w| w.first()).map(Frame::from).collect(),
        })
    })
    .await
}

/// `POST /api/draw/classify`: a cluttered test image.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadRequest {
    /// Which test image.
    test_index: usize,
}

/// The DRAW classifier's read windows, step by step, and its answer.
#[derive(Serialize)]
pub(crate) struct ReadAnswer {
    side: [usize; 2],
    pixels: Vec<f32>,
    label: usize,
    prediction: usize,
    probabilities: Vec<f32>,
    reads: Vec<Frame>,
}

/// `POST /api/draw/classify`.
pub(crate) async fn draw_classify(
    State(p): State<Arc<Panels>>,
    Body(req): Body<ReadRequest>,
) -> Result<Json<ReadAnswer>, ApiError> {
    answer(p, move |p| {
        let m = pick(&p.read, None)?;
        let Classifier::DrawClassifier(model) = &m.model else {
            return Err(ApiError::bad("not a DRAW classifier checkpoint"));
        };
        let (pixels, label) = image_of(&m, None, Some(req.test_index), false)?;
        let side = m.cfg.model.input();
        let x = Tensor::<4>::from_data(TensorData::new(pixels.clone(), [1, 1, side[0], side[1]]), &p.dev);
        let mut windows = vec![];
        let logits = values(softmax(model.run(x, Some(&mut windows)), 1));
        Ok(ReadAnswer {
            side,
            label: label.unwrap_or(0),
            prediction: argmax(&logits),
            probabilities: logits,
            reads: windows.iter().filter_map(|w| w.first()).map(Frame::from).collect(),
            pixels,
        })
    })
    .await
}
