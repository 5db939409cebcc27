//! The numbers a map is judged by, as plain functions on flat `f32` digits (`[3, 16³]` each):
//! dominant color, Fréchet distance of feature sets, exact assignment (Hungarian), mean
//! pairwise distance.

use crate::linalg::{matmul, sqrt_psd, symmetric_eigen, symmetrize};
use ot3d_models::voxel::{DigitColor, GRID_LEN};

/// A voxel counts as occupied when its brightest channel reaches this.
pub const OCCUPIED: f32 = 0.3;

/// The color among the assignment's four closest (by cosine) to the summed color of the
/// occupied voxels; None for an empty digit.
pub fn dominant_color(grid: &[f32]) -> Option<DigitColor> {
    assert_eq!(grid.len(), GRID_LEN, "one digit is 3·16³ values");
    let cells = GRID_LEN / 3;
    let mut sum = [0.0f64; 3];
    let mut occupied = 0usize;
    for i in 0..cells {
        let rgb = [grid[i], grid[cells + i], grid[2 * cells + i]];
        if rgb.iter().copied().fold(f32::MIN, f32::max) >= OCCUPIED {
            occupied += 1;
            for c in 0..3 {
                sum[c] += rgb[c].max(0.0) as f64;
            }
        }
    }
    if occupied == 0 {
        return None;
    }
    let norm = sum.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm == 0.0 {
        return None;
    }
    let cosine = |color: DigitColor| {
        let rgb = color.rgb().map(|v| v as f64);
        let len = rgb.iter().map(|v| v * v).sum::<f64>().sqrt();
        (0..3).map(|c| rgb[c] * sum[c]).sum::<f64>() / (len * norm)
    };
    DigitColor::ALL
        .into_iter()
        .max_by(|a, b| cosine(*a).total_cmp(&cosine(*b)))
}

