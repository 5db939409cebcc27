//! `ot3d eval`: a shipped map on held-out source digits of each color, judged by the
//! classifier (target accuracy, FID-3D), by color (preservation), by cost (against exact
//! discrete OT and random pairing) and by spread (mode-collapse check).

use super::baseline::{Baseline, baseline, partner_each_color};
use super::classifier_train::{ClassifierError, load_classifier};
use super::metrics::{dominant_color, frechet_distance, mean_pairwise_sq_distance};
use crate::digits::{ClassDigits, DigitOrigin, DigitsError, grids_tensor};
use crate::mapping::{MapError, load_model_dir, map_draws, map_each_color};
use burn::tensor::{Device, Tensor, TensorData};
use ot3d_models::assignment::min_cost_assignment;
use ot3d_models::mnist::Split;
use ot3d_models::nets::DigitClassifier;
use ot3d_models::nets::classifier_weights::ClassifierManifest;
use ot3d_models::nets::weights::Manifest;
use ot3d_models::voxel::{Coloring, GRID_LEN, VoxelError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("map: {0}")]
    Map(#[from] MapError),
    #[error("classifier: {0}")]
    Classifier(#[from] ClassifierError),
    #[error(transparent)]
    Data(#[from] DigitsError),
    #[error("cannot voxelize: {0}")]
    Voxel(#[from] VoxelError),
    #[error("--count must be at least 8 (2 per color), got {0}")]
    TooFew(usize),
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalRequest {
    pub weights: PathBuf,
    pub classifier: PathBuf,
    pub mnist_dir: PathBuf,
    /// Source test digits in all (split evenly over the four colors).
    pub count: usize,
    pub seed: u64,
    /// Show a progress bar over the stages.
    pub progress: bool,
}

/// Classifier and color judgments of one set of digits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub name: String,
    pub digits: usize,
    /// Share the classifier calls the target digit.
    pub target_accuracy: f64,
    /// Share whose dominant color equals the input's (None where there is no input).
    pub color_preservation: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fid {
    /// T(X_test) vs real target test digits.
    pub map: f64,
    /// X_test itself (the identity map) vs real target test digits.
    pub identity: f64,
    /// Target train vs target test digits: the floor a perfect map could reach.
    pub floor: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    /// Mean ‖x − T(x)‖²/D over the mapped digits.
    pub map: f64,
    /// Exact discrete OT between equal-sized source and target test batches, per pair.
    pub exact_ot: f64,
    /// Random pairing of the same batches (mean over all pairs).
    pub random_pairing: f64,
    /// Pairs in the exact problem.
    pub pairs: usize,
    /// Exact discrete OT per pair at smaller samples of the same digits, then the full
    /// one: empirical OT between finite samples overestimates the OT cost between the
    /// distributions, the more so the fewer the samples, so a falling curve says how far
    /// `exact_ot` still sits above what a perfect map would pay.
    #[serde(default)]
    pub exact_ot_by_pairs: Vec<OtAtSize>,
}

/// Exact discrete OT cost per pair between `pairs` source and `pairs` target digits,
/// averaged over disjoint blocks of that size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OtAtSize {
    pub pairs: usize,
    pub cost: f64,
    /// Disjoint blocks averaged.
    pub blocks: usize,
}

/// Mean cosine similarity of each input x to what it is paired with: how much of the
/// input's own voxels an image keeps, scale-free (1 = the same digit up to brightness).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Similarity {
    /// x and T(x).
    pub map: f64,
    /// x and its exact-OT partner among the real target test digits.
    pub exact_ot: f64,
    /// x and a real target test digit paired at random (x_i with target i + 1).
    pub random_pairing: f64,
}

/// How differently a stochastic map T(x, z) maps one input over draws of z (the weak
/// cost's point: several plausible targets per input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PerInputDiversity {
    /// Inputs it was measured on (the first of each color's share).
    pub inputs: usize,
    /// Draws of z per input.
    pub draws: usize,
    /// Mean over inputs of the mean pairwise ‖T(x, z) − T(x, z')‖²/D among its draws.
    pub mean_pairwise: f64,
}

/// Inputs per color and draws per input of [`PerInputDiversity`].
pub const PER_INPUT_DIGITS: usize = 16;
pub const PER_INPUT_DRAWS: usize = 8;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diversity {
    /// Mean pairwise ‖a − b‖²/D among outputs T(x).
    pub outputs: f64,
    /// The same among real target test digits.
    pub real_targets: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    pub model: PathBuf,
    pub source_digit: u8,
    pub target_digit: u8,
    pub training_steps: u64,
    /// Warm-start regression steps before NOT (0: none).
    #[serde(default)]
    pub warm_start_steps: u64,
    /// Rows: "T(x)" over all colors, "T(x) <color>" for each, "identity", "real target".
    pub rows: Vec<Row>,
    pub fid: Fid,
    pub cost: Cost,
    pub diversity: Diversity,
    pub seconds: f64,
    /// The digits' flavor ("plain", "rotated", "kaggle-style").
    #[serde(default)]
    pub flavor: String,
    /// Set when the classifier was not trained on that flavor, so its verdicts are weaker.
    #[serde(default)]
    pub judge_warning: Option<String>,
    /// T(x) beside each input's exact-OT partner among training targets (absent in reports
    /// written before it existed).
    #[serde(default)]
    pub baseline: Option<Baseline>,
    /// A stacked map's base (the model directory its manifest names); its rows are for
    /// the whole chain.
    #[serde(default)]
    pub stacked_on: Option<String>,
    /// Incomplete transport's target weight the map was trained with (1: complete).
    #[serde(default = "complete_transport")]
    pub target_weight: f64,
    /// Cosine similarity of inputs to T(x) and to their exact-OT and random partners
    /// (absent in reports written before it existed).
    #[serde(default)]
    pub similarity: Option<Similarity>,
    /// The weak cost's γ of a stochastic map (None: the strong cost).
    #[serde(default)]
    pub weak_gamma: Option<f64>,
    /// The style groups a stochastic map's plan kept (`--weak-groups`; None: the exact
    /// weak plan, or a deterministic map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weak_groups: Option<usize>,
    /// Spread of a stochastic map's draws for one input (None for a deterministic map).
    #[serde(default)]
    pub per_input: Option<PerInputDiversity>,
}

fn complete_transport() -> f64 {
    1.0
}

/// What the classifier makes of a set of digits, from one pass over them.
pub(crate) struct Classified {
    /// Penultimate features, `dim` per digit.
    pub features: Vec<f32>,
    pub dim: usize,
    pub predicted: Vec<u8>,
}

pub(crate) fn classify(classifier: &DigitClassifier, grids: &[f32], device: &Device) -> Classified {
    let mut out = Classified {
        features: Vec::new(),
        dim: 0,
        predicted: Vec::new(),
    };
    for chunk in grids.chunks(256 * GRID_LEN) {
        let f = classifier.features(grids_tensor(chunk.to_vec(), device));
        out.dim = f.dims()[1];
        out.predicted
            .extend(classifier.predict_from_features(f.clone()));
        out.features
            .extend(f.into_data().try_to_vec::<f32>().expect("f32 features"));
    }
    out
}

/// A row from per-digit judgments: whether each digit was called the target, and (for a
/// map) whether it kept its input's color.
fn row(name: &str, is_target: &[bool], kept_color: Option<&[bool]>) -> Row {
    Row {
        name: name.to_string(),
        digits: is_target.len(),
        target_accuracy: share(is_target.iter().copied()),
        color_preservation: kept_color.map(|kept| share(kept.iter().copied())),
    }
}

/// `[m, n]` matrix of ‖a_i − b_j‖²/D (row-major) between the m digits of `a` and the n of
/// `b`, through one matrix product.
pub(crate) fn sq_distance_matrix(a: &[f32], b: &[f32], device: &Device) -> Vec<f64> {
    let (m, n) = (a.len() / GRID_LEN, b.len() / GRID_LEN);
    let a = Tensor::<2>::from_data(TensorData::new(a.to_vec(), [m, GRID_LEN]), device);
    let b = Tensor::<2>::from_data(TensorData::new(b.to_vec(), [n, GRID_LEN]), device);
    let aa = a.clone().powi_scalar(2).sum_dim(1);
    let bb = b.clone().powi_scalar(2).sum_dim(1).reshape([1, n]);
    let d = aa + bb - a.matmul(b.transpose()).mul_scalar(2.0);
    d.clamp_min(0.0)
        .div_scalar(GRID_LEN as f64)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32 distances")
        .into_iter()
        .map(f64::from)
        .collect()
}

fn share(hits: impl Iterator<Item = bool>) -> f64 {
    let (mut yes, mut all) = (0usize, 0usize);
    for hit in hits {
        yes += hit as usize;
        all += 1;
    }
    yes as f64 / all.max(1) as f64
}

/// Runs every metric; `device` computes T, the classifier and the distance matrix.
pub fn evaluate(request: &EvalRequest, device: &Device) -> Result<EvalReport, EvalError> {
    let started = std::time::Instant::now();
    if request.count < 8 {
        return Err(EvalError::TooFew(request.count));
    }
    let (t, manifest) = load_model_dir(&request.weights, device)?;
    let (classifier, judge) = load_classifier(&request.classifier, device)?;
    let flavor = manifest.voxel.flavor.name().to_string();
    let target = manifest.target_digit;
    // Stages: source digits mapped, real digits, classifier, exact OT, discrete-OT baseline.
    let bar = crate::progress::steps_bar(5, request.progress);
    bar.set_message("mapping source digits");

    // Source test digits, a quarter in each color, and their maps.
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    // (color, first digit, digits) of each color's share of `inputs`.
    let mut shares = Vec::new();
    let by_color = map_each_color(
        &t,
        &manifest,
        &request.mnist_dir,
        request.count / 4,
        request.seed,
        device,
    )?;
    for part in &by_color {
        let first = inputs.len() / GRID_LEN;
        shares.push((part.color, first, part.inputs.len() / GRID_LEN));
        inputs.extend_from_slice(&part.inputs);
        outputs.extend_from_slice(&part.outputs);
    }
    // A stochastic map: several draws of z for the first inputs of each color.
    let per_input = if t.noise_channels() > 0 {
        let firsts: Vec<f32> = by_color
            .iter()
            .flat_map(|part| {
                let n = (part.inputs.len() / GRID_LEN).min(PER_INPUT_DIGITS);
                part.inputs[..n * GRID_LEN].iter().copied()
            })
            .collect();
        let drawn = map_draws(
            &t,
            &manifest,
            &firsts,
            PER_INPUT_DRAWS,
            request.seed,
            device,
        )?;
        let spreads: Vec<f64> = drawn
            .chunks(PER_INPUT_DRAWS * GRID_LEN)
            .map(|draws| mean_pairwise_sq_distance(draws, GRID_LEN))
            .collect();
        Some(PerInputDiversity {
            inputs: spreads.len(),
            draws: PER_INPUT_DRAWS,
            mean_pairwise: spreads.iter().sum::<f64>() / spreads.len().max(1) as f64,
        })
    } else {
        None
    };
    bar.inc(1);
    bar.set_message("real target digits");

    // Real target digits: test (the reference) and train (for the FID floor).
    let palette = DigitOrigin::Mnist {
        dir: request.mnist_dir.clone(),
        voxel: ot3d_models::voxel::VoxelConfig {
            coloring: Coloring::Palette,
            ..manifest.voxel.clone()
        },
    };
    let n = inputs.len() / GRID_LEN;
    let target_test =
        ClassDigits::load(&palette, Split::Test, target)?.sample_values(n, request.seed)?;
    let target_train =
        ClassDigits::load(&palette, Split::Train, target)?.sample_values(n, request.seed)?;

    bar.inc(1);
    bar.set_message("classifier");
    let mapped = classify(&classifier, &outputs, device);
    let identity = classify(&classifier, &inputs, device);
    let real = classify(&classifier, &target_test, device);
    let floor = classify(&classifier, &target_train, device);
    let is_target =
        |c: &Classified| -> Vec<bool> { c.predicted.iter().map(|&p| p == target).collect() };
    let mapped_is_target = is_target(&mapped);
    let kept_color = colors_kept(&inputs, &outputs);
    let mut rows = vec![row("T(x)", &mapped_is_target, Some(&kept_color))];
    for (color, first, n) in shares {
        let digits = first..first + n;
        rows.push(row(
            &format!("T(x) {color}"),
            &mapped_is_target[digits.clone()],
            Some(&kept_color[digits]),
        ));
    }
    rows.push(row("identity", &is_target(&identity), None));
    rows.push(row("real target", &is_target(&real), None));
    let dim = mapped.dim;
    let fid = Fid {
        map: frechet_distance(&mapped.features, &real.features, dim),
        identity: frechet_distance(&identity.features, &real.features, dim),
        floor: frechet_distance(&floor.features, &real.features, dim),
    };

    bar.inc(1);
    bar.set_message("exact OT");
    let (cost, similarity) = transport_costs(&inputs, &outputs, &target_test, device);
    bar.inc(1);
    bar.set_message("discrete-OT baseline");
    let partnered = partner_each_color(
        by_color,
        &manifest.voxel,
        &request.mnist_dir,
        target,
        request.seed,
        device,
    )?;
    let baseline = baseline(&partnered, &target_test, device);
    bar.finish_and_clear();
    let diversity = Diversity {
        outputs: mean_pairwise_sq_distance(&outputs, GRID_LEN),
        real_targets: mean_pairwise_sq_distance(&target_test, GRID_LEN),
    };
    Ok(EvalReport {
        model: request.weights.clone(),
        source_digit: manifest.source_digit,
        target_digit: target,
        training_steps: manifest.training_steps,
        warm_start_steps: manifest.warm_start_steps,
        rows,
        fid,
        cost,
        diversity,
        seconds: started.elapsed().as_secs_f64(),
        judge_warning: judge_warning(&flavor, &judge),
        flavor,
        baseline: Some(baseline),
        stacked_on: manifest.stacked_on.as_ref().map(|s| s.dir.clone()),
        target_weight: manifest.target_weight,
        similarity: Some(similarity),
        weak_gamma: manifest.weak_gamma,
        weak_groups: manifest.weak_groups,
        per_input,
    })
}

/// A warning when the classifier judging `flavor` digits never saw that flavor in training.
pub fn judge_warning(flavor: &str, judge: &ClassifierManifest) -> Option<String> {
    if judge.training_flavors.iter().any(|f| f == flavor) {
        return None;
    }
    let accuracy = judge.test_accuracy.get(flavor).map_or(String::new(), |a| {
        format!(" (its test accuracy on them: {:.1}%)", 100.0 * a)
    });
    Some(format!(
        "the classifier was trained on {} digits only, not on {flavor} ones{accuracy}: \
         accuracy and FID-3D judge this map weakly. Train a judge that knows them with \
         `ot3d classifier train --flavors plain,rotated,kaggle-style --out DIR` and pass \
         --classifier DIR",
        judge.training_flavors.join(", ")
    ))
}

/// Share of outputs whose dominant color equals their input's (an empty input counts as
/// not preserved).
pub fn color_preservation(inputs: &[f32], outputs: &[f32]) -> f64 {
    share(colors_kept(inputs, outputs).into_iter())
}

/// For each digit, whether the output's dominant color equals its input's.
fn colors_kept(inputs: &[f32], outputs: &[f32]) -> Vec<bool> {
    inputs
        .chunks(GRID_LEN)
        .zip(outputs.chunks(GRID_LEN))
        .map(|(x, y)| {
            let color = dominant_color(x);
            color.is_some() && color == dominant_color(y)
        })
        .collect()
}

/// Cosine similarity of two digits (0 when either is empty).
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa > 0.0 && bb > 0.0 {
        ab / (aa * bb).sqrt()
    } else {
        0.0
    }
}

