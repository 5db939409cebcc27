//! Warm start of T before NOT: an exact discrete optimal-transport assignment (squared
//! distances, per color block) between training digits of the two classes, then T regressed
//! onto those pairs (large-scale OT mapping estimation, Seguy et al. 2018). NOT then
//! fine-tunes a T that already moves mass the cheap way instead of starting at the identity.
//! With target weight w > 1 the assignment is incomplete transport: n sources onto w·n
//! targets, each taking at most one, so the sources go to their nearest 1/w of the targets.

use super::config::WarmStart;
use crate::digits::{ClassDigits, grids_tensor};
use crate::stack::Stack;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::{Device, Tensor};
use indicatif::ProgressBar;
use ot3d_models::assignment::min_cost_rectangular_assignment;
use ot3d_models::nets::Potential;
use ot3d_models::nets::TransportMap;
use ot3d_models::rng::SeedRng;
use ot3d_models::voxel::{Coloring, DigitColor, GRID_LEN, VoxelConfig, VoxelError};
use serde::{Deserialize, Serialize};

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
fn cost_matrix(a: &[f32], b: &[f32], device: &Device) -> Vec<f64> {
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
    let mut rng = SeedRng::new(seed);
    let (mut sources, mut targets) = (Vec::new(), Vec::new());
    let (mut ot_total, mut random_total, mut count) = (0.0, 0.0, 0usize);
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
        let cost = cost_matrix(&xs[..n * GRID_LEN], &ys[..m * GRID_LEN], device);
        let assignment = min_cost_rectangular_assignment(&cost, n, m);
        for (i, &j) in assignment.iter().enumerate() {
            ot_total += cost[i * m + j];
            random_total += cost[i * m + (i + 1) % m];
            sources.extend_from_slice(&xs[i * GRID_LEN..(i + 1) * GRID_LEN]);
            targets.extend_from_slice(&ys[j * GRID_LEN..(j + 1) * GRID_LEN]);
        }
        count += n;
    }
    Ok(Pairs {
        sources,
        targets,
        ot_cost: ot_total / count.max(1) as f64,
        random_cost: random_total / count.max(1) as f64,
    })
}

/// What the warm start did, saved as warm_start.json in the run directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WarmStartReport {
    pub pairs: usize,
    pub pair_ot_cost: f64,
    pub pair_random_cost: f64,
    /// Target digits offered per color block (= `pairs`/blocks unless w > 1).
    #[serde(default)]
    pub targets_per_block: usize,
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

/// Regresses `t` onto the OT pairs of `settings` with Adam; returns the trained map.
#[allow(clippy::too_many_arguments)]
pub fn warm_start(
    t: TransportMap,
    source: &ClassDigits,
    stack: &Stack,
    target: &ClassDigits,
    voxel: &VoxelConfig,
    settings: &WarmStart,
    w: f64,
    batch_size: usize,
    seed: u64,
    device: &Device,
    bar: &ProgressBar,
) -> Result<(TransportMap, WarmStartReport), VoxelError> {
    let started = std::time::Instant::now();
    bar.set_message("warm start: exact OT pairs");
    let pairs = ot_pairs(
        source,
        stack,
        target,
        voxel,
        settings.pairs_per_color,
        w,
        seed,
        device,
    )?;
    let n = pairs.len();
    let inner = device.clone();
    let mut t = t;
    let mut optimizer: ModuleOptimizer = AdamConfig::new().init();
    let mut rng = SeedRng::new(seed ^ 0x7761_726d);
    let mut recent = std::collections::VecDeque::new();
    let mut regression_losses = Vec::with_capacity(settings.steps as usize);
    bar.set_length(settings.steps);
    bar.set_position(0);
    let cycle_length = settings.steps.div_ceil(settings.cycles.max(1));
    for step in 1..=settings.steps {
        let restart =
            (step - 1) % cycle_length == 0 || settings.restart_after.contains(&(step - 1));
        if step > 1 && restart {
            optimizer = AdamConfig::new().init();
        }
        let mut xs = Vec::with_capacity(batch_size * GRID_LEN);
        let mut ys = Vec::with_capacity(batch_size * GRID_LEN);
        for _ in 0..batch_size {
            let i = rng.below(n as u64) as usize;
            xs.extend_from_slice(&pairs.sources[i * GRID_LEN..(i + 1) * GRID_LEN]);
            ys.extend_from_slice(&pairs.targets[i * GRID_LEN..(i + 1) * GRID_LEN]);
        }
        let x = grids_tensor(xs, &inner);
        let y = grids_tensor(ys, &inner);
        let loss = (t.forward(x, None) - y).powi_scalar(2).mean();
        let value = loss.clone().into_scalar::<f32>() as f64;
        let grads = GradientsParams::from_grads(loss.backward(), &t);
        t = optimizer.step(settings.lr, t, grads);
        recent.push_back(value);
        regression_losses.push(value);
        if recent.len() > 50 {
            recent.pop_front();
        }
        bar.set_message(format!("warm start: ‖T(x) − y‖²/D {value:.5}"));
        bar.set_position(step);
    }
    let report = WarmStartReport {
        pairs: n,
        pair_ot_cost: pairs.ot_cost,
        pair_random_cost: pairs.random_cost,
        targets_per_block: targets_per_block(settings.pairs_per_color, w),
        final_regression_loss: recent.iter().sum::<f64>() / recent.len().max(1) as f64,
        regression_losses,
        potential_losses: Vec::new(),
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((t, report))
}

/// Trains `f` alone for `steps` batches against the fixed `t` (L_f = mean f(T(x)) −
/// mean f(y), the NOT f-step); returns f, its optimizer and the losses.
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
    w: f64,
    rng: &mut SeedRng,
    device: &Device,
    bar: &ProgressBar,
) -> Result<(Potential, ModuleOptimizer, Vec<f64>), VoxelError> {
    let mut losses = Vec::with_capacity(steps as usize);
    bar.set_length(steps);
    bar.set_position(0);
    for step in 1..=steps {
        let x = source.batch(batch_size, rng, device)?;
        let y = target.batch(batch_size, rng, device)?;
        let value;
        (f, value) = super::steps::f_step(t, f, &mut optimizer, lr, x, y, None, w);
        losses.push(value);
        bar.set_message(format!("warm start: f only, L_f {value:+.5}"));
        bar.set_position(step);
    }
    Ok((f, optimizer, losses))
}
