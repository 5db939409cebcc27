//! A convolution, its bias and the leaky ReLU after it as one op on the CPU device: the
//! forward adds the bias and applies the activation to each sample's output as soon as the
//! kernel wrote it, and the backward turns ∂y into ∂(conv) once and sums the bias gradient
//! from it. Through burn's ops the same layer is three tracked ops (conv, a broadcast add, an
//! activation) with two more full passes forward and, backward, a mask pass plus a
//! broadcast-add gradient reduced one dimension at a time.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::kernels::{self, Epilogue};
use super::leaky_relu::leaky_relu_backward;
use super::{SavedConv, f32_slice, flex_tensor, geometry};

/// The custom op: `act(conv(x, weight) + bias)` with act a leaky ReLU of slope `slope`
/// (1: none), differentiable through its own backward.
#[backend_extension(Flex, Autodiff)]
pub trait FusedConvBackend: Backend {
    fn fused_conv3d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
        padding: usize,
        slope: f64,
    ) -> FloatTensor<Self>;
}

impl FusedConvBackend for Flex {
    fn fused_conv3d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        stride: usize,
        padding: usize,
        slope: f64,
    ) -> FlexTensor {
        let (x, weight, bias) = (
            x.to_contiguous(),
            weight.to_contiguous(),
            bias.to_contiguous(),
        );
        let g = geometry(&x.shape(), &weight.shape(), stride, padding);
        let epilogue = Epilogue {
            bias: f32_slice(&bias),
            slope: slope as f32,
        };
        let y = kernels::forward_fused(&g, f32_slice(&x), f32_slice(&weight), epilogue);
        let [od, oh, ow] = g.output_size();
        flex_tensor(y, vec![g.batch, g.channels_out, od, oh, ow])
    }
}

/// `Σ_b Σ_v dz[b, c, v]` for `dz: [B, C, V]`: the bias gradient, one value per channel.
/// Each sample's sums in parallel, then added in sample order (the same result on any
/// number of threads).
pub(crate) fn channel_sums(dz: &[f32], channels: usize, voxels: usize) -> Vec<f32> {
    let sample = channels * voxels;
    if sample == 0 {
        return vec![0.0; channels];
    }
    let per_sample: Vec<Vec<f32>> = dz
        .par_chunks(sample)
        .map(|dz_b| dz_b.chunks_exact(voxels).map(lane_sum).collect())
        .collect();
    let mut sums = vec![0.0f32; channels];
    for sample_sums in per_sample {
        for (s, v) in sums.iter_mut().zip(sample_sums) {
            *s += v;
        }
    }
    sums
}

/// The sum of `values` in 16 interleaved partial sums (one SIMD register's lanes): a plain
/// `sum` adds one value at a time, each waiting on the last.
fn lane_sum(values: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut partial = [0.0f32; LANES];
    let mut chunks = values.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (p, v) in partial.iter_mut().zip(chunk) {
            *p += v;
        }
    }
    partial.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

#[derive(Debug)]
struct FusedConvBackward;

/// What the backward needs: the input's and weight's checkpoints, the output (for the
/// activation's signs; `None` without an activation), stride, padding, slope.
type FusedState = (NodeId, NodeId, Option<FlexTensor>, usize, usize, f64);

impl Backward<Flex, 3> for FusedConvBackward {
    type State = FusedState;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (x_state, weight_state, y, stride, padding, slope) = ops.state;
        let conv = SavedConv::retrieve(checkpointer, (x_state, weight_state), stride, padding);
        // ∂L/∂(conv + bias): ∂y through the activation, once for both gradients below.
        let masked = y.map(|y| {
            let y = y.to_contiguous();
            leaky_relu_backward(f32_slice(&y), f32_slice(&dy), slope as f32)
        });
        let dz = masked.as_deref().unwrap_or_else(|| f32_slice(&dy));
        if let Some(node) = node_bias {
            let channels = conv.g.channels_out;
            let db = channel_sums(dz, channels, conv.g.output_voxels());
            grads.register::<Flex>(node.id, flex_tensor(db, vec![channels]));
        }
        let nodes = [node_x, node_weight].map(|node| node.map(|node| node.id));
        conv.register_gradients(grads, dz, nodes);
    }
}

impl<C: CheckpointStrategy> FusedConvBackend for Autodiff<Flex, C> {
    fn fused_conv3d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
        padding: usize,
        slope: f64,
    ) -> FloatTensor<Self> {
        match FusedConvBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let output = Flex::fused_conv3d(
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                    stride,
                    padding,
                    slope,
                );
                // The activation's backward reads its signs off the output, which is the
                // next layer's input: holding it costs no memory.
                let y = (slope != 1.0).then(|| output.clone());
                prep.finish((x_state, weight_state, y, stride, padding, slope), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::fused_conv3d(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                stride,
                padding,
                slope,
            )),
        }
    }
}

/// `act(conv(x, weight) + bias)` with act a leaky ReLU of `slope` (1: none) as one op;
/// the caller checked that the kernels take `x` and that `slope` is positive (the backward
/// reads the signs off the output).
pub(super) fn conv3d_bias_act(
    x: Tensor<5>,
    weight: Tensor<5>,
    bias: Tensor<1>,
    (stride, padding): (usize, usize),
    slope: f64,
) -> Tensor<5> {
    debug_assert!(slope > 0.0, "the fused backward needs a positive slope");
    Tensor::<5>::from_dispatch(<Dispatch as FusedConvBackend>::fused_conv3d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        stride,
        padding,
        slope,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_sums_add_every_sample_and_voxel_of_a_channel() {
        // [B = 2, C = 3, V = 2]
        let dz = [
            1.0, 2.0, 10.0, 20.0, 100.0, 200.0, 3.0, 4.0, 30.0, 40.0, 300.0, 400.0,
        ];
        assert_eq!(channel_sums(&dz, 3, 2), vec![10.0, 100.0, 1000.0]);
        assert_eq!(channel_sums(&[], 2, 0), vec![0.0, 0.0]);
    }
}
