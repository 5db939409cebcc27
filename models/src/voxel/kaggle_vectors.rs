//! Voxel digits from the Kaggle 3D MNIST file's 4096-value vectors.
//!
//! Each row of `X_train`/`X_test` in `full_dataset_vectors.h5` is a 16³ grid of point
//! densities flattened C-order from `[x][y][z]` (x right, y up, z depth), as the set's
//! `VoxelGrid` built it. We map x → W, y → H flipped (rows go down), z → D, scale each
//! sample so its densest voxel is 1, and color it.

use super::{GRID, VOXELS, VoxelError, VoxelGrid};

/// Turns one Kaggle vector into a colored grid.
pub fn from_kaggle_vector(vector: &[f32], rgb: [f32; 3]) -> Result<VoxelGrid, VoxelError> {
    if vector.len() != VOXELS {
        return Err(VoxelError::WrongLength {
            what: "Kaggle 3D MNIST vector",
            expected: VOXELS,
            found: vector.len(),
        });
    }
    if let Some(index) = vector.iter().position(|v| !v.is_finite() || *v < 0.0) {
        return Err(VoxelError::BadValue {
            index,
            value: vector[index],
            why: "Kaggle densities must be finite and >= 0",
        });
    }
    let max = vector.iter().cloned().fold(0.0f32, f32::max);
    let mut grid = VoxelGrid::zeros();
    if max == 0.0 {
        return Ok(grid);
    }
    for x in 0..GRID {
        for y in 0..GRID {
            for z in 0..GRID {
                let value = vector[(x * GRID + y) * GRID + z] / max;
                let (d, h, w) = (z, GRID - 1 - y, x);
                for (c, &weight) in rgb.iter().enumerate() {
                    grid.data[VoxelGrid::index(c, d, h, w)] = value * weight;
                }
            }
        }
    }
    Ok(grid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_map_as_documented() {
        let at = |x: usize, y: usize, z: usize| (x * GRID + y) * GRID + z;
        let mut v = vec![0.0; VOXELS];
        v[at(3, 0, 5)] = 2.0; // bottom row; the densest voxel, normalized to 1
        v[at(1, 15, 0)] = 1.0; // top row
        let g = from_kaggle_vector(&v, [0.0, 1.0, 0.0]).unwrap();
        assert_eq!(g.get(1, 5, 15, 3), 1.0);
        assert_eq!(g.get(1, 0, 0, 1), 0.5);
        assert_eq!(g.get(0, 5, 15, 3), 0.0);
        assert!((g.mass() - 1.5).abs() < 1e-9);
    }

    #[test]
    fn rejects_bad_vectors() {
        assert!(matches!(
            from_kaggle_vector(&[0.0; 10], [1.0; 3]),
            Err(VoxelError::WrongLength { found: 10, .. })
        ));
        let mut v = vec![0.0; VOXELS];
        v[7] = f32::NAN;
        assert!(matches!(
            from_kaggle_vector(&v, [1.0; 3]),
            Err(VoxelError::BadValue { index: 7, .. })
        ));
        v[7] = -1.0;
        assert!(from_kaggle_vector(&v, [1.0; 3]).is_err());
        assert_eq!(
            from_kaggle_vector(&vec![0.0; VOXELS], [1.0; 3])
                .unwrap()
                .mass(),
            0.0
        );
    }
}
