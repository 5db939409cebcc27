//! Warm start of T before NOT: an exact discrete optimal-transport assignment (squared
//! distances, per color block) between training digits of the two classes, then T regressed
//! onto those pairs (large-scale OT mapping estimation, Seguy et al. 2018). NOT then
//! fine-tunes a T that already moves mass the cheap way instead of starting at the identity.
//! With target weight w > 1 the assignment is incomplete transport: n sources onto w·n
//! targets, each taking at most one, so the sources go to their nearest 1/w of the targets.

use super::average::ParamAverage;
use super::config::{WarmStart, WeakCost};
use super::losses::{PotentialObjective, draw_spread, repeat_draws};
use super::replicas::{Replicas, ShareLoss};
use super::sampler::noise_batch;
use super::style_groups::{GroupCandidate, GroupedPairs, grouped_ot_pairs};
use crate::atomic_file::write_atomic;
use crate::digits::{ClassDigits, grids_tensor};
use crate::stack::Stack;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use indicatif::ProgressBar;
use ot3d_models::assignment::{min_cost_assignment, min_cost_rectangular_assignment};
use ot3d_models::nets::Potential;
use ot3d_models::nets::TransportMap;
use ot3d_models::rng::SeedRng;
use ot3d_models::voxel::{Coloring, DigitColor, GRID_LEN, VoxelConfig, VoxelError};
use ot3d_models::weak_plan::{sample_support, weak_transport_plan};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Pairs of (source, target) digits, flattened one after another.
pub struct Pairs {
    pub sources: Vec<f32>,
    pub targets: Vec<f32>,
    /// Mean ‖x − y‖²/D over the assigned pairs, and over the same digits paired at random.
    pub ot_cost: f64,
    pub random_cost: f64,
}

impl Pairs {
    pub fn len(&self) -> usize {
        self.sources.len() / GRID_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }
}

/// Color blocks the assignment is solved in: the four palette colors when digits get one
/// of them, else the config's own coloring as one block.
fn color_blocks(voxel: &VoxelConfig) -> Vec<VoxelConfig> {
    match voxel.coloring {
        Coloring::Palette => DigitColor::ALL
            .into_iter()
            .map(|c| VoxelConfig {
                coloring: Coloring::Fixed(c),
                ..voxel.clone()
            })
            .collect(),
        _ => vec![voxel.clone()],
    }
}

/// Squared distances / D between every row of `a` (n) and of `b` (m), n × m row-major.
pub(super) fn cost_matrix(a: &[f32], b: &[f32], device: &Device) -> Vec<f64> {
    let (n, m) = (a.len() / GRID_LEN, b.len() / GRID_LEN);
    let a = Tensor::<1>::from_floats(a, device).reshape([n, GRID_LEN]);
    let b = Tensor::<1>::from_floats(b, device).reshape([m, GRID_LEN]);
    let a2 = a.clone().powi_scalar(2).sum_dim(1); // [n, 1]
    let b2 = b.clone().powi_scalar(2).sum_dim(1).transpose(); // [1, n]
    let cross = a.matmul(b.transpose());
    let d = (a2 + b2 - cross.mul_scalar(2.0)).div_scalar(GRID_LEN as f32);
    d.into_data()
        .try_to_vec::<f32>()
        .expect("f32 distances")
        .into_iter()
        .map(|v| f64::from(v.max(0.0)))
        .collect()
}

/// Target digits offered to `per_block` sources under target weight `w`: ⌊w · per_block⌋.
pub fn targets_per_block(per_block: usize, w: f64) -> usize {
    ((per_block as f64) * w).floor() as usize
}

/// Source and target digits of each color block, as the warm start draws them:
/// `per_block` random sources (through `stack`) and [`targets_per_block`]`(per_block, w)`
/// random targets, handed to `solve` block by block.
#[allow(clippy::too_many_arguments)]
pub(super) fn for_each_block(
    source: &ClassDigits,
    stack: &Stack,
    target: &ClassDigits,
    voxel: &VoxelConfig,
    per_block: usize,
    w: f64,
    seed: u64,
    device: &Device,
    mut solve: impl FnMut(&[f32], &[f32]),
) -> Result<(), VoxelError> {
    let mut rng = SeedRng::new(seed);
    for block in color_blocks(voxel) {
        let xs = source
            .with_voxel(&block)
            .sample_values(per_block, rng.next_u64())?;
        let xs = stack.apply_values(&xs, device);
        let ys = target
            .with_voxel(&block)
            .sample_values(targets_per_block(per_block, w), rng.next_u64())?;
        let m = ys.len() / GRID_LEN;
        let n = (xs.len() / GRID_LEN).min(m);
        solve(&xs[..n * GRID_LEN], &ys[..m * GRID_LEN]);
    }
    Ok(())
}