/// Mean and (unbiased) covariance of `n` feature vectors of length `dim`.
pub fn mean_and_covariance(features: &[f32], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let n = features.len() / dim;
    assert!(n >= 2, "a covariance needs two samples");
    let mut mean = vec![0.0f64; dim];
    for row in features.chunks(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    let mut cov = vec![0.0f64; dim * dim];
    for row in features.chunks(dim) {
        let centered: Vec<f64> = row.iter().zip(&mean).map(|(&v, m)| v as f64 - m).collect();
        for i in 0..dim {
            for j in i..dim {
                cov[i * dim + j] += centered[i] * centered[j];
            }
        }
    }
    for i in 0..dim {
        for j in i..dim {
            let v = cov[i * dim + j] / (n - 1) as f64;
            cov[i * dim + j] = v;
            cov[j * dim + i] = v;
        }
    }
    (mean, cov)
}

/// Fréchet distance between Gaussians fitted to two feature sets (rows of length `dim`):
/// `‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½`.
pub fn frechet_distance(a: &[f32], b: &[f32], dim: usize) -> f64 {
    let (mean_a, cov_a) = mean_and_covariance(a, dim);
    let (mean_b, cov_b) = mean_and_covariance(b, dim);
    let mean_term: f64 = mean_a
        .iter()
        .zip(&mean_b)
        .map(|(x, y)| (x - y).powi(2))
        .sum();
    let trace = |m: &[f64]| (0..dim).map(|i| m[i * dim + i]).sum::<f64>();
    let root_a = sqrt_psd(&cov_a, dim);
    let middle = matmul(&matmul(&root_a, &cov_b, dim), &root_a, dim);
    // Symmetrize away rounding before the eigen-decomposition.
    let (values, _) = symmetric_eigen(&symmetrize(&middle, dim), dim);
    let cross: f64 = values.iter().map(|v| v.max(0.0).sqrt()).sum();
    (mean_term + trace(&cov_a) + trace(&cov_b) - 2.0 * cross).max(0.0)
}

/// Mean over all pairs i ≠ j of `‖a_i − a_j‖² / len` for rows of length `len`, in O(n·len):
/// `2n/(n−1) · (mean ‖a_i‖² − ‖mean a‖²) / len`.
pub fn mean_pairwise_sq_distance(rows: &[f32], len: usize) -> f64 {
    let n = rows.len() / len;
    assert!(n >= 2, "pairs need two rows");
    let mut mean = vec![0.0f64; len];
    let mut mean_norm = 0.0f64;
    for row in rows.chunks(len) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
            mean_norm += (v as f64) * (v as f64);
        }
    }
    let n_f = n as f64;
    let norm_of_mean: f64 = mean.iter().map(|m| (m / n_f).powi(2)).sum();
    2.0 * n_f / (n_f - 1.0) * (mean_norm / n_f - norm_of_mean) / len as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use ot3d_models::rng::SeedRng;

    fn digit(color: DigitColor, cells: &[usize], intensity: f32) -> Vec<f32> {
        let n = GRID_LEN / 3;
        let mut grid = vec![0.0f32; GRID_LEN];
        for &cell in cells {
            for (c, v) in color.rgb().into_iter().enumerate() {
                grid[c * n + cell] = v * intensity;
            }
        }
        grid
    }

    #[test]
    fn dominant_color_finds_each_color_and_ignores_faint_voxels() {
        for color in DigitColor::ALL {
            assert_eq!(
                dominant_color(&digit(color, &[5, 6, 700], 0.9)),
                Some(color)
            );
        }
        assert_eq!(dominant_color(&vec![0.0; GRID_LEN]), None);
        // Faint red noise everywhere does not outvote a bright blue stroke.
        let mut grid = digit(DigitColor::Blue, &[10, 11, 12], 1.0);
        grid[..GRID_LEN / 3].iter_mut().for_each(|v| *v = 0.2);
        assert_eq!(dominant_color(&grid), Some(DigitColor::Blue));
        // A color swap is seen as one.
        assert_eq!(
            dominant_color(&digit(DigitColor::Green, &[1, 2], 0.6)),
            Some(DigitColor::Green)
        );
    }

    fn gaussian_rows(n: usize, dim: usize, shift: f32, seed: u64) -> Vec<f32> {
        let mut rng = SeedRng::new(seed);
        (0..n * dim)
            .map(|k| rng.normal() as f32 * (1.0 + (k % dim) as f32 * 0.1) + shift)
            .collect()
    }

    #[test]
    fn frechet_distance_is_zero_for_one_set_and_known_for_shifted_gaussians() {
        let a = gaussian_rows(400, 6, 0.0, 1);
        assert!(frechet_distance(&a, &a, 6).abs() < 1e-8);
        // Shifting every coordinate by 2 adds exactly ‖(2,…,2)‖² = 24.
        let shifted: Vec<f32> = a.iter().map(|v| v + 2.0).collect();
        let d = frechet_distance(&a, &shifted, 6);
        assert!((d - 24.0).abs() < 1e-6, "{d}");
        // Two 1-D Gaussians N(0,1) and N(0,4): (1 − 2)² = 1, up to sampling error.
        let mut rng = SeedRng::new(2);
        let x: Vec<f32> = (0..20_000).map(|_| rng.normal() as f32).collect();
        let y: Vec<f32> = (0..20_000).map(|_| 2.0 * rng.normal() as f32).collect();
        let d = frechet_distance(&x, &y, 1);
        assert!((d - 1.0).abs() < 0.08, "{d}");
    }

    #[test]
    fn pairwise_distance_matches_the_direct_sum_and_is_zero_for_collapse() {
        let rows = gaussian_rows(7, 5, 0.3, 4);
        let mut direct = 0.0f64;
        let mut pairs = 0;
        for i in 0..7 {
            for j in 0..7 {
                if i != j {
                    direct += (0..5)
                        .map(|k| (rows[i * 5 + k] as f64 - rows[j * 5 + k] as f64).powi(2))
                        .sum::<f64>()
                        / 5.0;
                    pairs += 1;
                }
            }
        }
        let fast = mean_pairwise_sq_distance(&rows, 5);
        assert!((fast - direct / pairs as f64).abs() < 1e-9);
        let collapsed: Vec<f32> = rows[..5].repeat(7);
        assert!(mean_pairwise_sq_distance(&collapsed, 5).abs() < 1e-12);
    }
}
