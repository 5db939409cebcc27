//! Exact discrete optimal transport between two equal-size point sets with uniform
//! weights: the least-cost one-to-one assignment (Hungarian method), pure Rust so the
//! trainer, the site builder and the browser pair digits the same way.

/// The assignment of rows to columns of a square `n × n` cost matrix with the least total
/// cost (Hungarian method with potentials, O(n³)): `result[row] = column`.
pub fn min_cost_assignment(cost: &[f64], n: usize) -> Vec<usize> {
    min_cost_rectangular_assignment(cost, n, n)
}

/// The least-cost assignment of each of `rows` rows to its own column of a `rows × cols`
/// cost matrix (row-major), `rows ≤ cols`: some columns stay unused. With uniform weights
/// this is exact discrete *incomplete* transport: `rows` sources onto `cols` targets, each
/// target taking at most one source. O(rows² · cols).
pub fn min_cost_rectangular_assignment(cost: &[f64], rows: usize, cols: usize) -> Vec<usize> {
    assert_eq!(cost.len(), rows * cols, "a rows × cols cost matrix");
    assert!(rows <= cols, "at least as many columns as rows");
    // 1-based arrays with a sentinel column 0, as in the classic formulation.
    let mut u = vec![0.0f64; rows + 1];
    let mut v = vec![0.0f64; cols + 1];
    let mut column_owner = vec![0usize; cols + 1];
    let mut way = vec![0usize; cols + 1];
    for row in 1..=rows {
        column_owner[0] = row;
        let mut j0 = 0usize;
        let mut min_to = vec![f64::INFINITY; cols + 1];
        let mut used = vec![false; cols + 1];
        loop {
            used[j0] = true;
            let i0 = column_owner[j0];
            let mut delta = f64::INFINITY;
            let mut j1 = 0usize;
            for j in 1..=cols {
                if used[j] {
                    continue;
                }
                let reduced = cost[(i0 - 1) * cols + (j - 1)] - u[i0] - v[j];
                if reduced < min_to[j] {
                    min_to[j] = reduced;
                    way[j] = j0;
                }
                if min_to[j] < delta {
                    delta = min_to[j];
                    j1 = j;
                }
            }
            for j in 0..=cols {
                if used[j] {
                    u[column_owner[j]] += delta;
                    v[j] -= delta;
                } else {
                    min_to[j] -= delta;
                }
            }
            j0 = j1;
            if column_owner[j0] == 0 {
                break;
            }
        }
        loop {
            let j1 = way[j0];
            column_owner[j0] = column_owner[j1];
            j0 = j1;
            if j0 == 0 {
                break;
            }
        }
    }
    let mut assignment = vec![0usize; rows];
    for j in 1..=cols {
        if column_owner[j] > 0 {
            assignment[column_owner[j] - 1] = j - 1;
        }
    }
    assignment
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeedRng;

    #[test]
    fn assignment_by_hand_and_against_brute_force() {
        // Worked by hand: rows take columns 1, 0, 2 for total 1 + 2 + 2 = 5.
        let cost = [4.0, 1.0, 3.0, 2.0, 0.0, 5.0, 3.0, 2.0, 2.0];
        assert_eq!(min_cost_assignment(&cost, 3), vec![1, 0, 2]);
        // Every permutation of 6 for random matrices.
        let mut rng = SeedRng::new(9);
        for _ in 0..20 {
            let n = 6;
            let cost: Vec<f64> = (0..n * n).map(|_| rng.uniform_f64() * 10.0).collect();
            let total = |p: &[usize]| {
                p.iter()
                    .enumerate()
                    .map(|(i, &j)| cost[i * n + j])
                    .sum::<f64>()
            };
            let found = total(&min_cost_assignment(&cost, n));
            let mut perm: Vec<usize> = (0..n).collect();
            let mut best = f64::INFINITY;
            permutations(&mut perm, 0, &mut |p| best = best.min(total(p)));
            assert!((found - best).abs() < 1e-9, "{found} vs {best}");
        }
    }

    #[test]
    fn rectangular_assignment_against_brute_force() {
        // By hand: 2 rows, 3 columns; row 0 takes column 2 (1), row 1 column 0 (1).
        let cost = [5.0, 4.0, 1.0, 1.0, 3.0, 0.5];
        assert_eq!(min_cost_rectangular_assignment(&cost, 2, 3), vec![2, 0]);
        // 4 rows onto 7 columns: every injective choice, via permutations of 7 whose first 4
        // entries are the choice.
        let mut rng = SeedRng::new(4);
        for _ in 0..10 {
            let (rows, cols) = (4, 7);
            let cost: Vec<f64> = (0..rows * cols).map(|_| rng.uniform_f64() * 10.0).collect();
            let total = |p: &[usize]| {
                p.iter()
                    .take(rows)
                    .enumerate()
                    .map(|(i, &j)| cost[i * cols + j])
                    .sum::<f64>()
            };
            let found = min_cost_rectangular_assignment(&cost, rows, cols);
            let mut distinct = found.clone();
            distinct.sort();
            distinct.dedup();
            assert_eq!(distinct.len(), rows, "each row its own column");
            let mut perm: Vec<usize> = (0..cols).collect();
            let mut best = f64::INFINITY;
            permutations(&mut perm, 0, &mut |p| best = best.min(total(p)));
            assert!((total(&found) - best).abs() < 1e-9);
        }
    }

    fn permutations(p: &mut Vec<usize>, k: usize, visit: &mut impl FnMut(&[usize])) {
        if k == p.len() {
            visit(p);
            return;
        }
        for i in k..p.len() {
            p.swap(k, i);
            permutations(p, k + 1, visit);
            p.swap(k, i);
        }
    }
}
