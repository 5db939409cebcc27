//! A pair of Gaussians N(μx, Σx), N(μy, Σy) in R^d and their quadratic-cost OT map,
//! `T*(x) = μy + A (x − μx)` with `A = Σx^-½ (Σx^½ Σy Σx^½)^½ Σx^-½` (symmetric, positive).

use crate::linalg::{matmul, spectral_map, sqrt_psd, symmetrize};
use ot3d_models::rng::SeedRng;

/// Two Gaussians and the OT map between them. Matrices are row-major `d × d`.
#[derive(Debug, Clone)]
pub struct GaussianPair {
    pub dim: usize,
    pub mean_x: Vec<f64>,
    pub cov_x: Vec<f64>,
    pub mean_y: Vec<f64>,
    pub cov_y: Vec<f64>,
    /// A: the linear part of the OT map.
    pub map: Vec<f64>,
    root_x: Vec<f64>,
    root_y: Vec<f64>,
}

/// Eigenvalues of the random covariances are log-uniform in [1/RANGE, RANGE].
const EIGEN_RANGE: f64 = 4.0;

impl GaussianPair {
    /// The pair with these moments (covariances symmetric positive definite).
    pub fn from_moments(
        mean_x: Vec<f64>,
        cov_x: Vec<f64>,
        mean_y: Vec<f64>,
        cov_y: Vec<f64>,
    ) -> Self {
        let dim = mean_x.len();
        assert!(
            mean_y.len() == dim && cov_x.len() == dim * dim && cov_y.len() == dim * dim,
            "moments of different dimensions"
        );
        let root_x = sqrt_psd(&cov_x, dim);
        let inv_root_x = spectral_map(&cov_x, dim, |lambda| 1.0 / lambda.sqrt());
        let middle = symmetrize(&matmul(&matmul(&root_x, &cov_y, dim), &root_x, dim), dim);
        let map = symmetrize(
            &matmul(
                &matmul(&inv_root_x, &sqrt_psd(&middle, dim), dim),
                &inv_root_x,
                dim,
            ),
            dim,
        );
        let root_y = sqrt_psd(&cov_y, dim);
        Self {
            dim,
            mean_x,
            cov_x,
            mean_y,
            cov_y,
            map,
            root_x,
            root_y,
        }
    }

    /// A random pair in dimension `dim`: covariances `Q diag(λ) Qᵀ` with random rotations Q
    /// and eigenvalues log-uniform in [1/4, 4], means with N(0, 1/4) coordinates.
    pub fn random(dim: usize, seed: u64) -> Self {
        let mut rng = SeedRng::new(seed);
        let mean_x = (0..dim).map(|_| 0.5 * rng.normal()).collect();
        let cov_x = random_covariance(dim, &mut rng);
        let mean_y = (0..dim).map(|_| 0.5 * rng.normal()).collect();
        let cov_y = random_covariance(dim, &mut rng);
        Self::from_moments(mean_x, cov_x, mean_y, cov_y)
    }

    /// `n` rows of N(μx, Σx).
    pub fn sample_source(&self, n: usize, rng: &mut SeedRng) -> Vec<f32> {
        sample(&self.mean_x, &self.root_x, n, rng)
    }

    /// `n` rows of N(μy, Σy).
    pub fn sample_target(&self, n: usize, rng: &mut SeedRng) -> Vec<f32> {
        sample(&self.mean_y, &self.root_y, n, rng)
    }

    /// T*(x) for each row of `x`.
    pub fn optimal_map(&self, x: &[f32]) -> Vec<f32> {
        let d = self.dim;
        x.chunks_exact(d)
            .flat_map(|row| {
                (0..d).map(move |i| {
                    let moved: f64 = (0..d)
                        .map(|j| self.map[i * d + j] * (row[j] as f64 - self.mean_x[j]))
                        .sum();
                    (self.mean_y[i] + moved) as f32
                })
            })
            .collect()
    }

    /// `tr Σy`: the target's total variance, L2-UV's denominator.
    pub fn target_variance(&self) -> f64 {
        (0..self.dim).map(|i| self.cov_y[i * self.dim + i]).sum()
    }
}

/// L2-UV in %: `100 · mean ‖T̂(x) − T*(x)‖² / tr Σy` over the rows.
pub fn unexplained_variance(
    mapped: &[f32],
    optimal: &[f32],
    dim: usize,
    target_variance: f64,
) -> f64 {
    assert_eq!(mapped.len(), optimal.len());
    let rows = (mapped.len() / dim).max(1) as f64;
    let squared: f64 = mapped
        .iter()
        .zip(optimal)
        .map(|(a, b)| (*a as f64 - *b as f64).powi(2))
        .sum();
    100.0 * squared / rows / target_variance
}

fn sample(mean: &[f64], root: &[f64], n: usize, rng: &mut SeedRng) -> Vec<f32> {
    let d = mean.len();
    let mut z = vec![0.0f64; d];
    let mut out = Vec::with_capacity(n * d);
    for _ in 0..n {
        z.iter_mut().for_each(|v| *v = rng.normal());
        out.extend(
            (0..d).map(|i| (mean[i] + (0..d).map(|j| root[i * d + j] * z[j]).sum::<f64>()) as f32),
        );
    }
    out
}

