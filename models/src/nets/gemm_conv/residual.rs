//! The potential's residual sum `shortcut + scale · branch` on the CPU device as one
//! parallel pass forward and one backward (∂shortcut = ∂y as it is, ∂branch = scale · ∂y).
//! burn's `mul_scalar` and `+` are two passes forward and one back, each on the calling
//! thread while the kernels' workers wait.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::Tensor;

use super::leaky_relu::{map_parallel, zip_map_parallel};
use super::{f32_slice, flex_tensor, kernels_run_on};

/// The custom op: `shortcut + scale · branch`, tensors of one shape.
#[backend_extension(Flex, Autodiff)]
pub trait ResidualBackend: Backend {
    fn scaled_residual(
        shortcut: FloatTensor<Self>,
        branch: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self>;
}

/// `shortcut + scale · branch` elementwise, in chunks on every thread; the same float
/// operations as burn's `shortcut + branch.mul_scalar(scale)`.
pub(crate) fn scaled_sum(shortcut: &[f32], branch: &[f32], scale: f32) -> Vec<f32> {
    assert_eq!(shortcut.len(), branch.len(), "residual sum: shapes");
    zip_map_parallel(shortcut, branch, move |s, b| s + b * scale)
}

impl ResidualBackend for Flex {
    fn scaled_residual(shortcut: FlexTensor, branch: FlexTensor, scale: f64) -> FlexTensor {
        assert_eq!(shortcut.shape(), branch.shape(), "residual sum: shapes");
        let (shortcut, branch) = (shortcut.to_contiguous(), branch.to_contiguous());
        let y = scaled_sum(f32_slice(&shortcut), f32_slice(&branch), scale as f32);
        flex_tensor(y, shortcut.shape().to_vec())
    }
}

#[derive(Debug)]
struct ResidualBackward;

impl Backward<Flex, 2> for ResidualBackward {
    /// The scale.
    type State = f64;

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_shortcut, node_branch] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        if let Some(node) = node_branch {
            let scale = ops.state as f32;
            let d_branch = map_parallel(f32_slice(&dy), move |v| v * scale);
            grads.register::<Flex>(node.id, flex_tensor(d_branch, dy.shape().to_vec()));
        }
        if let Some(node) = node_shortcut {
            grads.register::<Flex>(node.id, dy);
        }
    }
}

impl<C: CheckpointStrategy> ResidualBackend for Autodiff<Flex, C> {
    fn scaled_residual(
        shortcut: FloatTensor<Self>,
        branch: FloatTensor<Self>,
        scale: f64,
    ) -> FloatTensor<Self> {
        match ResidualBackward
            .prepare::<C>([shortcut.node(), branch.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(
                scale,
                Flex::scaled_residual(shortcut.into_primitive(), branch.into_primitive(), scale),
            ),
            OpsKind::UnTracked(prep) => prep.finish(Flex::scaled_residual(
                shortcut.into_primitive(),
                branch.into_primitive(),
                scale,
            )),
        }
    }
}

/// `shortcut + branch.mul_scalar(scale)`: one op with a one-pass backward when both are f32
/// tensors of one shape on the CPU device (and the kernels are on); burn's ops elsewhere.
pub fn scaled_residual<const D: usize>(
    shortcut: Tensor<D>,
    branch: Tensor<D>,
    scale: f64,
) -> Tensor<D> {
    if !(kernels_run_on(&shortcut) && kernels_run_on(&branch)) || shortcut.dims() != branch.dims() {
        return shortcut + branch.mul_scalar(scale);
    }
    Tensor::<D>::from_dispatch(<Dispatch as ResidualBackend>::scaled_residual(
        shortcut.into_dispatch(),
        branch.into_dispatch(),
        scale,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::leaky_relu::CHUNK;
    use super::*;
    use burn::tensor::{Device, Distribution};

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn random(shape: [usize; 5], seed: u64) -> Tensor<5> {
        let device = Device::flex();
        device.seed(seed);
        Tensor::<5>::random(shape, Distribution::Normal(0.0, 1.0), &device)
    }

    #[test]
    fn the_sum_and_its_gradients_equal_burns_ops() {
        // Over two parallel chunks, the last one partial.
        let shape = [2, 3, 40, 30, 19];
        let (s, b, r) = (random(shape, 1), random(shape, 2), random(shape, 3));
        assert!(shape.iter().product::<usize>() > CHUNK);
        assert_eq!(
            values(scaled_residual(s.clone(), b.clone(), 0.1)),
            values(s.clone() + b.clone().mul_scalar(0.1))
        );
        let gradients = |fused: bool| {
            let (s, b) = (
                s.clone().autodiff().require_grad(),
                b.clone().autodiff().require_grad(),
            );
            assert!(kernels_run_on(&s));
            let y = if fused {
                scaled_residual(s.clone(), b.clone(), 0.1)
            } else {
                s.clone() + b.clone().mul_scalar(0.1)
            };
            let grads = (y * r.clone().autodiff()).sum().backward();
            (
                values(s.grad(&grads).unwrap()),
                values(b.grad(&grads).unwrap()),
            )
        };
        assert_eq!(gradients(true), gradients(false));
    }

    #[test]
    fn an_untracked_side_gets_no_gradient_and_other_shapes_fall_back() {
        let shape = [1, 2, 3, 3, 3];
        let (s, b) = (random(shape, 4), random(shape, 5));
        let tracked = b.clone().autodiff().require_grad();
        let y = scaled_residual(s.clone().autodiff(), tracked.clone(), 0.5);
        let grads = y.sum().backward();
        assert!(
            values(tracked.grad(&grads).unwrap())
                .iter()
                .all(|&g| g == 0.5)
        );
        // A broadcast shortcut is burn's sum, broadcasting as burn does.
        let wide = random([1, 2, 1, 1, 1], 6);
        assert_eq!(
            values(scaled_residual(wide.clone(), b.clone(), 0.5)),
            values(wide + b.mul_scalar(0.5))
        );
    }
}
