//! Style groups: a stochastic transport plan in which the noise z names the style of a
//! source's target, so a stochastic T(x, z) has a rule it can learn for what z does.
//!
//! The target digits of each color block split into K = 2^L equal groups by median cuts
//! along the L leading principal axes of their shapes (the color channels summed, every
//! block pooled, so an axis is the same stroke change in every color). Each source then
//! goes to one target in every group, by an exact assignment within the group (each target
//! taking K sources), and sends mass 1/K to each of these K partners: a coupling of the
//! source and target digits whose spread runs across distinct styles, at a higher transport
//! cost than exact OT. Of K = 1, 2, 4, … up to a maximum, the warm start keeps the plan with
//! the least γ-weak cost (cost − γ · spread), so γ decides how far one 3 spreads, as in weak
//! OT, within plans whose spread z can name: the sign of z's channel l sets bit l of the
//! group, and T learns "z_l flips the style along axis l". Why: fitting T(x, ·) to the exact
//! weak-OT plan (10–18 partners per 3, in no order z could name) reached ~7% of the plan's
//! spread on this CPU and blurred the outputs.

use super::config::WeakCost;
use super::warm_start::{add_assignment_costs, cost_matrix, for_each_block};
use crate::digits::{ClassDigits, grids_tensor};
use crate::stack::Stack;
use burn::tensor::{Device, Tensor, TensorData};
use ot3d_models::assignment::min_cost_assignment;
use ot3d_models::nets::noise_values;
use ot3d_models::rng::SeedRng;
use ot3d_models::voxel::{GRID, GRID_LEN, VoxelConfig, VoxelError};
use serde::{Deserialize, Serialize};

/// Values per color channel of a digit.
const CHANNEL_LEN: usize = GRID * GRID * GRID;
/// Subspace iterations for the principal axes: the median cuts need the axes' order of the
/// digits, not their eigenvalues to many digits.
const AXIS_ITERATIONS: usize = 300;

/// Source digits, each with one partner in every style group.
pub struct GroupedPairs {
    pub groups: usize,
    pub sources: Vec<f32>,
    /// `groups` digits per source: source i's partner in group g is digit `i·K + g`.
    pub targets: Vec<f32>,
    /// Mean over sources of the plan's cost `(1/K) Σ_g ‖x_i − y_ig‖²/D` and spread
    /// `(1/K) Σ_g ‖y_ig − m_i‖²/D` (`m_i` the mean partner), as the weak plan reports them.
    pub cost: f64,
    pub spread: f64,
    /// The exact OT assignment's cost on the same digits, and a random pairing's.
    pub ot_cost: f64,
    pub random_cost: f64,
}

