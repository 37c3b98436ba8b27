//! Implicit attention: which input pixels matter to an output, read off the gradient of that
//! output with respect to the input (Simonyan et al. 2013, "Deep Inside Convolutional Networks").
//!
//! For a classifier with logits `y = f(x)`, the saliency of class `c` is `∂y_c / ∂x`, one row of
//! the Jacobian: a first-order account of how much each pixel moves that logit.

use burn::tensor::{Device, Tensor, TensorData};

use crate::models::ImageClassifier;

/// The input gradient of one class logit for one image.
#[derive(Debug, Clone)]
pub struct Saliency {
    /// The class whose logit was differentiated.
    pub class: usize,
    /// All logits of the image.
    pub logits: Vec<f32>,
    /// `∂ logit_class / ∂ pixel`, `H * W` row-major.
    pub gradient: Vec<f32>,
}

/// Computes `∂ logit_c / ∂ x` for one `h × w` image `pixels` (values in `[0, 1]`).
///
/// `device` must track gradients (`Device::autodiff`), and `model` must live on it. With
/// `class = None` the predicted class is used.
pub fn input_gradient<M: ImageClassifier>(
    model: &M,
    pixels: &[f32],
    side: [usize; 2],
    class: Option<usize>,
    device: &Device,
) -> Saliency {
    let [h, w] = side;
    let x = Tensor::<4>::from_data(TensorData::new(pixels.to_vec(), [1, 1, h, w]), device).require_grad();
    let logits = model.logits(x.clone()); // (1, classes)
    let values: Vec<f32> = logits.clone().into_data().try_to_vec::<f32>().expect("f32 logits");
    let class = class
        .unwrap_or_else(|| values.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i).unwrap_or(0));
    let chosen = logits.narrow(1, class, 1).sum(); // y_c
    let grads = chosen.backward();
    let gradient = x.grad(&grads).map(|g| g.into_data().try_to_vec::<f32>().expect("f32 gradient"));
    let gradient = gradient.unwrap_or_else(|| vec![0.0; h * w]);
    Saliency { class, logits: values, gradient }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::cnn::CnnConfig;
    use crate::models::mlp::MlpConfig;
    use crate::models::{Classifier, ClassifierConfig};

    /// Logit `class` of the model at `pixels`, without autodiff.
    fn logit(model: &Classifier, pixels: &[f32], side: [usize; 2], class: usize, dev: &Device) -> f64 {
        let x = Tensor::<4>::from_data(TensorData::new(pixels.to_vec(), [1, 1, side[0], side[1]]), dev);
        let v: Vec<f32> = model.logits(x).into_data().try_to_vec::<f32>().unwrap();
        v[class] as f64
    }

    fn check_against_finite_differences(cfg: ClassifierConfig) {
        let dev = Device::flex().autodiff();
        let model = crate::device::seeded(&dev, 3, || cfg.init(&dev));
        let side = cfg.input();
        let n = side[0] * side[1];
        let mut rng = crate::rng::Rng::new(9);
        let pixels: Vec<f32> = (0..n).map(|_| rng.uniform() as f32).collect();
        let s = input_gradient(&model, &pixels, side, Some(2), &dev);
        assert_eq!((s.class, s.gradient.len(), s.logits.len()), (2, n, 10));
        // Central differences in f32 on a few pixels, relative to the gradient's scale.
        let plain = dev.clone().without_autodiff();
        let scale = s.gradient.iter().map(|g| g.abs()).fold(0.0f32, f32::max) as f64;
        assert!(scale > 0.0, "zero gradient: {:?} {:?}", s.logits, &s.gradient[..8]);
        let eps = 2e-3f32;
        for i in (0..n).step_by(n / 7 + 1) {
            let (mut up, mut down) = (pixels.clone(), pixels.clone());
            up[i] += eps;
            down[i] -= eps;
            let fd = (logit(&model, &up, side, 2, &plain) - logit(&model, &down, side, 2, &plain)) / (2.0 * eps as f64);
            let err = (fd - s.gradient[i] as f64).abs();
            assert!(err < 2e-2 * scale + 1e-3, "pixel {i}: finite difference {fd}, autodiff {}", s.gradient[i]);
        }
    }

    #[test]
    fn mlp_saliency_matches_finite_differences() {
        check_against_finite_differences(ClassifierConfig::Mlp(MlpConfig {
            input: [6, 6],
            hidden: vec![16],
            classes: 10,
        }));
    }

    #[test]
    fn ram_saliency_matches_finite_differences() {
        use crate::attention::glimpse_sensor::Retina;
        use crate::models::ram::RamConfig;
        check_against_finite_differences(ClassifierConfig::Ram(RamConfig {
            input: [12, 12],
            retina: Retina { patch: 4, scales: 2 },
            glimpses: 3,
            what_where: 16,
            hidden: 32,
            ..RamConfig::for_side(12)
        }));
    }

    #[test]
    fn cnn_saliency_matches_finite_differences() {
        check_against_finite_differences(ClassifierConfig::Cnn(CnnConfig {
            input: [8, 8],
            channels: vec![8, 8],
            hidden: 32,
            classes: 10,
        }));
    }
}
