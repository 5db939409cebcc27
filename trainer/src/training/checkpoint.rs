//! Checkpoints: T, f, both optimizer states, the step and the RNG state (and the average
//! of T's weights when the run keeps one). Each is written to
//! its own directory `checkpoints/step-NNNNNNNN/` (files fsynced, directory renamed into
//! place), then `checkpoints/LATEST` is replaced atomically — a crash at any moment leaves
//! the last complete checkpoint in charge.

use super::config::NetsConfig;
use crate::atomic_file::write_atomic;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::tensor::{Bytes, Device};
use ot3d_models::nets::burnpack::{self, BurnpackError};
use ot3d_models::nets::weights::check_finite;
use ot3d_models::nets::{Potential, TransportMap};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

const LATEST: &str = "LATEST";
/// Complete checkpoints kept on disk (older ones are removed after a new one lands).
const KEEP: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path}: {problem}")]
    Weights {
        path: PathBuf,
        problem: BurnpackError,
    },
    #[error(
        "{path}: {problem}. This checkpoint is corrupt or comes from a diverged run: write the name of the previous step-… directory beside it into checkpoints/LATEST to resume from there, or start a new run"
    )]
    NonFinite {
        path: PathBuf,
        problem: ot3d_models::nets::weights::WeightsError,
    },
    #[error("{path}: cannot read optimizer state: {message}")]
    Optimizer { path: PathBuf, message: String },
    #[error("{path}: bad training state: {message}")]
    State { path: PathBuf, message: String },
    #[error(
        "{dir} has no checkpoint (no {LATEST} file): nothing to resume; start a new run instead"
    )]
    NoCheckpoint { dir: PathBuf },
}

/// Where training stands, beside the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingState {
    /// Outer steps completed.
    pub step: u64,
    /// The batch sampler's RNG state.
    pub rng: [u64; 4],
    /// NOT steps folded into the average of T's weights (`t_average.bpk`), when the run
    /// keeps one (`--t-average`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub average_updates: Option<u64>,
}

/// Everything needed to continue a run exactly.
pub struct Checkpoint {
    pub t: TransportMap,
    pub f: Potential,
    pub opt_t: ModuleOptimizer,
    pub opt_f: ModuleOptimizer,
    pub state: TrainingState,
    /// The exponential moving average of T's weights over the NOT steps, when the run keeps
    /// one: the run's map (export and `--init-from` use it).
    pub t_average: Option<TransportMap>,
}

impl Checkpoint {
    /// The run's map: the average of T's weights when the run keeps one, else T itself.
    pub fn map(&self) -> TransportMap {
        self.t_average.clone().unwrap_or_else(|| self.t.clone())
    }
}

