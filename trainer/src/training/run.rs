//! The NOT training loop: per outer step one f-step and K_T T-steps on fresh batches, a
//! loss log line, a checkpoint every N steps; resume, init-from, divergence guard, Ctrl-C.

use super::average::ParamAverage;
use super::checkpoint::{self, Checkpoint, CheckpointError, TrainingState};
use super::config::{NetsConfig, TrainConfig, WeakKernel};
use super::log::{LossLog, StepRecord};
use super::losses::{distance_cost_terms, repeat_draws, transport_loss, weak_cost_terms};
use super::replicas::{Replicas, ReplicasError, ShareLoss};
use super::restarts::{map_run, train_restarts};
use super::sampler::{BatchSampler, noise_batch};
use super::selection::{
    SelectionError, SelectionRecord, VALIDATION_SEED, Validator, hold_out, read_record,
    record_point, selected_t,
};
use super::steps::{anchored_t_step, f_step, fixed_on, score, t_step};
use super::style_groups::grouped_ot_pairs;
use super::warm_start::{
    AnchorPairs, REPORT_FILE, ot_pairs, potential_warm_up, sources_per_batch, warm_start,
    write_report,
};
use crate::atomic_file::write_atomic;
use crate::device::with_seed;
use crate::digits::{ClassDigits, DigitsError};
use crate::progress::steps_bar;
use crate::stack::Stack;
use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::tensor::Device;
use ot3d_models::mnist::Split;
use ot3d_models::nets::TransportMap;
use ot3d_models::rng::SeedRng;
use ot3d_models::voxel::VoxelError;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How a run begins.
#[derive(Debug, Clone)]
pub enum Start {
    /// A new run in an empty (or absent) directory.
    New,
    /// Continue the run's latest checkpoint exactly.
    Resume,
    /// A new run whose T starts from another run's map (its selected T, else its latest
    /// checkpoint's) and f from its latest checkpoint (transfer learning); optimizers and
    /// step start fresh.
    InitFrom(PathBuf),
}

/// Scale of a fresh init's noise-input weights when a deterministic map starts a stochastic
/// one (`--init-from` with `--weak-gamma`): T(x, z) starts near T(x), its draws already
/// apart.
pub const NOISE_INPUT_SCALE: f64 = 0.1;

/// How a run ended without error.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    Completed { step: u64 },
    Interrupted { step: u64 },
}

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid training config: {0}")]
    Config(String),
    /// A run of restarts that cannot go on or give its map (the message names the fix).
    #[error("{0}")]
    Restarts(String),
    #[error(transparent)]
    Data(#[from] DigitsError),
    #[error("cannot make a batch: {0}")]
    Voxel(#[from] VoxelError),
    #[error("--stack-on: {0}")]
    Stack(#[from] crate::mapping::MapError),
    #[error(
        "{dir} already holds a run (config.json): resume it with --resume, or pick another --run directory"
    )]
    RunExists { dir: PathBuf },
    #[error(
        "--init-from {other}: its networks ({theirs}) differ from this run's ({ours}); use the same --t-width/--t-depth/--f-width/--f-stages"
    )]
    NetsMismatch {
        other: PathBuf,
        theirs: String,
        ours: String,
    },
    #[error("{path}: {error}{}", storage_hint(error))]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Replicas(#[from] ReplicasError),
    #[error(transparent)]
    Selection(#[from] SelectionError),
    #[error(
        "cannot write the checkpoint of step {step}: {cause}{}. {}",
        match cause.as_ref() { CheckpointError::Io { error, .. } => storage_hint(error), _ => "" },
        match kept { Some(dir) => format!("The last complete checkpoint, {}, is intact: resume from it with `ot3d train --resume {}` once the disk has room.", dir.display(), run.display()), None => "No earlier checkpoint exists.".to_string() }
    )]
    CheckpointWrite {
        step: u64,
        run: PathBuf,
        // Not named `source`: the message already shows it, once.
        cause: Box<CheckpointError>,
        kept: Option<PathBuf>,
    },
    #[error(
        "training diverged at step {step}: {what} = {value} (bound ±{bound}); stopped without saving these weights. {}",
        match checkpoint { Some(dir) => format!("The last good checkpoint is {}: start a new run from it with lower learning rates (ot3d train --init-from RUN --lr-t … --lr-f …).", dir.display()), None => "No checkpoint was written yet; lower the learning rates and start again.".to_string() }
    )]
    Diverged {
        step: u64,
        what: &'static str,
        value: f64,
        bound: f64,
        checkpoint: Option<PathBuf>,
    },
}

