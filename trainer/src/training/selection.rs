//! Model selection during training: every few NOT steps, T's map of source training digits
//! held out of training is scored by FID-3D against the training targets (the judge
//! classifier's features), and the best T is kept beside the checkpoints as the run's map.
//!
//! NOT's iterates do not improve monotonically: with the CPU preset, FID-3D on the test
//! digits fell from NOT step 300 to 800 for 2 → 4 (38 → 32) but rose for 3 → 5 at seed 1
//! (33 → 54). Choosing the step on held-out *training* digits keeps the test digits out of
//! every choice.

use super::config::Selection;
use crate::atomic_file::write_atomic;
use crate::digits::ClassDigits;
use crate::eval::classifier_train::{ClassifierError, load_classifier};
use crate::eval::evaluate::classify;
use crate::eval::metrics::frechet_distance;
use crate::export::apply;
use burn::module::Module;
use burn::tensor::Device;
use ot3d_models::nets::burnpack;
use ot3d_models::nets::{DigitClassifier, TransportMap};
use ot3d_models::voxel::{GRID_LEN, VoxelError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The record of a run's selection, beside its config.
pub const SELECTION_FILE: &str = "selection.json";
/// Training targets whose features are the validation FID's reference.
pub const REFERENCE_DIGITS: usize = 1000;
/// Seed of the held-out digits' voxelization and of the reference draw, the same for every
/// run whatever its seed, so validations of runs at different seeds (restarts) compare.
pub const VALIDATION_SEED: u64 = 0;
/// Held-out digits mapped at once.
const CHUNK: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum SelectionError {
    #[error(
        "model selection's judge {dir}: {error}. It is the shipped classifier when ot3d runs from the repository root; give --select-judge DIR, or --select-every 0 to train without selection"
    )]
    Judge {
        dir: PathBuf,
        error: Box<ClassifierError>,
    },
    #[error(
        "model selection holds out {held_out} of the {class} training digits of class {digit}: too many, keep at least half for training (--select-held-out N)"
    )]
    TooManyHeldOut {
        held_out: usize,
        class: usize,
        digit: u8,
    },
    #[error("cannot voxelize validation digits: {0}")]
    Voxel(#[from] VoxelError),
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{run}: {message}")]
    Step { run: PathBuf, message: String },
}

/// One validation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ValidationPoint {
    pub step: u64,
    /// FID-3D of T(held-out sources) against the reference training targets.
    pub fid: f64,
    /// Share of T(held-out sources) the judge calls the target digit.
    pub target_accuracy: f64,
}

/// Every validation of a run and the one chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionRecord {
    pub held_out: usize,
    pub reference_digits: usize,
    pub history: Vec<ValidationPoint>,
    /// The lowest FID-3D so far (the first on ties); its T is in [`Self::weights_file`].
    pub best: Option<ValidationPoint>,
}

impl SelectionRecord {
    /// The file holding the chosen T's weights, named by its step.
    pub fn weights_file(step: u64) -> String {
        format!("selected-t-step-{step:08}.bpk")
    }

    /// The file holding the T validated at `step`, in a run that keeps every validated T.
    pub fn validated_file(step: u64) -> String {
        format!("validated-t-step-{step:08}.bpk")
    }
}

/// The source digits training keeps and the held-out ones, per `select`.
pub fn hold_out(
    source: &ClassDigits,
    select: &Selection,
) -> Result<(ClassDigits, ClassDigits), SelectionError> {
    if select.held_out * 2 > source.len() {
        return Err(SelectionError::TooManyHeldOut {
            held_out: select.held_out,
            class: source.len(),
            digit: source.digit,
        });
    }
    Ok(source.split_off_last(select.held_out))
}

/// Scores maps on the held-out digits.
pub struct Validator {
    classifier: DigitClassifier,
    inputs: Vec<f32>,
    reference: Vec<f32>,
    dim: usize,
    target: u8,
    device: Device,
}

impl Validator {
    /// The judge from `select.judge`, the held-out sources `inputs` (voxel grids, as T
    /// sees them: through the stack below it, if any), and the features of
    /// [`REFERENCE_DIGITS`] training targets drawn with [`VALIDATION_SEED`], on `device` (a
    /// plain one).
    pub fn new(
        select: &Selection,
        inputs: Vec<f32>,
        target: &ClassDigits,
        device: &Device,
    ) -> Result<Self, SelectionError> {
        let (classifier, _) =
            load_classifier(&select.judge, device).map_err(|error| SelectionError::Judge {
                dir: select.judge.clone(),
                error: Box::new(error),
            })?;
        let reference = classify(
            &classifier,
            &target.sample_values(REFERENCE_DIGITS, VALIDATION_SEED)?,
            device,
        );
        Ok(Self {
            classifier,
            inputs,
            dim: reference.dim,
            reference: reference.features,
            target: target.digit,
            device: device.clone(),
        })
    }

