//! `ot3d export`: a run's latest T as a shipped model directory (`transport.bpk` +
//! `manifest.json`), stored as f16 only where that changes T's outputs by less than 1e-3.

use crate::atomic_file::write_atomic;
use crate::digits::{ClassDigits, DigitsError, grids_tensor};
use crate::training::checkpoint::{self, CheckpointError};
use crate::training::config::TrainConfig;
use crate::training::restarts::{RestartsRecord, map_run_and_restarts};
use crate::training::run::{TrainError, read_config};
use crate::training::selection::{
    SELECTION_FILE, SelectionError, SelectionRecord, read_record, selected_t, validated_t,
};
use crate::training::warm_start::ReportError;
use burn::tensor::{Device, Tensor, TensorData};
use ot3d_models::mnist::Split;
use ot3d_models::nets::TransportMap;
use ot3d_models::nets::burnpack::{Precision, load_bytes_with, to_bytes_with};
use ot3d_models::nets::weights::{
    FORMAT_VERSION, MANIFEST_FILE, Manifest, StackedOn, TRANSPORT_MAP_KIND, TransportShape,
    WEIGHTS_FILE, WeightsError, encode_transport_map,
};
use ot3d_models::voxel::{GRID_LEN, VoxelError};
use std::path::{Path, PathBuf};

/// Largest change of T(x) that f16 storage may cause and still be used.
pub const F16_TOLERANCE: f32 = 1e-3;
/// Source test digits T is probed on to measure the f16 difference.
const PROBE_DIGITS: usize = 64;

/// Which precision to store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrecisionChoice {
    /// f16 when it changes outputs by less than [`F16_TOLERANCE`], else f32.
    Auto,
    Exactly(Precision),
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Run(#[from] TrainError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Data(#[from] DigitsError),
    #[error("cannot voxelize probe digits: {0}")]
    Voxel(#[from] VoxelError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error(
        "f16 changes T(x) by up to {diff:.2e} (> {F16_TOLERANCE:.0e}); export with --precision f32 or auto"
    )]
    F16TooLossy { diff: f32 },
    #[error("model selection: {0}")]
    Selection(#[from] SelectionError),
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{path}: {message}; the run was trained with --weak-groups, whose warm start writes \
         the style groups it kept there: train the run again (its checkpoints alone do not say)"
    )]
    StyleGroups { path: PathBuf, message: String },
    /// The report could not be read or parsed (its error names the file and the fix).
    #[error(
        "{0} (the run was trained with --weak-groups: export reads the style groups its warm \
         start kept from that file)"
    )]
    StyleGroupsReport(ReportError),
}

/// The style groups a `--weak-groups` run's warm start kept (its `warm_start.json`), which
/// the manifest records so that evaluations and the page can say what z picks.
fn kept_style_groups(run: &Path, config: &TrainConfig) -> Result<Option<usize>, ExportError> {
    if config.weak.as_ref().is_none_or(|weak| weak.groups == 0) {
        return Ok(None);
    }
    let path = run.join(crate::training::warm_start::REPORT_FILE);
    let failed = |message: String| ExportError::StyleGroups {
        path: path.clone(),
        message,
    };
    // A read or parse error already names the file: not prefixed with it again.
    let groups = crate::training::warm_start::read_report(run)
        .map_err(ExportError::StyleGroupsReport)?
        .ok_or_else(|| failed("it is missing".into()))?
        .style_groups
        .ok_or_else(|| failed("it has no style_groups record".into()))?
        .groups;
    Ok(Some(groups))
}

/// The manifest link of a stacked run: its `--stack-on` directory and that map's sha256,
/// read now so that a later change of that directory is caught when the map is used.
fn stacked_on(config: &TrainConfig) -> Result<Option<StackedOn>, ExportError> {
    let Some(dir) = &config.stack_on else {
        return Ok(None);
    };
    let path = dir.join(MANIFEST_FILE);
    let text = std::fs::read_to_string(&path).map_err(|error| ExportError::Io {
        path: path.clone(),
        error,
    })?;
    let below = Manifest::parse(&text)?;
    Ok(Some(StackedOn {
        dir: dir.display().to_string(),
        sha256: below.sha256,
    }))
}

