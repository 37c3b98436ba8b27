//! The Differentiable Neural Computer (Graves et al. 2016, "Hybrid computing using a neural
//! network with dynamic external memory"): an LSTM controller with one write head and `R` read
//! heads over an `N × W` memory, addressed by content, by dynamic allocation of free locations,
//! and through a temporal link matrix that remembers the order of writes.
//!
//! Per step t (paper, Methods):
//! - the controller reads `[x_t, r_{t−1}]`; its output `h_t` (clipped) gives the interface
//!   vector `ξ_t`: read keys and strengths, write key and strength, erase and write vectors,
//!   free gates, allocation and write gates, read modes;
//! - retention `ψ`, usage `u_t`, allocation `a_t` ([`dynamic_memory`]);
//! - write weighting `w^w = g^w (g^a a + (1 − g^a) c^w)`; `M_t = M_{t−1} ∘ (E − w^w eᵀ) + w^w vᵀ`;
//! - link matrix `L_t` and precedence `p_t`;
//! - read weightings mix backward, content and forward modes: `w^r = π_b b + π_c c + π_f f`;
//!   reads `r_t = M_tᵀ w^r`;
//! - output `y_t = Linear([h_t, r_t])`.

use crate::defaults;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::{sigmoid, softmax, softplus};
use burn::tensor::{Device, Distribution, Tensor};
use serde::{Deserialize, Serialize};

use super::lstm::LstmCell;
use super::ntm::Trace;
use crate::attention::dynamic_memory as dm;
use crate::attention::memory;

/// Sizes of a DNC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DncConfig {
    /// Input width.
    pub inputs: usize,
    /// Output width.
    pub outputs: usize,
    /// LSTM controller width.
    #[serde(default = "defaults::usize::<128>")]
    pub controller_size: usize,
    /// Memory locations `N`.
    #[serde(default = "defaults::usize::<64>")]
    pub memory_n: usize,
    /// Word width `W`.
    #[serde(default = "defaults::usize::<20>")]
    pub memory_w: usize,
    /// Read heads `R`.
    #[serde(default = "defaults::usize::<1>")]
    pub read_heads: usize,
    /// Controller outputs are clipped to `[−clip, clip]`.
    #[serde(default = "defaults::f32::<20, 1>")]
    pub clip: f32,
}

impl DncConfig {
    /// Default sizes for `inputs → outputs`.
    pub fn new(inputs: usize, outputs: usize) -> Self {
        Self { inputs, outputs, controller_size: 128, memory_n: 64, memory_w: 20, read_heads: 1, clip: 20.0 }
    }

    /// Interface vector length: `R·W + R` (read keys, strengths) `+ W + 1` (write key,
    /// strength) `+ 2W` (erase, write vectors) `+ R` (free gates) `+ 2` (allocation and write
    /// gates) `+ 3R` (read modes).
    pub fn interface_len(&self) -> usize {
        let (r, w) = (self.read_heads, self.memory_w);
        r * w + r + w + 1 + 2 * w + r + 2 + 3 * r
    }

    /// Builds the model.
    pub fn init(&self, device: &Device) -> Dnc {
        let rw = self.read_heads * self.memory_w;
        Dnc {
            controller: LstmCell::new(self.inputs + rw, self.controller_size, device),
            interface: LinearConfig::new(self.controller_size, self.interface_len()).init(device),
            output: LinearConfig::new(self.controller_size + rw, self.outputs).init(device),
            read0: Param::from_tensor(Tensor::random([rw], Distribution::Uniform(-0.1, 0.1), device)),
            config: self.clone(),
        }
    }
}

/// The model.
#[derive(Module, Debug)]
pub struct Dnc {
    controller: LstmCell,
    interface: Linear,
    output: Linear,
    /// Learned first read vectors, `(R·W)`.
    read0: Param<Tensor<1>>,
    #[module(skip)]
    config: DncConfig,
}

