//! Which voxels the viewer draws, where, and in what color: the pure part of rendering,
//! shared by the WebGL view and the `.vox` export.

use ot3d_models::voxel::{GRID, VoxelError, VoxelGrid};

/// One drawn voxel: grid position (d, h, w) and display color.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cube {
    pub d: usize,
    pub h: usize,
    pub w: usize,
    pub rgb: [u8; 3],
}

impl Cube {
    /// World position of the cube's center: x right (w), y up (−h), z toward the viewer
    /// (slice 0 is nearest), the grid centered on the origin.
    pub fn position(&self) -> [f32; 3] {
        let half = (GRID as f32 - 1.0) / 2.0;
        [
            self.w as f32 - half,
            half - self.h as f32,
            half - self.d as f32,
        ]
    }
}

/// The voxels whose brightest channel reaches `threshold`. The color keeps the voxel's
/// hue at full strength and shows its value as brightness, so faint voxels stay readable.
pub fn occupied_cubes(grid: &VoxelGrid, threshold: f32) -> Vec<Cube> {
    let mut cubes = Vec::new();
    for d in 0..GRID {
        for h in 0..GRID {
            for w in 0..GRID {
                let rgb = grid.rgb(d, h, w).map(|v| v.clamp(0.0, 1.0));
                let peak = rgb.iter().copied().fold(0.0f32, f32::max);
                if peak < threshold || peak <= 0.0 {
                    continue;
                }
                let brightness = 0.35 + 0.65 * peak;
                let rgb = rgb.map(|v| (v / peak * brightness * 255.0).round() as u8);
                cubes.push(Cube { d, h, w, rgb });
            }
        }
    }
    cubes
}

/// A grid for display: T's outputs are not clamped (an undertrained map can leave [0, 1]
/// slightly), so values are clamped here; a wrong length or a non-finite value is an error.
pub fn display_grid(values: &[f32]) -> Result<VoxelGrid, VoxelError> {
    VoxelGrid::from_vec(
        values
            .iter()
            .map(|&v| if v.is_finite() { v.clamp(0.0, 1.0) } else { v })
            .collect(),
    )
}

/// `(1 − t)·x + t·y`, the straight path quadratic-cost transport moves each voxel along,
/// clamped for display.
pub fn blend(x: &[f32], y: &[f32], t: f32) -> Result<VoxelGrid, VoxelError> {
    if x.len() != y.len() {
        return Err(VoxelError::WrongLength {
            what: "mapped grid",
            expected: x.len(),
            found: y.len(),
        });
    }
    let mixed: Vec<f32> = x.iter().zip(y).map(|(a, b)| a + t * (b - a)).collect();
    display_grid(&mixed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ot3d_models::voxel::GRID_LEN;

    #[test]
    fn cubes_follow_the_threshold_and_keep_the_hue() {
        let mut data = vec![0.0; GRID_LEN];
        data[VoxelGrid::index(0, 0, 0, 0)] = 1.0; // bright red at the front top-left
        data[VoxelGrid::index(2, 15, 15, 15)] = 0.2; // faint blue at the back bottom-right
        let grid = VoxelGrid::from_vec(data).unwrap();
        let cubes = occupied_cubes(&grid, 0.1);
        assert_eq!(cubes.len(), 2);
        assert_eq!(cubes[0].rgb, [255, 0, 0]);
        assert_eq!(cubes[0].position(), [-7.5, 7.5, 7.5]);
        assert_eq!(cubes[1].rgb, [0, 0, 122]);
        assert_eq!(cubes[1].position(), [7.5, -7.5, -7.5]);
        assert_eq!(occupied_cubes(&grid, 0.5).len(), 1);
    }

    #[test]
    fn blend_runs_from_input_to_output() {
        let x = vec![0.0; GRID_LEN];
        let y = vec![1.0; GRID_LEN];
        assert_eq!(blend(&x, &y, 0.0).unwrap().as_slice(), &x[..]);
        assert_eq!(blend(&x, &y, 1.0).unwrap().as_slice(), &y[..]);
        assert_eq!(blend(&x, &y, 0.25).unwrap().as_slice()[7], 0.25);
        assert!(blend(&x, &y[1..], 0.5).is_err());
        let overshoot = vec![1.5; GRID_LEN];
        assert_eq!(blend(&x, &overshoot, 1.0).unwrap().as_slice()[0], 1.0);
        let mut broken = vec![0.5; GRID_LEN];
        broken[9] = f32::NAN;
        assert!(display_grid(&broken).is_err());
    }
}