/// What to do about a full or read-only disk, for error messages.
fn storage_hint(error: &std::io::Error) -> &'static str {
    match error.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            " (the disk is full: free some space or pick a --run directory on another disk)"
        }
        std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied => {
            " (the run directory is not writable: pick a writable --run directory)"
        }
        _ => "",
    }
}

/// Writes a checkpoint; on failure names the checkpoint that is still in charge.
fn save_checkpoint(run: &Path, state: &Checkpoint) -> Result<(), TrainError> {
    match checkpoint::save(run, state) {
        Ok(_) => Ok(()),
        Err(cause) => Err(TrainError::CheckpointWrite {
            step: state.state.step,
            run: run.to_path_buf(),
            cause: Box::new(cause),
            kept: checkpoint::latest_dir(run).ok().filter(|d| d.exists()),
        }),
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |error| TrainError::Io {
        path: path.to_path_buf(),
        error,
    }
}

pub fn config_path(run: &Path) -> PathBuf {
    run.join("config.json")
}

/// Reads a run's saved config.
pub fn read_config(run: &Path) -> Result<TrainConfig, TrainError> {
    let path = config_path(run);
    let text = std::fs::read_to_string(&path).map_err(io(&path))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Config(format!("{}: {e}", path.display())))
}

fn class_digits(config: &TrainConfig, digit: u8) -> Result<ClassDigits, TrainError> {
    // Training sees the train split only: test digits stay held out for evaluation.
    Ok(ClassDigits::load(
        &config.data.origin(),
        Split::Train,
        digit,
    )?)
}

/// Validates `t` at `step` and records it (its weights too when it is the best so far).
fn validate(
    run: &Path,
    validator: &Validator,
    record: Option<SelectionRecord>,
    config: &TrainConfig,
    t: &TransportMap,
    step: u64,
) -> Result<SelectionRecord, TrainError> {
    let (held_out, keep_all) = config
        .select
        .as_ref()
        .map_or((0, false), |s| (s.held_out, s.keep_all));
    let point = validator.score(t, step);
    Ok(record_point(run, record, held_out, point, t, keep_all)?)
}

fn adam(config: &TrainConfig) -> ModuleOptimizer {
    AdamConfig::new()
        .with_beta_1(config.beta_1)
        .with_beta_2(config.beta_2)
        .init()
}

/// New networks and optimizers; the weights follow from `config.seed` alone.
fn fresh(config: &TrainConfig, device: &Device) -> Checkpoint {
    let (t, f) = with_seed(device, config.seed, || {
        (
            config.nets.transport().init(device),
            config.nets.potential().init(device),
        )
    });
    Checkpoint {
        t,
        f,
        opt_t: adam(config),
        opt_f: adam(config),
        state: TrainingState {
            step: 0,
            rng: SeedRng::new(config.seed).state(),
            average_updates: None,
        },
        t_average: None,
    }
}

fn check(
    step: u64,
    what: &'static str,
    value: f64,
    config: &TrainConfig,
    run: &Path,
) -> Result<(), TrainError> {
    if value.is_finite() && value.abs() <= config.max_abs_loss {
        return Ok(());
    }
    Err(TrainError::Diverged {
        step,
        what,
        value,
        bound: config.max_abs_loss,
        checkpoint: checkpoint::latest_dir(run).ok().filter(|d| d.exists()),
    })
}

/// Trains per `config` in `run`, on `device` (gradients are enabled here). Stops early,
/// after writing a checkpoint, when `stop` becomes true.
pub fn train(
    config: &TrainConfig,
    run: &Path,
    start: Start,
    device: &Device,
    stop: &AtomicBool,
    progress: bool,
) -> Result<Finish, TrainError> {
    train_on(
        config,
        run,
        start,
        std::slice::from_ref(device),
        stop,
        progress,
    )
}