/// The interface vector `ξ_t`, split and squashed (paper, Methods, "Controller network").
struct Interface {
    read_keys: Tensor<3>,      // (B, R, W)
    read_strengths: Tensor<2>, // (B, R), oneplus
    write_key: Tensor<2>,      // (B, W)
    write_strength: Tensor<2>, // (B, 1), oneplus
    erase: Tensor<2>,          // (B, W), sigmoid
    write_vector: Tensor<2>,   // (B, W)
    free_gates: Tensor<2>,     // (B, R), sigmoid
    alloc_gate: Tensor<2>,     // (B, 1), sigmoid
    write_gate: Tensor<2>,     // (B, 1), sigmoid
    read_modes: Tensor<3>,     // (B, R, 3), softmax
}

/// `oneplus(x) = 1 + ln(1 + eˣ)`: strengths `≥ 1`.
fn oneplus(x: Tensor<2>) -> Tensor<2> {
    softplus(x, 1.0).add_scalar(1.0)
}

impl Interface {
    fn split(xi: Tensor<2>, r: usize, w: usize) -> Self {
        let b = xi.dims()[0];
        let mut at = 0;
        let mut take = |len: usize| {
            let part = xi.clone().narrow(1, at, len);
            at += len;
            part
        };
        Self {
            read_keys: take(r * w).reshape([b, r, w]),
            read_strengths: oneplus(take(r)),
            write_key: take(w),
            write_strength: oneplus(take(1)),
            erase: sigmoid(take(w)),
            write_vector: take(w),
            free_gates: sigmoid(take(r)),
            alloc_gate: sigmoid(take(1)),
            write_gate: sigmoid(take(1)),
            read_modes: softmax(take(3 * r).reshape([b, r, 3]), 2),
        }
    }
}

/// The recurrent state.
struct State {
    memory: Tensor<3>,     // (B, N, W)
    h: Tensor<2>,          // (B, C)
    c: Tensor<2>,          // (B, C)
    reads: Tensor<2>,      // (B, R·W)
    w_read: Tensor<3>,     // (B, R, N)
    w_write: Tensor<2>,    // (B, N)
    usage: Tensor<2>,      // (B, N)
    link: Tensor<3>,       // (B, N, N)
    precedence: Tensor<2>, // (B, N)
}

fn row0(t: Tensor<2>) -> Vec<f32> {
    t.narrow(0, 0, 1).into_data().try_to_vec().expect("f32")
}

impl Dnc {
    /// The configuration.
    pub fn config(&self) -> &DncConfig {
        &self.config
    }

    fn initial_state(&self, b: usize, device: &Device) -> State {
        let cfg = &self.config;
        let (n, w, r) = (cfg.memory_n, cfg.memory_w, cfg.read_heads);
        State {
            memory: Tensor::zeros([b, n, w], device),
            h: Tensor::zeros([b, cfg.controller_size], device),
            c: Tensor::zeros([b, cfg.controller_size], device),
            reads: self.read0.val().unsqueeze_dim::<2>(0).expand([b, r * w]),
            w_read: Tensor::zeros([b, r, n], device),
            w_write: Tensor::zeros([b, n], device),
            usage: Tensor::zeros([b, n], device),
            link: Tensor::zeros([b, n, n], device),
            precedence: Tensor::zeros([b, n], device),
        }
    }

