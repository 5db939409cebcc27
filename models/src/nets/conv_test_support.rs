//! Test helpers shared by the convolution routes' tests: a burn conv3d to compare against.

use burn::nn::PaddingConfig3d;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::tensor::{Device, Tensor};

/// burn's conv3d on the CPU device: cubic kernel, the same stride and padding on every axis.
pub fn conv(
    channels: [usize; 2],
    kernel: usize,
    stride: usize,
    padding: usize,
    bias: bool,
) -> Conv3d {
    Conv3dConfig::new(channels, [kernel; 3])
        .with_stride([stride; 3])
        .with_padding(PaddingConfig3d::Explicit(padding, padding, padding))
        .with_bias(bias)
        .init(&Device::flex())
}

/// Panics unless `a` equals burn's `b` within 1e-4 relative, naming `what` and the index.
pub fn assert_close(a: Tensor<5>, b: Tensor<5>, what: &str) {
    let a = a.into_data().try_to_vec::<f32>().unwrap();
    let b = b.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs burn's {y}"
        );
    }
}
