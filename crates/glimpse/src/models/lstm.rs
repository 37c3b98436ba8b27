//! An LSTM cell (Hochreiter & Schmidhuber 1997, with forget gates), the controller of the NTM
//! and the DNC, and a plain LSTM sequence model: the baseline the memory models are measured
//! against.

use crate::defaults;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::{Device, Tensor, TensorData};
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
        let z = crate::fused::linear2(x, h, &self.gates); // (B, 4H): i, f, u, o of [x, h]
        self.gate(z, c)
    }

    /// The input part of the gate pre-activations for a whole sequence at once: `x (B, S, I')`,
    /// the first `I' ≤ I` input features → `W_x' x + b` `(B, S, 4H)`, one matrix product
    /// instead of one per step. With `I' < I` the remaining inputs are given per step to
    /// [`Self::step_projected`] (a decoder's input feeding).
    pub fn project_inputs(&self, x: Tensor<3>) -> Tensor<3> {
        let w = self.gates.weight.val(); // (I + H, 4H)
        let [b, s, i] = x.dims();
        assert!(i + self.hidden <= w.dims()[0], "more inputs than the cell reads");
        let xw = x.reshape([b * s, i]).matmul(w.narrow(0, 0, i)); // (B·S, 4H)
        let xw = match &self.gates.bias {
            Some(bias) => xw + bias.val().unsqueeze_dim::<2>(0),
            None => xw,
        };
        xw.reshape([b, s, 4 * self.hidden])
    }

    /// The recurrent weights `W_h (H, 4H)`.
    pub fn recurrent_weights(&self) -> Tensor<2> {
        let w = self.gates.weight.val();
        let i = w.dims()[0] - self.hidden;
        w.narrow(0, i, self.hidden)
    }

    /// One step from projected leading inputs `xw (B, 4H)` (a row of [`Self::project_inputs`]),
    /// the rest of the inputs `rest (B, I − I')` if any, and the state: the same result as
    /// [`Self::step`] on the whole input.
    pub fn step_projected(
        &self,
        xw: Tensor<2>,
        rest: Option<Tensor<2>>,
        h: Tensor<2>,
        c: Tensor<2>,
    ) -> (Tensor<2>, Tensor<2>) {
        let w = self.gates.weight.val();
        let tail = rest.as_ref().map_or(0, |r| r.dims()[1]) + self.hidden;
        let from = w.dims()[0] - tail;
        let mut input: Vec<Tensor<2>> = rest.into_iter().collect();
        input.push(h);
        self.gate(xw + Tensor::cat(input, 1).matmul(w.narrow(0, from, tail)), c)
    }

    /// The whole sequence at once: `x (B, T, I)` with `T ≥ 1`, the first state `(h0, c0)`
    /// `(B, H)`, and `keep (B, T)`, 1 at padding steps (the state is held through them) →
    /// `(h_t (B, T, H), (h_T, c_T))`. The inputs' products are one matrix product; the
    /// recurrence is one fused op on the CPU ([`crate::fused::lstm_sequence`]).
    pub fn sequence(
        &self,
        x: Tensor<3>,
        h0: Tensor<2>,
        c0: Tensor<2>,
        keep: Option<Tensor<2>>,
    ) -> (Tensor<3>, (Tensor<2>, Tensor<2>)) {
        let [b, t, _] = x.dims();
        assert!(t > 0, "an LSTM sequence needs at least one step");
        let hd = self.hidden;
        let out = crate::fused::lstm_sequence(self.project_inputs(x), self.recurrent_weights(), h0, c0, keep); // (B, T, 2H)
        let last = out.clone().narrow(1, t - 1, 1).reshape([b, 2 * hd]);
        (out.narrow(2, 0, hd), (last.clone().narrow(1, 0, hd), last.narrow(1, hd, hd)))
    }

    /// This cell widened to `fresh`'s width without changing what its first `H` units compute
    /// (Net2Net-style growth, Chen et al. 2016): the old units keep their weights and get
    /// zero weights from the new units' `h`; the new units' weights and biases are `fresh`'s,
    /// a newly initialised cell of the wide size. Whatever reads `h` must give the new units
    /// zero weights too ([`widen_rows`]) for the model's function to stay the same.
    pub fn widened(self, fresh: LstmCell) -> anyhow::Result<LstmCell> {
        let (h0, h1) = (self.hidden, fresh.hidden);
        let [rows, _] = self.gates.weight.dims();
        let inputs = rows - h0;
        if h1 <= h0 || fresh.gates.weight.dims()[0] != inputs + h1 {
            anyhow::bail!(
                "widening an LSTM of {inputs} inputs and {h0} units needs a cell of the same inputs and more units"
            );
        }
        let device = self.gates.weight.val().device();
        let vec = |t: Tensor<2>| -> Vec<f32> { t.into_data().try_to_vec().expect("f32 weights") };
        let w = widen_gates(&vec(self.gates.weight.val()), &vec(fresh.gates.weight.val()), [rows, inputs + h1], h0, h1);
        let mut gates = fresh.gates;
        gates.weight =
            burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(w, [inputs + h1, 4 * h1]), &device));
        if let (Some(old), Some(new)) = (&self.gates.bias, &gates.bias) {
            let (old, new): (Vec<f32>, Vec<f32>) = (
                old.val().into_data().try_to_vec().expect("f32 bias"),
                new.val().into_data().try_to_vec().expect("f32 bias"),
            );
            let b = widen_gates(&old, &new, [1, 1], h0, h1);
            gates.bias =
                Some(burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(b, [4 * h1]), &device)));
        }
        Ok(LstmCell { gates, hidden: h1 })
    }

    /// The gates from pre-activations `z (B, 4H)` (i, f, u, o) and the cell `c`: one fused
    /// kernel on the CPU ([`crate::fused::lstm_gates`]).
    fn gate(&self, z: Tensor<2>, c: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        crate::fused::lstm_gates(z, c)
    }
}