/// `Q diag(λ) Qᵀ` with Q a random rotation (Gram–Schmidt on a Gaussian matrix) and
/// λ log-uniform in [1/EIGEN_RANGE, EIGEN_RANGE].
fn random_covariance(dim: usize, rng: &mut SeedRng) -> Vec<f64> {
    let mut basis: Vec<Vec<f64>> = Vec::with_capacity(dim);
    while basis.len() < dim {
        let mut v: Vec<f64> = (0..dim).map(|_| rng.normal()).collect();
        for b in &basis {
            let dot: f64 = v.iter().zip(b).map(|(x, y)| x * y).sum();
            v.iter_mut().zip(b).for_each(|(x, y)| *x -= dot * y);
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if norm > 1e-6 {
            basis.push(v.into_iter().map(|x| x / norm).collect());
        }
    }
    let log_range = EIGEN_RANGE.ln();
    let eigen: Vec<f64> = (0..dim)
        .map(|_| (rng.uniform_range(-log_range, log_range)).exp())
        .collect();
    let mut cov = vec![0.0f64; dim * dim];
    for (q, lambda) in basis.iter().zip(&eigen) {
        for i in 0..dim {
            for j in 0..dim {
                cov[i * dim + j] += lambda * q[i] * q[j];
            }
        }
    }
    cov
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_dimensional_map_scales_by_the_ratio_of_deviations() {
        // N(1, 4) → N(-2, 9): T*(x) = -2 + (3/2)(x − 1).
        let pair = GaussianPair::from_moments(vec![1.0], vec![4.0], vec![-2.0], vec![9.0]);
        assert!((pair.map[0] - 1.5).abs() < 1e-12);
        assert_eq!(pair.optimal_map(&[3.0]), vec![1.0]);
        assert_eq!(pair.target_variance(), 9.0);
    }

    #[test]
    fn the_map_pushes_sigma_x_onto_sigma_y_and_is_symmetric_positive() {
        for dim in [2, 5, 16] {
            let pair = GaussianPair::random(dim, dim as u64);
            let (a, d) = (&pair.map, dim);
            let pushed = matmul(&matmul(a, &pair.cov_x, d), a, d);
            for k in 0..d * d {
                assert!(
                    (pushed[k] - pair.cov_y[k]).abs() < 1e-8,
                    "A Σx A ≠ Σy at {k} (d = {d})"
                );
                assert!(
                    (a[k] - a[(k % d) * d + k / d]).abs() < 1e-10,
                    "A not symmetric"
                );
            }
            let (values, _) = crate::linalg::symmetric_eigen(a, d);
            assert!(
                values.iter().all(|&v| v > 0.0),
                "A not positive: {values:?}"
            );
        }
    }

    #[test]
    fn samples_have_the_requested_moments_and_the_map_carries_x_to_y() {
        let pair = GaussianPair::random(3, 7);
        let mut rng = SeedRng::new(1);
        let n = 40_000;
        let x = pair.sample_source(n, &mut rng);
        let mapped = pair.optimal_map(&x);
        let (mean_x, cov_x) = crate::eval::metrics::mean_and_covariance(&x, 3);
        let (mean_m, cov_m) = crate::eval::metrics::mean_and_covariance(&mapped, 3);
        for i in 0..3 {
            assert!((mean_x[i] - pair.mean_x[i]).abs() < 0.03);
            assert!((mean_m[i] - pair.mean_y[i]).abs() < 0.03);
        }
        for k in 0..9 {
            assert!((cov_x[k] - pair.cov_x[k]).abs() < 0.1, "{k}");
            assert!((cov_m[k] - pair.cov_y[k]).abs() < 0.1, "{k}");
        }
        let y = pair.sample_target(n, &mut rng);
        let (_, cov_y) = crate::eval::metrics::mean_and_covariance(&y, 3);
        assert!((0..9).all(|k| (cov_y[k] - pair.cov_y[k]).abs() < 0.1));
    }

    #[test]
    fn unexplained_variance_is_zero_for_the_optimum_and_known_for_an_offset() {
        let pair = GaussianPair::from_moments(
            vec![0.0; 2],
            vec![1.0, 0.0, 0.0, 1.0],
            vec![0.0; 2],
            vec![2.0, 0.0, 0.0, 2.0],
        );
        let x = [1.0f32, 2.0, -1.0, 0.5];
        let optimal = pair.optimal_map(&x);
        assert_eq!(
            unexplained_variance(&optimal, &optimal, 2, pair.target_variance()),
            0.0
        );
        // Off by 1 in one coordinate on every row: 100 · 1 / tr Σy = 100 / 4.
        let off: Vec<f32> = optimal
            .iter()
            .enumerate()
            .map(|(k, v)| if k % 2 == 0 { v + 1.0 } else { *v })
            .collect();
        let uv = unexplained_variance(&off, &optimal, 2, pair.target_variance());
        // f32 rows: exact to about 1e-7 relative.
        assert!((uv - 25.0).abs() < 1e-4, "{uv}");
    }
}
