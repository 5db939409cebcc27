//! One row of `cargo xtask bench`: milliseconds per T-step and f-step of the trainer's own
//! updates (`training::steps`), their FLOP rates, peak memory, and the device's SGEMM rate
//! (the same GEMM burn's CPU backend runs its convolutions on).

use crate::training::config::NetsConfig;
use crate::training::losses::PotentialObjective;
use crate::training::replicas::Replicas;
use crate::training::steps::{f_step, t_step};
use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use ot3d_models::nets::flops::{f_step_flops, t_step_flops};
use ot3d_models::nets::gemm_conv::kernels::{self, ConvGeometry, GridKernel, set_grid_kernel};
use ot3d_models::nets::parameter_count;
use ot3d_models::rng::SeedRng;
use ot3d_models::stats::median;
use ot3d_models::voxel::GRID;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// What one throughput row measures.
#[derive(Debug, Clone)]
pub struct StepsRequest {
    pub nets: NetsConfig,
    pub batch: usize,
    /// Untimed steps first (allocations, caches, kernel compilation on GPUs).
    pub warmup: usize,
    /// Timed steps of each kind.
    pub reps: usize,
}

/// The figures of one row, as `ot3d bench steps` prints them (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepsRow {
    pub framework: String,
    pub batch: usize,
    pub t_width: usize,
    pub t_depth: usize,
    pub f_width: usize,
    pub f_stages: usize,
    pub t_params: usize,
    pub f_params: usize,
    pub t_step_ms: Vec<f64>,
    pub f_step_ms: Vec<f64>,
    pub t_step_median_ms: f64,
    pub f_step_median_ms: f64,
    /// FLOPs of one step (`models::nets::flops`).
    pub t_step_flops: u64,
    pub f_step_flops: u64,
    pub peak_rss_bytes: Option<u64>,
}

/// The process's peak resident memory so far (Linux VmHWM), if the system reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// A digit-like batch: ~15% of values nonzero, uniform in (0, 1] (timing does not depend on
/// the values; this keeps data loading out of the figures).
fn batch(size: usize, rng: &mut SeedRng, device: &Device) -> Tensor<5> {
    let values: Vec<f32> = (0..size * 3 * GRID * GRID * GRID)
        .map(|_| {
            let on = rng.uniform_f32() > 0.85;
            if on { rng.uniform_f32() } else { 0.0 }
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [size, 3, GRID, GRID, GRID]), device)
}