/// Adds, pair by pair, the cost of `assignment` (row i → column `assignment[i]`) in the
/// row-major cost matrix with `m` columns to `ot`, and that of the shifted pairing row i →
/// column (i + 1) mod m (a random pairing: the digits were drawn at random) to `random`.
pub(super) fn add_assignment_costs(
    ot: &mut f64,
    random: &mut f64,
    cost: &[f64],
    assignment: &[usize],
    m: usize,
) {
    for (i, &j) in assignment.iter().enumerate() {
        *ot += cost[i * m + j];
        *random += cost[i * m + (i + 1) % m];
    }
}

/// Exact OT pairs between `per_block` random source digits and
/// [`targets_per_block`]`(per_block, w)` random target digits in each color block (w = 1:
/// complete transport, a one-to-one pairing; w > 1: incomplete, each source its own target
/// among w times as many); the source digits pass through `stack` first (stacking pairs
/// T1(x) with real targets).
#[allow(clippy::too_many_arguments)]
pub fn ot_pairs(
    source: &ClassDigits,
    stack: &Stack,
    target: &ClassDigits,
    voxel: &VoxelConfig,
    per_block: usize,
    w: f64,
    seed: u64,
    device: &Device,
) -> Result<Pairs, VoxelError> {
    let (mut sources, mut targets) = (Vec::new(), Vec::new());
    let (mut ot_total, mut random_total, mut count) = (0.0, 0.0, 0usize);
    let solve = |xs: &[f32], ys: &[f32]| {
        let (n, m) = (xs.len() / GRID_LEN, ys.len() / GRID_LEN);
        let cost = cost_matrix(xs, ys, device);
        let assignment = min_cost_rectangular_assignment(&cost, n, m);
        add_assignment_costs(&mut ot_total, &mut random_total, &cost, &assignment, m);
        for (i, &j) in assignment.iter().enumerate() {
            sources.extend_from_slice(&xs[i * GRID_LEN..(i + 1) * GRID_LEN]);
            targets.extend_from_slice(&ys[j * GRID_LEN..(j + 1) * GRID_LEN]);
        }
        count += n;
    };
    for_each_block(
        source, stack, target, voxel, per_block, w, seed, device, solve,
    )?;
    Ok(Pairs {
        sources,
        targets,
        ot_cost: ot_total / count.max(1) as f64,
        random_cost: random_total / count.max(1) as f64,
    })
}

/// Frank–Wolfe iterations and duality-gap tolerance (per source, in ‖·‖²/D) of the weak
/// plans: the gap stops well below the run-to-run spread of the plans' cost.
const WEAK_PLAN_ITERATIONS: usize = 400;
const WEAK_PLAN_TOLERANCE: f64 = 1e-6;
/// Target weights below this share of a source's mass are dropped when sampling.
const WEAK_PLAN_MIN_WEIGHT: f64 = 1e-4;

/// Source digits, each with a distribution over target digits: the discrete weak-OT plan
/// the warm start of a stochastic map regresses onto.
pub struct WeakPairs {
    pub sources: Vec<f32>,
    pub targets: Vec<f32>,
    /// Per source: (target index, weight), weights summing to 1.
    pub supports: Vec<Vec<(usize, f64)>>,
    /// Mean over sources of the plan's cost Σ_j P_ij ‖x_i − y_j‖²/D and spread Var_i/D.
    pub cost: f64,
    pub spread: f64,
    /// The exact OT (γ = 0) assignment's cost on the same digits, and a random pairing's.
    pub ot_cost: f64,
    pub random_cost: f64,
    /// The largest Frank–Wolfe duality gap per source over the color blocks.
    pub gap: f64,
}

