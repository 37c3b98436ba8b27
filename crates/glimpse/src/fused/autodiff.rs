//! What every fused op's `Autodiff` impl shares: the backward step ([`FusedBackward`], which
//! calls the op's `…_backward` kernel and hands each tracked input its gradient) and the choice
//! between a tracked and an untracked forward ([`record`], [`record_on_inputs`]). An op supplies
//! its kernels and the state its backward reads; none writes its own `Backward` impl.

use std::fmt;

use burn::backend::Autodiff;
use burn::backend::Backend;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, NodeGuard, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;

/// A backward kernel: from the saved state, `∂L/∂out` and which of the `N` inputs want a
/// gradient, each input's gradient (in input order; `None`, where the gradient type allows it,
/// for one not computed).
pub(super) type Grad<B, S, R, const N: usize> = fn(S, FloatTensor<B>, [bool; N]) -> R;

/// The backward step of a fused op with `N` inputs and saved state `S`.
pub(super) struct FusedBackward<B: Backend, S, R, const N: usize>(Grad<B, S, R, N>);

impl<B: Backend, S, R, const N: usize> fmt::Debug for FusedBackward<B, S, R, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FusedBackward<{N}>")
    }
}

impl<B, S, R, G, const N: usize> Backward<B, N> for FusedBackward<B, S, R, N>
where
    B: Backend,
    S: Clone + Send + fmt::Debug + 'static,
    R: IntoIterator<Item = G> + 'static,
    G: Into<Option<FloatTensor<B>>>,
{
    type State = S;

    fn backward(self, ops: Ops<S, N>, grads: &mut Gradients, _: &mut Checkpointer) {
        let g = grads.consume::<B>(&ops.node);
        let tracked = ops.parents.each_ref().map(Option::is_some);
        let all = (self.0)(ops.state, g, tracked);
        for (node, grad) in ops.parents.into_iter().zip(all) {
            if let (Some(node), Some(grad)) = (node, grad.into()) {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

/// A fused op under autodiff, of the inputs whose nodes are `parents` (taken before their
/// primitives): `forward(tracked)` computes the output on the inner backend, with the state
/// `grad` will read when `tracked` (the graph records the op only when an input is tracked).
pub(super) fn record<B, C, S, R, G, const N: usize>(
    parents: [NodeGuard; N],
    grad: Grad<B, S, R, N>,
    forward: impl FnOnce(bool) -> (FloatTensor<B>, Option<S>),
) -> FloatTensor<Autodiff<B, C>>
where
    B: Backend,
    C: CheckpointStrategy,
    S: Clone + Send + fmt::Debug + 'static,
    R: IntoIterator<Item = G> + 'static,
    G: Into<Option<FloatTensor<B>>>,
{
    match FusedBackward(grad).prepare::<C>(parents).compute_bound().stateful() {
        OpsKind::Tracked(prep) => {
            let (out, state) = forward(true);
            prep.finish(state.expect("a tracked forward returns its state"), out)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(false).0),
    }
}

/// [`record`] for an op whose backward reads its inputs and nothing else.
pub(super) fn record_on_inputs<B, C, R, G, const N: usize>(
    inputs: [FloatTensor<Autodiff<B, C>>; N],
    forward: fn([FloatTensor<B>; N]) -> FloatTensor<B>,
    grad: Grad<B, [FloatTensor<B>; N], R, N>,
) -> FloatTensor<Autodiff<B, C>>
where
    B: Backend,
    C: CheckpointStrategy,
    R: IntoIterator<Item = G> + 'static,
    G: Into<Option<FloatTensor<B>>>,
{
    let parents = inputs.each_ref().map(|t| t.node());
    let inputs = inputs.map(|t| t.into_primitive());
    record::<B, C, _, _, _, N>(parents, grad, |tracked| match tracked {
        true => (forward(inputs.clone()), Some(inputs)),
        false => (forward(inputs), None),
    })
}
