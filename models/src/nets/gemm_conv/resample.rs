//! 2× nearest upsampling and 2×2×2 average pooling on the CPU device as ops with plain loops
//! and their own backward (each is the other's transpose, up to the 1/8). Through burn's
//! tensor ops the upsampling is an expand materialized by a strided copy, whose backward
//! sums the expanded axes one at a time, and the pooling three reductions and a scale.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::kernels::zeros_parallel;
use super::{f32_slice, flex_tensor, kernels_run_on};

/// The custom ops, on `[B, C, D, H, W]`.
#[backend_extension(Flex, Autodiff)]
pub trait ResampleBackend: Backend {
    /// Every voxel repeated 2× along D, H and W.
    fn upsample_nearest2(x: FloatTensor<Self>) -> FloatTensor<Self>;
    /// The mean of every 2×2×2 block (even D, H, W).
    fn avg_pool2(x: FloatTensor<Self>) -> FloatTensor<Self>;
}

/// `[D, H, W]` of a `[B, C, D, H, W]` shape, and the number of volumes `B·C`.
fn volumes(shape: &[usize]) -> (usize, [usize; 3]) {
    assert_eq!(shape.len(), 5, "resampling takes [B, C, D, H, W]");
    (shape[0] * shape[1], [shape[2], shape[3], shape[4]])
}

/// Each volume `[D, H, W]` of `x` repeated 2× along every axis, times `scale`.
pub(crate) fn repeat2(x: &[f32], [d, h, w]: [usize; 3], scale: f32) -> Vec<f32> {
    let (volume, up_volume) = (d * h * w, 8 * d * h * w);
    let mut y = zeros_parallel(x.len() * 8);
    if volume == 0 {
        return y;
    }
    y.par_chunks_mut(up_volume)
        .zip(x.par_chunks(volume))
        .for_each(|(y_v, x_v)| {
            // Output row `r` of the up volume `[2D, 2H, 2W]` repeats input row (r / 2H / 2,
            // r % 2H / 2).
            for (r, line) in y_v.chunks_exact_mut(2 * w).enumerate() {
                let (z, row) = (r / (2 * h) / 2, r % (2 * h) / 2);
                let src = &x_v[(z * h + row) * w..][..w];
                for (pair, &v) in line.chunks_exact_mut(2).zip(src) {
                    pair.fill(v * scale);
                }
            }
        });
    y
}

/// The sum of every 2×2×2 block of each volume `[D, H, W]` of `x` (even sizes), times
/// `scale`: W pairs first, then H, then D (the order of burn's `sum_dim` reductions in
/// [`avg_pool2`](crate::nets::avg_pool2)).
pub(crate) fn block_sum2(x: &[f32], [d, h, w]: [usize; 3], scale: f32) -> Vec<f32> {
    let (volume, down) = (d * h * w, [d / 2, h / 2, w / 2]);
    let down_volume = down.iter().product::<usize>();
    let mut y = zeros_parallel(x.len() / 8);
    if down_volume == 0 {
        return y;
    }
    y.par_chunks_mut(down_volume)
        .zip(x.par_chunks(volume))
        .for_each(|(y_v, x_v)| {
            let at = |z: usize, r: usize, i: usize| {
                let row = &x_v[(z * h + r) * w..][..w];
                row[2 * i] + row[2 * i + 1]
            };
            for (j, out) in y_v.iter_mut().enumerate() {
                let (z, r, i) = (j / (down[1] * down[2]), j / down[2] % down[1], j % down[2]);
                let near = at(2 * z, 2 * r, i) + at(2 * z, 2 * r + 1, i);
                let far = at(2 * z + 1, 2 * r, i) + at(2 * z + 1, 2 * r + 1, i);
                *out = (near + far) * scale;
            }
        });
    y
}

fn upsample_flex(x: &FlexTensor, scale: f32) -> FlexTensor {
    let x = x.to_contiguous();
    let shape = x.shape().to_vec();
    let (_, size) = volumes(&shape);
    let y = repeat2(f32_slice(&x), size, scale);
    flex_tensor(
        y,
        vec![shape[0], shape[1], 2 * size[0], 2 * size[1], 2 * size[2]],
    )
}

fn pool_flex(x: &FlexTensor, scale: f32) -> FlexTensor {
    let x = x.to_contiguous();
    let shape = x.shape().to_vec();
    let (_, size) = volumes(&shape);
    assert!(
        size.iter().all(|s| s % 2 == 0),
        "2×2×2 pooling needs even sizes, got {size:?}"
    );
    let y = block_sum2(f32_slice(&x), size, scale);
    flex_tensor(
        y,
        vec![shape[0], shape[1], size[0] / 2, size[1] / 2, size[2] / 2],
    )
}

impl ResampleBackend for Flex {
    fn upsample_nearest2(x: FlexTensor) -> FlexTensor {
        upsample_flex(&x, 1.0)
    }

    fn avg_pool2(x: FlexTensor) -> FlexTensor {
        pool_flex(&x, 0.125)
    }
}

/// ∂x of a resampling: its adjoint applied to ∂y (each op's is the other one, up to 1/8).
#[derive(Debug)]
struct ResampleBackward {
    adjoint: fn(&FlexTensor) -> FlexTensor,
}

