//! The networks' 3D convolutions on burn's CPU backend (Flex) as a backend extension with its
//! own forward and both gradients ([`kernels`]): stride-1 convs by a direct SIMD kernel
//! ([`direct`]), 2³ volumes as one dense product ([`dense`]), the rest im2col + GEMM; burn
//! 0.22's own Flex conv3d runs its weight gradient as a convolution with a 16³ "kernel", the
//! slowest part of a step. Other devices and dtypes keep burn's `Conv3d::forward`. A conv's
//! bias and the leaky ReLU after it run in the same op ([`fused`]); a leaky ReLU on its own
//! ([`leaky_relu()`]), the 2× resampling ([`resample`]) and the residual sum ([`residual`])
//! are ops of their own the same way.

mod batched;
mod channel_gradient;
mod dense;
pub mod direct;
mod fused;
mod grid;
pub mod kernels;
mod leaky_relu;
mod resample;
mod residual;

pub use leaky_relu::leaky_relu;
pub use resample::{avg_pool2, resample_runs_on, upsample_nearest2};
pub use residual::scaled_residual;

use super::uniform_geometry;
use super::{ConvRoute, conv_route};
use burn::backend::TensorMetadata;
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, Flex, backend_extension};
use burn::nn::conv::Conv3d;
use burn::tensor::{DType, Device, Tensor, TensorData};
use kernels::ConvGeometry;

/// The custom op: a bias-free 3D convolution (cubic kernel, one stride and symmetric padding
/// on every axis), differentiable through its own backward.
#[backend_extension(Flex, Autodiff)]
pub trait GemmConvBackend: Backend {
    fn gemm_conv3d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self>;
}

fn geometry(x: &[usize], weight: &[usize], stride: usize, padding: usize) -> ConvGeometry {
    let geometry = ConvGeometry {
        batch: x[0],
        channels_in: x[1],
        channels_out: weight[0],
        size: [x[2], x[3], x[4]],
        kernel: weight[2],
        stride,
        padding,
    };
    assert_eq!(
        weight[1], x[1],
        "conv weight's input channels vs the input's"
    );
    assert!(
        weight[2] == weight[3] && weight[3] == weight[4],
        "cubic kernels only"
    );
    if let Err(why) = geometry.check() {
        panic!("gemm_conv3d: {why}");
    }
    geometry
}

fn f32_slice(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>()
        .expect("ot3d's CPU kernels: a contiguous f32 tensor")
}

fn flex_tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

impl GemmConvBackend for Flex {
    fn gemm_conv3d(x: FlexTensor, weight: FlexTensor, stride: usize, padding: usize) -> FlexTensor {
        let (x, weight) = (x.to_contiguous(), weight.to_contiguous());
        let g = geometry(&x.shape(), &weight.shape(), stride, padding);
        let y = kernels::forward(&g, f32_slice(&x), f32_slice(&weight));
        let [od, oh, ow] = g.output_size();
        flex_tensor(y, vec![g.batch, g.channels_out, od, oh, ow])
    }
}

#[derive(Debug)]
struct GemmConvBackward;

impl Backward<Flex, 2> for GemmConvBackward {
    /// The input's and weight's checkpoints, stride, padding.
    type State = (NodeId, NodeId, usize, usize);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (x_state, weight_state, stride, padding) = ops.state;
        let conv = SavedConv::retrieve(checkpointer, (x_state, weight_state), stride, padding);
        let nodes = [node_x, node_weight].map(|node| node.map(|node| node.id));
        conv.register_gradients(grads, f32_slice(&dy), nodes);
    }
}

/// A conv's input and weight back from their checkpoints (contiguous), and its geometry.
struct SavedConv {
    x: FlexTensor,
    weight: FlexTensor,
    g: ConvGeometry,
}

impl SavedConv {
    fn retrieve(
        checkpointer: &mut Checkpointer,
        (x_state, weight_state): (NodeId, NodeId),
        stride: usize,
        padding: usize,
    ) -> Self {
        let x = checkpointer
            .retrieve_node_output::<FlexTensor>(x_state)
            .to_contiguous();
        let weight = checkpointer
            .retrieve_node_output::<FlexTensor>(weight_state)
            .to_contiguous();
        let g = geometry(&x.shape(), &weight.shape(), stride, padding);
        SavedConv { x, weight, g }
    }