impl WeakPairs {
    pub fn len(&self) -> usize {
        self.sources.len() / GRID_LEN
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Mean number of targets a source spreads over.
    pub fn mean_support(&self) -> f64 {
        self.supports.iter().map(Vec::len).sum::<usize>() as f64 / self.len().max(1) as f64
    }
}

/// Target inner products y_j · y_k / D of `ys`, m × m.
fn gram_matrix(ys: &[f32], device: &Device) -> Vec<f64> {
    let m = ys.len() / GRID_LEN;
    let y = Tensor::<1>::from_floats(ys, device).reshape([m, GRID_LEN]);
    y.clone()
        .matmul(y.transpose())
        .div_scalar(GRID_LEN as f32)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 inner products")
        .into_iter()
        .map(f64::from)
        .collect()
}

/// The discrete weak-OT plan (γ-weak quadratic cost, [`weak_transport_plan`]) between the
/// same digits [`ot_pairs`] would pair, per color block.
#[allow(clippy::too_many_arguments)]
pub fn weak_ot_pairs(
    source: &ClassDigits,
    stack: &Stack,
    target: &ClassDigits,
    voxel: &VoxelConfig,
    per_block: usize,
    w: f64,
    gamma: f64,
    seed: u64,
    device: &Device,
) -> Result<WeakPairs, VoxelError> {
    let mut pairs = WeakPairs {
        sources: Vec::new(),
        targets: Vec::new(),
        supports: Vec::new(),
        cost: 0.0,
        spread: 0.0,
        ot_cost: 0.0,
        random_cost: 0.0,
        gap: 0.0,
    };
    let solve = |xs: &[f32], ys: &[f32]| {
        let (n, m) = (xs.len() / GRID_LEN, ys.len() / GRID_LEN);
        let offset = pairs.targets.len() / GRID_LEN;
        let cost = cost_matrix(xs, ys, device);
        let gram = gram_matrix(ys, device);
        let plan = weak_transport_plan(
            &cost,
            &gram,
            n,
            m,
            gamma,
            WEAK_PLAN_ITERATIONS,
            WEAK_PLAN_TOLERANCE,
        );
        add_assignment_costs(
            &mut pairs.ot_cost,
            &mut pairs.random_cost,
            &cost,
            &plan.assignment,
            m,
        );
        for i in 0..n {
            let mut support = plan.support(i, WEAK_PLAN_MIN_WEIGHT);
            let total: f64 = support.iter().map(|(_, w)| w).sum();
            for (j, w) in &mut support {
                *j += offset;
                *w /= total;
            }
            pairs.supports.push(support);
        }
        pairs.cost += plan.cost * n as f64;
        pairs.spread += plan.spread * n as f64;
        pairs.gap = pairs.gap.max(plan.gap);
        pairs.sources.extend_from_slice(xs);
        pairs.targets.extend_from_slice(ys);
    };
    for_each_block(
        source, stack, target, voxel, per_block, w, seed, device, solve,
    )?;
    let n = pairs.len().max(1) as f64;
    pairs.cost /= n;
    pairs.spread /= n;
    pairs.ot_cost /= n;
    pairs.random_cost /= n;
    Ok(pairs)
}

/// What the warm start did, saved as warm_start.json in the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmStartReport {
    pub pairs: usize,
    /// The exact (γ = 0) assignment's mean cost, and a random pairing's, on the same digits.
    pub pair_ot_cost: f64,
    pub pair_random_cost: f64,
    /// Target digits offered per color block (= `pairs`/blocks unless w > 1).
    #[serde(default)]
    pub targets_per_block: usize,
    /// For a stochastic map: the weak plan T regressed onto (see [`WeakPlanReport`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weak_plan: Option<WeakPlanReport>,
    /// For a stochastic map fitted to style groups: that plan (see [`StyleGroupsReport`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub style_groups: Option<StyleGroupsReport>,
    /// Mean ‖T(x) − y‖²/D over the last 50 regression batches.
    pub final_regression_loss: f64,
    /// ‖T(x) − y‖²/D of every regression batch (the curve `ot3d figure losses` draws).
    #[serde(default)]
    pub regression_losses: Vec<f64>,
    /// L_f of every f-only step after the regression.
    #[serde(default)]
    pub potential_losses: Vec<f64>,
    pub seconds: f64,
}

/// The name of a run's warm-start report, beside its checkpoints.
pub const REPORT_FILE: &str = "warm_start.json";

/// A run's `warm_start.json` that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} is not a warm-start report ({error}); train the run again to rewrite it")]
    Parse {
        path: PathBuf,
        error: serde_json::Error,
    },
}