/// Mean cosine similarity of digit i of `a` to digit `partner(i)` of `b`, over `n` digits.
fn mean_similarity(a: &[f32], b: &[f32], n: usize, partner: impl Fn(usize) -> usize) -> f64 {
    let digit = |v: &[f32], i: usize| -> Vec<f32> { v[i * GRID_LEN..(i + 1) * GRID_LEN].to_vec() };
    (0..n)
        .map(|i| cosine_similarity(&digit(a, i), &digit(b, partner(i))))
        .sum::<f64>()
        / n.max(1) as f64
}

/// The map's cost beside exact OT and random pairing between source and target batches,
/// and the inputs' similarity to T(x) and to those partners.
pub fn transport_costs(
    inputs: &[f32],
    outputs: &[f32],
    targets: &[f32],
    device: &Device,
) -> (Cost, Similarity) {
    let n = (inputs.len() / GRID_LEN).min(targets.len() / GRID_LEN);
    let map = inputs
        .iter()
        .zip(outputs)
        .map(|(x, y)| ((x - y) as f64).powi(2))
        .sum::<f64>()
        / inputs.len() as f64;
    let matrix = sq_distance_matrix(&inputs[..n * GRID_LEN], &targets[..n * GRID_LEN], device);
    let (assignment, exact_ot) = exact_ot(&matrix, n);
    let random_pairing = matrix.iter().sum::<f64>() / (n * n) as f64;
    // Blocks of random digits: the inputs come sorted by color, and a block of one color's
    // inputs against mixed targets would measure color mismatch, not sample size.
    let mut exact_ot_by_pairs = exact_ot_in_blocks(
        &matrix,
        n,
        &[8, 4, 2],
        &shuffled(n, BLOCK_SEED),
        &shuffled(n, BLOCK_SEED + 1),
    );
    exact_ot_by_pairs.push(OtAtSize {
        pairs: n,
        cost: exact_ot,
        blocks: 1,
    });
    let mapped = inputs.len() / GRID_LEN;
    let similarity = Similarity {
        map: mean_similarity(inputs, outputs, mapped, |i| i),
        exact_ot: mean_similarity(inputs, targets, n, |i| assignment[i]),
        random_pairing: mean_similarity(inputs, targets, n, |i| (i + 1) % n),
    };
    (
        Cost {
            map,
            exact_ot,
            random_pairing,
            pairs: n,
            exact_ot_by_pairs,
        },
        similarity,
    )
}

