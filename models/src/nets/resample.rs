//! 2× resampling of `[B, C, D, H, W]` tensors: nearest-neighbour upsampling and 2×2×2
//! average pooling (burn 0.22 has neither in 3D), by reshapes on every device, and on the CPU
//! device with the kernels built in by ops of their own with a plain loop each way.

use burn::tensor::Tensor;

/// Repeats every voxel 2× along D, H and W: `[B, C, D, H, W]` → `[B, C, 2D, 2H, 2W]`.
pub fn upsample_nearest2(x: Tensor<5>) -> Tensor<5> {
    #[cfg(feature = "gemm-conv")]
    if super::gemm_conv::resample_runs_on(&x) {
        return super::gemm_conv::upsample_nearest2(x);
    }
    upsample_by_reshape(x)
}

/// Mean over 2×2×2 blocks: `[B, C, D, H, W]` → `[B, C, D/2, H/2, W/2]` (even sizes).
pub fn avg_pool2(x: Tensor<5>) -> Tensor<5> {
    #[cfg(feature = "gemm-conv")]
    if super::gemm_conv::resample_runs_on(&x) {
        return super::gemm_conv::avg_pool2(x);
    }
    avg_pool_by_reshape(x)
}

/// [`upsample_nearest2`] in burn's tensor ops: an expand of a reshape.
pub(crate) fn upsample_by_reshape(x: Tensor<5>) -> Tensor<5> {
    let [b, c, d, h, w] = x.dims();
    x.reshape([b, c, d, 1, h, 1, w, 1])
        .expand([b, c, d, 2, h, 2, w, 2])
        .reshape([b, c, 2 * d, 2 * h, 2 * w])
}

/// [`avg_pool2`] in burn's tensor ops: three sums over a reshape.
pub(crate) fn avg_pool_by_reshape(x: Tensor<5>) -> Tensor<5> {
    let [b, c, d, h, w] = x.dims();
    x.reshape([b * c * d / 2, 2, h / 2, 2, w / 2, 2])
        .sum_dim(5)
        .sum_dim(3)
        .sum_dim(1)
        .mul_scalar(0.125)
        .reshape([b, c, d / 2, h / 2, w / 2])
}
