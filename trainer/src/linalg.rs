//! Dense symmetric linear algebra in f64 on the host (row-major `dim × dim` slices): the
//! eigen-decomposition, products and square roots that FID-3D and the Gaussian benchmark's
//! closed-form OT map need.

/// Eigenvalues and eigenvectors (columns of the returned row-major matrix) of a symmetric
/// `dim × dim` matrix, by cyclic Jacobi rotations.
pub fn symmetric_eigen(matrix: &[f64], dim: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = matrix.to_vec();
    let mut v = vec![0.0f64; dim * dim];
    (0..dim).for_each(|i| v[i * dim + i] = 1.0);
    let scale: f64 = a
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..dim)
            .flat_map(|i| (0..dim).filter(move |&j| j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * dim + j] * a[i * dim + j])
            .sum::<f64>()
            .sqrt();
        if off <= 1e-14 * scale {
            break;
        }
        for p in 0..dim {
            for q in p + 1..dim {
                let apq = a[p * dim + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let theta = (a[q * dim + q] - a[p * dim + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..dim {
                    let (akp, akq) = (a[k * dim + p], a[k * dim + q]);
                    a[k * dim + p] = c * akp - s * akq;
                    a[k * dim + q] = s * akp + c * akq;
                }
                for k in 0..dim {
                    let (apk, aqk) = (a[p * dim + k], a[q * dim + k]);
                    a[p * dim + k] = c * apk - s * aqk;
                    a[q * dim + k] = s * apk + c * aqk;
                }
                for k in 0..dim {
                    let (vkp, vkq) = (v[k * dim + p], v[k * dim + q]);
                    v[k * dim + p] = c * vkp - s * vkq;
                    v[k * dim + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..dim).map(|i| a[i * dim + i]).collect(), v)
}

/// `a · b` for square row-major matrices.
pub fn matmul(a: &[f64], b: &[f64], dim: usize) -> Vec<f64> {
    let mut out = vec![0.0f64; dim * dim];
    for i in 0..dim {
        for k in 0..dim {
            let aik = a[i * dim + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..dim {
                out[i * dim + j] += aik * b[k * dim + j];
            }
        }
    }
    out
}

/// `g(M)` for a symmetric matrix `M = V diag(λ) Vᵀ`: `V diag(g(λ)) Vᵀ`.
pub fn spectral_map(matrix: &[f64], dim: usize, g: impl Fn(f64) -> f64) -> Vec<f64> {
    let (values, vectors) = symmetric_eigen(matrix, dim);
    let mut out = vec![0.0f64; dim * dim];
    for (k, &lambda) in values.iter().enumerate() {
        let gk = g(lambda);
        for i in 0..dim {
            let vik = gk * vectors[i * dim + k];
            for j in 0..dim {
                out[i * dim + j] += vik * vectors[j * dim + k];
            }
        }
    }
    out
}

/// Square root of a symmetric positive semi-definite matrix (negative eigenvalues from
/// rounding are taken as 0).
pub fn sqrt_psd(matrix: &[f64], dim: usize) -> Vec<f64> {
    spectral_map(matrix, dim, |lambda| lambda.max(0.0).sqrt())
}

/// `(M + Mᵀ)/2`: removes the asymmetry rounding leaves in products of symmetric matrices.
pub fn symmetrize(matrix: &[f64], dim: usize) -> Vec<f64> {
    (0..dim * dim)
        .map(|k| {
            let (i, j) = (k / dim, k % dim);
            0.5 * (matrix[i * dim + j] + matrix[j * dim + i])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eigen_decomposition_rebuilds_the_matrix() {
        let m = [4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 1.0];
        let (values, vectors) = symmetric_eigen(&m, 3);
        for i in 0..3 {
            for j in 0..3 {
                let rebuilt: f64 = (0..3)
                    .map(|k| values[k] * vectors[i * 3 + k] * vectors[j * 3 + k])
                    .sum();
                assert!((rebuilt - m[i * 3 + j]).abs() < 1e-10);
            }
        }
        let root = sqrt_psd(&m, 3);
        let square = matmul(&root, &root, 3);
        assert!(square.iter().zip(&m).all(|(a, b)| (a - b).abs() < 1e-10));
        let inverse = spectral_map(&m, 3, |lambda| 1.0 / lambda);
        let identity = matmul(&inverse, &m, 3);
        for i in 0..3 {
            for j in 0..3 {
                let expected = if i == j { 1.0 } else { 0.0 };
                assert!((identity[i * 3 + j] - expected).abs() < 1e-10);
            }
        }
        let lopsided = [1.0, 2.0, 4.0, 3.0];
        assert_eq!(symmetrize(&lopsided, 2), vec![1.0, 3.0, 3.0, 3.0]);
    }
}
