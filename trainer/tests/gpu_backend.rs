//! The trainer's GPU backend (`--features wgpu`), run here on Mesa's CPU Vulkan driver
//! (lavapipe, installed by `cargo xtask test`): the same weights give the same T(x) and f(y)
//! as on the CPU backend, a short run trains on it, and its checkpoint loads on the CPU.
#![cfg(feature = "wgpu")]

use burn::tensor::{Device, Tensor};
use ot3d_models::mnist::Split;
use ot3d_tests::mnist_dir;
use ot3d_trainer::device::{Backend, device};
use ot3d_trainer::digits::{ClassDigits, grids_tensor};
use ot3d_trainer::training::checkpoint::load_latest_nets;
use ot3d_trainer::training::config::{NetsConfig, TrainConfig};
use ot3d_trainer::training::log::read_log;
use ot3d_trainer::training::run::{Finish, Start, train};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicBool;

fn tiny(steps: u64) -> Option<TrainConfig> {
    let mut config = TrainConfig::reference(mnist_dir()?);
    config.nets = NetsConfig {
        t_width: 4,
        t_depth: 1,
        f_width: 4,
        f_stages: 2,
        t_noise_channels: 0,
    };
    (config.steps, config.t_steps, config.batch_size) = (steps, 2, 4);
    (config.lr_t, config.lr_f) = (1e-3, 1e-3);
    Some(config)
}

fn trained(config: &TrainConfig, dir: &Path, device: &Device) -> Finish {
    train(
        config,
        dir,
        Start::New,
        device,
        &AtomicBool::new(false),
        false,
    )
    .unwrap()
}

fn max_abs_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f32 {
    let (a, b) = (a.into_data(), b.into_data());
    let (a, b) = (
        a.try_to_vec::<f32>().unwrap(),
        b.try_to_vec::<f32>().unwrap(),
    );
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn gpu_agrees_with_the_cpu_and_trains() {
    let Some(config) = tiny(3) else { return };
    let cpu = Device::flex();
    let gpu = device(Backend::Wgpu).expect("built with the wgpu feature");

    // Weights trained a little on the CPU (T is no longer the identity), loaded on both.
    let cpu_run = tempfile::tempdir().unwrap();
    trained(&config, cpu_run.path(), &cpu);
    let (t_cpu, f_cpu, _) = load_latest_nets(cpu_run.path(), &config.nets, &cpu).unwrap();
    let (t_gpu, f_gpu, _) = load_latest_nets(cpu_run.path(), &config.nets, &gpu).unwrap();

    let digits = ClassDigits::load(&config.data.origin(), Split::Test, 3).unwrap();
    let values = digits.sample_values(6, 1).unwrap();
    let x = |device: &Device| grids_tensor(values.clone(), device);
    let t_diff = max_abs_diff(
        t_cpu.forward(x(&cpu), None),
        t_gpu.forward(x(&gpu), None).to_device(&cpu),
    );
    let f_diff = max_abs_diff(
        f_cpu.forward(x(&cpu)),
        f_gpu.forward(x(&gpu)).to_device(&cpu),
    );
    assert!(
        t_diff <= 1e-4,
        "T(x) differs by {t_diff} between wgpu and CPU"
    );
    assert!(
        f_diff <= 1e-4,
        "f(x) differs by {f_diff} between wgpu and CPU"
    );

    // A short run on wgpu: finite losses, T leaves the identity, the checkpoint loads
    // on the CPU.
    let gpu_run = tempfile::tempdir().unwrap();
    assert_eq!(
        trained(&config, gpu_run.path(), &gpu),
        Finish::Completed { step: 3 }
    );
    let log = read_log(gpu_run.path()).unwrap();
    assert!(log.iter().all(|r| r.l_f.is_finite() && r.l_t.is_finite()));
    assert!(log.last().unwrap().cost > 0.0, "T never moved on wgpu");
    load_latest_nets(gpu_run.path(), &config.nets, &cpu).unwrap();
}

#[test]
fn the_cli_accepts_the_wgpu_backend() {
    let Some(dir) = mnist_dir() else { return };
    let out = Command::new(env!("CARGO_BIN_EXE_ot3d"))
        .args(["train", "--dry-run", "--backend", "wgpu", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("parameters"),
        "{}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// With no driver the loader can find (Vulkan pointed at a missing ICD, EGL at no vendor),
/// `--backend wgpu` ends with an error naming the missing driver and the fix, not a panic.
#[test]
fn no_gpu_adapter_is_a_clear_error() {
    let missing = "/nonexistent/ot3d-no-driver.json";
    let out = Command::new(env!("CARGO_BIN_EXE_ot3d"))
        .args([
            "bench",
            "sgemm",
            "--size",
            "16",
            "--reps",
            "1",
            "--backend",
            "wgpu",
        ])
        .env("VK_DRIVER_FILES", missing)
        .env("VK_ICD_FILENAMES", missing)
        .env("__EGL_VENDOR_LIBRARY_FILENAMES", missing)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "it found a GPU: {stderr}");
    assert!(
        stderr.contains("no GPU device for --backend wgpu")
            && stderr.contains("VK_DRIVER_FILES")
            && stderr.contains("--backend cpu")
            && !stderr.contains("panicked"),
        "{stderr}"
    );
}