/// What an export wrote and measured.
#[derive(Debug, Clone)]
pub struct ExportReport {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Largest |T(x)| change from storing in f16, on the probe digits.
    pub f16_max_abs_diff: f32,
    /// The run's selection record when the exported T is the one it selected.
    pub selection: Option<SelectionRecord>,
    /// The run's restarts, when it trained several; the map is their chosen one's.
    pub restarts: Option<RestartsRecord>,
}

/// T(x) for a flat batch of grids.
pub fn apply(t: &TransportMap, grids: &[f32], device: &Device) -> Vec<f32> {
    apply_with_noise(t, grids, None, device)
}

/// T(x, z) with `noise` holding z for every digit (`[N, noise_channels, 16, 16, 16]`
/// flattened); None means z = 0.
pub fn apply_with_noise(
    t: &TransportMap,
    grids: &[f32],
    noise: Option<&[f32]>,
    device: &Device,
) -> Vec<f32> {
    let batch = grids.len() / GRID_LEN;
    let x = grids_tensor(grids.to_vec(), device);
    let channels = t.noise_channels();
    let z = noise.filter(|_| channels > 0).map(|values| {
        Tensor::<5>::from_data(
            TensorData::new(values.to_vec(), [batch, channels, 16, 16, 16]),
            device,
        )
    });
    t.forward(x, z)
        .into_data()
        .try_to_vec::<f32>()
        .expect("T outputs f32")
}

/// The latest checkpoint's T and its step, with no selection record.
fn latest(
    run: &Path,
    config: &TrainConfig,
    device: &Device,
) -> Result<(Option<SelectionRecord>, TransportMap, u64), ExportError> {
    let (t, _, state) = checkpoint::load_latest_nets(run, &config.nets, device)?;
    Ok((None, t, state.step))
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Exports the run's map of `run` into `out`: the T its model selection chose when it
/// has one, else the latest checkpoint's.
pub fn export(
    run: &Path,
    out: &Path,
    choice: PrecisionChoice,
    device: &Device,
) -> Result<ExportReport, ExportError> {
    export_map(run, out, choice, MapChoice::Run, device)
}

/// Which T of a run to export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapChoice {
    /// The run's map: the selected T when the run selects, else the latest.
    Run,
    /// The latest checkpoint's T, even when the run selected another.
    Latest,
    /// The T validated at this NOT step (see [`validated_t`]).
    Step(u64),
}