/// The exact discrete OT assignment of the `[n, n]` cost matrix (row i to column
/// `assignment[i]`) and its mean cost per pair.
fn exact_ot(matrix: &[f64], n: usize) -> (Vec<usize>, f64) {
    let assignment = min_cost_assignment(matrix, n);
    let cost = assignment
        .iter()
        .enumerate()
        .map(|(i, &j)| matrix[i * n + j])
        .sum::<f64>()
        / n as f64;
    (assignment, cost)
}

/// Seed of the orders that cut the sample-size blocks.
const BLOCK_SEED: u64 = 0x6f74_626c;

/// `0..n` in a random order fixed by `seed`.
fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = ot3d_models::rng::SeedRng::new(seed);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    order
}

/// Exact OT per pair within `k` disjoint blocks of the `[n, n]` cost matrix (the b-th
/// `n/k` sources of `rows` against the b-th `n/k` targets of `cols`), averaged, for each
/// `k` of `splits` that leaves at least 2 pairs per block.
fn exact_ot_in_blocks(
    matrix: &[f64],
    n: usize,
    splits: &[usize],
    rows: &[usize],
    cols: &[usize],
) -> Vec<OtAtSize> {
    splits
        .iter()
        .filter(|&&k| k > 0 && n / k >= 2)
        .map(|&k| {
            let m = n / k;
            let total: f64 = (0..k)
                .map(|block| {
                    let first = block * m;
                    let sub: Vec<f64> = rows[first..first + m]
                        .iter()
                        .flat_map(|&i| {
                            cols[first..first + m]
                                .iter()
                                .map(move |&j| matrix[i * n + j])
                        })
                        .collect();
                    exact_ot(&sub, m).1
                })
                .sum();
            OtAtSize {
                pairs: m,
                cost: total / k as f64,
                blocks: k,
            }
        })
        .collect()
}