/// [`train`] data-parallel over `devices` (see [`Replicas`]): the first holds the networks,
/// the optimizers and the batches; every gradient step splits its batch evenly over all
/// of them. One device is exactly [`train`].
pub fn train_on(
    config: &TrainConfig,
    run: &Path,
    start: Start,
    devices: &[Device],
    stop: &AtomicBool,
    progress: bool,
) -> Result<Finish, TrainError> {
    if config.restarts > 1 {
        return train_restarts(config, run, start, devices, stop, progress);
    }
    config.validate().map_err(TrainError::Config)?;
    let replicas = Replicas::new(
        devices.iter().map(|d| d.clone().autodiff()).collect(),
        config.batch_size,
    )?;
    let device = replicas.main().clone();
    let source_digits = class_digits(config, config.source)?;
    let target_digits = class_digits(config, config.target)?;
    let stack = match &config.stack_on {
        Some(dir) => {
            Stack::on_top_of(
                dir,
                config.source,
                config.target,
                config.data.voxel(),
                &device,
            )?
            .0
        }
        None => Stack::default(),
    };
    // Model selection: its held-out sources leave the training set before anything (the
    // warm start's pairs included) sees them.
    let (source_digits, validator) = match &config.select {
        Some(select) => {
            let (kept, held) = hold_out(&source_digits, select)?;
            let inputs =
                stack.apply_values(&held.sample_values(held.len(), VALIDATION_SEED)?, &device);
            let validator = Validator::new(select, inputs, &target_digits, &devices[0])?;
            (kept, Some(validator))
        }
        None => (source_digits, None),
    };
    let mut selection = match &start {
        Start::Resume => read_record(run)?,
        _ => None,
    };

    let mut state = match &start {
        Start::New | Start::InitFrom(_) => {
            if config_path(run).exists() {
                return Err(TrainError::RunExists {
                    dir: run.to_path_buf(),
                });
            }
            let mut state = fresh(config, &device);
            if let Start::InitFrom(other) = &start {
                // A run of restarts starts others from its chosen restart.
                let other = &map_run(other)?;
                let theirs = read_config(other)?;
                // A deterministic map may start a stochastic one (the weak cost): the same
                // nets but for T's noise inputs, which it gains.
                let gains_noise = theirs.nets.t_noise_channels == 0
                    && NetsConfig {
                        t_noise_channels: config.nets.t_noise_channels,
                        ..theirs.nets.clone()
                    } == config.nets;
                if !gains_noise {
                    return Err(TrainError::NetsMismatch {
                        other: other.clone(),
                        theirs: format!("{:?}", theirs.nets),
                        ours: format!("{:?}", config.nets),
                    });
                }
                let mut t;
                (t, state.f, _) = checkpoint::load_latest_nets(other, &theirs.nets, &device)?;
                // Its map is the T its model selection chose, when it ran one (what
                // `ot3d export` ships), not the last iterate; f stays the latest, which the
                // warm start and NOT steps retrain anyway.
                if let Some(best) = read_record(other)?.and_then(|record| record.best) {
                    t = selected_t(other, best.step, t)?;
                    println!(
                        "starting from {}'s selected T (NOT step {})",
                        other.display(),
                        best.step
                    );
                }
                state.t = if config.nets.t_noise_channels > 0 {
                    t.with_noise_input(&state.t, NOISE_INPUT_SCALE)
                } else {
                    t
                };
            }
            state
        }
        Start::Resume => {
            let empty = fresh(config, &device);
            checkpoint::load_latest(run, empty.t, empty.f, empty.opt_t, empty.opt_f)?
        }
    };
    std::fs::create_dir_all(run).map_err(io(run))?;
    let json = serde_json::to_string_pretty(config).expect("config serializes");
    write_atomic(&config_path(run), json.as_bytes()).map_err(io(run))?;
    let mut log = LossLog::open(run, state.state.step).map_err(io(run))?;
    let mut rng = SeedRng::from_state(state.state.rng);

    let validates = |step: u64| {
        config
            .select
            .as_ref()
            .is_some_and(|s| step > 0 && (step.is_multiple_of(s.every) || step == config.steps))
    };
    if let (Start::Resume, Some(validator)) = (&start, &validator) {
        // The T a run resumes from joins the candidates unless it was validated: so a crash
        // between a validation step's checkpoint and its validation loses nothing, and an
        // interrupted run's last T is weighed too.
        let step = state.state.step;
        let missing = selection
            .as_ref()
            .is_none_or(|r| r.history.iter().all(|p| p.step != step));
        if step > 0 && missing {
            let t = state.map();
            selection = Some(validate(run, validator, selection, config, &t, step)?);
        }
    }

    let started_run = Instant::now();
    let bar = steps_bar(config.steps, progress);
    let source = BatchSampler::new(source_digits).stacked(stack);
    let target = BatchSampler::new(target_digits);
    // Transfer learning runs the warm start too, from the transferred T: regressing onto
    // the new data's OT pairs is the fast part of adapting a map (--warm-start-steps 0
    // skips it).
    let mut anchor_pairs = None;
    if let (Start::New | Start::InitFrom(_), Some(settings)) = (&start, &config.warm_start) {
        let (t, mut report, pairs) = warm_start(
            state.t,
            source.digits(),
            source.stack(),
            target.digits(),
            config.data.voxel(),
            settings,
            config.target_weight,
            config.weak.as_ref(),
            config.batch_size,
            config.seed,
            &device,
            &replicas,
            &bar,
        )?;
        state.t = t;
        anchor_pairs = pairs.filter(|_| settings.anchor > 0.0);
        if settings.f_steps > 0 {
            // Its own stream, so the NOT steps draw the same batches with or without it.
            let mut f_rng = SeedRng::new(config.seed ^ 0x0066_7761_726d);
            let losses;
            (state.f, state.opt_f, losses) = potential_warm_up(
                &state.t,
                state.f,
                state.opt_f,
                &source,
                &target,
                settings.f_steps,
                config.batch_size,
                config.lr_f,
                config.potential_objective(),
                &mut f_rng,
                &device,
                &replicas,
                &bar,
            )?;
            for &value in &losses {
                // Step 0: the warm start, before any NOT step.
                check(0, "warm-start L_f", value, config, run)?;
            }
            report.potential_losses = losses;
        }
        report.seconds = started_run.elapsed().as_secs_f64();
        let path = run.join(REPORT_FILE);
        write_report(run, &report).map_err(io(&path))?;
        // A checkpoint at step 0, so a crash during NOT resumes after the warm start.
        save_checkpoint(run, &state)?;
        bar.set_length(config.steps);
    }
    bar.set_position(state.state.step);
    // The average of T over the NOT steps: new from T as NOT begins, or the checkpoint's.
    let mut average = match (config.t_average > 0.0, state.t_average.take()) {
        (false, _) => None,
        (true, Some(saved)) => Some(ParamAverage::resume(
            &saved,
            config.t_average,
            state.state.average_updates.unwrap_or(0),
        )),
        (true, None) => Some(ParamAverage::new(&state.t, config.t_average)),
    };
    let anchor = config.warm_start.as_ref().map_or(0.0, |w| w.anchor);
    if anchor > 0.0 && anchor_pairs.is_none() {
        // A resumed anchored run: the same pairs again (the assignment is deterministic).
        let settings = config
            .warm_start
            .as_ref()
            .expect("an anchor has a warm start");
        anchor_pairs = Some(match config.weak.as_ref().filter(|weak| weak.groups > 0) {
            Some(weak) => {
                bar.set_message("anchored NOT: style-group pairs");
                AnchorPairs::Grouped(
                    grouped_ot_pairs(
                        source.digits(),
                        source.stack(),
                        target.digits(),
                        config.data.voxel(),
                        settings.pairs_per_color,
                        weak.groups,
                        weak.gamma,
                        config.seed,
                        &device,
                    )?
                    .0,
                )
            }
            None => {
                bar.set_message("anchored NOT: exact OT pairs");
                AnchorPairs::Strong(ot_pairs(
                    source.digits(),
                    source.stack(),
                    target.digits(),
                    config.data.voxel(),
                    settings.pairs_per_color,
                    config.target_weight,
                    config.seed,
                    &device,
                )?)
            }
        });
    }

    while state.state.step < config.steps {
        let started = Instant::now();
        let step = state.state.step + 1;

        // f-step: T fixed (its output detached), f pushed to separate T(x) from real targets.
        let x = source.batch(config.batch_size, &mut rng, &device)?;
        let y = target.batch(config.batch_size, &mut rng, &device)?;
        let z = config.weak.as_ref().map(|weak| {
            let channels = config.nets.t_noise_channels;
            noise_batch(
                config.batch_size,
                channels,
                weak.noise_std,
                weak.noise_layout,
                &mut rng,
                &device,
            )
        });
        let l_f;
        (state.f, l_f) = f_step(
            &state.t,
            state.f,
            &mut state.opt_f,
            config.lr_f,
            x,
            y,
            z,
            config.potential_objective(),
            &replicas,
        );
        check(step, "L_f", l_f, config, run)?;

        // K_T T-steps: T pulled toward cheap maps that f scores like targets.
        let gamma = config.weak.as_ref().map(|weak| weak.gamma_at(step));
        // f is fixed during T-steps: without its weights' gradients, backward computes only
        // what T needs (the gradient through f's input).
        let f_fixed = state.f.clone().no_grad();
        let lambda = config
            .warm_start
            .as_ref()
            .map_or(0.0, |w| w.anchor_at(step));
        let (mut l_t, mut cost, mut spread, mut anchor_fit) = (0.0, 0.0, None, None);
        for _ in 0..config.t_steps {
            if let Some(AnchorPairs::Strong(pairs)) = &anchor_pairs {
                let (x, y) = pairs.batch(config.batch_size, &mut rng, &device);
                let fit;
                (state.t, l_t, cost, fit) = anchored_t_step(
                    state.t,
                    &f_fixed,
                    &mut state.opt_t,
                    config.lr_t,
                    x,
                    y,
                    lambda,
                    config.target_weight,
                    &replicas,
                );
                anchor_fit = Some(fit);
                check(step, "L_T", l_t, config, run)?;
                continue;
            }
            match &config.weak {
                None => {
                    let x = source.batch(config.batch_size, &mut rng, &device)?;
                    (state.t, l_t, cost) = t_step(
                        state.t,
                        &f_fixed,
                        &mut state.opt_t,
                        config.lr_t,
                        x,
                        config.target_weight,
                        &replicas,
                    );
                }
                Some(weak) => {
                    // Z draws of z per x: the cost averages over them, the spread between
                    // them is what γ rewards. With style groups anchored, x comes from the
                    // grouped pairs (B/Z sources, so a step costs a strong one's) and each
                    // draw also fits the partner its z names.
                    let (x, z, y) = match &anchor_pairs {
                        Some(AnchorPairs::Grouped(pairs)) => {
                            let (x, z, y) = pairs.batch(
                                sources_per_batch(config.batch_size, weak.draws),
                                weak,
                                config.nets.t_noise_channels,
                                &mut rng,
                                &device,
                            );
                            (x, z, Some(y))
                        }
                        _ => {
                            let x = source.batch(config.batch_size, &mut rng, &device)?;
                            let z = noise_batch(
                                config.batch_size * weak.draws,
                                config.nets.t_noise_channels,
                                weak.noise_std,
                                weak.noise_layout,
                                &mut rng,
                                &device,
                            );
                            (x, z, None)
                        }
                    };
                    // Shares cut between whole inputs (B·Z rows of z, Z per input; the
                    // batch splits evenly), so each input's draws stay together.
                    let (grads, reported) = replicas.grads(&state.t, |t, share| {
                        let x = share.of(&x);
                        let t_xz =
                            t.forward(repeat_draws(x.clone(), weak.draws), Some(share.of(&z)));
                        let (cost_t, spread_t) = match weak.kernel {
                            WeakKernel::Quadratic => weak_cost_terms(x, t_xz.clone(), weak.draws),
                            WeakKernel::Distance => {
                                distance_cost_terms(x, t_xz.clone(), weak.draws)
                            }
                        };
                        let weak_cost =
                            cost_t.clone() - spread_t.clone().mul_scalar(gamma.unwrap_or(0.0));
                        let f = fixed_on(&f_fixed, share);
                        let loss = transport_loss(
                            weak_cost,
                            score(&f, t_xz.clone(), config.target_weight),
                        );
                        let mut reported = vec![loss.clone(), cost_t, spread_t];
                        let objective = match &y {
                            Some(y) => {
                                let fit = (t_xz - share.of(y)).powi_scalar(2).mean();
                                reported.push(fit.clone());
                                loss + fit.mul_scalar(lambda)
                            }
                            None => loss,
                        };
                        ShareLoss {
                            objective,
                            reported,
                        }
                    });
                    state.t = state.opt_t.step(config.lr_t, state.t, grads);
                    (l_t, cost) = (reported[0], reported[1]);
                    spread = Some(reported[2]);
                    anchor_fit = reported.get(3).copied();
                }
            }
            check(step, "L_T", l_t, config, run)?;
        }

        if let Some(average) = &mut average {
            average.update(&state.t);
        }
        state.state = TrainingState {
            step,
            rng: rng.state(),
            average_updates: average.as_ref().map(ParamAverage::updates),
        };
        let record = StepRecord {
            step,
            l_f,
            l_t,
            cost,
            seconds: started.elapsed().as_secs_f64(),
            gamma,
            spread,
            anchor_fit,
        };
        log.append(&record).map_err(io(log.path()))?;
        bar.set_message(format!("L_f {l_f:+.4} L_T {l_t:+.4} cost {cost:.5}"));
        bar.set_position(step);

        let interrupted = stop.load(Ordering::SeqCst);
        // A validation step is checkpointed first: a resumed run never redoes a validated
        // step, so the selection record only grows.
        if step % config.checkpoint_every == 0
            || step == config.steps
            || interrupted
            || validates(step)
        {
            state.t_average = average.as_ref().map(|a| a.apply(state.t.clone()));
            save_checkpoint(run, &state)?;
        }
        if let (true, Some(validator)) = (validates(step), &validator) {
            bar.set_message("validating T on held-out digits");
            let t = state.map();
            let record = validate(run, validator, selection.take(), config, &t, step)?;
            if let Some(best) = &record.best {
                bar.println(format!(
                    "step {step}: validation FID-3D {:.2} (best {:.2} at step {})",
                    record.history.last().map_or(f64::NAN, |p| p.fid),
                    best.fid,
                    best.step
                ));
            }
            selection = Some(record);
        }
        if interrupted {
            bar.abandon_with_message(format!("interrupted; checkpoint of step {step} saved"));
            return Ok(Finish::Interrupted { step });
        }
    }
    bar.finish();
    Ok(Finish::Completed {
        step: state.state.step,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::config::NetsConfig;
    use crate::training::losses::PotentialObjective;
    use burn::tensor::{Tensor, TensorData};

    #[test]
    fn a_nan_or_infinite_value_in_a_batch_trips_the_divergence_guard() {
        let device = Device::flex().autodiff();
        let nets = NetsConfig {
            t_width: 2,
            t_depth: 1,
            f_width: 2,
            f_stages: 1,
            t_noise_channels: 0,
        };
        let config = TrainConfig::reference(PathBuf::from("unused"));
        let run = tempfile::tempdir().unwrap();
        for bad in [f32::NAN, f32::INFINITY] {
            let (t, f) = (
                nets.transport().init(&device),
                nets.potential().init(&device),
            );
            let shape = [2, 3, 16, 16, 16];
            let mut values = vec![0.5f32; shape.iter().product()];
            values[1234] = bad;
            let batch = |v: Vec<f32>| Tensor::<5>::from_data(TensorData::new(v, shape), &device);
            let (x, y) = (batch(values.clone()), batch(vec![0.0; values.len()]));
            // Both updates see it: the f-step through T(x), the T-step through the cost.
            let (f, l_f) = f_step(
                &t,
                f,
                &mut adam(&config),
                1e-4,
                x.clone(),
                y,
                None,
                PotentialObjective::COMPLETE,
                &Replicas::single(&device),
            );
            let f_fixed = f.no_grad();
            let single = Replicas::single(&device);
            let (_, l_t, _) = t_step(t, &f_fixed, &mut adam(&config), 1e-4, x, 1.0, &single);
            for (what, value) in [("L_f", l_f), ("L_T", l_t)] {
                let err = check(7, what, value, &config, run.path()).unwrap_err();
                assert!(
                    matches!(err, TrainError::Diverged { step: 7, .. }),
                    "{bad} in the batch: {err}"
                );
                assert!(err.to_string().contains(what), "{err}");
            }
        }
    }
}