/// Saves what the warm start did in the run directory (atomically: a crash leaves the old
/// report or the new one, never half of one).
pub fn write_report(run: &Path, report: &WarmStartReport) -> std::io::Result<()> {
    let json = serde_json::to_string_pretty(report).expect("report serializes");
    write_atomic(&run.join(REPORT_FILE), json.as_bytes())
}

/// A run's warm-start report, `None` when the run had no warm start (no file); the one
/// reader for export (style groups kept) and `ot3d figure losses` (the regression curve).
pub fn read_report(run: &Path) -> Result<Option<WarmStartReport>, ReportError> {
    let path = run.join(REPORT_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(ReportError::Read { path, error }),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| ReportError::Parse { path, error })
}

/// The discrete weak-OT plan of a stochastic map's warm start, and how far T's draws
/// spread at its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeakPlanReport {
    pub gamma: f64,
    /// Mean over sources of Σ_j P_ij ‖x_i − y_j‖²/D and of the spread Var_i/D.
    pub cost: f64,
    pub spread: f64,
    /// Mean number of targets a source spreads over (weights ≥ 1e-4).
    pub mean_support: f64,
    /// The largest Frank–Wolfe duality gap per source.
    pub gap: f64,
    /// Draws of z per source in a regression batch.
    pub draws: usize,
    /// Mean over sources of the spread of T(x, z) over its draws (/D), last 50 batches.
    pub final_draw_spread: f64,
}

/// The style-group plan of a stochastic map's warm start (`training::style_groups`), and
/// how far T's draws spread at its end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StyleGroupsReport {
    /// The groups of the plan kept (the candidate with the least γ-weak cost).
    pub groups: usize,
    pub max_groups: usize,
    pub gamma: f64,
    /// Mean over sources of the plan's cost `(1/K) Σ_g ‖x_i − y_ig‖²/D` and spread /D.
    pub cost: f64,
    pub spread: f64,
    /// The plan's γ-weak cost `cost − γ · spread`; the exact OT pairs' (one target per
    /// source, no spread) is `pair_ot_cost`.
    pub objective: f64,
    /// Draws of z per source in a regression batch.
    pub draws: usize,
    /// Mean over sources of the spread of T(x, z) over its draws (/D), last 50 batches.
    pub final_draw_spread: f64,
    /// Every count of groups weighed, K = 1 (exact OT) first.
    pub candidates: Vec<GroupCandidate>,
}