/// [`export`] with the choice of T.
pub fn export_map(
    run: &Path,
    out: &Path,
    choice: PrecisionChoice,
    which: MapChoice,
    device: &Device,
) -> Result<ExportReport, ExportError> {
    // A run of restarts exports its chosen restart's map.
    let (run, restarts) = map_run_and_restarts(run)?;
    let run = &run;
    let config = read_config(run)?;
    let empty = || crate::device::unseeded(|| config.nets.transport().init(device));
    let (selection, t, step) = match which {
        MapChoice::Step(step) => {
            let record = read_record(run)?.ok_or_else(|| SelectionError::Step {
                run: run.clone(),
                message: format!(
                    "no model selection record ({SELECTION_FILE}), so no T was validated at NOT step {step}; export without --step for the latest T"
                ),
            })?;
            // Not the run's choice: the report carries no selection for it.
            (None, validated_t(run, &record, step, empty())?, step)
        }
        MapChoice::Run => match read_record(run)?.filter(|record| record.best.is_some()) {
            Some(record) => {
                let step = record.best.as_ref().expect("filtered").step;
                (Some(record), selected_t(run, step, empty())?, step)
            }
            None => latest(run, &config, device)?,
        },
        MapChoice::Latest => latest(run, &config, device)?,
    };

    let probe = ClassDigits::load(&config.data.origin(), Split::Test, config.source)?;
    let grids = probe.sample_values(PROBE_DIGITS, 0)?;
    let exact = apply(&t, &grids, device);
    let half_bytes = to_bytes_with(&t, Precision::F16).map_err(WeightsError::from)?;
    let empty = crate::device::unseeded(|| config.nets.transport().init(device));
    let half = load_bytes_with(empty, &half_bytes, Precision::F16).map_err(WeightsError::from)?;
    let f16_max_abs_diff = max_abs_diff(&exact, &apply(&half, &grids, device));
    let precision = match choice {
        PrecisionChoice::Auto if f16_max_abs_diff < F16_TOLERANCE => Precision::F16,
        PrecisionChoice::Auto => Precision::F32,
        PrecisionChoice::Exactly(Precision::F16) if f16_max_abs_diff >= F16_TOLERANCE => {
            return Err(ExportError::F16TooLossy {
                diff: f16_max_abs_diff,
            });
        }
        PrecisionChoice::Exactly(p) => p,
    };

    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        kind: TRANSPORT_MAP_KIND.into(),
        config: TransportShape {
            width: config.nets.t_width,
            depth: config.nets.t_depth,
            noise_channels: config.nets.t_noise_channels,
        },
        noise_std: config.weak.as_ref().map_or(0.0, |weak| weak.noise_std),
        noise_layout: config
            .weak
            .as_ref()
            .map_or(Default::default(), |weak| weak.noise_layout),
        source_digit: config.source,
        target_digit: config.target,
        data: config.data.name().into(),
        voxel: config.data.voxel().clone(),
        value_range: [0.0, 1.0],
        precision,
        precision_max_abs_diff: if precision == Precision::F16 {
            f16_max_abs_diff
        } else {
            0.0
        },
        training_steps: step,
        warm_start_steps: config.warm_start.as_ref().map_or(0, |w| w.steps),
        metrics: Default::default(),
        weights_file: WEIGHTS_FILE.into(),
        weights_bytes: 0,
        sha256: String::new(),
        stacked_on: stacked_on(&config)?,
        target_weight: config.target_weight,
        weak_gamma: config.weak.as_ref().map(|weak| weak.gamma),
        weak_groups: kept_style_groups(run, &config)?,
    };
    let (manifest, json, weights) = encode_transport_map(&t, manifest)?;
    // Weights first: a manifest is never left pointing at weights that are not there yet.
    for (file, bytes) in [
        (WEIGHTS_FILE, weights.as_slice()),
        (MANIFEST_FILE, json.as_bytes()),
    ] {
        let path = out.join(file);
        write_atomic(&path, bytes).map_err(|error| ExportError::Io { path, error })?;
    }
    Ok(ExportReport {
        dir: out.to_path_buf(),
        manifest,
        f16_max_abs_diff,
        selection,
        restarts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::training::config::{Preset, WeakCost};

    fn grouped_config() -> TrainConfig {
        let mut config = TrainConfig::preset(Preset::Cpu3to5, PathBuf::from("data/mnist"));
        config.weak = Some(WeakCost {
            gamma: 1.0,
            gamma_ramp_steps: 0,
            draws: 3,
            noise_std: 1.0,
            noise_layout: Default::default(),
            kernel: Default::default(),
            groups: 4,
        });
        config
    }

    /// Each way a --weak-groups run's report can fail names the file once, says why and
    /// what to do.
    #[test]
    fn a_missing_or_corrupt_warm_start_report_is_named_once() {
        let run = tempfile::tempdir().unwrap();
        let report = run.path().join(crate::training::warm_start::REPORT_FILE);
        let message = |run: &Path| {
            kept_style_groups(run, &grouped_config())
                .unwrap_err()
                .to_string()
        };
        let shown = report.display().to_string();

        let missing = message(run.path());
        assert!(missing.contains("it is missing"), "{missing}");
        assert_eq!(missing.matches(&shown).count(), 1, "{missing}");

        std::fs::write(&report, b"{ not json").unwrap();
        let corrupt = message(run.path());
        assert!(corrupt.contains("not a warm-start report"), "{corrupt}");
        assert!(corrupt.contains("--weak-groups"), "{corrupt}");
        assert_eq!(corrupt.matches(&shown).count(), 1, "{corrupt}");

        // A run without style groups needs no report at all.
        let mut plain = grouped_config();
        plain.weak = None;
        assert_eq!(kept_style_groups(run.path(), &plain).unwrap(), None);
    }
}