const AVERAGE_FILE: &str = "t_average.bpk";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |error| CheckpointError::Io {
        path: path.to_path_buf(),
        error,
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CheckpointError> {
    let mut file = std::fs::File::create(path).map_err(io(path))?;
    file.write_all(bytes).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

pub fn checkpoints_dir(run: &Path) -> PathBuf {
    run.join("checkpoints")
}

/// Writes a checkpoint of `step` and makes it the latest. Returns its directory.
pub fn save(run: &Path, checkpoint: &Checkpoint) -> Result<PathBuf, CheckpointError> {
    let root = checkpoints_dir(run);
    // A fresh name even when this step was saved before (e.g. a run resumed and stopped at
    // once): the directory LATEST names is never removed before LATEST moves on.
    let base = format!("step-{:08}", checkpoint.state.step);
    let name = (1..)
        .map(|n| {
            if n == 1 {
                base.clone()
            } else {
                format!("{base}-{n}")
            }
        })
        .find(|n| !root.join(n).exists())
        .expect("some suffix is free");
    let final_dir = root.join(&name);
    let tmp = root.join(format!(".{name}.partial"));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let weights = |path: PathBuf, bytes: Result<Vec<u8>, BurnpackError>| match bytes {
        Ok(bytes) => write_synced(&path, &bytes),
        Err(problem) => Err(CheckpointError::Weights { path, problem }),
    };
    weights(tmp.join("t.bpk"), burnpack::to_bytes(&checkpoint.t))?;
    weights(tmp.join("f.bpk"), burnpack::to_bytes(&checkpoint.f))?;
    if let Some(average) = &checkpoint.t_average {
        weights(tmp.join(AVERAGE_FILE), burnpack::to_bytes(average))?;
    }
    for (file, opt) in [
        ("opt_t.bpk", &checkpoint.opt_t),
        ("opt_f.bpk", &checkpoint.opt_f),
    ] {
        let path = tmp.join(file);
        let bytes = opt.into_bytes().map_err(|e| CheckpointError::Optimizer {
            path: path.clone(),
            message: e.to_string(),
        })?;
        write_synced(&path, &bytes)?;
    }
    let state = serde_json::to_vec_pretty(&checkpoint.state).expect("state serializes");
    write_synced(&tmp.join("state.json"), &state)?;
    std::fs::rename(&tmp, &final_dir).map_err(io(&final_dir))?;
    let latest = root.join(LATEST);
    write_atomic(&latest, name.as_bytes()).map_err(io(&latest))?;
    prune(&root, &name)?;
    Ok(final_dir)
}

/// Removes all but the newest `KEEP` complete checkpoints (never the latest), and any
/// half-written `.step-….partial` directory a killed process left behind (one run writes
/// at a time, so none is in progress now).
fn prune(root: &Path, latest: &str) -> Result<(), CheckpointError> {
    let entries: Vec<String> = std::fs::read_dir(root)
        .map_err(io(root))?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    for stale in entries
        .iter()
        .filter(|n| n.starts_with(".step-") && n.ends_with(".partial"))
    {
        let dir = root.join(stale);
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    let mut names: Vec<String> = entries
        .into_iter()
        .filter(|n| n.starts_with("step-"))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(KEEP);
    for name in names.into_iter().take(excess).filter(|n| n != latest) {
        let dir = root.join(name);
        std::fs::remove_dir_all(&dir).map_err(io(&dir))?;
    }
    Ok(())
}

/// The directory of the latest complete checkpoint of a run.
pub fn latest_dir(run: &Path) -> Result<PathBuf, CheckpointError> {
    let root = checkpoints_dir(run);
    let latest = root.join(LATEST);
    let name = match std::fs::read_to_string(&latest) {
        Ok(name) => name,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CheckpointError::NoCheckpoint {
                dir: run.to_path_buf(),
            });
        }
        Err(e) => return Err(io(&latest)(e)),
    };
    let name = name.trim();
    if !name.starts_with("step-") || name.contains(['/', '\\']) {
        return Err(CheckpointError::State {
            path: latest,
            message: format!("names {name:?}, not a checkpoint directory"),
        });
    }
    Ok(root.join(name))
}

/// Loads the latest checkpoint into networks and optimizers freshly built from the run's
/// config (`t`, `f`, `opt_t`, `opt_f`). Optimizer state follows the parameters' ids,
/// which burnpack restores with the weights.
pub fn load_latest(
    run: &Path,
    t: TransportMap,
    f: Potential,
    opt_t: ModuleOptimizer,
    opt_f: ModuleOptimizer,
) -> Result<Checkpoint, CheckpointError> {
    let dir = latest_dir(run)?;
    let read = |file: &str| {
        let path = dir.join(file);
        std::fs::read(&path)
            .map(|b| (path.clone(), b))
            .map_err(io(&path))
    };
    let template = t.clone();
    let (path, bytes) = read("t.bpk")?;
    let t = burnpack::load_bytes(t, &bytes).map_err(|problem| CheckpointError::Weights {
        path: path.clone(),
        problem,
    })?;
    check_finite(&t).map_err(|problem| CheckpointError::NonFinite { path, problem })?;
    let (path, bytes) = read("f.bpk")?;
    let f = burnpack::load_bytes(f, &bytes).map_err(|problem| CheckpointError::Weights {
        path: path.clone(),
        problem,
    })?;
    check_finite(&f).map_err(|problem| CheckpointError::NonFinite { path, problem })?;
    let optimizer = |file: &str, opt: ModuleOptimizer| {
        let (path, bytes) = read(file)?;
        opt.from_bytes(Bytes::from_bytes_vec(bytes))
            .map_err(|e| CheckpointError::Optimizer {
                path,
                message: e.to_string(),
            })
    };
    let opt_t = optimizer("opt_t.bpk", opt_t)?;
    let opt_f = optimizer("opt_f.bpk", opt_f)?;
    let (path, bytes) = read("state.json")?;
    let state: TrainingState =
        serde_json::from_slice(&bytes).map_err(|e| CheckpointError::State {
            path,
            message: e.to_string(),
        })?;
    let t_average = match state.average_updates {
        None => None,
        Some(_) => {
            let (path, bytes) = read(AVERAGE_FILE)?;
            let average = burnpack::load_bytes(template, &bytes).map_err(|problem| {
                CheckpointError::Weights {
                    path: path.clone(),
                    problem,
                }
            })?;
            check_finite(&average)
                .map_err(|problem| CheckpointError::NonFinite { path, problem })?;
            Some(average)
        }
    };
    Ok(Checkpoint {
        t,
        f,
        opt_t,
        opt_f,
        state,
        t_average,
    })
}

/// The latest checkpoint's networks and state only (export, evaluation, `--init-from`):
/// the optimizer states are read into throwaway optimizers. T is the run's map: the
/// average of its weights when the run keeps one, else the last iterate.
pub fn load_latest_nets(
    run: &Path,
    nets: &NetsConfig,
    device: &Device,
) -> Result<(TransportMap, Potential, TrainingState), CheckpointError> {
    let adam = || AdamConfig::new().init();
    let (t, f) =
        crate::device::unseeded(|| (nets.transport().init(device), nets.potential().init(device)));
    let loaded = load_latest(run, t, f, adam(), adam())?;
    Ok((loaded.t_average.unwrap_or(loaded.t), loaded.f, loaded.state))
}
