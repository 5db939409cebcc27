//! f: the potential, a 3D ResNet `[B, 3, 16, 16, 16]` → `[B, 1]` after the NOT reference's
//! ResNet_D: no normalization layers, LeakyReLU(0.2), residual branches scaled by 0.1,
//! Kaiming (fan-out) initialization, average pooling between stages.

use super::leaky_relu;
use super::resample::avg_pool2;
use super::{conv3d, conv3d_leaky, scaled_residual};
use burn::config::Config;
use burn::module::{Initializer, Module};
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig3d};
use burn::tensor::{Device, Tensor};

const SLOPE: f64 = 0.2;
const RESIDUAL_SCALE: f64 = 0.1;

/// Shape of f.
#[derive(Config, Debug, PartialEq)]
pub struct PotentialConfig {
    /// Channels of the first stage; doubled at every stage (capped at 8× width).
    #[config(default = 16)]
    pub width: usize,
    /// Pooling stages: 16³ → 8³ → 4³ → 2³ at the default 3.
    #[config(default = 3)]
    pub stages: usize,
}

fn kaiming() -> Initializer {
    Initializer::KaimingNormal {
        gain: 2.0f64.sqrt(),
        fan_out_only: true,
    }
}

fn conv(
    channels_in: usize,
    channels_out: usize,
    kernel: usize,
    bias: bool,
    device: &Device,
) -> Conv3d {
    Conv3dConfig::new([channels_in, channels_out], [kernel; 3])
        .with_padding(PaddingConfig3d::Explicit(
            kernel / 2,
            kernel / 2,
            kernel / 2,
        ))
        .with_bias(bias)
        .with_initializer(kaiming())
        .init(device)
}

/// `shortcut(x) + 0.1 · conv(act(conv(act(x))))`, with a learned 1×1 shortcut when the
/// channel count changes.
#[derive(Module, Debug)]
struct ResBlock {
    conv_0: Conv3d,
    conv_1: Conv3d,
    shortcut: Option<Conv3d>,
}

impl ResBlock {
    fn new(channels_in: usize, channels_out: usize, device: &Device) -> Self {
        Self {
            conv_0: conv(channels_in, channels_out, 3, true, device),
            conv_1: conv(channels_out, channels_out, 3, true, device),
            shortcut: (channels_in != channels_out)
                .then(|| conv(channels_in, channels_out, 1, false, device)),
        }
    }

    fn forward(&self, x: Tensor<5>) -> Tensor<5> {
        let dx = conv3d_leaky(&self.conv_0, leaky_relu(x.clone(), SLOPE), SLOPE);
        let dx = conv3d(&self.conv_1, dx);
        let shortcut = match &self.shortcut {
            Some(s) => conv3d(s, x),
            None => x,
        };
        scaled_residual(shortcut, dx, RESIDUAL_SCALE)
    }
}

#[derive(Module, Debug)]
pub struct Potential {
    conv_in: Conv3d,
    blocks: Vec<ResBlock>,
    head: Linear,
}

impl PotentialConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=256).contains(&self.width) {
            return Err(format!("f width {} must be 1..=256", self.width));
        }
        if !(1..=4).contains(&self.stages) {
            return Err(format!("f stages {} must be 1..=4", self.stages));
        }
        Ok(())
    }

    /// Builds f; panics only on a config that [`validate`](Self::validate) rejects.
    pub fn init(&self, device: &Device) -> Potential {
        self.validate().expect("invalid PotentialConfig");
        let widths: Vec<usize> = (0..=self.stages).map(|s| self.width << s.min(3)).collect();
        let blocks = (0..=self.stages)
            .map(|s| ResBlock::new(widths[s.saturating_sub(1)], widths[s], device))
            .collect();
        let side = 16 >> self.stages;
        Potential {
            conv_in: conv(3, widths[0], 3, true, device),
            blocks,
            head: LinearConfig::new(widths[self.stages] * side * side * side, 1).init(device),
        }
    }
}

impl Potential {
    /// f(x) for `x: [B, 3, 16, 16, 16]`, one scalar per digit: `[B, 1]`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<2> {
        let mut h = conv3d(&self.conv_in, x);
        for (i, block) in self.blocks.iter().enumerate() {
            if i > 0 {
                h = avg_pool2(h);
            }
            h = block.forward(h);
        }
        let batch = h.dims()[0];
        self.head
            .forward(leaky_relu(h, SLOPE).reshape([batch as i32, -1]))
    }
}