    fn step(&self, x: Tensor<2>, s: &mut State) -> Tensor<2> {
        let cfg = &self.config;
        let (r, w) = (cfg.read_heads, cfg.memory_w);
        let b = x.dims()[0];
        let (h, c) = self.controller.step(Tensor::cat(vec![x, s.reads.clone()], 1), s.h.clone(), s.c.clone());
        (s.h, s.c) = (h.clone(), c);
        let out = h.clamp(-cfg.clip, cfg.clip);
        let xi = Interface::split(self.interface.forward(out.clone()), r, w);

        // Dynamic allocation (usage from the previous step's reads and write).
        let psi = dm::retention(xi.free_gates, s.w_read.clone());
        s.usage = dm::usage(s.usage.clone(), s.w_write.clone(), psi);
        let alloc = dm::allocation(s.usage.clone());

        // Write.
        let content_w = memory::content_weighting(s.memory.clone(), xi.write_key, xi.write_strength);
        let ww = dm::write_weighting(alloc, content_w, xi.alloc_gate, xi.write_gate); // (B, N)
        s.memory = memory::write(
            s.memory.clone(),
            ww.clone().unsqueeze_dim::<3>(1),
            xi.erase.unsqueeze_dim::<3>(1),
            xi.write_vector.unsqueeze_dim::<3>(1),
        );

        // Temporal links, then reads by backward, content and forward modes.
        s.link = dm::link(s.link.clone(), ww.clone(), s.precedence.clone());
        s.precedence = dm::precedence(s.precedence.clone(), ww.clone());
        s.w_write = ww;
        let (fwd, bwd) = dm::directional(s.link.clone(), s.w_read.clone());
        let content_r: Vec<Tensor<3>> = (0..r)
            .map(|i| {
                let key = xi.read_keys.clone().narrow(1, i, 1).reshape([b, w]);
                let beta = xi.read_strengths.clone().narrow(1, i, 1);
                memory::content_weighting(s.memory.clone(), key, beta).unsqueeze_dim::<3>(1)
            })
            .collect();
        s.w_read = dm::read_weighting(xi.read_modes, bwd, Tensor::cat(content_r, 1), fwd);
        s.reads = memory::read(s.memory.clone(), s.w_read.clone()).reshape([b, r * w]);
        self.output.forward(Tensor::cat(vec![out, s.reads.clone()], 1))
    }

    /// Runs the DNC over a sequence: one `(B, I)` input per step → one `(B, O)` output per
    /// step. With `trace`, records batch element 0's read and write weightings.
    pub fn forward(&self, inputs: Vec<Tensor<2>>, mut trace: Option<&mut Trace>) -> Vec<Tensor<2>> {
        let Some(first) = inputs.first() else { return vec![] };
        let b = first.dims()[0];
        let mut s = self.initial_state(b, &first.device());
        inputs
            .into_iter()
            .map(|x| {
                let y = self.step(x, &mut s);
                if let Some(tr) = trace.as_deref_mut() {
                    let r = self.config.read_heads;
                    let n = self.config.memory_n;
                    let wr = s.w_read.clone().narrow(0, 0, 1).reshape([r, n]);
                    tr.reads.push((0..r).map(|i| row0(wr.clone().narrow(0, i, 1))).collect());
                    tr.writes.push(vec![row0(s.w_write.clone())]);
                }
                y
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> DncConfig {
        DncConfig { controller_size: 6, memory_n: 5, memory_w: 3, read_heads: 2, ..DncConfig::new(3, 2) }
    }

    #[test]
    fn shapes_and_interface_length() {
        let dev = Device::flex();
        let cfg = small();
        assert_eq!(cfg.interface_len(), 2 * 3 + 2 + 3 + 1 + 6 + 2 + 2 + 6);
        let dnc = crate::device::seeded(&dev, 1, || cfg.init(&dev));
        let xs: Vec<Tensor<2>> = (0..5).map(|t| Tensor::full([2, 3], t as f32 * 0.2, &dev)).collect();
        let mut tr = Trace::default();
        let ys = dnc.forward(xs, Some(&mut tr));
        assert!(ys.iter().all(|y| y.dims() == [2, 2]));
        assert_eq!((tr.reads.len(), tr.reads[0].len(), tr.writes[0][0].len()), (5, 2, 5));
        for step in &tr.writes {
            let total: f32 = step[0].iter().sum();
            assert!((-1e-5..=1.0 + 1e-5).contains(&total), "a write weighting sums to at most 1: {total}");
        }
        for step in &tr.reads {
            for head in step {
                assert!(head.iter().sum::<f32>() <= 1.0 + 1e-4 && head.iter().all(|v| *v >= -1e-6));
            }
        }
    }

    #[test]
    fn gradient_through_four_steps_matches_finite_differences() {
        let dev = Device::flex();
        let dnc = crate::device::seeded(&dev, 4, || small().init(&dev));
        crate::testing::sequence_grad_check([4, 2, 3], 3, |xs, d| dnc.clone().fork(d).forward(xs, None));
    }
}