/// Gate weights `old (R0, 4·H0)` widened to `fresh`'s shape `(R1, 4·H1)`, `R1 ≥ R0` (the rows
/// being the inputs `[x, h]`, so the new rows `R0..R1` are the new units' `h`): in each gate
/// block (i, f, u, o) the first `H0` columns are the old units', with the old weights in the
/// old rows and zero in the new ones; every other entry is `fresh`'s. A bias is one row
/// (`R0 = R1 = 1`).
pub fn widen_gates(old: &[f32], fresh: &[f32], rows: [usize; 2], h0: usize, h1: usize) -> Vec<f32> {
    let [r0, r1] = rows;
    assert!(r1 >= r0 && h1 >= h0, "widening shrinks nothing");
    assert_eq!(old.len(), r0 * 4 * h0, "old gate weights");
    assert_eq!(fresh.len(), r1 * 4 * h1, "fresh gate weights");
    let mut out = fresh.to_vec();
    for r in 0..r1 {
        for g in 0..4 {
            for u in 0..h0 {
                out[r * 4 * h1 + g * h1 + u] = if r < r0 { old[r * 4 * h0 + g * h0 + u] } else { 0.0 };
            }
        }
    }
    out
}

/// The weights `old (H0, O)` of a layer reading an LSTM's `h`, for a widened `h` of `h1`
/// units: the new units' rows are zero, so the layer's output is unchanged.
pub fn widen_rows(old: &[f32], h0: usize, h1: usize) -> Vec<f32> {
    assert!(h1 >= h0 && old.len().is_multiple_of(h0.max(1)), "rows to widen");
    let cols = old.len() / h0;
    let mut out = old.to_vec();
    out.resize(h1 * cols, 0.0);
    out
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
    #[serde(default = "defaults::usize::<1>")]
    pub layers: usize,
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
    /// `inputs`: one `(B, I)` tensor per step → the logits of every step, `(T·B, O)` (step-major,
    /// as the inputs). The inputs are all known up front, so each layer runs over the whole
    /// sequence at once ([`LstmCell::sequence`]: one input product, then the fused recurrence),
    /// and the read-out is one product over every step.
    pub fn forward(&self, inputs: Vec<Tensor<2>>) -> Tensor<2> {
        assert!(!inputs.is_empty(), "an LSTM sequence needs at least one step");
        let (t, [b, _]) = (inputs.len(), inputs[0].dims());
        let device = inputs[0].device();
        let mut x = Tensor::stack::<3>(inputs, 1); // (B, T, I)
        for cell in &self.cells {
            let zeros = || Tensor::<2>::zeros([b, cell.hidden()], &device);
            x = cell.sequence(x, zeros(), zeros(), None).0; // (B, T, H)
        }
        let h = x.dims()[2];
        crate::fused::linear(x.swap_dims(0, 1).reshape([t * b, h]), &self.output) // (T·B, O)
    }

    /// The same logits stepping every layer one step at a time ([`LstmCell::step`]): the
    /// reference [`Self::forward`] is tested against.
    #[cfg(test)]
    fn forward_steps(&self, inputs: Vec<Tensor<2>>) -> Tensor<2> {
        let b = inputs[0].dims()[0];
        let device = inputs[0].device();
        let zeros = |h| Tensor::<2>::zeros([b, h], &device);
        let mut state: Vec<(Tensor<2>, Tensor<2>)> =
            self.cells.iter().map(|c| (zeros(c.hidden()), zeros(c.hidden()))).collect();
        let mut out = Vec::new();
        for x in inputs {
            let mut inp = x;
            for (cell, (h, c)) in self.cells.iter().zip(state.iter_mut()) {
                (*h, *c) = cell.step(inp, h.clone(), c.clone());
                inp = h.clone();
            }
            out.push(self.output.forward(inp));
        }
        Tensor::cat(out, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{grad_check, uniform};

    /// Over several steps the widened cell's first units follow the old cell exactly, and
    /// the gate layout is pinned: old weights in each gate block's first columns, zeros from
    /// the new units' `h`, fresh values elsewhere.
    #[test]
    fn a_widened_cell_keeps_its_old_units() {
        let w = widen_gates(&[1.0, 2.0, 3.0, 4.0], &[9.0; 2 * 8], [1, 2], 1, 2);
        assert_eq!(w, vec![1.0, 9.0, 2.0, 9.0, 3.0, 9.0, 4.0, 9.0, 0.0, 9.0, 0.0, 9.0, 0.0, 9.0, 0.0, 9.0]);
        assert_eq!(widen_rows(&[1.0, 2.0, 3.0, 4.0], 2, 3), vec![1.0, 2.0, 3.0, 4.0, 0.0, 0.0]);

        let dev = Device::flex();
        let (old, new, b) =
            crate::device::seeded(&dev, 3, || (LstmCell::new(3, 4, &dev), LstmCell::new(3, 7, &dev), 2));
        let wide = old.clone().widened(new).unwrap();
        assert!(
            old.clone().widened(crate::device::seeded(&dev, 4, || LstmCell::new(2, 7, &dev))).is_err(),
            "other inputs"
        );
        let (mut h, mut c) = (Tensor::<2>::zeros([b, 4], &dev), Tensor::<2>::zeros([b, 4], &dev));
        let (mut hw, mut cw) = (Tensor::<2>::zeros([b, 7], &dev), Tensor::<2>::zeros([b, 7], &dev));
        for t in 0..4 {
            let x = Tensor::<2>::from_data(TensorData::new(uniform(b * 3, -1.0, 1.0, 10 + t), [b, 3]), &dev);
            (h, c) = old.step(x.clone(), h, c);
            (hw, cw) = wide.step(x, hw, cw);
            let (a, w): (Vec<f32>, Vec<f32>) = (
                h.clone().into_data().try_to_vec().unwrap(),
                hw.clone().narrow(1, 0, 4).into_data().try_to_vec().unwrap(),
            );
            assert!(a.iter().zip(&w).all(|(p, q)| (p - q).abs() < 1e-6), "step {t}: {a:?} vs {w:?}");
        }
        let new: Vec<f32> = hw.narrow(1, 4, 3).into_data().try_to_vec().unwrap();
        assert!(new.iter().any(|v| v.abs() > 1e-3), "the new units compute something");
        let (a, w): (Vec<f32>, Vec<f32>) =
            (c.into_data().try_to_vec().unwrap(), cw.narrow(1, 0, 4).into_data().try_to_vec().unwrap());
        assert!(a.iter().zip(&w).all(|(p, q)| (p - q).abs() < 1e-6), "cells: {a:?} vs {w:?}");
    }

    #[test]
    fn projected_steps_equal_plain_steps() {
        let dev = Device::flex();
        let cell = crate::device::seeded(&dev, 8, || LstmCell::new(3, 5, &dev));
        let (b, s) = (2, 4);
        let x =
            Tensor::<3>::from_data(burn::tensor::TensorData::new(uniform(b * s * 3, -1.0, 1.0, 4), [b, s, 3]), &dev);
        // All three inputs projected up front, and only the first (the rest given per step).
        let xw = cell.project_inputs(x.clone());
        let xw1 = cell.project_inputs(x.clone().narrow(2, 0, 1));
        let (mut h1, mut c1) = (Tensor::<2>::zeros([b, 5], &dev), Tensor::<2>::zeros([b, 5], &dev));
        let (mut h2, mut c2, mut h3, mut c3) = (h1.clone(), c1.clone(), h1.clone(), c1.clone());
        for j in 0..s {
            let x_j = x.clone().narrow(1, j, 1).reshape([b, 3]);
            (h1, c1) = cell.step(x_j.clone(), h1, c1);
            (h2, c2) = cell.step_projected(xw.clone().narrow(1, j, 1).reshape([b, 20]), None, h2, c2);
            let rest = Some(x_j.narrow(1, 1, 2));
            (h3, c3) = cell.step_projected(xw1.clone().narrow(1, j, 1).reshape([b, 20]), rest, h3, c3);
        }
        let a: Vec<f32> = h1.into_data().try_to_vec().unwrap();
        for other in [h2, h3] {
            let z: Vec<f32> = other.into_data().try_to_vec().unwrap();
            for (p, q) in a.iter().zip(&z) {
                assert!((p - q).abs() < 1e-5, "{p} vs {q}");
            }
        }
    }

    /// The layer-by-layer forward equals stepping every layer at every step, in its logits and
    /// in every weight's gradient.
    #[test]
    fn whole_sequence_forward_equals_the_step_loop() {
        let dev = Device::flex().autodiff();
        let cfg = LstmConfig { inputs: 3, outputs: 2, hidden: 5, layers: 2 };
        let model = crate::device::seeded(&dev, 5, || cfg.init(&dev));
        let (b, t) = (2, 4);
        let xs: Vec<Tensor<2>> = (0..t)
            .map(|s| Tensor::from_data(TensorData::new(uniform(b * 3, -1.0, 1.0, 20 + s as u64), [b, 3]), &dev))
            .collect();
        let (fast, slow) = (model.forward(xs.clone()), model.forward_steps(xs));
        assert_eq!(fast.dims(), [t * b, 2]);
        let vec = |x: Tensor<2>| -> Vec<f32> { x.into_data().try_to_vec().unwrap() };
        for (p, q) in vec(fast.clone()).iter().zip(vec(slow.clone())) {
            assert!((p - q).abs() < 1e-5, "logits {p} vs {q}");
        }
        let weights = |l: &Lstm| l.cells[0].gates.weight.val();
        let ramp = Tensor::<2>::from_data(
            TensorData::new((0..t * b * 2).map(|i| i as f32 / 7.0).collect::<Vec<_>>(), [t * b, 2]),
            &dev,
        );
        let (ga, gb) = ((fast * ramp.clone()).sum().backward(), (slow * ramp).sum().backward());
        let (wa, wb): (Vec<f32>, Vec<f32>) = (
            weights(&model).grad(&ga).unwrap().into_data().try_to_vec().unwrap(),
            weights(&model).grad(&gb).unwrap().into_data().try_to_vec().unwrap(),
        );
        assert!(wa.iter().any(|v| v.abs() > 1e-4), "the first layer gets a gradient");
        for (p, q) in wa.iter().zip(&wb) {
            assert!((p - q).abs() < 1e-4, "first layer's gradient {p} vs {q}");
        }
    }

    #[test]
    fn lstm_cell_gradient_matches_finite_differences_and_shapes() {
        let dev = Device::flex();
        let cell = crate::device::seeded(&dev, 3, || LstmCell::new(3, 4, &dev));
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
