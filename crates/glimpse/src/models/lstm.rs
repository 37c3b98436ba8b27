//! An LSTM cell (Hochreiter & Schmidhuber 1997, with forget gates), the controller of the NTM
//! and the DNC, and a plain LSTM sequence model: the baseline the memory models are measured
//! against.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// `(h, c) ← LSTM(x, h, c)` with all four gates from one matrix product over `[x, h]`.
#[derive(Module, Debug)]
pub struct LstmCell {
    gates: Linear,
    #[module(skip)]
    hidden: usize,
}

impl LstmCell {
    /// A cell reading `inputs` features into `hidden` units. The forget gate's bias starts
    /// at 1 (Gers et al. 2000), so memories are kept by default.
    pub fn new(inputs: usize, hidden: usize, device: &Device) -> Self {
        let mut gates = LinearConfig::new(inputs + hidden, 4 * hidden).init(device);
        if let Some(bias) = gates.bias.take() {
            let mut b: Vec<f32> = bias.val().into_data().try_to_vec().expect("f32 bias");
            b[hidden..2 * hidden].fill(1.0);
            let b = Tensor::<1>::from_data(burn::tensor::TensorData::new(b, [4 * hidden]), device);
            gates.bias = Some(burn::module::Param::from_tensor(b));
        }
        Self { gates, hidden }
    }

    /// Hidden width.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// One step: `x (B, I)`, `h, c (B, H)` → new `(h, c)`.
    pub fn step(&self, x: Tensor<2>, h: Tensor<2>, c: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let z = self.gates.forward(Tensor::cat(vec![x, h], 1)); // (B, 4H): i, f, u, o
        let n = self.hidden;
        let i = sigmoid(z.clone().narrow(1, 0, n));
        let f = sigmoid(z.clone().narrow(1, n, n));
        let u = z.clone().narrow(1, 2 * n, n).tanh();
        let o = sigmoid(z.narrow(1, 3 * n, n));
        let c = f * c + i * u;
        (o * c.clone().tanh(), c)
    }
}

/// Sizes of a plain LSTM sequence model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LstmConfig {
    /// Input width.
    pub inputs: usize,
    /// Output width.
    pub outputs: usize,
    /// Hidden units per layer.
    pub hidden: usize,
    /// Stacked layers.
    #[serde(default = "one")]
    pub layers: usize,
}

fn one() -> usize {
    1
}

impl LstmConfig {
    /// Builds the model.
    pub fn init(&self, device: &Device) -> Lstm {
        Lstm {
            cells: (0..self.layers.max(1))
                .map(|l| LstmCell::new(if l == 0 { self.inputs } else { self.hidden }, self.hidden, device))
                .collect(),
            output: LinearConfig::new(self.hidden, self.outputs).init(device),
        }
    }
}

/// A stacked LSTM with a linear read-out at every step.
#[derive(Module, Debug)]
pub struct Lstm {
    cells: Vec<LstmCell>,
    output: Linear,
}

impl Lstm {
    /// `inputs`: one `(B, I)` tensor per step → one `(B, O)` logit tensor per step.
    pub fn forward(&self, inputs: Vec<Tensor<2>>) -> Vec<Tensor<2>> {
        let b = inputs.first().map_or(0, |x| x.dims()[0]);
        let device = inputs.first().map(|x| x.device()).unwrap_or_else(Device::flex);
        let mut state: Vec<(Tensor<2>, Tensor<2>)> = self
            .cells
            .iter()
            .map(|c| (Tensor::zeros([b, c.hidden()], &device), Tensor::zeros([b, c.hidden()], &device)))
            .collect();
        inputs
            .into_iter()
            .map(|x| {
                let mut inp = x;
                for (cell, (h, c)) in self.cells.iter().zip(state.iter_mut()) {
                    let (h2, c2) = cell.step(inp, h.clone(), c.clone());
                    (*h, *c) = (h2.clone(), c2);
                    inp = h2;
                }
                self.output.forward(inp)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{grad_check, uniform};

    #[test]
    fn lstm_cell_gradient_matches_finite_differences_and_shapes() {
        let dev = Device::flex();
        dev.seed(3);
        let cell = LstmCell::new(3, 4, &dev);
        let (b, i, h) = (2, 3, 4);
        let inputs = [uniform(b * i, -1.0, 1.0, 1), uniform(b * h, -1.0, 1.0, 2), uniform(b * h, -1.0, 1.0, 3)];
        grad_check(&inputs, 1e-3, 1e-2, |x| {
            let [x, hh, cc]: [Tensor<1>; 3] = x.try_into().unwrap();
            // Move the weights to the inputs' device (autodiff or plain).
            let cell = cell.clone().fork(&x.device());
            let (h2, c2) = cell.step(x.reshape([b, i]), hh.reshape([b, h]), cc.reshape([b, h]));
            assert_eq!(h2.dims(), [b, h]);
            Tensor::cat(vec![h2, c2], 1).reshape([2 * b * h])
        });
    }
}
