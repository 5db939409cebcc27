//! 2× resampling of `[B, C, D, H, W]` tensors by reshapes: nearest-neighbour upsampling and
//! 2×2×2 average pooling (burn 0.22 has neither in 3D; these are exact and cheap).

use burn::tensor::Tensor;

/// Repeats every voxel 2× along D, H and W: `[B, C, D, H, W]` → `[B, C, 2D, 2H, 2W]`.
pub fn upsample_nearest2(x: Tensor<5>) -> Tensor<5> {
    let [b, c, d, h, w] = x.dims();
    x.reshape([b, c, d, 1, h, 1, w, 1])
        .expand([b, c, d, 2, h, 2, w, 2])
        .reshape([b, c, 2 * d, 2 * h, 2 * w])
}

/// Mean over 2×2×2 blocks: `[B, C, D, H, W]` → `[B, C, D/2, H/2, W/2]` (even sizes).
pub fn avg_pool2(x: Tensor<5>) -> Tensor<5> {
    let [b, c, d, h, w] = x.dims();
    x.reshape([b * c * d / 2, 2, h / 2, 2, w / 2, 2])
        .sum_dim(5)
        .sum_dim(3)
        .sum_dim(1)
        .mul_scalar(0.125)
        .reshape([b, c, d / 2, h / 2, w / 2])
}
