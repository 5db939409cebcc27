//! Colored 3D voxel digits: one 28×28 MNIST image → a `[3, 16, 16, 16]` grid (layout in the
//! crate docs), by one of three flavors, deterministically for a given seed.

mod color;
mod kaggle_style;
mod kaggle_vectors;
mod resize;
mod rotate;

pub use color::{Coloring, DigitColor, hue_to_rgb};
pub use kaggle_style::KaggleStyleConfig;
pub use kaggle_vectors::from_kaggle_vector;
pub use resize::resize_area;
pub use rotate::rotate_bilinear;

use crate::mnist::{MNIST_PIXELS, MNIST_SIDE};
use crate::rng::SeedRng;

/// Side of the voxel grid.
pub const GRID: usize = 16;
/// Color channels (r, g, b).
pub const CHANNELS: usize = 3;
/// Voxels per channel.
pub const VOXELS: usize = GRID * GRID * GRID;
/// Values in one grid, `CHANNELS * VOXELS`.
pub const GRID_LEN: usize = CHANNELS * VOXELS;

/// Why a grid or a voxelization request is invalid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VoxelError {
    #[error("depth band {start}..{end} is not a non-empty range inside 0..{GRID}")]
    BadDepthBand { start: usize, end: usize },
    #[error("{name} = {value} is invalid: {why}")]
    BadParameter {
        name: &'static str,
        value: f64,
        why: &'static str,
    },
    #[error("{what} has {found} values, expected {expected}")]
    WrongLength {
        what: &'static str,
        expected: usize,
        found: usize,
    },
    #[error("value {value} at index {index} is invalid: {why}")]
    BadValue {
        index: usize,
        value: f32,
        why: &'static str,
    },
}

/// One colored 3D digit, `[3, 16, 16, 16]` (C, D, H, W), values in `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct VoxelGrid {
    data: Vec<f32>,
}

impl VoxelGrid {
    pub fn zeros() -> Self {
        Self {
            data: vec![0.0; GRID_LEN],
        }
    }

    /// Wraps `GRID_LEN` values in `[0, 1]` laid out as (C, D, H, W).
    pub fn from_vec(data: Vec<f32>) -> Result<Self, VoxelError> {
        if data.len() != GRID_LEN {
            return Err(VoxelError::WrongLength {
                what: "voxel grid",
                expected: GRID_LEN,
                found: data.len(),
            });
        }
        if let Some(index) = data.iter().position(|v| !(0.0..=1.0).contains(v)) {
            return Err(VoxelError::BadValue {
                index,
                value: data[index],
                why: "voxel values must be in [0, 1]",
            });
        }
        Ok(Self { data })
    }

    /// Flat index of (channel, depth, row, column).
    pub const fn index(c: usize, d: usize, h: usize, w: usize) -> usize {
        ((c * GRID + d) * GRID + h) * GRID + w
    }

    pub fn get(&self, c: usize, d: usize, h: usize, w: usize) -> f32 {
        self.data[Self::index(c, d, h, w)]
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Sum of all values (all channels), in f64.
    pub fn mass(&self) -> f64 {
        self.data.iter().map(|&v| v as f64).sum()
    }

    /// The color of voxel (d, h, w): its three channels.
    pub fn rgb(&self, d: usize, h: usize, w: usize) -> [f32; 3] {
        [0, 1, 2].map(|c| self.get(c, d, h, w))
    }

    /// Brightest channel of voxel (d, h, w): how "full" the voxel is whatever its color.
    pub fn intensity(&self, d: usize, h: usize, w: usize) -> f32 {
        self.rgb(d, h, w).into_iter().fold(0.0, f32::max)
    }

    /// Number of voxels whose intensity exceeds `threshold`.
    pub fn occupied(&self, threshold: f32) -> usize {
        (0..VOXELS)
            .filter(|&v| (0..CHANNELS).any(|c| self.data[c * VOXELS + v] > threshold))
            .count()
    }
}

/// How 2D digits become 3D.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Flavor {
    /// The digit extruded through the depth band.
    Plain,
    /// A random in-plane rotation, uniform in `[-max_degrees, max_degrees]`, then extruded.
    Rotated { max_degrees: f64 },
    /// Point cloud → random 3D rotation → jitter → voxels (see [`KaggleStyleConfig`]).
    KaggleStyle(KaggleStyleConfig),
}

