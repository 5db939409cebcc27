//! Leaky ReLU on the CPU device as one pass forward and one pass backward. burn 0.22's
//! autodiff differentiates `leaky_relu` through its default decomposition (compare, scale,
//! select: three tracked ops whose backward is two selects and a scale), ~7% of a training
//! step at the CPU preset's size.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ActivationOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;
use std::mem::MaybeUninit;

use super::{f32_slice, flex_tensor, kernels_run_on};

/// Elements per parallel chunk of the forward and backward passes.
pub(crate) const CHUNK: usize = 1 << 16;

/// The custom op: leaky ReLU differentiable through its own one-pass backward.
#[backend_extension(Flex, Autodiff)]
pub trait LeakyReluBackend: Backend {
    fn fused_leaky_relu(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self>;
}

impl LeakyReluBackend for Flex {
    fn fused_leaky_relu(x: FlexTensor, slope: f64) -> FlexTensor {
        match x.as_slice::<f32>() {
            Some(values) => {
                let y = leaky_relu_forward(values, slope as f32);
                flex_tensor(y, x.shape().to_vec())
            }
            None => <Flex as ActivationOps<Flex>>::leaky_relu(x, slope.into()),
        }
    }
}

/// `x` where x ≥ 0, `slope · x` elsewhere, in chunks on every thread: burn's leaky ReLU runs
/// on the calling thread while the kernels' workers wait (~1% of a step at width 16).
pub(crate) fn leaky_relu_forward(x: &[f32], slope: f32) -> Vec<f32> {
    map_parallel(x, move |v| v * if v >= 0.0 { 1.0 } else { slope })
}

/// `x.iter().map(f)` collected in chunks of [`CHUNK`] on rayon's threads, written straight
/// into the result's spare capacity. `f` is `Copy` and copied into each chunk's loop, so
/// what it captures (a slope, a scale) is a register there: captured by reference, it was
/// loaded again for every value, since the stores might alias it, and the loop ran one
/// scalar at a time (~12% of a 16 × 16 step in the leaky ReLU alone).
pub(crate) fn map_parallel(x: &[f32], f: impl Fn(f32) -> f32 + Sync + Send + Copy) -> Vec<f32> {
    let mut y = Vec::with_capacity(x.len());
    y.spare_capacity_mut()
        .par_chunks_mut(CHUNK)
        .zip(x.par_chunks(CHUNK))
        .for_each(move |(y, x)| map_into(y, x, f));
    // SAFETY: the chunks cover the spare capacity's first `x.len()` values, each written.
    unsafe { y.set_len(x.len()) };
    y
}

/// `y[i] = f(x[i])` over `y`'s length, as one loop LLVM vectorizes.
fn map_into(y: &mut [MaybeUninit<f32>], x: &[f32], f: impl Fn(f32) -> f32) {
    let x = &x[..y.len()];
    for (y, &x) in y.iter_mut().zip(x) {
        y.write(f(x));
    }
}

/// ∂x = ∂y where y ≥ 0 (or NaN), slope · ∂y where y < 0, from the output y: for a positive
/// slope y < 0 exactly where x < 0, where burn's decomposition selects the scaled branch.
pub(crate) fn leaky_relu_backward(y: &[f32], dy: &[f32], slope: f32) -> Vec<f32> {
    assert_eq!(y.len(), dy.len(), "leaky ReLU: output and gradient sizes");
    // A select of the factor and one multiply (1 · dy = dy exactly): vectorizes, where a
    // branch per value did not.
    zip_map_parallel(y, dy, move |y, dy| dy * if y < 0.0 { slope } else { 1.0 })
}

/// `a.iter().zip(b).map(f)` collected in chunks of [`CHUNK`] on rayon's threads, written
/// straight into the result's spare capacity (no zero-filled buffer written over; a
/// `collect` of the map writes one value at a time, unvectorized); `f` is copied into each
/// chunk's loop as in [`map_parallel`].
pub(crate) fn zip_map_parallel(
    a: &[f32],
    b: &[f32],
    f: impl Fn(f32, f32) -> f32 + Sync + Send + Copy,
) -> Vec<f32> {
    assert_eq!(a.len(), b.len(), "elementwise operands of one length");
    let mut y = Vec::with_capacity(a.len());
    y.spare_capacity_mut()
        .par_chunks_mut(CHUNK)
        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
        .for_each(move |(y, (a, b))| zip_map_into(y, a, b, f));
    // SAFETY: the chunks cover the spare capacity's first `a.len()` values, each written.
    unsafe { y.set_len(a.len()) };
    y
}

/// `y[i] = f(a[i], b[i])` over `y`'s length, as one loop LLVM vectorizes.
fn zip_map_into(y: &mut [MaybeUninit<f32>], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    let (a, b) = (&a[..y.len()], &b[..y.len()]);
    for ((y, &a), &b) in y.iter_mut().zip(a).zip(b) {
        y.write(f(a, b));
    }
}

#[derive(Debug)]
struct LeakyReluBackward;

impl Backward<Flex, 1> for LeakyReluBackward {
    /// The output (it has the input's signs for a positive slope; it is the next conv's
    /// input, so holding it costs no memory, where the input would) and the slope.
    type State = (FlexTensor, f64);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (y, slope) = ops.state;
        let Some(node) = node_x else { return };
        let y = y.to_contiguous();
        let dx = leaky_relu_backward(f32_slice(&y), f32_slice(&dy), slope as f32);
        grads.register::<Flex>(node.id, flex_tensor(dx, y.shape().to_vec()));
    }
}

