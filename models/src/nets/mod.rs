//! The networks of Neural Optimal Transport on voxel digits: the transport map T (a 3D UNet
//! with residual output) and the potential f (a 3D ResNet), as burn modules; and the 3D
//! digit classifier that evaluates maps.

pub mod burnpack;
mod classifier;
pub mod classifier_weights;
#[cfg(test)]
mod conv_test_support;
pub mod flops;
#[cfg(feature = "gemm-conv")]
pub mod gemm_conv;
pub mod im2col_conv;
mod potential;
mod resample;
mod transport;
pub mod weights;

pub use classifier::{CLASSES, ClassifierConfig, DigitClassifier};
pub use potential::{Potential, PotentialConfig};
pub use resample::{avg_pool2, upsample_nearest2};
pub use transport::{NoiseLayout, TransportMap, TransportMapConfig, gaussian_noise, noise_values};

use burn::module::Module;
use burn::nn::PaddingConfig3d;
use burn::nn::conv::Conv3d;
use burn::tensor::Tensor;
use std::sync::atomic::{AtomicU8, Ordering};

/// Which 3D convolution (and leaky ReLU) the networks run, for the whole process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvRoute {
    /// ot3d's im2col + GEMM kernels and fused leaky ReLU on the CPU device where the trainer
    /// built them in (feature `gemm-conv`), burn's ops everywhere else (the default).
    Gemm,
    /// burn's conv3d and leaky ReLU with their default backward, everywhere.
    Burn,
    /// im2col and one batched matmul in burn's tensor ops ([`im2col_conv`]), on every
    /// device, for backends whose conv3d kernels are slow.
    Im2col,
}

static CONV_ROUTE: AtomicU8 = AtomicU8::new(ConvRoute::Gemm as u8);

/// Sets the route every later convolution takes (for A/B benchmarks and slow GPU kernels).
pub fn set_conv_route(route: ConvRoute) {
    CONV_ROUTE.store(route as u8, Ordering::SeqCst);
}

/// The route set by [`set_conv_route`].
pub fn conv_route() -> ConvRoute {
    match CONV_ROUTE.load(Ordering::SeqCst) {
        r if r == ConvRoute::Burn as u8 => ConvRoute::Burn,
        r if r == ConvRoute::Im2col as u8 => ConvRoute::Im2col,
        _ => ConvRoute::Gemm,
    }
}

/// `conv.forward(x)` by the [`conv_route`]: the GEMM kernels where they take `x`, im2col +
/// matmul on that route, else burn's conv3d.
pub(crate) fn conv3d(conv: &Conv3d, x: Tensor<5>) -> Tensor<5> {
    #[cfg(feature = "gemm-conv")]
    if gemm_conv::takes(conv, &x) {
        return gemm_conv::conv3d(conv, x);
    }
    if conv_route() == ConvRoute::Im2col {
        im2col_conv::conv3d(conv, x)
    } else {
        conv.forward(x)
    }
}

/// `leaky_relu(conv3d(conv, x), slope)`: on the GEMM route one op with the bias and the
/// activation fused into the convolution.
pub(crate) fn conv3d_leaky(conv: &Conv3d, x: Tensor<5>, slope: f64) -> Tensor<5> {
    #[cfg(feature = "gemm-conv")]
    if gemm_conv::takes(conv, &x) {
        return gemm_conv::conv3d_leaky(conv, x, slope);
    }
    leaky_relu(conv3d(conv, x), slope)
}

/// The one stride and symmetric padding of `conv` on every axis, if it has them (cubic kernel,
/// no dilation, one group, explicit padding): the geometries ot3d's convolutions run.
pub(crate) fn uniform_geometry(conv: &Conv3d) -> Option<(usize, usize)> {
    let [s0, s1, s2] = conv.stride;
    let [k0, k1, k2] = conv.kernel_size;
    let padding = match conv.padding {
        PaddingConfig3d::Explicit(a, b, c) if a == b && b == c => a,
        PaddingConfig3d::Valid => 0,
        _ => return None,
    };
    (s0 == s1 && s1 == s2 && k0 == k1 && k1 == k2 && conv.dilation == [1, 1, 1] && conv.groups == 1)
        .then_some((s0, padding))
}

/// `leaky_relu(x, slope)`: one fused op on the CPU device where the trainer built the kernels
/// in (feature `gemm-conv`), burn's activation everywhere else.
pub(crate) fn leaky_relu<const D: usize>(x: Tensor<D>, slope: f64) -> Tensor<D> {
    #[cfg(feature = "gemm-conv")]
    {
        gemm_conv::leaky_relu(x, slope)
    }
    #[cfg(not(feature = "gemm-conv"))]
    {
        burn::tensor::activation::leaky_relu(x, slope)
    }
}

/// `shortcut + scale · branch`: one op on the CPU device where the trainer built the kernels
/// in (feature `gemm-conv`), burn's ops everywhere else.
pub(crate) fn scaled_residual<const D: usize>(
    shortcut: Tensor<D>,
    branch: Tensor<D>,
    scale: f64,
) -> Tensor<D> {
    #[cfg(feature = "gemm-conv")]
    {
        gemm_conv::scaled_residual(shortcut, branch, scale)
    }
    #[cfg(not(feature = "gemm-conv"))]
    {
        shortcut + branch.mul_scalar(scale)
    }
}

/// Held while a network's initial weights are drawn. burn seeds a backend's RNG globally,
/// so a network built on another thread between someone's seed and their init would
/// change those seeded weights: every init in this process, seeded or not, takes this.
pub fn init_guard() -> std::sync::MutexGuard<'static, ()> {
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    INIT.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Number of scalar parameters of a module.
pub fn parameter_count<M: Module>(module: &M) -> usize {
    module.num_params()
}

#[cfg(test)]
mod tests;