/// What the regression fits: one target per source (deterministic T), a distribution over
/// targets per source that T(x, ·) must match (stochastic T, the weak cost), or one target
/// per style group that z names (stochastic T, style groups).
enum Fit<'a> {
    Pairs(Pairs),
    Weak(WeakPairs, &'a WeakCost),
    Grouped(GroupedPairs, Vec<GroupCandidate>, &'a WeakCost),
}

/// The pairs an anchored NOT keeps fitting: one target per source, or one per source and
/// style group.
pub enum AnchorPairs {
    Strong(Pairs),
    Grouped(GroupedPairs),
}

/// Sources per batch of a stochastic fit: the batch's digits shared among `draws` draws
/// each, so a step costs what a deterministic one does.
pub fn sources_per_batch(batch_size: usize, draws: usize) -> usize {
    (batch_size / draws).max(1)
}

/// The regression loss ‖T(x, z) − y‖²/D on a batch of style-group pairs, and the draws'
/// mean spread (/D).
fn grouped_loss(
    t: &TransportMap,
    pairs: &GroupedPairs,
    weak: &WeakCost,
    batch_size: usize,
    rng: &mut SeedRng,
    device: &Device,
) -> (Tensor<1>, f64) {
    let (x, z, y) = pairs.batch(
        sources_per_batch(batch_size, weak.draws),
        weak,
        t.noise_channels(),
        rng,
        device,
    );
    let out = t.forward(repeat_draws(x, weak.draws), Some(z));
    let spread = draw_spread(out.clone().detach(), weak.draws).into_scalar::<f32>() as f64;
    ((out - y).powi_scalar(2).mean(), spread)
}

/// A batch of `batch_size` random OT pairs, and its regression loss ‖T(x) − y‖²/D.
impl Pairs {
    /// `batch_size` pairs drawn uniformly (with replacement): sources and targets as
    /// `[B, 3, 16, 16, 16]` tensors.
    pub fn batch(
        &self,
        batch_size: usize,
        rng: &mut SeedRng,
        device: &Device,
    ) -> (Tensor<5>, Tensor<5>) {
        let n = self.len();
        let mut xs = Vec::with_capacity(batch_size * GRID_LEN);
        let mut ys = Vec::with_capacity(batch_size * GRID_LEN);
        for _ in 0..batch_size {
            let i = rng.below(n as u64) as usize;
            xs.extend_from_slice(&self.sources[i * GRID_LEN..(i + 1) * GRID_LEN]);
            ys.extend_from_slice(&self.targets[i * GRID_LEN..(i + 1) * GRID_LEN]);
        }
        (grids_tensor(xs, device), grids_tensor(ys, device))
    }
}

fn pairs_loss(t: &TransportMap, x: Tensor<5>, y: Tensor<5>) -> Tensor<1> {
    (t.forward(x, None) - y).powi_scalar(2).mean()
}

/// A batch of `batch_size / draws` random sources, each with `draws` draws of z and as many
/// targets sampled from its weak plan row; each draw's output is matched to one of its
/// source's targets by an exact assignment (least total ‖T(x, z) − y‖²), and the loss is
/// the matched ‖T(x, z) − y‖²/D. Minimizing it fits T(x, ·) to the plan's distribution
/// (an empirical W2 between the draws and the plan's targets per source), not to its mean
/// as plain regression would. (Pairing draws with targets by the order of z along the
/// targets' principal axis instead was measured worse: per-input diversity 1.7% of the real
/// targets' vs 3.2% for this matching, 600 steps, γ = 1.) Returns the loss and the draws'
/// mean spread (/D).
fn weak_loss(
    t: &TransportMap,
    pairs: &WeakPairs,
    weak: &WeakCost,
    batch_size: usize,
    rng: &mut SeedRng,
    device: &Device,
) -> (Tensor<1>, f64) {
    let draws = weak.draws;
    let sources = (batch_size / draws).max(1);
    let mut xs = Vec::with_capacity(sources * draws * GRID_LEN);
    let mut picked = Vec::with_capacity(sources * draws);
    for _ in 0..sources {
        let i = rng.below(pairs.len() as u64) as usize;
        for _ in 0..draws {
            xs.extend_from_slice(&pairs.sources[i * GRID_LEN..(i + 1) * GRID_LEN]);
            picked.push(sample_support(&pairs.supports[i], rng));
        }
    }
    let z = noise_batch(
        sources * draws,
        t.noise_channels(),
        weak.noise_std,
        weak.noise_layout,
        rng,
        device,
    );
    let out = t.forward(grids_tensor(xs, device), Some(z));
    let values = out
        .clone()
        .detach()
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 outputs");
    let target = |j: usize| &pairs.targets[j * GRID_LEN..(j + 1) * GRID_LEN];
    let mut ys = Vec::with_capacity(sources * draws * GRID_LEN);
    for s in 0..sources {
        let output = |a: usize| &values[(s * draws + a) * GRID_LEN..(s * draws + a + 1) * GRID_LEN];
        let choices = &picked[s * draws..(s + 1) * draws];
        let mut cost = Vec::with_capacity(draws * draws);
        for a in 0..draws {
            for &j in choices {
                cost.push(squared_distance(output(a), target(j)));
            }
        }
        // Row a (draw a) takes column b (target choices[b]).
        for b in min_cost_assignment(&cost, draws) {
            ys.extend_from_slice(target(choices[b]));
        }
    }
    let spread = draw_spread(out.clone().detach(), draws).into_scalar::<f32>() as f64;
    let loss = (out - grids_tensor(ys, device)).powi_scalar(2).mean();
    (loss, spread)
}

/// Keeps the last 50 values in `window`: the reports' "final" figures average them.
pub(super) fn push_recent(window: &mut VecDeque<f64>, value: f64) {
    window.push_back(value);
    if window.len() > 50 {
        window.pop_front();
    }
}

fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(p, q)| f64::from(p - q).powi(2)).sum()
}