impl<C: CheckpointStrategy> LeakyReluBackend for Autodiff<Flex, C> {
    fn fused_leaky_relu(x: FloatTensor<Self>, slope: f64) -> FloatTensor<Self> {
        match LeakyReluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let output = Flex::fused_leaky_relu(x.into_primitive(), slope);
                prep.finish((output.clone(), slope), output)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(Flex::fused_leaky_relu(x.into_primitive(), slope))
            }
        }
    }
}

/// Whether the fused op runs on `x` (its backward reads the signs from the output, so it
/// needs a positive slope).
fn runs_here<const D: usize>(x: &Tensor<D>, slope: f64) -> bool {
    slope > 0.0 && kernels_run_on(x)
}

/// `burn::tensor::activation::leaky_relu(x, slope)`, as one fused op with a one-pass
/// backward when `x` is an f32 tensor on the CPU device (and the kernels are on); burn's
/// own elsewhere.
pub fn leaky_relu<const D: usize>(x: Tensor<D>, slope: f64) -> Tensor<D> {
    if !runs_here(&x, slope) {
        return burn::tensor::activation::leaky_relu(x, slope);
    }
    Tensor::<D>::from_dispatch(<Dispatch as LeakyReluBackend>::fused_leaky_relu(
        x.into_dispatch(),
        slope,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution, TensorData};

    /// Normal values with exact zeros (both signs) in them: the branch point.
    fn input(shape: [usize; 5]) -> Tensor<5> {
        let x = Tensor::<5>::random(shape, Distribution::Normal(0.0, 1.0), &Device::flex());
        let mut values = x.into_data().try_to_vec::<f32>().unwrap();
        values[0] = 0.0;
        values[1] = -0.0;
        Tensor::from_data(TensorData::new(values, shape), &Device::flex())
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn the_backward_pass_scales_negative_inputs_only() {
        let dx = leaky_relu_backward(
            &[-2.0, 0.0, -0.0, 3.0, f32::NAN],
            &[1.0, 2.0, 3.0, 4.0, 5.0],
            0.2,
        );
        assert_eq!(dx, vec![0.2, 2.0, 3.0, 4.0, 5.0]);
        let long = vec![-1.0f32; 3 * CHUNK + 5];
        assert!(
            leaky_relu_backward(&long, &vec![1.0; long.len()], 0.5)
                .iter()
                .all(|&g| g == 0.5)
        );
    }

    #[test]
    fn forward_and_gradient_equal_burns_leaky_relu() {
        // One chunk, and several with a partial last one.
        for shape in [[2, 3, 5, 4, 6], [2, 3, 40, 30, 19]] {
            forward_and_gradient_equal_burns(shape);
        }
    }

    fn forward_and_gradient_equal_burns(shape: [usize; 5]) {
        let x = input(shape);
        let r = Tensor::<5>::random(shape, Distribution::Normal(0.0, 1.0), &Device::flex());
        assert_eq!(
            values(leaky_relu(x.clone(), 0.2)),
            values(burn::tensor::activation::leaky_relu(x.clone(), 0.2))
        );
        let gradient = |fused: bool| {
            let leaf = x.clone().autodiff().detach().require_grad();
            assert!(runs_here(&leaf, 0.2));
            let y = if fused {
                leaky_relu(leaf.clone(), 0.2)
            } else {
                burn::tensor::activation::leaky_relu(leaf.clone(), 0.2)
            };
            let grads = (y * r.clone().autodiff()).sum().backward();
            values(leaf.grad(&grads).unwrap())
        };
        assert_eq!(gradient(true), gradient(false));
    }

    #[test]
    fn an_untracked_input_gets_no_gradient_and_a_tracked_one_through_it_does() {
        let x = input([1, 2, 3, 3, 3]);
        let weight = Tensor::<5>::ones([1, 2, 3, 3, 3], &Device::flex())
            .autodiff()
            .require_grad();
        // x is data (not tracked): the activation is skipped by autodiff, and the weight
        // downstream still gets its gradient, 1 where x ≥ 0 and the slope where x < 0
        // times x itself.
        let y = leaky_relu(x.clone().autodiff(), 0.2) * weight.clone();
        let grads = y.sum().backward();
        let expected = values(burn::tensor::activation::leaky_relu(x, 0.2));
        assert_eq!(values(weight.grad(&grads).unwrap()), expected);
    }
}