    /// Registers ∂x and ∂weight from `dy = ∂L/∂conv(x)` for the parents that are tracked.
    /// Only the gradients someone asked for run: a frozen potential needs its input's, a
    /// network on detached inputs only its weights'.
    fn register_gradients(
        &self,
        grads: &mut Gradients,
        dy: &[f32],
        [node_x, node_weight]: [Option<NodeId>; 2],
    ) {
        let (dx, dw) = kernels::backward(
            &self.g,
            f32_slice(&self.x),
            f32_slice(&self.weight),
            dy,
            node_x.is_some(),
            node_weight.is_some(),
        );
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node, flex_tensor(dx, self.x.shape().to_vec()));
        }
        if let (Some(node), Some(dw)) = (node_weight, dw) {
            grads.register::<Flex>(node, flex_tensor(dw, self.weight.shape().to_vec()));
        }
    }
}

impl<C: CheckpointStrategy> GemmConvBackend for Autodiff<Flex, C> {
    fn gemm_conv3d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        stride: usize,
        padding: usize,
    ) -> FloatTensor<Self> {
        match GemmConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let output =
                    Flex::gemm_conv3d(x.into_primitive(), weight.into_primitive(), stride, padding);
                prep.finish((x_state, weight_state, stride, padding), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::gemm_conv3d(
                x.into_primitive(),
                weight.into_primitive(),
                stride,
                padding,
            )),
        }
    }
}

/// The stride and padding the GEMM kernels would run `conv` on `x` with; `None` where burn's
/// conv3d runs it (turned off, another device or dtype, a geometry they do not cover).
fn gemm_geometry(conv: &Conv3d, x: &Tensor<5>) -> Option<(usize, usize)> {
    uniform_geometry(conv).filter(|_| kernels_run_on(x))
}

/// Whether ot3d's kernels take `x`: they are on, and `x` is f32 on the CPU device.
fn kernels_run_on<const D: usize>(x: &Tensor<D>) -> bool {
    conv_route() == ConvRoute::Gemm
        && x.dtype() == DType::F32
        && x.device().inner() == Device::flex()
}

/// `conv.forward(x)`, through the GEMM kernels when `x` is an f32 tensor on the CPU device
/// and the conv's geometry is one they run (its bias added in the same op); burn's conv3d
/// otherwise.
pub fn conv3d(conv: &Conv3d, x: Tensor<5>) -> Tensor<5> {
    conv3d_leaky(conv, x, 1.0)
}

/// `leaky_relu(conv.forward(x), slope)` (slope 1: no activation): where the GEMM kernels take
/// `x` and the conv has a bias, one op whose forward adds the bias and applies the
/// activation as each sample's output is written ([`fused`]); burn's conv3d and
/// [`leaky_relu()`] otherwise.
pub fn conv3d_leaky(conv: &Conv3d, x: Tensor<5>, slope: f64) -> Tensor<5> {
    let activate = |y: Tensor<5>| {
        if slope == 1.0 {
            y
        } else {
            leaky_relu(y, slope)
        }
    };
    let Some(geometry) = gemm_geometry(conv, &x) else {
        return activate(conv.forward(x));
    };
    match &conv.bias {
        Some(bias) if slope > 0.0 => {
            fused::conv3d_bias_act(x, conv.weight.val(), bias.val(), geometry, slope)
        }
        bias => {
            let (stride, padding) = geometry;
            let y = Tensor::<5>::from_dispatch(<Dispatch as GemmConvBackend>::gemm_conv3d(
                x.into_dispatch(),
                conv.weight.val().into_dispatch(),
                stride,
                padding,
            ));
            activate(match bias {
                Some(bias) => {
                    let channels = bias.dims()[0];
                    y + bias.val().reshape([1, channels, 1, 1, 1])
                }
                None => y,
            })
        }
    }
}

/// Whether [`conv3d`] runs `conv` on `x` through the GEMM kernels (not burn's conv3d).
pub fn takes(conv: &Conv3d, x: &Tensor<5>) -> bool {
    gemm_geometry(conv, x).is_some()
}

#[cfg(test)]
mod tests;
