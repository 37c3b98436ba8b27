//! The Differentiable Neural Computer's memory management (Graves et al. 2016, "Hybrid
//! computing using a neural network with dynamic external memory", Methods): usage and free
//! gates, dynamic allocation, and the temporal link matrix with forward and backward reads.
//!
//! Shapes: `B` batch, `N` locations, `R` read heads. Weightings are `(B, N)`, or `(B, R, N)`
//! for all read heads together; the link matrix is `(B, N, N)`.

use burn::tensor::{Device, Tensor};

/// Usage is kept in `[ε, 1]` (as DeepMind's implementation does) so that the products and
/// logarithms of the allocation weighting stay finite.
pub const USAGE_EPS: f32 = 1e-6;

/// Memory retention `ψ = Π_i (1 − f^i w^{r,i}_{t−1})`: free gates `(B, R)` in `[0, 1]`, the
/// previous read weightings `(B, R, N)` → `(B, N)`.
pub fn retention(free_gates: Tensor<2>, w_read_prev: Tensor<3>) -> Tensor<2> {
    let [b, r, n] = w_read_prev.dims();
    let keep = (w_read_prev * free_gates.unsqueeze_dim::<3>(2)).neg().add_scalar(1.0); // (B, R, N)
    let mut psi = keep.clone().narrow(1, 0, 1).reshape([b, n]);
    for i in 1..r {
        psi = psi * keep.clone().narrow(1, i, 1).reshape([b, n]);
    }
    psi
}

/// Usage update `u_t = (u + w^w − u ∘ w^w) ∘ ψ` with the previous write weighting `(B, N)`.
pub fn usage(u_prev: Tensor<2>, w_write_prev: Tensor<2>, psi: Tensor<2>) -> Tensor<2> {
    (u_prev.clone() + w_write_prev.clone() - u_prev * w_write_prev) * psi
}

/// The allocation weighting: with `φ` the locations sorted by ascending usage,
/// `a[φ_j] = (1 − u[φ_j]) Π_{i<j} u[φ_i]`. The sort order is a constant for the gradient (as in
/// the paper); the gradient flows through the usage values.
pub fn allocation(u: Tensor<2>) -> Tensor<2> {
    let [b, n] = u.dims();
    let u = u.clamp(USAGE_EPS, 1.0);
    let (_, order) = u.clone().detach().sort_with_indices(1); // φ (B, N)
    let sorted = u.gather(1, order.clone()); // u[φ_j]
    // Exclusive cumulative product, in log space: Π_{i<j} u[φ_i].
    let logs = sorted.clone().log().cumsum(1);
    let shifted = Tensor::cat(vec![Tensor::zeros([b, 1], &logs.device()), logs.narrow(1, 0, n - 1)], 1);
    let a_sorted = sorted.neg().add_scalar(1.0) * shifted.exp();
    // Undo the sort: the inverse permutation is the order of φ itself.
    let (_, inverse) = order.float().sort_with_indices(1);
    a_sorted.gather(1, inverse)
}

/// The write weighting `w^w = g^w (g^a a + (1 − g^a) c^w)`: gates `(B, 1)`.
pub fn write_weighting(
    alloc: Tensor<2>,
    content: Tensor<2>,
    alloc_gate: Tensor<2>,
    write_gate: Tensor<2>,
) -> Tensor<2> {
    (content.clone() + (alloc - content) * alloc_gate) * write_gate
}

/// Precedence `p_t = (1 − Σ_i w^w_i) p_{t−1} + w^w`.
pub fn precedence(p_prev: Tensor<2>, w_write: Tensor<2>) -> Tensor<2> {
    let total = w_write.clone().sum_dim(1); // (B, 1)
    p_prev * total.neg().add_scalar(1.0) + w_write
}