impl GroupedPairs {
    pub fn len(&self) -> usize {
        self.sources.len() / GRID_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// The γ-weak quadratic cost of the plan, `cost − γ · spread` (per source, /D).
    pub fn objective(&self, gamma: f64) -> f64 {
        self.cost - gamma * self.spread
    }

    fn source(&self, i: usize) -> &[f32] {
        &self.sources[i * GRID_LEN..(i + 1) * GRID_LEN]
    }

    /// Source i's partner in group g.
    pub fn target(&self, i: usize, g: usize) -> &[f32] {
        let k = i * self.groups + g;
        &self.targets[k * GRID_LEN..(k + 1) * GRID_LEN]
    }

    /// `sources` random sources (with replacement), each with `weak.draws` draws of z (one
    /// value per digit and channel, N(0, std²) or ±std per `weak.noise_layout`) and, per
    /// draw, its partner in the group z names:
    /// x `[S, …]`, z `[S·Z, channels, …]` and y `[S·Z, …]`, the draws of one source in a row
    /// (the layout of the weak cost's terms).
    pub fn batch(
        &self,
        sources: usize,
        weak: &WeakCost,
        channels: usize,
        rng: &mut SeedRng,
        device: &Device,
    ) -> (Tensor<5>, Tensor<5>, Tensor<5>) {
        let draws = weak.draws;
        let levels = group_levels(self.groups);
        let picked: Vec<usize> = (0..sources)
            .map(|_| rng.below(self.len() as u64) as usize)
            .collect();
        let z = noise_values(
            sources * draws,
            channels,
            weak.noise_std,
            weak.noise_layout,
            rng,
        );
        let mut xs = Vec::with_capacity(sources * GRID_LEN);
        let mut ys = Vec::with_capacity(sources * draws * GRID_LEN);
        for (s, &i) in picked.iter().enumerate() {
            xs.extend_from_slice(self.source(i));
            for d in 0..draws {
                let digit = s * draws + d;
                let per_channel: Vec<f32> = (0..channels)
                    .map(|c| z[(digit * channels + c) * CHANNEL_LEN])
                    .collect();
                ys.extend_from_slice(self.target(i, noise_group(&per_channel, levels)));
            }
        }
        let z = Tensor::from_data(
            TensorData::new(z, [sources * draws, channels, GRID, GRID, GRID]),
            device,
        );
        (grids_tensor(xs, device), z, grids_tensor(ys, device))
    }
}

/// L = log2 K: the noise channels whose signs name one of K groups.
pub fn group_levels(groups: usize) -> usize {
    groups.trailing_zeros() as usize
}

/// The group a draw of z (one value per channel) names: bit l set where channel l > 0.
pub fn noise_group(z: &[f32], levels: usize) -> usize {
    (0..levels).filter(|&l| z[l] > 0.0).map(|l| 1 << l).sum()
}

/// The scores of `n` points (rows of `points`, `dim` values each) on their `axes` leading
/// principal axes, axis by axis: the top eigenvectors of the centered Gram matrix, by
/// subspace iteration from a fixed start (reproducible), each signed so its largest entry
/// is positive.
pub fn principal_scores(points: &[f64], n: usize, dim: usize, axes: usize) -> Vec<Vec<f64>> {
    let mut mean = vec![0.0; dim];
    for row in points.chunks(dim) {
        for (m, v) in mean.iter_mut().zip(row) {
            *m += v / n as f64;
        }
    }
    let centered: Vec<f64> = points
        .chunks(dim)
        .flat_map(|row| row.iter().zip(&mean).map(|(v, m)| v - m))
        .collect();
    let mut gram = vec![0.0; n * n];
    for i in 0..n {
        let a = &centered[i * dim..(i + 1) * dim];
        for j in i..n {
            let b = &centered[j * dim..(j + 1) * dim];
            let dot: f64 = a.iter().zip(b).map(|(p, q)| p * q).sum();
            gram[i * n + j] = dot;
            gram[j * n + i] = dot;
        }
    }
    // A fixed, generic start (no axis orthogonal to it by accident of symmetry).
    let mut basis: Vec<Vec<f64>> = (0..axes)
        .map(|l| {
            (0..n)
                .map(|i| (((i * 7919 + l * 104_729) % 1009) as f64) / 1009.0 - 0.5)
                .collect()
        })
        .collect();
    for _ in 0..AXIS_ITERATIONS {
        for v in &mut basis {
            *v = (0..n)
                .map(|i| {
                    gram[i * n..(i + 1) * n]
                        .iter()
                        .zip(v.iter())
                        .map(|(g, x)| g * x)
                        .sum()
                })
                .collect();
        }
        orthonormalize(&mut basis);
    }
    for v in &mut basis {
        let largest = v
            .iter()
            .copied()
            .fold(0.0f64, |a, b| if b.abs() > a.abs() { b } else { a });
        if largest < 0.0 {
            v.iter_mut().for_each(|x| *x = -*x);
        }
    }
    basis
}

/// Gram–Schmidt on `basis` in order.
fn orthonormalize(basis: &mut [Vec<f64>]) {
    for l in 0..basis.len() {
        let (done, rest) = basis.split_at_mut(l);
        let v = &mut rest[0];
        for u in done.iter() {
            let dot: f64 = u.iter().zip(v.iter()).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(u).for_each(|(x, a)| *x -= dot * a);
        }
        let norm = v
            .iter()
            .map(|x| x * x)
            .sum::<f64>()
            .sqrt()
            .max(f64::MIN_POSITIVE);
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// The group of each of `m` points, `2^levels` equal groups: at level l every group so far
/// splits at the median of `scores[l]` (ties by index), the upper half setting bit l.
/// `m` must be divisible by `2^levels`.
pub fn split_groups(scores: &[Vec<f64>], m: usize, levels: usize) -> Vec<usize> {
    let mut cells: Vec<Vec<usize>> = vec![(0..m).collect()];
    for (l, axis) in scores.iter().enumerate().take(levels) {
        let mut lower = Vec::with_capacity(cells.len());
        let mut upper = Vec::with_capacity(cells.len());
        for mut cell in cells {
            cell.sort_by(|&a, &b| axis[a].total_cmp(&axis[b]).then(a.cmp(&b)));
            let high = cell.split_off(cell.len() / 2);
            lower.push(cell);
            upper.push(high);
        }
        debug_assert!(upper.len() == 1 << l);
        lower.extend(upper);
        cells = lower;
    }
    let mut group = vec![0; m];
    for (g, cell) in cells.iter().enumerate() {
        for &j in cell {
            group[j] = g;
        }
    }
    group
}

/// Each of `n` sources' partner (a column of the `n × n` row-major `cost`) in every one of
/// `groups` equal column groups (`group[j]` is column j's): within group g, an exact
/// assignment of the n sources to its n/K columns, each column taking K sources. Returns
/// `n × groups` column indices, source by source.
pub fn group_partners(cost: &[f64], n: usize, group: &[usize], groups: usize) -> Vec<usize> {
    let mut partners = vec![0; n * groups];
    for g in 0..groups {
        let members: Vec<usize> = (0..n).filter(|&j| group[j] == g).collect();
        // Column c of the square problem is member c / K: each member offered K times.
        let square: Vec<f64> = (0..n)
            .flat_map(|i| (0..n).map(move |c| (i, c)))
            .map(|(i, c)| cost[i * n + members[c / groups]])
            .collect();
        for (i, c) in min_cost_assignment(&square, n).into_iter().enumerate() {
            partners[i * groups + g] = members[c / groups];
        }
    }
    partners
}

/// One count of style groups the warm start weighed: its plan's cost and spread (means
/// over sources, /D) and γ-weak cost `cost − γ · spread`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupCandidate {
    pub groups: usize,
    pub cost: f64,
    pub spread: f64,
    pub objective: f64,
}

/// The style-group plan between the same digits the warm start's exact OT pairs (`w` = 1),
/// per color block, for K = 1, 2, 4, … up to `max_groups` (a power of two dividing
/// `per_block`): the plan with the least γ-weak cost (the smaller K on ties), and every
/// candidate's figures. K = 1 is the exact OT assignment, so small γ keeps T deterministic
/// where spreading does not pay.
#[allow(clippy::too_many_arguments)]
pub fn grouped_ot_pairs(
    source: &ClassDigits,
    stack: &Stack,
    target: &ClassDigits,
    voxel: &VoxelConfig,
    per_block: usize,
    max_groups: usize,
    gamma: f64,
    seed: u64,
    device: &Device,
) -> Result<(GroupedPairs, Vec<GroupCandidate>), VoxelError> {
    let mut blocks: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
    for_each_block(
        source,
        stack,
        target,
        voxel,
        per_block,
        1.0,
        seed,
        device,
        |xs, ys| blocks.push((xs.to_vec(), ys.to_vec())),
    )?;
    // Shapes: each target's channels summed, so the axes ignore color.
    let shapes: Vec<f64> = blocks
        .iter()
        .flat_map(|(_, ys)| ys.chunks(GRID_LEN))
        .flat_map(|y| {
            (0..CHANNEL_LEN).map(move |v| (0..3).map(|c| f64::from(y[c * CHANNEL_LEN + v])).sum())
        })
        .collect();
    let total = shapes.len() / CHANNEL_LEN;
    let scores = principal_scores(&shapes, total, CHANNEL_LEN, group_levels(max_groups));
    let costs: Vec<Vec<f64>> = blocks
        .iter()
        .map(|(xs, ys)| cost_matrix(xs, ys, device))
        .collect();
    // The exact assignment's cost and a random pairing's, once: every candidate shares them.
    let (mut ot_cost, mut random_cost) = (0.0, 0.0);
    for cost in &costs {
        let n = (cost.len() as f64).sqrt() as usize;
        add_assignment_costs(
            &mut ot_cost,
            &mut random_cost,
            cost,
            &min_cost_assignment(cost, n),
            n,
        );
    }
    let sources = (total as f64).max(1.0);
    let mut best: Option<GroupedPairs> = None;
    let mut candidates = Vec::new();
    for levels in 0..=group_levels(max_groups) {
        let pairs = plan_for(&blocks, &costs, &scores, 1 << levels);
        candidates.push(GroupCandidate {
            groups: pairs.groups,
            cost: pairs.cost,
            spread: pairs.spread,
            objective: pairs.objective(gamma),
        });
        if best
            .as_ref()
            .is_none_or(|b| pairs.objective(gamma) < b.objective(gamma))
        {
            best = Some(pairs);
        }
    }
    let mut best = best.expect("K = 1 is always weighed");
    best.ot_cost = ot_cost / sources;
    best.random_cost = random_cost / sources;
    Ok((best, candidates))
}

/// The plan with `groups` style groups on the warm start's color `blocks` (sources,
/// targets), their cost matrices and the targets' principal `scores` (all blocks, in order).
fn plan_for(
    blocks: &[(Vec<f32>, Vec<f32>)],
    costs: &[Vec<f64>],
    scores: &[Vec<f64>],
    groups: usize,
) -> GroupedPairs {
    let levels = group_levels(groups);
    let mut pairs = GroupedPairs {
        groups,
        sources: Vec::new(),
        targets: Vec::new(),
        cost: 0.0,
        spread: 0.0,
        ot_cost: 0.0,
        random_cost: 0.0,
    };
    let mut offset = 0;
    for ((xs, ys), cost) in blocks.iter().zip(costs) {
        let n = xs.len() / GRID_LEN;
        let block_scores: Vec<Vec<f64>> = scores
            .iter()
            .map(|axis| axis[offset..offset + n].to_vec())
            .collect();
        offset += n;
        let group = split_groups(&block_scores, n, levels);
        let partners = group_partners(cost, n, &group, groups);
        let digit = |j: usize| &ys[j * GRID_LEN..(j + 1) * GRID_LEN];
        for i in 0..n {
            let mine = &partners[i * groups..(i + 1) * groups];
            let mean: Vec<f64> = (0..GRID_LEN)
                .map(|v| mine.iter().map(|&j| f64::from(digit(j)[v])).sum::<f64>() / groups as f64)
                .collect();
            for &j in mine {
                pairs.cost += cost[i * n + j] / groups as f64;
                let spread: f64 = digit(j)
                    .iter()
                    .zip(&mean)
                    .map(|(y, m)| (f64::from(*y) - m).powi(2))
                    .sum();
                pairs.spread += spread / (GRID_LEN * groups) as f64;
                pairs.targets.extend_from_slice(digit(j));
            }
        }
        pairs.sources.extend_from_slice(xs);
    }
    let count = pairs.len().max(1) as f64;
    pairs.cost /= count;
    pairs.spread /= count;
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use ot3d_models::nets::NoiseLayout;

    #[test]
    fn the_noise_names_its_group_by_the_signs_of_its_first_channels() {
        assert_eq!(noise_group(&[-1.0, -2.0, 5.0], 2), 0);
        assert_eq!(noise_group(&[0.5, -2.0, 5.0], 2), 1);
        assert_eq!(noise_group(&[-0.5, 2.0, 5.0], 2), 2);
        assert_eq!(noise_group(&[0.5, 2.0, -5.0], 2), 3);
        assert_eq!(noise_group(&[0.5, 2.0, 5.0], 3), 7);
        assert_eq!(noise_group(&[0.5], 0), 0, "one group: z names nothing");
        assert_eq!(group_levels(1), 0);
        assert_eq!(group_levels(8), 3);
    }

    #[test]
    fn median_cuts_make_equal_groups_whose_bits_follow_the_axes() {
        // Axis 0 orders the points 0..8; axis 1 reverses them within each half.
        let axis0: Vec<f64> = (0..8).map(f64::from).collect();
        let axis1 = vec![4.0, 3.0, 2.0, 1.0, 40.0, 30.0, 20.0, 10.0];
        let group = split_groups(&[axis0, axis1], 8, 2);
        assert_eq!(group, vec![2, 2, 0, 0, 3, 3, 1, 1]);
        let one = split_groups(&[vec![3.0, 1.0, 2.0, 0.0]], 4, 1);
        assert_eq!(one, vec![1, 0, 1, 0], "the upper half sets the bit");
        assert_eq!(
            split_groups(&[], 3, 0),
            vec![0, 0, 0],
            "no levels: one group"
        );
    }

    #[test]
    fn principal_scores_order_points_along_their_widest_direction() {
        // 12 points in 3D: spread 10 along (1, 1, 0)/√2, 1 along z, tiny along (1, −1, 0).
        let n = 12;
        let points: Vec<f64> = (0..n)
            .flat_map(|i| {
                let t = i as f64 - 5.5;
                let s = if i % 2 == 0 { 1.0 } else { -1.0 };
                let e = 0.01 * (i % 3) as f64;
                [t + e, t - e, s]
            })
            .collect();
        let scores = principal_scores(&points, n, 3, 2);
        let first = &scores[0];
        let increasing = first.windows(2).all(|w| w[1] > w[0]);
        let decreasing = first.windows(2).all(|w| w[1] < w[0]);
        assert!(increasing || decreasing, "axis 0 orders by t: {first:?}");
        for (i, &v) in scores[1].iter().enumerate() {
            let s = if i % 2 == 0 { 1.0 } else { -1.0 };
            assert!(
                v * s * scores[1][0].signum() > 0.0,
                "axis 1 splits by z: {:?}",
                scores[1]
            );
        }
        let norm: f64 = first.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-9, "unit vectors");
    }

    #[test]
    fn every_source_gets_one_partner_per_group_and_every_target_k_sources() {
        // 4 sources at 0, 1, 2, 3 and 4 targets at 0.1, 1.1, 2.1, 3.1 on a line; groups
        // {0, 1} and {2, 3}: each source's nearest member of each group.
        let n = 4;
        let xs = [0.0, 1.0, 2.0, 3.0];
        let ys = [0.1, 1.1, 2.1, 3.1];
        let cost: Vec<f64> = (0..n)
            .flat_map(|i| (0..n).map(move |j| (xs[i] - ys[j]) * (xs[i] - ys[j])))
            .collect();
        let group = [0, 0, 1, 1];
        let partners = group_partners(&cost, n, &group, 2);
        for i in 0..n {
            assert_eq!(group[partners[i * 2]], 0);
            assert_eq!(group[partners[i * 2 + 1]], 1);
        }
        for j in 0..n {
            let load = partners.iter().filter(|&&p| p == j).count();
            assert_eq!(load, 2, "target {j} takes K = 2 sources: {partners:?}");
        }
        // The monotone pairing is optimal on a line.
        assert_eq!(partners, vec![0, 2, 0, 2, 1, 3, 1, 3]);
    }

    #[test]
    fn a_batch_pairs_each_draw_with_the_partner_its_noise_names() {
        let device = Device::flex();
        // Source i is the constant i; its partner in group g the constant 10·i + g.
        let constant = |v: f32| vec![v; GRID_LEN];
        let pairs = GroupedPairs {
            groups: 4,
            sources: (0..3).flat_map(|i| constant(i as f32)).collect(),
            targets: (0..3)
                .flat_map(|i| (0..4).flat_map(move |g| constant((10 * i + g) as f32)))
                .collect(),
            cost: 0.0,
            spread: 0.0,
            ot_cost: 0.0,
            random_cost: 0.0,
        };
        // Gaussian codes and sign codes name groups alike.
        for layout in [NoiseLayout::Digit, NoiseLayout::Signs] {
            let mut rng = SeedRng::new(5);
            let weak = WeakCost {
                gamma: 1.0,
                gamma_ramp_steps: 0,
                draws: 3,
                noise_std: 1.0,
                noise_layout: layout,
                kernel: Default::default(),
                groups: 4,
            };
            let (x, z, y) = pairs.batch(6, &weak, 3, &mut rng, &device);
            assert_eq!(x.dims(), [6, 3, GRID, GRID, GRID]);
            assert_eq!(z.dims(), [18, 3, GRID, GRID, GRID]);
            assert_eq!(y.dims(), [18, 3, GRID, GRID, GRID]);
            let first = |t: Tensor<5>, count: usize| -> Vec<f32> {
                let values = t.into_data().try_to_vec::<f32>().unwrap();
                (0..count)
                    .map(|k| values[k * values.len() / count])
                    .collect()
            };
            let xs = first(x, 6);
            let ys = first(y, 18);
            let zs = z.into_data().try_to_vec::<f32>().unwrap();
            let mut seen = std::collections::HashSet::new();
            for digit in 0..18 {
                let at = |c: usize| zs[(digit * 3 + c) * CHANNEL_LEN];
                let g = usize::from(at(0) > 0.0) + 2 * usize::from(at(1) > 0.0);
                let i = xs[digit / 3];
                assert_eq!(ys[digit], 10.0 * i + g as f32, "draw {digit}");
                seen.insert(g);
                if layout == NoiseLayout::Signs {
                    assert!(
                        (0..3).all(|c| at(c).abs() == 1.0),
                        "draw {digit}: ±std only"
                    );
                }
            }
            assert!(seen.len() > 1, "the draws name several groups");
        }
    }
}
