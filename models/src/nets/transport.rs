//! T: the transport map, a 3D UNet `[B, 3 (+ noise), 16, 16, 16]` → `[B, 3, 16, 16, 16]`
//! with residual output `x + g(x)`; g's last layer starts at zero, so T starts as the
//! identity (the cheapest map under the quadratic cost).

use super::resample::upsample_nearest2;
use super::{conv3d, conv3d_leaky};
use burn::config::Config;
use burn::module::{Initializer, Module};
use burn::nn::PaddingConfig3d;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::tensor::{Device, Tensor};

const SLOPE: f64 = 0.2;

/// Shape of T.
#[derive(Config, Debug, PartialEq)]
pub struct TransportMapConfig {
    /// Channels at full resolution; doubled at every level down.
    #[config(default = 16)]
    pub width: usize,
    /// Levels below full resolution (1 → 8³, 2 → 4³, 3 → 2³).
    #[config(default = 2)]
    pub depth: usize,
    /// Extra input channels of Gaussian noise z, for the weak (stochastic) cost; 0 for a
    /// deterministic map.
    #[config(default = 0)]
    pub noise_channels: usize,
}

fn conv3(channels_in: usize, channels_out: usize, stride: usize, device: &Device) -> Conv3d {
    Conv3dConfig::new([channels_in, channels_out], [3, 3, 3])
        .with_stride([stride; 3])
        .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
        .init(device)
}

/// One resolution level on the way down: (strided) conv in, conv.
#[derive(Module, Debug)]
struct Down {
    conv_in: Conv3d,
    conv: Conv3d,
}

/// One level on the way up: upsample + conv, then conv over [upsampled, skip].
#[derive(Module, Debug)]
struct Up {
    conv_up: Conv3d,
    conv_merge: Conv3d,
}

#[derive(Module, Debug)]
pub struct TransportMap {
    down: Vec<Down>,
    up: Vec<Up>,
    pub(crate) out: Conv3d,
    noise_channels: usize,
}

impl TransportMapConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=256).contains(&self.width) {
            return Err(format!("T width {} must be 1..=256", self.width));
        }
        if !(1..=3).contains(&self.depth) {
            return Err(format!(
                "T depth {} must be 1..=3 (16³ halves to 2³ at most)",
                self.depth
            ));
        }
        if self.noise_channels > 16 {
            return Err(format!(
                "T noise channels {} must be 0..=16",
                self.noise_channels
            ));
        }
        Ok(())
    }

    /// Builds T; panics only on a config that [`validate`](Self::validate) rejects.
    pub fn init(&self, device: &Device) -> TransportMap {
        self.validate().expect("invalid TransportMapConfig");
        let widths: Vec<usize> = (0..=self.depth).map(|level| self.width << level).collect();
        let mut down = vec![Down {
            conv_in: conv3(3 + self.noise_channels, widths[0], 1, device),
            conv: conv3(widths[0], widths[0], 1, device),
        }];
        for level in 1..=self.depth {
            down.push(Down {
                conv_in: conv3(widths[level - 1], widths[level], 2, device),
                conv: conv3(widths[level], widths[level], 1, device),
            });
        }
        let up = (0..self.depth)
            .rev()
            .map(|level| Up {
                conv_up: conv3(widths[level + 1], widths[level], 1, device),
                conv_merge: conv3(2 * widths[level], widths[level], 1, device),
            })
            .collect();
        let out = Conv3dConfig::new([widths[0], 3], [1, 1, 1])
            .with_initializer(Initializer::Zeros)
            .init(device);
        TransportMap {
            down,
            up,
            out,
            noise_channels: self.noise_channels,
        }
    }
}

/// How the noise z of a stochastic map fills its channels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoiseLayout {
    /// A fresh N(0, std²) value at every voxel of every noise channel.
    #[default]
    Voxel,
    /// One N(0, std²) value per noise channel and digit, the same at every voxel: a
    /// latent code the whole digit sees at once, so z can pick a global shape.
    Digit,
    /// As `Digit`, but each value is ±std, the sign of an N(0, 1) draw: z is one of
    /// 2^channels codes. A style-group map (`--weak-groups`) whose groups the signs name
    /// then never sees a z between two groups, where a Gaussian z blends their partners.
    Signs,
}

impl NoiseLayout {
    pub fn is_voxel(&self) -> bool {
        *self == NoiseLayout::Voxel
    }
}