/// The temporal link matrix update
/// `L_t[i, j] = (1 − w^w_i − w^w_j) L_{t−1}[i, j] + w^w_i p_{t−1}[j]`, with a zero diagonal.
pub fn link(l_prev: Tensor<3>, w_write: Tensor<2>, p_prev: Tensor<2>) -> Tensor<3> {
    let [b, n, _] = l_prev.dims();
    let device = l_prev.device();
    let wi = w_write.clone().unsqueeze_dim::<3>(2); // (B, N, 1)
    let wj = w_write.unsqueeze_dim::<3>(1); // (B, 1, N)
    let decay = (wi.clone() + wj).neg().add_scalar(1.0); // (B, N, N)
    let l = l_prev * decay + wi * p_prev.unsqueeze_dim::<3>(1);
    l * off_diagonal(b, n, &device)
}

/// `(B, N, N)` ones with a zero diagonal.
pub fn off_diagonal(b: usize, n: usize, device: &Device) -> Tensor<3> {
    let eye = Tensor::<2>::eye(n, device);
    eye.neg().add_scalar(1.0).unsqueeze_dim::<3>(0).expand([b, n, n])
}

/// Forward and backward weightings of every read head: `f^i = L w^{r,i}`, `b^i = Lᵀ w^{r,i}`;
/// `(B, N, N), (B, R, N) → ((B, R, N), (B, R, N))`.
pub fn directional(l: Tensor<3>, w_read_prev: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
    // Row form: f^i_n = Σ_j L[n, j] w_j  ⇔  f = w Lᵀ;  b^i_n = Σ_j L[j, n] w_j  ⇔  b = w L.
    let forward = w_read_prev.clone().matmul(l.clone().swap_dims(1, 2));
    let backward = w_read_prev.matmul(l);
    (forward, backward)
}

