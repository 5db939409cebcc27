//! Exact discrete *weak* optimal transport with the γ-weak quadratic cost of weak NOT
//! (Korotin et al. 2022): each source may spread over several targets, solved by
//! Frank–Wolfe over transport plans whose linear steps are exact assignments.
//!
//! For sources x_i (uniform mass) and targets y_j (each taking at most one source's mass),
//! a plan P (rows sum to 1, columns to at most 1) costs, per source,
//! `Σ_j P_ij ‖x_i − y_j‖² − γ Var_i`, where `Var_i = Σ_j P_ij ‖y_j − m_i‖²` is the spread
//! of source i's targets around their mean `m_i = Σ_j P_ij y_j`. With γ = 0 this is exact
//! OT (a one-to-one assignment); with γ > 0 spreading pays when a source lies between
//! targets. The objective is convex in P (the spread is concave), and its linear
//! minimizer over plans is an assignment, so Frank–Wolfe with exact line search converges,
//! and its duality gap bounds the distance to the optimum.

use crate::assignment::min_cost_rectangular_assignment;
use crate::rng::SeedRng;

/// A solved weak transport plan between `rows` sources and `cols` targets.
#[derive(Debug, Clone, PartialEq)]
pub struct WeakPlan {
    pub rows: usize,
    pub cols: usize,
    /// `rows × cols`, row-major: row i is source i's distribution over the targets.
    pub weights: Vec<f64>,
    /// Mean over sources of `Σ_j P_ij C_ij` (the transport cost of the plan).
    pub cost: f64,
    /// Mean over sources of `Var_i` (the spread γ rewards).
    pub spread: f64,
    /// Frank–Wolfe duality gap per source at the end: the plan's objective is at most this
    /// much above the optimum.
    pub gap: f64,
    pub iterations: usize,
    /// The exact OT assignment (the γ = 0 optimum) Frank–Wolfe started from:
    /// `assignment[row] = column`.
    pub assignment: Vec<usize>,
}

impl WeakPlan {
    /// `cost − γ · spread`, the mean weak cost per source.
    pub fn objective(&self, gamma: f64) -> f64 {
        self.cost - gamma * self.spread
    }

    /// Source i's distribution over the targets.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.weights[i * self.cols..(i + 1) * self.cols]
    }

    /// Targets that carry more than `min_weight` of source i's mass, with their weights.
    pub fn support(&self, i: usize, min_weight: f64) -> Vec<(usize, f64)> {
        self.row(i)
            .iter()
            .enumerate()
            .filter(|(_, w)| **w > min_weight)
            .map(|(j, &w)| (j, w))
            .collect()
    }
}

/// Draws an index from `support` (index, weight) with probability ∝ weight.
pub fn sample_support(support: &[(usize, f64)], rng: &mut SeedRng) -> usize {
    let total: f64 = support.iter().map(|(_, w)| w).sum();
    let mut u = rng.uniform_f64() * total;
    for &(j, w) in support {
        if u < w {
            return j;
        }
        u -= w;
    }
    support.last().expect("a non-empty support").0
}

/// `Σ_j p_j K_jj − p K pᵀ` for one row, given `pk = p K`.
fn row_spread(p: &[f64], pk: &[f64], gram: &[f64], cols: usize) -> f64 {
    (0..cols)
        .map(|j| p[j] * (gram[j * cols + j] - pk[j]))
        .sum::<f64>()
        .max(0.0)
}