/// Regresses `t` onto the OT pairs of `settings` with Adam; returns the trained map, the
/// report and the pairs (for anchored NOT). With `weak` (a stochastic map) it fits T(x, ·)
/// to the discrete weak-OT plan for γ instead, and returns no pairs, or with style groups
/// to their plan, and returns its pairs.
#[allow(clippy::too_many_arguments)]
pub fn warm_start(
    t: TransportMap,
    source: &ClassDigits,
    stack: &Stack,
    target: &ClassDigits,
    voxel: &VoxelConfig,
    settings: &WarmStart,
    w: f64,
    weak: Option<&WeakCost>,
    batch_size: usize,
    seed: u64,
    device: &Device,
    replicas: &Replicas,
    bar: &ProgressBar,
) -> Result<(TransportMap, WarmStartReport, Option<AnchorPairs>), VoxelError> {
    let started = std::time::Instant::now();
    let per_block = settings.pairs_per_color;
    let fit = match weak.filter(|_| t.noise_channels() > 0) {
        Some(weak) if weak.groups > 0 => {
            bar.set_message(format!("warm start: up to {} style groups", weak.groups));
            let (pairs, candidates) = grouped_ot_pairs(
                source,
                stack,
                target,
                voxel,
                per_block,
                weak.groups,
                weak.gamma,
                seed,
                device,
            )?;
            Fit::Grouped(pairs, candidates, weak)
        }
        Some(weak) => {
            bar.set_message(format!("warm start: weak OT plan, γ {}", weak.gamma));
            Fit::Weak(
                weak_ot_pairs(
                    source, stack, target, voxel, per_block, w, weak.gamma, seed, device,
                )?,
                weak,
            )
        }
        None => {
            bar.set_message("warm start: exact OT pairs");
            Fit::Pairs(ot_pairs(
                source, stack, target, voxel, per_block, w, seed, device,
            )?)
        }
    };
    let inner = device.clone();
    let mut t = t;
    let mut optimizer: ModuleOptimizer = AdamConfig::new().init();
    let mut rng = SeedRng::new(seed ^ 0x7761_726d);
    let mut recent = VecDeque::new();
    let mut recent_spread = VecDeque::new();
    let mut regression_losses = Vec::with_capacity(settings.steps as usize);
    bar.set_length(settings.steps);
    bar.set_position(0);
    let cycle_length = settings.steps.div_ceil(settings.cycles.max(1));
    let mut average = (settings.average > 0.0).then(|| ParamAverage::new(&t, settings.average));
    for step in 1..=settings.steps {
        let restart =
            (step - 1) % cycle_length == 0 || settings.restart_after.contains(&(step - 1));
        if step > 1 && restart {
            optimizer = AdamConfig::new().init();
        }
        let (grads, value) = match &fit {
            Fit::Pairs(pairs) => {
                let (x, y) = pairs.batch(batch_size, &mut rng, &inner);
                let (grads, reported) = replicas.grads(&t, |t, share| {
                    let loss = pairs_loss(t, share.of(&x), share.of(&y));
                    ShareLoss {
                        objective: loss.clone(),
                        reported: vec![loss],
                    }
                });
                (grads, reported[0])
            }
            // The weak fit matches each input's draws to its targets by an assignment
            // over the whole batch: it runs on the main device alone.
            Fit::Weak(pairs, weak) => {
                let (loss, spread) = weak_loss(&t, pairs, weak, batch_size, &mut rng, &inner);
                push_recent(&mut recent_spread, spread);
                let value = loss.clone().into_scalar::<f32>() as f64;
                (GradientsParams::from_grads(loss.backward(), &t), value)
            }
            Fit::Grouped(pairs, _, weak) => {
                let (loss, spread) = grouped_loss(&t, pairs, weak, batch_size, &mut rng, &inner);
                push_recent(&mut recent_spread, spread);
                let value = loss.clone().into_scalar::<f32>() as f64;
                (GradientsParams::from_grads(loss.backward(), &t), value)
            }
        };
        t = optimizer.step(settings.lr, t, grads);
        if let Some(average) = &mut average {
            average.update(&t);
        }
        push_recent(&mut recent, value);
        regression_losses.push(value);
        bar.set_message(format!("warm start: ‖T(x) − y‖²/D {value:.5}"));
        bar.set_position(step);
    }
    if let Some(average) = average {
        t = average.apply(t);
    }
    let mean = |v: &VecDeque<f64>| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let style_groups = match &fit {
        Fit::Grouped(pairs, candidates, weak) => Some(StyleGroupsReport {
            groups: pairs.groups,
            max_groups: weak.groups,
            gamma: weak.gamma,
            cost: pairs.cost,
            spread: pairs.spread,
            objective: pairs.objective(weak.gamma),
            draws: weak.draws,
            final_draw_spread: mean(&recent_spread),
            candidates: candidates.clone(),
        }),
        _ => None,
    };
    let (pairs, pair_ot_cost, pair_random_cost, weak_plan) = match &fit {
        Fit::Pairs(pairs) => (pairs.len(), pairs.ot_cost, pairs.random_cost, None),
        Fit::Grouped(pairs, ..) => (pairs.len(), pairs.ot_cost, pairs.random_cost, None),
        Fit::Weak(pairs, weak) => (
            pairs.len(),
            pairs.ot_cost,
            pairs.random_cost,
            Some(WeakPlanReport {
                gamma: weak.gamma,
                cost: pairs.cost,
                spread: pairs.spread,
                mean_support: pairs.mean_support(),
                gap: pairs.gap,
                draws: weak.draws,
                final_draw_spread: mean(&recent_spread),
            }),
        ),
    };
    let report = WarmStartReport {
        pairs,
        pair_ot_cost,
        pair_random_cost,
        targets_per_block: targets_per_block(per_block, w),
        weak_plan,
        style_groups,
        final_regression_loss: mean(&recent),
        regression_losses,
        potential_losses: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
    };
    let pairs = match fit {
        Fit::Pairs(pairs) => Some(AnchorPairs::Strong(pairs)),
        Fit::Grouped(pairs, ..) => Some(AnchorPairs::Grouped(pairs)),
        Fit::Weak(..) => None,
    };
    Ok((t, report, pairs))
}