/// Read weightings from the read modes `π (B, R, 3)` (backward, content, forward):
/// `w^r = π_b b + π_c c + π_f f`.
pub fn read_weighting(modes: Tensor<3>, backward: Tensor<3>, content: Tensor<3>, forward: Tensor<3>) -> Tensor<3> {
    backward * modes.clone().narrow(2, 0, 1) + content * modes.clone().narrow(2, 1, 1) + forward * modes.narrow(2, 2, 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{assert_close as close, cpu as t2, cpu as t3, values as vals};
    use crate::testing::{grad_check, uniform};

    fn dev() -> Device {
        Device::flex()
    }

    #[test]
    fn allocation_prefers_the_least_used_location() {
        // Usage (0.9, 0.1, 0.5): sorted order 1, 2, 0.
        // a[1] = 0.9; a[2] = 0.5 · 0.1; a[0] = 0.1 · 0.1 · 0.5.
        let a = vals(allocation(t2(vec![0.9, 0.1, 0.5], [1, 3])));
        close(&a, &[0.1 * 0.1 * 0.5, 0.9, 0.5 * 0.1], 1e-5);
        // An all-free memory allocates the first location; a full one allocates (almost) nothing.
        let free = vals(allocation(Tensor::zeros([1, 4], &dev())));
        assert!(free[0] > 0.99 && free.iter().all(|v| v.is_finite()));
        let full = vals(allocation(Tensor::ones([1, 4], &dev())));
        assert!(full.iter().all(|&v| v.abs() < 1e-5));
    }

    #[test]
    fn retention_usage_and_precedence_follow_the_equations() {
        // Two read heads free what they read.
        let psi = vals(retention(t2(vec![1.0, 0.5], [1, 2]), t3(vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [1, 2, 3])));
        close(&psi, &[0.0, 0.5, 1.0], 1e-6);
        let u = vals(usage(t2(vec![0.5, 0.5, 0.0], [1, 3]), t2(vec![0.0, 1.0, 0.5], [1, 3]), t2(psi, [1, 3])));
        close(&u, &[0.0, 0.5, 0.5], 1e-6);
        let p = vals(precedence(t2(vec![0.2, 0.8, 0.0], [1, 3]), t2(vec![0.0, 0.0, 0.5], [1, 3])));
        close(&p, &[0.1, 0.4, 0.5], 1e-6);
    }

    #[test]
    fn links_record_write_order_and_directional_reads_follow_them() {
        let n = 4;
        let mut l = Tensor::<3>::zeros([1, n, n], &dev());
        let mut p = Tensor::<2>::zeros([1, n], &dev());
        // Write to locations 2, then 0, then 3.
        for loc in [2usize, 0, 3] {
            let mut w = vec![0.0; n];
            w[loc] = 1.0;
            let w = t2(w, [1, n]);
            l = link(l, w.clone(), p.clone());
            p = precedence(p, w);
        }
        let lv = vals(l.clone());
        // L[i, j] = 1 where i was written right after j.
        assert_eq!(lv[2], 1.0); // L[0, 2]
        assert_eq!(lv[3 * n], 1.0); // L[3, 0]
        assert_eq!(lv.iter().sum::<f32>(), 2.0);
        // Reading at 0: forward goes to 3 (written next), backward to 2 (written before).
        let (f, b) = directional(l, t3(vec![1.0, 0.0, 0.0, 0.0], [1, 1, n]));
        close(&vals(f), &[0.0, 0.0, 0.0, 1.0], 1e-6);
        close(&vals(b), &[0.0, 0.0, 1.0, 0.0], 1e-6);
        let r = vals(read_weighting(
            t3(vec![0.2, 0.3, 0.5], [1, 1, 3]),
            t3(vec![1.0, 0.0, 0.0, 0.0], [1, 1, n]),
            t3(vec![0.0, 1.0, 0.0, 0.0], [1, 1, n]),
            t3(vec![0.0, 0.0, 0.0, 1.0], [1, 1, n]),
        ));
        close(&r, &[0.2, 0.3, 0.0, 0.5], 1e-6);
    }

    #[test]
    fn gradient_of_allocation_and_write_weighting() {
        let (b, n) = (2, 5);
        // Distinct usages, away from ties (where the sort order would switch).
        let u: Vec<f32> = (0..b * n).map(|i| 0.05 + 0.9 * ((i * 7) % (b * n)) as f32 / (b * n) as f32).collect();
        let inputs = [u, uniform(b * n, 0.0, 1.0, 2), uniform(b, 0.1, 0.9, 3), uniform(b, 0.1, 0.9, 4)];
        grad_check(&inputs, 1e-3, 2e-2, |x| {
            let [u, c, ga, gw]: [Tensor<1>; 4] = x.try_into().unwrap();
            let a = allocation(u.reshape([b, n]));
            write_weighting(a, c.reshape([b, n]), ga.reshape([b, 1]), gw.reshape([b, 1])).reshape([b * n])
        });
    }

    #[test]
    fn gradient_of_retention_usage_precedence_link_and_reads() {
        let (b, r, n) = (1, 2, 4);
        let inputs = [
            uniform(b * r, 0.0, 1.0, 5),
            uniform(b * r * n, 0.0, 0.5, 6),
            uniform(b * n, 0.0, 1.0, 7),
            uniform(b * n, 0.0, 0.4, 8),
            uniform(b * n * n, 0.0, 0.5, 9),
            uniform(b * n, 0.0, 0.4, 10),
            uniform(b * r * 3, 0.0, 1.0, 11),
        ];
        grad_check(&inputs, 1e-3, 2e-2, |x| {
            let [f, wr, u, ww, l, p, modes]: [Tensor<1>; 7] = x.try_into().unwrap();
            let wr = wr.reshape([b, r, n]);
            let ww = ww.reshape([b, n]);
            let psi = retention(f.reshape([b, r]), wr.clone());
            let u2 = usage(u.reshape([b, n]), ww.clone(), psi);
            let l2 = link(l.reshape([b, n, n]), ww.clone(), p.clone().reshape([b, n]));
            let p2 = precedence(p.reshape([b, n]), ww);
            let (fw, bw) = directional(l2.clone(), wr.clone());
            let rw = read_weighting(modes.reshape([b, r, 3]), bw, wr, fw);
            Tensor::cat(
                vec![u2.reshape([b * n]), p2.reshape([b * n]), l2.reshape([b * n * n]), rw.reshape([b * r * n])],
                0,
            )
        });
    }
}