fn timed(warmup: usize, reps: usize, mut step: impl FnMut()) -> Vec<f64> {
    for _ in 0..warmup {
        step();
    }
    (0..reps)
        .map(|_| {
            let started = Instant::now();
            step();
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

/// Times the trainer's T-step and f-step (Adam, lr 1e-4) on `device` with gradients on.
pub fn measure_steps(request: &StepsRequest, device: &Device, backend: &str) -> StepsRow {
    let device = device.clone().autodiff();
    let nets = &request.nets;
    let (t_config, f_config) = (nets.transport(), nets.potential());
    let (mut t, mut f) = crate::device::with_seed(&device, 0, || {
        (t_config.init(&device), f_config.init(&device))
    });
    let (t_params, f_params) = (parameter_count(&t), parameter_count(&f));
    let adam = || -> ModuleOptimizer { AdamConfig::new().init() };
    let (mut opt_t, mut opt_f) = (adam(), adam());
    let mut rng = SeedRng::new(1);
    let lr = 1e-4;
    let size = request.batch;
    let replicas = Replicas::single(&device);

    // f-steps first, as in training: they materialize f's lazily initialized weights,
    // which `no_grad()` on a clone would otherwise freeze in the original too.
    let f_step_ms = timed(request.warmup, request.reps, || {
        let (x, y) = (
            batch(size, &mut rng, &device),
            batch(size, &mut rng, &device),
        );
        (f, _) = f_step(
            &t,
            f.clone(),
            &mut opt_f,
            lr,
            x,
            y,
            None,
            PotentialObjective::COMPLETE,
            &replicas,
        );
    });
    let t_step_ms = timed(request.warmup, request.reps, || {
        let x = batch(size, &mut rng, &device);
        let f_fixed = f.clone().no_grad();
        (t, _, _) = t_step(t.clone(), &f_fixed, &mut opt_t, lr, x, 1.0, &replicas);
    });
    StepsRow {
        framework: format!("ot3d (burn 0.22, {backend})"),
        batch: size,
        t_width: nets.t_width,
        t_depth: nets.t_depth,
        f_width: nets.f_width,
        f_stages: nets.f_stages,
        t_params,
        f_params,
        t_step_median_ms: median(&t_step_ms),
        f_step_median_ms: median(&f_step_ms),
        t_step_ms,
        f_step_ms,
        t_step_flops: t_step_flops(&t_config, &f_config, size),
        f_step_flops: f_step_flops(&t_config, &f_config, size),
        peak_rss_bytes: peak_rss_bytes(),
    }
}

/// The device's f32 matrix-multiply rate: `size`×`size` by `size`×`size`, median of `reps`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SgemmRow {
    pub size: usize,
    pub ms: Vec<f64>,
    pub gflops: f64,
}

pub fn measure_sgemm(size: usize, reps: usize, device: &Device) -> SgemmRow {
    let mut rng = SeedRng::new(2);
    let mut matrix = || {
        let values: Vec<f32> = (0..size * size).map(|_| rng.uniform_f32()).collect();
        Tensor::<2>::from_data(TensorData::new(values, [size, size]), device)
    };
    let (a, b) = (matrix(), matrix());
    let ms = timed(1, reps, || {
        // Reading one value back waits for the product on asynchronous devices.
        let c = a.clone().matmul(b.clone());
        let _ = c.slice([0..1, 0..1]).into_scalar::<f32>();
    });
    let flops = 2.0 * (size as f64).powi(3);
    SgemmRow {
        size,
        gflops: flops / (median(&ms) / 1000.0) / 1e9,
        ms,
    }
}

/// One kernel of one convolution: its median time and rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConvRow {
    /// `direct` (the kernel this CPU runs) or `im2col-gemm`.
    pub kernel: String,
    /// `forward`, `input-gradient` or `weight-gradient`.
    pub pass: String,
    pub batch: usize,
    pub channels_in: usize,
    pub channels_out: usize,
    pub size: usize,
    pub ms: Vec<f64>,
    pub median_ms: f64,
    pub gflops: f64,
}

/// Times `geometry`'s forward and both gradients on the CPU kernels, by the direct kernel
/// and by im2col + GEMM (interleaved, one warm-up each), on random values; every pass is
/// 2·B·C_in·C_out·k³·voxels FLOPs.
pub fn measure_conv(geometry: &ConvGeometry, reps: usize) -> Vec<ConvRow> {
    let mut rng = SeedRng::new(3);
    let mut values = |count: usize| -> Vec<f32> { (0..count).map(|_| rng.uniform_f32()).collect() };
    let (x, weight, dy) = (
        values(geometry.input_len()),
        values(geometry.weight_len()),
        values(geometry.output_len()),
    );
    let flops =
        2.0 * geometry.weight_len() as f64 * (geometry.output_len() / geometry.channels_out) as f64;
    let kernels = [
        (GridKernel::Direct, "direct"),
        (GridKernel::Gemm, "im2col-gemm"),
    ];
    let passes = ["forward", "input-gradient", "weight-gradient"];
    let mut times = vec![Vec::new(); kernels.len() * passes.len()];
    for rep in 0..=reps {
        for (k, (kernel, _)) in kernels.iter().enumerate() {
            set_grid_kernel(*kernel);
            for (p, pass) in passes.iter().enumerate() {
                let started = Instant::now();
                match *pass {
                    "forward" => drop(kernels::forward(geometry, &x, &weight)),
                    "input-gradient" => {
                        drop(kernels::backward(geometry, &x, &weight, &dy, true, false))
                    }
                    _ => drop(kernels::backward(geometry, &x, &weight, &dy, false, true)),
                }
                if rep > 0 {
                    times[k * passes.len() + p].push(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
        }
    }
    set_grid_kernel(GridKernel::Direct);
    let mut rows = Vec::new();
    for (k, (_, name)) in kernels.iter().enumerate() {
        for (p, pass) in passes.iter().enumerate() {
            let ms = times[k * passes.len() + p].clone();
            let median_ms = median(&ms);
            rows.push(ConvRow {
                kernel: name.to_string(),
                pass: pass.to_string(),
                batch: geometry.batch,
                channels_in: geometry.channels_in,
                channels_out: geometry.channels_out,
                size: geometry.size[0],
                ms,
                median_ms,
                gflops: flops / (median_ms / 1000.0) / 1e9,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tiny_row_times_every_step_and_counts_flops() {
        let request = StepsRequest {
            nets: NetsConfig {
                t_width: 2,
                t_depth: 1,
                f_width: 2,
                f_stages: 1,
                t_noise_channels: 0,
            },
            batch: 2,
            warmup: 1,
            reps: 3,
        };
        let row = measure_steps(&request, &Device::flex(), "cpu");
        assert_eq!((row.t_step_ms.len(), row.f_step_ms.len()), (3, 3));
        assert!(
            row.t_step_ms
                .iter()
                .chain(&row.f_step_ms)
                .all(|&ms| ms > 0.0)
        );
        assert_eq!(row.t_step_median_ms, median(&row.t_step_ms));
        assert!(row.t_step_flops > 0 && row.f_step_flops > 0);
        assert_eq!(
            row.t_params,
            parameter_count(&request.nets.transport().init(&Device::flex()))
        );
        #[cfg(target_os = "linux")]
        assert!(row.peak_rss_bytes.unwrap() > 1 << 20);
    }

    #[test]
    fn sgemm_rate_is_positive_and_finite() {
        let row = measure_sgemm(64, 3, &Device::flex());
        assert_eq!(row.ms.len(), 3);
        assert!(row.gflops.is_finite() && row.gflops > 0.0);
    }
}