/// Trains `f` alone for `steps` batches against the fixed `t` (the NOT f-step with
/// `objective`); returns f, its optimizer and the losses.
#[allow(clippy::too_many_arguments)]
pub fn potential_warm_up(
    t: &TransportMap,
    mut f: Potential,
    mut optimizer: ModuleOptimizer,
    source: &super::sampler::BatchSampler,
    target: &super::sampler::BatchSampler,
    steps: u64,
    batch_size: usize,
    lr: f64,
    objective: PotentialObjective,
    rng: &mut SeedRng,
    device: &Device,
    replicas: &Replicas,
    bar: &ProgressBar,
) -> Result<(Potential, ModuleOptimizer, Vec<f64>), VoxelError> {
    let mut losses = Vec::with_capacity(steps as usize);
    bar.set_length(steps);
    bar.set_position(0);
    for step in 1..=steps {
        let x = source.batch(batch_size, rng, device)?;
        let y = target.batch(batch_size, rng, device)?;
        let value;
        (f, value) =
            super::steps::f_step(t, f, &mut optimizer, lr, x, y, None, objective, replicas);
        losses.push(value);
        bar.set_message(format!("warm start: f only, L_f {value:+.5}"));
        bar.set_position(step);
    }
    Ok((f, optimizer, losses))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> WarmStartReport {
        WarmStartReport {
            pairs: 8,
            pair_ot_cost: 0.25,
            pair_random_cost: 0.5,
            targets_per_block: 2,
            weak_plan: None,
            style_groups: None,
            final_regression_loss: 0.125,
            regression_losses: vec![0.5, 0.25],
            potential_losses: vec![-1.0],
            seconds: 3.0,
        }
    }

    #[test]
    fn report_round_trips_and_absence_is_none() {
        let run = tempfile::tempdir().unwrap();
        assert!(read_report(run.path()).unwrap().is_none());
        write_report(run.path(), &report()).unwrap();
        assert_eq!(read_report(run.path()).unwrap(), Some(report()));
    }

    #[test]
    fn corrupt_or_unreadable_report_is_refused_with_its_path() {
        let run = tempfile::tempdir().unwrap();
        std::fs::write(run.path().join(REPORT_FILE), b"{\"pairs\": ").unwrap();
        let error = read_report(run.path()).unwrap_err();
        assert!(matches!(error, ReportError::Parse { .. }), "{error}");
        assert!(
            error
                .to_string()
                .contains("warm_start.json is not a warm-start report")
        );
        std::fs::remove_file(run.path().join(REPORT_FILE)).unwrap();
        // A directory where the file should be cannot be read as one.
        std::fs::create_dir(run.path().join(REPORT_FILE)).unwrap();
        let error = read_report(run.path()).unwrap_err();
        assert!(matches!(error, ReportError::Read { .. }), "{error}");
    }
}