/// "N NOT steps", with the warm start's regression steps when there were any.
pub fn training_summary(training_steps: u64, warm_start_steps: u64) -> String {
    let not = format!(
        "{training_steps} NOT step{}",
        if training_steps == 1 { "" } else { "s" }
    );
    if warm_start_steps == 0 {
        not
    } else {
        format!("{warm_start_steps} warm-start regression steps, then {not}")
    }
}

/// The report's training line: [`training_summary`], and the base map when stacked.
pub fn report_training(report: &EvalReport) -> String {
    let summary = training_summary(report.training_steps, report.warm_start_steps);
    match &report.stacked_on {
        Some(dir) => format!("{summary}, stacked on {dir}"),
        None => summary,
    }
}

/// The report as a terminal table.
pub fn table(report: &EvalReport) -> String {
    let mut out = format!(
        "{} ({} → {}, {}), evaluated in {:.1} s\n\n",
        report.model.display(),
        report.source_digit,
        report.target_digit,
        report_training(report),
        report.seconds
    );
    out += &format!(
        "{:<16} {:>7} {:>16} {:>19}\n",
        "digits", "count", "target accuracy", "color preservation"
    );
    for row in &report.rows {
        let color = row
            .color_preservation
            .map_or("-".to_string(), |c| format!("{:.1}%", 100.0 * c));
        out += &format!(
            "{:<16} {:>7} {:>15.1}% {:>19}\n",
            row.name,
            row.digits,
            100.0 * row.target_accuracy,
            color
        );
    }
    out += &format!(
        "\nFID-3D   T(x) {:.3}   identity {:.3}   floor (target train vs test) {:.3}\n",
        report.fid.map, report.fid.identity, report.fid.floor
    );
    out += &format!(
        "cost ‖x−y‖²/D   T(x) {:.5}   exact OT {:.5}   random pairing {:.5}   ({} pairs)\n",
        report.cost.map, report.cost.exact_ot, report.cost.random_pairing, report.cost.pairs
    );
    if report.cost.exact_ot_by_pairs.len() > 1 {
        let sizes: Vec<String> = report
            .cost
            .exact_ot_by_pairs
            .iter()
            .map(|at| format!("{} pairs {:.5}", at.pairs, at.cost))
            .collect();
        out += &format!(
            "exact OT by sample size (fewer pairs overestimate more)   {}\n",
            sizes.join("   ")
        );
    }
    out += &format!(
        "diversity (mean pairwise ‖a−b‖²/D)   outputs {:.5}   real targets {:.5}   ratio {:.2}\n",
        report.diversity.outputs,
        report.diversity.real_targets,
        report.diversity.outputs / report.diversity.real_targets.max(f64::MIN_POSITIVE)
    );
    if let Some(s) = &report.similarity {
        out += &format!(
            "similarity to the input (mean cosine)   T(x) {:.3}   exact-OT partner {:.3}   random target {:.3}\n",
            s.map, s.exact_ot, s.random_pairing
        );
    }
    if let Some(p) = &report.per_input {
        out += &format!(
            "per-input diversity ({} draws of z for each of {} inputs, mean pairwise ‖T(x,z)−T(x,z')‖²/D)   {:.5}   ratio to real targets' {:.3}{}\n",
            p.draws,
            p.inputs,
            p.mean_pairwise,
            p.mean_pairwise / report.diversity.real_targets.max(f64::MIN_POSITIVE),
            report
                .weak_gamma
                .map_or(String::new(), |g| format!("   (weak cost, γ = {g})"))
        );
    }
    if report.target_weight != 1.0 {
        out += &format!(
            "incomplete transport: target weight w = {} (T(x) covers the nearest 1/w of the targets)\n",
            report.target_weight
        );
    }
    if let Some(b) = &report.baseline {
        out += &format!(
            "discrete-OT baseline ({} training {}s per color)   x→partner {:.5}   T(x)→partner {:.5}   \
             T(x)→nearest {:.5}   real→nearest {:.5}   nearest is partner {:.1}%\n",
            b.pool_per_color,
            report.target_digit,
            b.partner_cost,
            b.map_to_partner,
            b.map_to_nearest,
            b.real_to_nearest,
            100.0 * b.nearest_is_partner
        );
    }
    if let Some(warning) = &report.judge_warning {
        out += &format!("\nwarning: {warning}\n");
    }
    out
}