/// The weak transport plan for `cost` (`rows × cols`, `C_ij = ‖x_i − y_j‖²` in any unit)
/// and the targets' Gram matrix `gram` (`cols × cols`, `K_jk = y_j · y_k` in the same unit),
/// `rows ≤ cols`, γ ≥ 0. Starts at the exact OT assignment (the γ = 0 optimum) and runs
/// Frank–Wolfe until the duality gap per source is at most `tolerance` or for
/// `max_iterations` steps.
pub fn weak_transport_plan(
    cost: &[f64],
    gram: &[f64],
    rows: usize,
    cols: usize,
    gamma: f64,
    max_iterations: usize,
    tolerance: f64,
) -> WeakPlan {
    assert_eq!(cost.len(), rows * cols, "a rows × cols cost matrix");
    assert_eq!(gram.len(), cols * cols, "a cols × cols Gram matrix");
    assert!(gamma >= 0.0 && gamma.is_finite(), "γ ≥ 0");
    let vertex = |assignment: &[usize]| {
        let mut p = vec![0.0; rows * cols];
        let mut pk = vec![0.0; rows * cols];
        for (i, &j) in assignment.iter().enumerate() {
            p[i * cols + j] = 1.0;
            pk[i * cols..(i + 1) * cols].copy_from_slice(&gram[j * cols..(j + 1) * cols]);
        }
        (p, pk)
    };
    let assignment = min_cost_rectangular_assignment(cost, rows, cols);
    let (mut p, mut pk) = vertex(&assignment);
    let mut gradient = vec![0.0; rows * cols];
    let mut gap = 0.0;
    let mut iterations = 0;
    // γ = 0 is linear in P: the assignment is already optimal.
    while gamma > 0.0 && iterations <= max_iterations {
        // ∂/∂P_ij of Σ P C − γ Σ_i Var_i: C_ij − γ (K_jj − 2 (P K)_ij).
        for i in 0..rows {
            for j in 0..cols {
                let at = i * cols + j;
                gradient[at] = cost[at] - gamma * (gram[j * cols + j] - 2.0 * pk[at]);
            }
        }
        let step_to = min_cost_rectangular_assignment(&gradient, rows, cols);
        let current: f64 = p.iter().zip(&gradient).map(|(a, b)| a * b).sum();
        let best: f64 = step_to
            .iter()
            .enumerate()
            .map(|(i, &j)| gradient[i * cols + j])
            .sum();
        gap = (current - best).max(0.0) / rows as f64;
        if gap <= tolerance || iterations == max_iterations {
            break;
        }
        iterations += 1;
        // Exact line search on the quadratic F(P + t(S − P)) = F + t·(best − current) +
        // t²·γ Σ_i d_i K d_iᵀ, with d_i = e_s(i) − p_i.
        let curvature: f64 = gamma
            * step_to
                .iter()
                .enumerate()
                .map(|(i, &s)| {
                    let row = i * cols..(i + 1) * cols;
                    let p_pk: f64 = p[row.clone()]
                        .iter()
                        .zip(&pk[row])
                        .map(|(a, b)| a * b)
                        .sum();
                    gram[s * cols + s] - 2.0 * pk[i * cols + s] + p_pk
                })
                .sum::<f64>();
        let slope = best - current;
        let t = if curvature > 0.0 {
            (-slope / (2.0 * curvature)).clamp(0.0, 1.0)
        } else {
            1.0
        };
        for (i, &s) in step_to.iter().enumerate() {
            for j in 0..cols {
                let at = i * cols + j;
                p[at] *= 1.0 - t;
                pk[at] = (1.0 - t) * pk[at] + t * gram[s * cols + j];
            }
            p[i * cols + s] += t;
        }
    }
    let mean = |f: &dyn Fn(usize) -> f64| (0..rows).map(f).sum::<f64>() / rows.max(1) as f64;
    let plan_cost = mean(&|i| {
        (0..cols)
            .map(|j| p[i * cols + j] * cost[i * cols + j])
            .sum()
    });
    let spread = mean(&|i| {
        let row = i * cols..(i + 1) * cols;
        row_spread(&p[row.clone()], &pk[row], gram, cols)
    });
    WeakPlan {
        rows,
        cols,
        weights: p,
        cost: plan_cost,
        spread,
        gap,
        iterations,
        assignment,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cost and Gram matrices of points `xs` (rows) and `ys` (cols) in `dim` dimensions.
    fn problem(xs: &[f64], ys: &[f64], dim: usize) -> (Vec<f64>, Vec<f64>) {
        let (n, m) = (xs.len() / dim, ys.len() / dim);
        let point = |v: &[f64], i: usize| v[i * dim..(i + 1) * dim].to_vec();
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(p, q)| p * q).sum::<f64>();
        let mut cost = Vec::new();
        for i in 0..n {
            for j in 0..m {
                let (x, y) = (point(xs, i), point(ys, j));
                cost.push(x.iter().zip(&y).map(|(a, b)| (a - b).powi(2)).sum());
            }
        }
        let mut gram = Vec::new();
        for j in 0..m {
            for k in 0..m {
                gram.push(dot(&point(ys, j), &point(ys, k)));
            }
        }
        (cost, gram)
    }

    /// The weak objective of any plan, straight from the definition (targets as points).
    fn objective(p: &[f64], xs: &[f64], ys: &[f64], dim: usize, gamma: f64) -> f64 {
        let (n, m) = (xs.len() / dim, ys.len() / dim);
        let mut total = 0.0;
        for i in 0..n {
            let row = &p[i * m..(i + 1) * m];
            let mean: Vec<f64> = (0..dim)
                .map(|d| (0..m).map(|j| row[j] * ys[j * dim + d]).sum())
                .collect();
            for j in 0..m {
                let (mut to_x, mut to_mean) = (0.0, 0.0);
                for d in 0..dim {
                    to_x += (xs[i * dim + d] - ys[j * dim + d]).powi(2);
                    to_mean += (ys[j * dim + d] - mean[d]).powi(2);
                }
                total += row[j] * (to_x - gamma * to_mean);
            }
        }
        total / n as f64
    }

    fn random_points(count: usize, rng: &mut SeedRng) -> Vec<f64> {
        (0..count).map(|_| rng.uniform_f64() * 2.0 - 1.0).collect()
    }

    #[test]
    fn gamma_zero_is_the_exact_assignment() {
        let mut rng = SeedRng::new(1);
        let (xs, ys) = (
            random_points(6 * 3, &mut rng),
            random_points(6 * 3, &mut rng),
        );
        let (cost, gram) = problem(&xs, &ys, 3);
        let plan = weak_transport_plan(&cost, &gram, 6, 6, 0.0, 100, 1e-9);
        let assignment = min_cost_rectangular_assignment(&cost, 6, 6);
        assert_eq!(plan.assignment, assignment);
        for (i, &j) in assignment.iter().enumerate() {
            assert_eq!(plan.support(i, 0.0), vec![(j, 1.0)]);
        }
        let exact: f64 = assignment
            .iter()
            .enumerate()
            .map(|(i, &j)| cost[i * 6 + j])
            .sum::<f64>()
            / 6.0;
        assert!((plan.cost - exact).abs() < 1e-12);
        assert_eq!((plan.spread, plan.iterations), (0.0, 0));
    }

    #[test]
    fn sources_between_two_targets_split_evenly() {
        // By hand, on a line: sources at 0.5 and 0.5, targets at 0 and 1. Every plan costs
        // 0.25 per source; the spread of a row (a, 1 − a) is a(1 − a), largest at a = ½.
        let (cost, gram) = problem(&[0.5, 0.5], &[0.0, 1.0], 1);
        let plan = weak_transport_plan(&cost, &gram, 2, 2, 0.5, 100, 1e-12);
        for w in &plan.weights {
            assert!((w - 0.5).abs() < 1e-9, "{:?}", plan.weights);
        }
        assert!((plan.cost - 0.25).abs() < 1e-12);
        assert!((plan.spread - 0.25).abs() < 1e-9);
        assert!((plan.objective(0.5) - 0.125).abs() < 1e-9);
        // Sources at the targets themselves never spread (for γ ≤ 1 spreading costs more
        // transport than it wins).
        let (cost, gram) = problem(&[0.0, 1.0], &[0.0, 1.0], 1);
        let plan = weak_transport_plan(&cost, &gram, 2, 2, 1.0, 100, 1e-12);
        assert_eq!(plan.weights, vec![1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn plans_are_feasible_and_no_feasible_plan_beats_them() {
        let mut rng = SeedRng::new(7);
        for (n, m, gamma) in [(5, 5, 0.5), (4, 6, 1.0), (5, 5, 0.25)] {
            let dim = 3;
            let (xs, ys) = (
                random_points(n * dim, &mut rng),
                random_points(m * dim, &mut rng),
            );
            let (cost, gram) = problem(&xs, &ys, dim);
            let plan = weak_transport_plan(&cost, &gram, n, m, gamma, 2000, 1e-10);
            for i in 0..n {
                let sum: f64 = plan.row(i).iter().sum();
                assert!((sum - 1.0).abs() < 1e-9, "row {i} sums to {sum}");
                assert!(plan.row(i).iter().all(|w| *w >= 0.0));
            }
            for j in 0..m {
                let sum: f64 = (0..n).map(|i| plan.weights[i * m + j]).sum();
                assert!(sum <= 1.0 + 1e-9, "column {j} takes {sum}");
            }
            let found = objective(&plan.weights, &xs, &ys, dim, gamma);
            assert!((found - plan.objective(gamma)).abs() < 1e-9);
            assert!(plan.gap <= 1e-10 || plan.iterations == 2000);
            // Random feasible plans: mixtures of random injective assignments.
            for _ in 0..2000 {
                let mut p = vec![0.0; n * m];
                let mixes = 1 + rng.below(4) as usize;
                let weights: Vec<f64> = (0..mixes).map(|_| rng.uniform_f64() + 1e-3).collect();
                let total: f64 = weights.iter().sum();
                for w in weights {
                    let mut columns: Vec<usize> = (0..m).collect();
                    for k in (1..m).rev() {
                        columns.swap(k, rng.below(k as u64 + 1) as usize);
                    }
                    for i in 0..n {
                        p[i * m + columns[i]] += w / total;
                    }
                }
                let other = objective(&p, &xs, &ys, dim, gamma);
                assert!(
                    found <= other + plan.gap + 1e-9,
                    "γ {gamma}: plan {found} vs a feasible {other}"
                );
            }
        }
    }

    #[test]
    fn spread_and_cost_grow_with_gamma() {
        let mut rng = SeedRng::new(3);
        let (n, dim) = (12, 4);
        let (xs, ys) = (
            random_points(n * dim, &mut rng),
            random_points(n * dim, &mut rng),
        );
        let (cost, gram) = problem(&xs, &ys, dim);
        let plans: Vec<WeakPlan> = [0.0, 0.25, 0.5, 0.75, 1.0]
            .iter()
            .map(|&g| weak_transport_plan(&cost, &gram, n, n, g, 3000, 1e-9))
            .collect();
        for pair in plans.windows(2) {
            assert!(pair[1].spread >= pair[0].spread - 1e-6, "{pair:?}");
            assert!(pair[1].cost >= pair[0].cost - 1e-6, "{pair:?}");
        }
        assert!(plans[4].spread > plans[0].spread + 1e-3, "γ = 1 spreads");
    }

    #[test]
    fn samples_follow_the_weights() {
        let support = [(3, 0.2), (7, 0.8)];
        let mut rng = SeedRng::new(5);
        let draws = 20_000;
        let sevens = (0..draws)
            .filter(|_| sample_support(&support, &mut rng) == 7)
            .count();
        let share = sevens as f64 / draws as f64;
        assert!((share - 0.8).abs() < 0.01, "{share}");
    }
}