/// The noise z of `digits` digits with `channels` noise channels each, laid out per
/// `layout`: `digits · channels · 16³` values, digit-major, drawn from `rng`.
pub fn noise_values(
    digits: usize,
    channels: usize,
    std: f32,
    layout: NoiseLayout,
    rng: &mut crate::rng::SeedRng,
) -> Vec<f32> {
    let grid = crate::voxel::GRID * crate::voxel::GRID * crate::voxel::GRID;
    match layout {
        NoiseLayout::Voxel => gaussian_noise(digits * channels * grid, std, rng),
        NoiseLayout::Digit => gaussian_noise(digits * channels, std, rng)
            .into_iter()
            .flat_map(|value| std::iter::repeat_n(value, grid))
            .collect(),
        NoiseLayout::Signs => gaussian_noise(digits * channels, 1.0, rng)
            .into_iter()
            .flat_map(|value| std::iter::repeat_n(std.copysign(value), grid))
            .collect(),
    }
}

/// `count` samples of N(0, std²) from `rng`: the noise z of a stochastic map, drawn the same
/// way natively and in the browser so a seed names one output.
pub fn gaussian_noise(count: usize, std: f32, rng: &mut crate::rng::SeedRng) -> Vec<f32> {
    (0..count).map(|_| (rng.normal() as f32) * std).collect()
}

impl TransportMap {
    /// Extra noise channels this map expects beside the 3 color channels.
    pub fn noise_channels(&self) -> usize {
        self.noise_channels
    }

    /// This deterministic map made stochastic: the first conv gains `channels` noise inputs,
    /// their weights taken from `fresh` (a newly initialized stochastic map of the same
    /// shape) scaled by `scale`, every other weight kept. With a small scale T(x, z) starts
    /// near T(x) and its draws already differ, so the weak cost's spread term has a gradient
    /// (at exactly zero spread it has none). `fresh` must have this map's width and depth.
    pub fn with_noise_input(self, fresh: &TransportMap, scale: f64) -> TransportMap {
        assert_eq!(self.noise_channels, 0, "the map is deterministic");
        let old = self.down[0].conv_in.weight.val();
        let new = fresh.down[0].conv_in.weight.val();
        let [out, inputs, k0, k1, k2] = new.dims();
        assert_eq!(
            old.dims(),
            [out, 3, k0, k1, k2],
            "one shape of the first conv"
        );
        let noise = new.slice([0..out, 3..inputs, 0..k0, 0..k1, 0..k2]);
        // Detached: a parameter must be a leaf of the autodiff graph.
        let weight = Tensor::cat(vec![old, noise.mul_scalar(scale)], 1).detach();
        let mut down = self.down;
        down[0].conv_in.weight = burn::module::Param::from_tensor(weight);
        TransportMap {
            down,
            noise_channels: inputs - 3,
            ..self
        }
    }

    /// T(x) for `x: [B, 3, 16, 16, 16]`, with `z: [B, noise_channels, 16, 16, 16]` when the
    /// map is stochastic (ignored when it is not). A stochastic map given no z sees z = 0,
    /// the noise's mean: a deterministic summary of the map.
    pub fn forward(&self, x: Tensor<5>, z: Option<Tensor<5>>) -> Tensor<5> {
        let input = match (self.noise_channels, z) {
            (0, _) => x.clone(),
            (_, Some(z)) => Tensor::cat(vec![x.clone(), z], 1),
            (channels, None) => {
                let [batch, _, d, h, w] = x.dims();
                let zeros = Tensor::zeros([batch, channels, d, h, w], &x.device());
                Tensor::cat(vec![x.clone(), zeros], 1)
            }
        };
        let mut skips = Vec::with_capacity(self.down.len());
        let mut h = input;
        for level in &self.down {
            h = conv3d_leaky(&level.conv_in, h, SLOPE);
            h = conv3d_leaky(&level.conv, h, SLOPE);
            skips.push(h.clone());
        }
        skips.pop(); // the deepest level's output is `h` itself
        for level in &self.up {
            let skip = skips.pop().expect("one skip per up level");
            h = conv3d_leaky(&level.conv_up, upsample_nearest2(h), SLOPE);
            h = conv3d_leaky(&level.conv_merge, Tensor::cat(vec![h, skip], 1), SLOPE);
        }
        x + conv3d(&self.out, h)
    }
}