impl Flavor {
    /// `rotated` with the default ±45°.
    pub fn rotated() -> Self {
        Flavor::Rotated { max_degrees: 45.0 }
    }

    /// `kaggle-style` with default parameters.
    pub fn kaggle_style() -> Self {
        Flavor::KaggleStyle(KaggleStyleConfig::default())
    }

    pub fn name(&self) -> &'static str {
        match self {
            Flavor::Plain => "plain",
            Flavor::Rotated { .. } => "rotated",
            Flavor::KaggleStyle(_) => "kaggle-style",
        }
    }
}

/// Everything that decides how an MNIST image becomes a colored voxel digit.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VoxelConfig {
    pub flavor: Flavor,
    pub coloring: Coloring,
    /// Depth slices `[start, end)` the 2D digit is extruded through (plain and rotated).
    pub depth_band: [usize; 2],
}

impl Default for VoxelConfig {
    fn default() -> Self {
        Self {
            flavor: Flavor::Plain,
            coloring: Coloring::Palette,
            depth_band: [6, 12],
        }
    }
}

impl VoxelConfig {
    pub fn validate(&self) -> Result<(), VoxelError> {
        let [start, end] = self.depth_band;
        if start >= end || end > GRID {
            return Err(VoxelError::BadDepthBand { start, end });
        }
        match &self.flavor {
            Flavor::Plain => Ok(()),
            Flavor::Rotated { max_degrees } => {
                if (0.0..=180.0).contains(max_degrees) {
                    Ok(())
                } else {
                    Err(VoxelError::BadParameter {
                        name: "max_degrees",
                        value: *max_degrees,
                        why: "must be in [0, 180]",
                    })
                }
            }
            Flavor::KaggleStyle(k) => k.validate(),
        }
    }
}

fn to_unit(pixels: &[u8; MNIST_PIXELS]) -> Vec<f32> {
    pixels.iter().map(|&p| p as f32 / 255.0).collect()
}

/// Puts a 16×16 image into slices `band` of every channel, scaled by `rgb`.
fn extrude(image: &[f32], band: [usize; 2], rgb: [f32; 3]) -> VoxelGrid {
    let mut grid = VoxelGrid::zeros();
    for (c, &weight) in rgb.iter().enumerate() {
        for d in band[0]..band[1] {
            let start = VoxelGrid::index(c, d, 0, 0);
            for (out, &v) in grid.data[start..start + GRID * GRID].iter_mut().zip(image) {
                *out = (v * weight).clamp(0.0, 1.0);
            }
        }
    }
    grid
}

/// Turns one MNIST image into a colored voxel digit. All randomness (color, rotation,
/// points, jitter) comes from `seed`: the same arguments give bit-identical grids on every
/// target. Use [`crate::rng::sample_seed`] to derive per-sample seeds of a data set.
pub fn voxelize(
    pixels: &[u8; MNIST_PIXELS],
    config: &VoxelConfig,
    seed: u64,
) -> Result<VoxelGrid, VoxelError> {
    config.validate()?;
    let mut rng = SeedRng::new(seed);
    let rgb = config.coloring.draw(&mut rng);
    Ok(match &config.flavor {
        Flavor::Plain => extrude(
            &resize_area(&to_unit(pixels), MNIST_SIDE, GRID),
            config.depth_band,
            rgb,
        ),
        Flavor::Rotated { max_degrees } => {
            let degrees = rng.uniform_range(-max_degrees, *max_degrees);
            let rotated = rotate_bilinear(&to_unit(pixels), MNIST_SIDE, degrees);
            extrude(
                &resize_area(&rotated, MNIST_SIDE, GRID),
                config.depth_band,
                rgb,
            )
        }
        Flavor::KaggleStyle(k) => kaggle_style::voxelize(pixels, k, rgb, &mut rng),
    })
}

/// Like [`voxelize`] for a slice, checking its length (for callers holding raw bytes,
/// such as the browser).
pub fn voxelize_slice(
    pixels: &[u8],
    config: &VoxelConfig,
    seed: u64,
) -> Result<VoxelGrid, VoxelError> {
    let pixels: &[u8; MNIST_PIXELS] = pixels.try_into().map_err(|_| VoxelError::WrongLength {
        what: "MNIST image",
        expected: MNIST_PIXELS,
        found: pixels.len(),
    })?;
    voxelize(pixels, config, seed)
}

#[cfg(test)]
mod tests;