    /// The validation of `t` (a map on any device; its weights are read, not trained).
    pub fn score(&self, t: &TransportMap, step: u64) -> ValidationPoint {
        let t = t.valid().to_device(&self.device);
        let mut outputs = Vec::with_capacity(self.inputs.len());
        for chunk in self.inputs.chunks(CHUNK * GRID_LEN) {
            outputs.extend(apply(&t, chunk, &self.device));
        }
        let judged = classify(&self.classifier, &outputs, &self.device);
        let hits = judged
            .predicted
            .iter()
            .filter(|&&p| p == self.target)
            .count();
        ValidationPoint {
            step,
            fid: frechet_distance(&judged.features, &self.reference, self.dim),
            target_accuracy: hits as f64 / judged.predicted.len().max(1) as f64,
        }
    }
}

/// Adds `point` to the record of `run` (a new one if `record` is None); when it is the best
/// so far, `t`'s weights are written first, then the record, then older weights removed,
/// so the record always names weights that are there. With `keep_all`, `t`'s weights are
/// also kept under the step's own name whatever its score. Returns the updated record.
pub fn record_point(
    run: &Path,
    record: Option<SelectionRecord>,
    held_out: usize,
    point: ValidationPoint,
    t: &TransportMap,
    keep_all: bool,
) -> Result<SelectionRecord, SelectionError> {
    let mut record = record.unwrap_or(SelectionRecord {
        held_out,
        reference_digits: REFERENCE_DIGITS,
        history: Vec::new(),
        best: None,
    });
    let improved = record.best.as_ref().is_none_or(|best| point.fid < best.fid);
    record.history.push(point.clone());
    let previous = record.best.as_ref().map(|b| b.step);
    let mut files = Vec::new();
    if keep_all {
        files.push(SelectionRecord::validated_file(point.step));
    }
    if improved {
        files.push(SelectionRecord::weights_file(point.step));
        record.best = Some(point.clone());
    }
    if !files.is_empty() {
        let bytes = burnpack::to_bytes(t).map_err(|e| SelectionError::File {
            path: run.join(&files[0]),
            message: e.to_string(),
        })?;
        for file in files {
            let path = run.join(file);
            write_atomic(&path, &bytes).map_err(|e| file_error(&path, e))?;
        }
    }
    let path = run.join(SELECTION_FILE);
    let json = serde_json::to_string_pretty(&record).expect("record serializes");
    write_atomic(&path, json.as_bytes()).map_err(|e| file_error(&path, e))?;
    if let Some(old) = previous.filter(|&old| improved && old != point.step) {
        let path = run.join(SelectionRecord::weights_file(old));
        std::fs::remove_file(&path).map_err(|e| file_error(&path, e))?;
    }
    Ok(record)
}

/// The selection record of `run`, if it has one.
pub fn read_record(run: &Path) -> Result<Option<SelectionRecord>, SelectionError> {
    let path = run.join(SELECTION_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| SelectionError::File {
                path,
                message: format!("{e}; the file is corrupt: delete it to export the last T"),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(file_error(&path, e)),
    }
}

/// The T `run` selected at `step` (its record's best), loaded into `empty` (a map of the
/// run's shape).
pub fn selected_t(
    run: &Path,
    step: u64,
    empty: TransportMap,
) -> Result<TransportMap, SelectionError> {
    let path = run.join(SelectionRecord::weights_file(step));
    let bytes = std::fs::read(&path).map_err(|e| file_error(&path, e))?;
    burnpack::load_bytes(empty, &bytes).map_err(|problem| SelectionError::File {
        path,
        message: problem.to_string(),
    })
}

/// The T `run` validated at `step` (any validated step in a run that keeps every validated
/// T, else only the chosen one), loaded into `empty` (a map of the run's shape).
pub fn validated_t(
    run: &Path,
    record: &SelectionRecord,
    step: u64,
    empty: TransportMap,
) -> Result<TransportMap, SelectionError> {
    let step_error = |message: String| SelectionError::Step {
        run: run.to_path_buf(),
        message,
    };
    if !record.history.iter().any(|p| p.step == step) {
        let steps: Vec<String> = record.history.iter().map(|p| p.step.to_string()).collect();
        return Err(step_error(format!(
            "NOT step {step} was not validated; the validated steps are {}",
            steps.join(", ")
        )));
    }
    let kept = run.join(SelectionRecord::validated_file(step));
    if kept.is_file() {
        let bytes = std::fs::read(&kept).map_err(|e| file_error(&kept, e))?;
        return burnpack::load_bytes(empty, &bytes).map_err(|problem| SelectionError::File {
            path: kept,
            message: problem.to_string(),
        });
    }
    match &record.best {
        Some(best) if best.step == step => selected_t(run, step, empty),
        best => Err(step_error(format!(
            "the T of NOT step {step} was not kept: this run kept only its chosen T{}; train with --select-keep-all to keep every validated T",
            best.as_ref()
                .map_or(String::new(), |b| format!(" (step {})", b.step))
        ))),
    }
}

fn file_error(path: &Path, error: std::io::Error) -> SelectionError {
    SelectionError::File {
        path: path.to_path_buf(),
        message: error.to_string(),
    }
}