/// The upsampling's: each 2×2×2 block of ∂y summed.
const UPSAMPLE_BACKWARD: ResampleBackward = ResampleBackward {
    adjoint: |dy| pool_flex(dy, 1.0),
};

/// The pooling's: ∂y / 8 repeated over each block.
const POOL_BACKWARD: ResampleBackward = ResampleBackward {
    adjoint: |dy| upsample_flex(dy, 0.125),
};

impl Backward<Flex, 1> for ResampleBackward {
    type State = ();

    fn backward(self, ops: Ops<(), 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let dy = grads.consume::<Flex>(&ops.node);
        if let [Some(node)] = ops.parents {
            grads.register::<Flex>(node.id, (self.adjoint)(&dy));
        }
    }
}

impl<C: CheckpointStrategy> ResampleBackend for Autodiff<Flex, C> {
    fn upsample_nearest2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = UPSAMPLE_BACKWARD.prepare::<C>([x.node()]).compute_bound();
        prep.stateless(Flex::upsample_nearest2(x.into_primitive()))
    }

    fn avg_pool2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let prep = POOL_BACKWARD.prepare::<C>([x.node()]).compute_bound();
        prep.stateless(Flex::avg_pool2(x.into_primitive()))
    }
}

/// Whether the ops run on `x`: the kernels are on, and `x` is f32 on the CPU device.
pub fn resample_runs_on(x: &Tensor<5>) -> bool {
    kernels_run_on(x)
}

/// 2× nearest upsampling by the op; `x` is one [`resample_runs_on`] takes.
pub fn upsample_nearest2(x: Tensor<5>) -> Tensor<5> {
    Tensor::from_dispatch(<Dispatch as ResampleBackend>::upsample_nearest2(
        x.into_dispatch(),
    ))
}

/// 2×2×2 average pooling by the op; `x` is one [`resample_runs_on`] takes.
pub fn avg_pool2(x: Tensor<5>) -> Tensor<5> {
    Tensor::from_dispatch(<Dispatch as ResampleBackend>::avg_pool2(x.into_dispatch()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::resample::{avg_pool_by_reshape, upsample_by_reshape};
    use burn::tensor::{Device, Distribution};

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn random(shape: [usize; 5]) -> Tensor<5> {
        Tensor::random(shape, Distribution::Normal(0.0, 1.0), &Device::flex())
    }

    /// ∂⟨r, op(x)⟩/∂x through autodiff.
    fn gradient(op: impl Fn(Tensor<5>) -> Tensor<5>, x: &Tensor<5>, r: &Tensor<5>) -> Vec<f32> {
        let leaf = x.clone().autodiff().detach().require_grad();
        let grads = (op(leaf.clone()) * r.clone().autodiff()).sum().backward();
        values(leaf.grad(&grads).unwrap())
    }

    fn assert_close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: lengths");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-5 * (1.0 + y.abs()),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    #[test]
    fn the_ops_equal_burns_reshapes_forward_and_backward() {
        for shape in [[2, 3, 2, 4, 6], [1, 2, 4, 4, 4], [3, 1, 2, 2, 2]] {
            let x = random(shape);
            let op = upsample_nearest2;
            let up = op(x.clone());
            assert_eq!(values(up.clone()), values(upsample_by_reshape(x.clone())));
            let r = random(up.dims());
            assert_close(
                &gradient(op, &x, &r),
                &gradient(upsample_by_reshape, &x, &r),
                &format!("∂ upsample {shape:?}"),
            );

            let op = avg_pool2;
            let pooled = op(x.clone());
            // The same additions in the same order: equal, not just close.
            assert_eq!(
                values(pooled.clone()),
                values(avg_pool_by_reshape(x.clone()))
            );
            let r = random(pooled.dims());
            assert_close(
                &gradient(op, &x, &r),
                &gradient(avg_pool_by_reshape, &x, &r),
                &format!("∂ pool {shape:?}"),
            );
        }
    }

    #[test]
    fn repeat_and_block_sum_by_hand() {
        // One 2×2×2 volume → 4×4×4 and back: every block is the voxel it came from.
        let x: Vec<f32> = (1..=8).map(|v| v as f32).collect();
        let up = repeat2(&x, [2, 2, 2], 1.0);
        assert_eq!(up.len(), 64);
        assert_eq!(&up[..4], &[1.0, 1.0, 2.0, 2.0]);
        assert_eq!(&up[4..8], &[1.0, 1.0, 2.0, 2.0]);
        assert_eq!(&up[8..12], &[3.0, 3.0, 4.0, 4.0]);
        assert_eq!(&up[16..20], &[1.0, 1.0, 2.0, 2.0]);
        assert_eq!(&up[32..36], &[5.0, 5.0, 6.0, 6.0]);
        assert_eq!(block_sum2(&up, [4, 4, 4], 0.125), x);
        assert_eq!(block_sum2(&x, [2, 2, 2], 1.0), vec![36.0]);
    }

    #[test]
    fn other_dtypes_are_left_to_burn() {
        let x = random([1, 1, 2, 2, 2]);
        assert!(resample_runs_on(&x));
        assert!(!resample_runs_on(&x.cast(burn::tensor::DType::F64)));
    }
}
