//! Train a tiny map, export it, load it back and map held-out digits: the exported model
//! gives the in-memory model's outputs (within the measured f16 difference), and the .npy
//! is what NumPy reads.

use burn::tensor::Device;
use ot3d_models::mnist::Split;
use ot3d_models::nets::burnpack::Precision;
use ot3d_models::nets::weights::{MANIFEST_FILE, WEIGHTS_FILE};
use ot3d_models::voxel::{Coloring, DigitColor, GRID_LEN};
use ot3d_tests::mnist_dir;
use ot3d_trainer::export::{F16_TOLERANCE, PrecisionChoice, apply, export};
use ot3d_trainer::mapping::{
    MapError, MapRequest, load_model_dir, map_digits, npy_shape, split_pairs,
};
use ot3d_trainer::training::checkpoint::load_latest_nets;
use ot3d_trainer::training::config::{NetsConfig, TrainConfig, WeakCost};
use ot3d_trainer::training::run::{Start, train};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;

fn trained_run(dir: &Path) -> Option<TrainConfig> {
    trained_run_with(dir, |_| {})
}

fn trained_run_with(dir: &Path, adjust: impl FnOnce(&mut TrainConfig)) -> Option<TrainConfig> {
    let mut config = TrainConfig::reference(mnist_dir()?);
    config.nets = NetsConfig {
        t_width: 4,
        t_depth: 1,
        f_width: 2,
        f_stages: 1,
        t_noise_channels: 0,
    };
    (config.steps, config.t_steps, config.batch_size) = (3, 2, 4);
    (config.lr_t, config.lr_f) = (1e-3, 1e-3);
    adjust(&mut config);
    train(
        &config,
        dir,
        Start::New,
        &Device::flex(),
        &AtomicBool::new(false),
        false,
    )
    .unwrap();
    Some(config)
}

#[test]
fn export_load_map_matches_the_trained_model() {
    let run = tempfile::tempdir().unwrap();
    let Some(config) = trained_run(run.path()) else {
        return;
    };
    let device = Device::flex();
    let out = tempfile::tempdir().unwrap();
    let model = out.path().join("three-to-five");

    for choice in [
        PrecisionChoice::Exactly(Precision::F32),
        PrecisionChoice::Auto,
    ] {
        let report = export(run.path(), &model, choice, &device).unwrap();
        assert!(model.join(MANIFEST_FILE).is_file() && model.join(WEIGHTS_FILE).is_file());
        assert_eq!(report.manifest.training_steps, 3);
        assert!(
            report.f16_max_abs_diff < F16_TOLERANCE,
            "f16 diff {}",
            report.f16_max_abs_diff
        );
        if choice == PrecisionChoice::Auto {
            assert_eq!(report.manifest.precision, Precision::F16);
        }

        let (t, manifest) = load_model_dir(&model, &device).unwrap();
        assert_eq!(manifest, report.manifest);
        let request = MapRequest {
            mnist_dir: mnist_dir().unwrap(),
            split: Split::Test,
            count: 5,
            coloring: Some(Coloring::Fixed(DigitColor::Blue)),
            seed: 9,
        };
        let (n, mapped) = map_digits(&t, &manifest, &request, &device).unwrap();
        assert_eq!(n, 5);
        assert_eq!(mapped.len(), npy_shape(n).iter().product::<usize>());

        // The same inputs through the trained T straight from its checkpoint.
        let (trained, _, _) = load_latest_nets(run.path(), &config.nets, &device).unwrap();
        let (inputs, outputs) = split_pairs(&mapped);
        let direct = apply(&trained, &inputs, &device);
        let worst = direct
            .iter()
            .zip(&outputs)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst <= manifest.precision_max_abs_diff.max(1e-6) * 4.0 + 1e-6,
            "{choice:?}: {worst}"
        );
        // Inputs are blue digits of the source class: only the blue channel is lit.
        let (red, blue): (f32, f32) = inputs
            .chunks(GRID_LEN)
            .map(|g| {
                (
                    g[..GRID_LEN / 3].iter().sum::<f32>(),
                    g[2 * GRID_LEN / 3..].iter().sum::<f32>(),
                )
            })
            .fold((0.0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1));
        assert!(red == 0.0 && blue > 0.0);
    }
}

#[test]
fn a_stochastic_map_exports_its_noise_and_maps_reproducibly() {
    let run = tempfile::tempdir().unwrap();
    let Some(_) = trained_run_with(run.path(), |config| {
        config.nets.t_noise_channels = 2;
        config.weak = Some(WeakCost {
            gamma: 0.5,
            gamma_ramp_steps: 0,
            draws: 2,
            noise_std: 0.3,
            noise_layout: Default::default(),
            kernel: Default::default(),
            groups: 0,
        });
    }) else {
        return;
    };
    let device = Device::flex();
    let out = tempfile::tempdir().unwrap();
    let model = out.path().join("weak");
    export(run.path(), &model, PrecisionChoice::Auto, &device).unwrap();
    let (t, manifest) = load_model_dir(&model, &device).unwrap();
    assert_eq!(
        (manifest.config.noise_channels, manifest.noise_std),
        (2, 0.3)
    );
    let request = MapRequest {
        mnist_dir: mnist_dir().unwrap(),
        split: Split::Test,
        count: 4,
        coloring: None,
        seed: 5,
    };
    let (_, first) = map_digits(&t, &manifest, &request, &device).unwrap();
    let (_, again) = map_digits(&t, &manifest, &request, &device).unwrap();
    assert_eq!(first, again, "one seed, one output");
    // The noise is used: z = 0 gives other outputs.
    let (inputs, outputs) = split_pairs(&first);
    assert_ne!(apply(&t, &inputs, &device), outputs);
}

#[test]
fn map_writes_an_npy_that_numpy_reads() {
    let run = tempfile::tempdir().unwrap();
    let Some(_) = trained_run(run.path()) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model");
    let npy = work.path().join("mapped.npy");
    let ot3d = env!("CARGO_BIN_EXE_ot3d");
    let status = |args: &[&str]| {
        let out = Command::new(ot3d).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    status(&[
        "export",
        run.path().to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ]);
    status(&[
        "map",
        "--weights",
        model.to_str().unwrap(),
        "--count",
        "3",
        "--color",
        "red",
        "--data-dir",
        mnist_dir().unwrap().to_str().unwrap(),
        "--out",
        npy.to_str().unwrap(),
    ]);
    let check = "import sys, numpy as np\na = np.load(sys.argv[1])\nassert a.dtype == np.float32, a.dtype\nassert a.shape == (3, 2, 3, 16, 16, 16), a.shape\nassert a[:, 0, 0].sum() > 0 and a[:, 0, 1:].sum() == 0\nprint('ok')";
    let out = Command::new("python3")
        .args(["-c", check])
        .arg(&npy)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "numpy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_missing_or_corrupt_model_says_so() {
    let device = Device::flex();
    let empty = tempfile::tempdir().unwrap();
    let err = load_model_dir(empty.path(), &device)
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(err, MapError::Read { .. }) && err.to_string().contains("ot3d export"),
        "{err}"
    );

    let run = tempfile::tempdir().unwrap();
    let Some(_) = trained_run(run.path()) else {
        return;
    };
    let model = empty.path().join("m");
    export(run.path(), &model, PrecisionChoice::Auto, &device).unwrap();
    let weights = model.join(WEIGHTS_FILE);
    let mut bytes = std::fs::read(&weights).unwrap();
    bytes.truncate(bytes.len() - 1);
    std::fs::write(&weights, bytes).unwrap();
    let err = load_model_dir(&model, &device).map(|_| ()).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
}
