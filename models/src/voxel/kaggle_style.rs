//! "Kaggle-style" 3D digits: the recipe of the Kaggle 3D MNIST set (2D digit → 3D point
//! cloud of the stroke with thickness → random 3D rotation → jitter → voxel grid), redone
//! here because that file cannot be downloaded in this project's environment.

use super::{GRID, VoxelError, VoxelGrid};
use crate::mnist::{MNIST_PIXELS, MNIST_SIDE};
use crate::rng::SeedRng;

/// Parameters of the point-cloud pipeline; lengths are in voxels of the 16³ grid.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KaggleStyleConfig {
    /// Points drawn per MNIST pixel of the stroke (each weighted by the pixel's intensity).
    pub points_per_pixel: u32,
    /// Pixels dimmer than this (in `[0, 1]`) make no points.
    pub min_intensity: f32,
    /// Depth of the stroke: points spread uniformly over this many voxels in depth.
    pub thickness: f64,
    /// Largest rotation, in degrees, about the x (left-right), y (up-down) and z (depth)
    /// axes; each angle is uniform in `[-max, max]`. Points are rotated about z first,
    /// then y, then x (the matrix `Rx · Ry · Rz`).
    pub max_angles_degrees: [f64; 3],
    /// Standard deviation of the Gaussian jitter added to every point.
    pub jitter: f64,
}

impl Default for KaggleStyleConfig {
    fn default() -> Self {
        Self {
            points_per_pixel: 8,
            min_intensity: 0.1,
            thickness: 4.0,
            max_angles_degrees: [30.0, 30.0, 45.0],
            jitter: 0.3,
        }
    }
}

impl KaggleStyleConfig {
    pub fn validate(&self) -> Result<(), VoxelError> {
        let bad = |name: &'static str, value: f64, why: &'static str| {
            Err(VoxelError::BadParameter { name, value, why })
        };
        if !(1..=64).contains(&self.points_per_pixel) {
            return bad(
                "points_per_pixel",
                self.points_per_pixel as f64,
                "must be 1..=64",
            );
        }
        if !(0.0..1.0).contains(&self.min_intensity) {
            return bad(
                "min_intensity",
                self.min_intensity as f64,
                "must be in [0, 1)",
            );
        }
        if !(self.thickness > 0.0 && self.thickness <= GRID as f64) {
            return bad("thickness", self.thickness, "must be in (0, 16] voxels");
        }
        for angle in self.max_angles_degrees {
            if !(0.0..=180.0).contains(&angle) {
                return bad("max_angles_degrees", angle, "each must be in [0, 180]");
            }
        }
        if !(0.0..=4.0).contains(&self.jitter) {
            return bad("jitter", self.jitter, "must be in [0, 4] voxels");
        }
        Ok(())
    }
}

type Mat3 = [[f64; 3]; 3];

fn mat_mul(a: &Mat3, b: &Mat3) -> Mat3 {
    let mut out = [[0.0; 3]; 3];
    for (i, row) in out.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = a[i][0] * b[0][j] + a[i][1] * b[1][j] + a[i][2] * b[2][j];
        }
    }
    out
}

/// Rotation about axis `axis` (0 = x, 1 = y, 2 = z) by `radians`.
fn axis_rotation(axis: usize, radians: f64) -> Mat3 {
    let (s, c) = (libm::sin(radians), libm::cos(radians));
    let (i, j) = ((axis + 1) % 3, (axis + 2) % 3);
    let mut m = [[0.0; 3]; 3];
    m[axis][axis] = 1.0;
    m[i][i] = c;
    m[j][j] = c;
    m[i][j] = -s;
    m[j][i] = s;
    m
}

/// Builds one Kaggle-style voxel digit. Point coordinates: x right, y up, z depth, in
/// voxels, origin at the grid center; voxel values are point density relative to a stroke
/// of full intensity, capped at 1, times `rgb`.
pub(super) fn voxelize(
    pixels: &[u8; MNIST_PIXELS],
    config: &KaggleStyleConfig,
    rgb: [f32; 3],
    rng: &mut SeedRng,
) -> VoxelGrid {
    let angles = config
        .max_angles_degrees
        .map(|max| rng.uniform_range(-max, max).to_radians());
    let rotation = mat_mul(
        &axis_rotation(0, angles[0]),
        &mat_mul(&axis_rotation(1, angles[1]), &axis_rotation(2, angles[2])),
    );
    let scale = GRID as f64 / MNIST_SIDE as f64;
    let half_image = MNIST_SIDE as f64 / 2.0;
    let half_grid = GRID as f64 / 2.0;
    // Points landing in a voxel fully inside a stroke of intensity 1.
    let full = config.points_per_pixel as f64 / (scale * scale) / config.thickness;

    let mut density = vec![0.0f64; GRID * GRID * GRID];
    for (index, &pixel) in pixels.iter().enumerate() {
        let intensity = pixel as f32 / 255.0;
        if intensity < config.min_intensity {
            continue;
        }
        let (row, col) = ((index / MNIST_SIDE) as f64, (index % MNIST_SIDE) as f64);
        for _ in 0..config.points_per_pixel {
            let p = [
                (col + rng.uniform_f64() - half_image) * scale,
                (half_image - row - rng.uniform_f64()) * scale,
                (rng.uniform_f64() - 0.5) * config.thickness,
            ];
            let mut q = [0.0; 3];
            for (axis, v) in q.iter_mut().enumerate() {
                let r = rotation[axis];
                *v = r[0] * p[0] + r[1] * p[1] + r[2] * p[2] + config.jitter * rng.normal();
            }
            let (w, h, d) = (
                (q[0] + half_grid).floor(),
                (half_grid - q[1]).floor(),
                (q[2] + half_grid).floor(),
            );
            let inside = |v: f64| (0.0..GRID as f64).contains(&v);
            if inside(w) && inside(h) && inside(d) {
                density[(d as usize * GRID + h as usize) * GRID + w as usize] += intensity as f64;
            }
        }
    }
    let mut grid = VoxelGrid::zeros();
    for (voxel, &amount) in density.iter().enumerate() {
        let value = (amount / full).min(1.0) as f32;
        for (c, &weight) in rgb.iter().enumerate() {
            grid.data[c * GRID * GRID * GRID + voxel] = value * weight;
        }
    }
    grid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotations_are_orthonormal() {
        let m = mat_mul(
            &axis_rotation(0, 0.3),
            &mat_mul(&axis_rotation(1, -1.1), &axis_rotation(2, 2.0)),
        );
        for i in 0..3 {
            for j in 0..3 {
                let dot: f64 = (0..3).map(|k| m[i][k] * m[j][k]).sum();
                assert!((dot - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn validation_names_the_parameter() {
        let config = KaggleStyleConfig {
            thickness: 0.0,
            ..Default::default()
        };
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("thickness"), "{err}");
        assert!(KaggleStyleConfig::default().validate().is_ok());
    }
}