/// Headline numbers for a model manifest's `metrics`.
pub fn manifest_metrics(report: &EvalReport) -> Vec<(String, f64)> {
    let all = &report.rows[0];
    vec![
        ("target_accuracy".into(), all.target_accuracy),
        (
            "color_preservation".into(),
            all.color_preservation.unwrap_or(0.0),
        ),
        ("fid3d".into(), report.fid.map),
        ("fid3d_floor".into(), report.fid.floor),
        ("transport_cost".into(), report.cost.map),
        ("exact_ot_cost".into(), report.cost.exact_ot),
        ("diversity_ratio".into(), {
            report.diversity.outputs / report.diversity.real_targets.max(f64::MIN_POSITIVE)
        }),
    ]
}

/// Adds the report's headline numbers to the model's manifest (weights untouched).
pub fn record_in_manifest(dir: &Path, report: &EvalReport) -> Result<Manifest, EvalError> {
    let path = dir.join(ot3d_models::nets::weights::MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|error| MapError::Read {
        path: path.clone(),
        error,
    })?;
    let mut manifest = Manifest::parse(&text).map_err(|problem| MapError::Weights {
        dir: dir.to_path_buf(),
        problem,
    })?;
    for (name, value) in manifest_metrics(report) {
        manifest.metrics.insert(name, value);
    }
    let json = serde_json::to_string_pretty(&manifest).expect("a manifest serializes");
    crate::atomic_file::write_atomic(&path, json.as_bytes())
        .map_err(|error| EvalError::Write { path, error })?;
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ot3d_models::rng::SeedRng;
    use ot3d_models::voxel::DigitColor;

    /// `n` random sparse digits, digit i in color `colors[i % 4]`.
    fn digits(n: usize, colors: [DigitColor; 4], seed: u64) -> Vec<f32> {
        let cells = GRID_LEN / 3;
        let mut rng = SeedRng::new(seed);
        let mut out = vec![0.0f32; n * GRID_LEN];
        for i in 0..n {
            let rgb = colors[i % 4].rgb();
            for _ in 0..40 {
                let cell = rng.below(cells as u64) as usize;
                let v = 0.5 + 0.5 * rng.uniform_f32();
                for c in 0..3 {
                    out[i * GRID_LEN + c * cells + cell] = rgb[c] * v;
                }
            }
        }
        out
    }

    const COLORS: [DigitColor; 4] = DigitColor::ALL;

    #[test]
    fn color_preservation_of_identity_swap_and_empty_maps() {
        let x = digits(12, COLORS, 1);
        assert_eq!(color_preservation(&x, &x), 1.0);
        // The same shapes, each in the next color of the palette: nothing preserved.
        let rotated = [COLORS[1], COLORS[2], COLORS[3], COLORS[0]];
        let swapped = digits(12, rotated, 1);
        assert_eq!(color_preservation(&x, &swapped), 0.0);
        // Half the outputs keep their color.
        let mut half = x.clone();
        half[6 * GRID_LEN..].copy_from_slice(&swapped[6 * GRID_LEN..]);
        assert_eq!(color_preservation(&x, &half), 0.5);
        assert_eq!(color_preservation(&x, &vec![0.0; x.len()]), 0.0);
    }

    #[test]
    fn costs_of_identity_exact_ot_and_random_pairing() {
        let device = Device::flex();
        let x = digits(6, COLORS, 2);
        let y = digits(6, COLORS, 3);
        // T = identity costs nothing; exact OT of a set onto a shuffled copy of itself is 0.
        let mut shuffled = Vec::new();
        for i in [3, 0, 5, 1, 4, 2] {
            shuffled.extend_from_slice(&x[i * GRID_LEN..(i + 1) * GRID_LEN]);
        }
        let (cost, similarity) = transport_costs(&x, &x, &shuffled, &device);
        assert_eq!(cost.map, 0.0);
        assert!(cost.exact_ot.abs() < 1e-6, "{}", cost.exact_ot);
        assert!(cost.random_pairing > 0.0);
        // The identity and the exact-OT partner (x itself) are fully similar.
        assert!((similarity.map - 1.0).abs() < 1e-9);
        assert!((similarity.exact_ot - 1.0).abs() < 1e-6);
        assert!(similarity.random_pairing < 1.0);
        // Against other digits: exact OT ≤ random pairing, and both match a direct sum.
        let (cost, similarity) = transport_costs(&x, &x, &y, &device);
        let expected: f64 = (0..6)
            .map(|i| {
                let j = (i + 1) % 6;
                cosine_similarity(
                    &x[i * GRID_LEN..(i + 1) * GRID_LEN],
                    &y[j * GRID_LEN..(j + 1) * GRID_LEN],
                )
            })
            .sum::<f64>()
            / 6.0;
        assert!((similarity.random_pairing - expected).abs() < 1e-12);
        let direct = |i: usize, j: usize| {
            (0..GRID_LEN)
                .map(|k| (x[i * GRID_LEN + k] as f64 - y[j * GRID_LEN + k] as f64).powi(2))
                .sum::<f64>()
                / GRID_LEN as f64
        };
        let all: f64 = (0..6)
            .flat_map(|i| (0..6).map(move |j| (i, j)))
            .map(|(i, j)| direct(i, j))
            .sum();
        assert!((cost.random_pairing - all / 36.0).abs() < 1e-5);
        assert!(cost.exact_ot <= cost.random_pairing);
        let diagonal: f64 = (0..6).map(|i| direct(i, i)).sum::<f64>() / 6.0;
        assert!(cost.exact_ot <= diagonal + 1e-6);
        assert_eq!(cost.pairs, 6);
        // Sample sizes 6/2 = 3 (two blocks), then all 6.
        let sizes: Vec<(usize, usize)> = cost
            .exact_ot_by_pairs
            .iter()
            .map(|at| (at.pairs, at.blocks))
            .collect();
        assert_eq!(sizes, vec![(3, 2), (6, 1)]);
        assert_eq!(cost.exact_ot_by_pairs[1].cost, cost.exact_ot);
    }

    #[test]
    fn exact_ot_of_smaller_samples_overestimates() {
        // One set of points on a line against a shuffled copy: all n pairs cost nothing,
        // but blocks of the first n/k against the first n/k of the shuffle do not contain
        // each other's points, so they pay. Block costs by hand: points 0..8 at value i,
        // cost (a − b)², targets in the order 4 5 6 7 0 1 2 3.
        let n = 8;
        let order = [4usize, 5, 6, 7, 0, 1, 2, 3];
        let matrix: Vec<f64> = (0..n)
            .flat_map(|i| {
                order
                    .iter()
                    .map(move |&j| ((i as f64) - (j as f64)).powi(2))
            })
            .collect();
        let identity: Vec<usize> = (0..n).collect();
        let at = exact_ot_in_blocks(&matrix, n, &[4, 2, 1, 16], &identity, &identity);
        // k = 16 leaves fewer than 2 pairs per block: skipped.
        assert_eq!(at.len(), 3);
        // k = 4: blocks {0,1}→{4,5}, {2,3}→{6,7}, {4,5}→{0,1}, {6,7}→{2,3}: 16 per pair.
        assert_eq!((at[0].pairs, at[0].blocks, at[0].cost), (2, 4, 16.0));
        // k = 2: {0..3}→{4..7} and back: 16 per pair too.
        assert_eq!((at[1].pairs, at[1].cost), (4, 16.0));
        // All 8: each point finds itself.
        assert_eq!((at[2].pairs, at[2].cost), (8, 0.0));
        // Blocks cut by orders that keep each point with its copy cost nothing at any size.
        // (Column c holds point order[c]; the shift by 4 is its own inverse, so point i
        // sits in column order[i].)
        let copies = order.to_vec();
        let matched = exact_ot_in_blocks(&matrix, n, &[4, 2], &identity, &copies);
        assert!(matched.iter().all(|at| at.cost == 0.0), "{matched:?}");
        // The orders that cut blocks are permutations, fixed by their seed.
        let order = shuffled(50, 7);
        assert_eq!(order, shuffled(50, 7));
        assert_ne!(order, shuffled(50, 8));
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn cosine_similarity_by_hand() {
        assert!((cosine_similarity(&[1.0, 0.0], &[2.0, 0.0]) - 1.0).abs() < 1e-12);
        assert_eq!(cosine_similarity(&[1.0, 0.0], &[0.0, 3.0]), 0.0);
        // (1,1)·(1,0) / (√2 · 1).
        assert!((cosine_similarity(&[1.0, 1.0], &[1.0, 0.0]) - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(cosine_similarity(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn a_constant_map_has_no_diversity() {
        let x = digits(8, COLORS, 4);
        let constant: Vec<f32> = x[..GRID_LEN].repeat(8);
        assert!(mean_pairwise_sq_distance(&constant, GRID_LEN).abs() < 1e-9);
        assert!(mean_pairwise_sq_distance(&x, GRID_LEN) > 0.0);
    }
}
