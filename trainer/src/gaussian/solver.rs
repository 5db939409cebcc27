//! NOT (the trainer's own f-step and T-step) with MLPs on a Gaussian pair, scored against
//! the closed-form OT map by L2-UV on held-out samples.

use super::nets::MlpConfig;
use super::problem::{GaussianPair, unexplained_variance};
use crate::training::losses::PotentialObjective;
use crate::training::replicas::Replicas;
use crate::training::steps::{potential_update, transport_update};
use burn::config::Config;
use burn::module::Module;
use burn::optim::{AdamConfig, ModuleOptimizer};
use burn::tensor::{Device, Tensor, TensorData};
use ot3d_models::nets::parameter_count;
use ot3d_models::rng::SeedRng;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The solver's settings (the same for every dimension unless given).
#[derive(Config, Debug, PartialEq)]
pub struct GaussianNotConfig {
    /// Units per hidden layer of T and f.
    #[config(default = 128)]
    pub hidden: usize,
    /// Hidden layers of T and f.
    #[config(default = 3)]
    pub layers: usize,
    /// Outer steps (one f-step each).
    #[config(default = 3000)]
    pub steps: usize,
    /// T-steps per outer step (K_T).
    #[config(default = 4)]
    pub t_steps: usize,
    /// Samples per batch.
    #[config(default = 512)]
    pub batch: usize,
    #[config(default = 1e-3)]
    pub lr_t: f64,
    #[config(default = 1e-3)]
    pub lr_f: f64,
    /// Both learning rates decay linearly to this fraction of their start by the last
    /// step: the late, small steps average out the min-max game's noise.
    #[config(default = 0.1)]
    pub final_lr_fraction: f64,
    #[config(default = 0.5)]
    pub beta_1: f32,
    #[config(default = 0.9)]
    pub beta_2: f32,
    /// Held-out source samples L2-UV is measured on.
    #[config(default = 8192)]
    pub eval_samples: usize,
    /// Measure L2-UV every this many outer steps (and at the end).
    #[config(default = 250)]
    pub eval_every: usize,
    #[config(default = 0)]
    pub seed: u64,
}

/// L2-UV after some outer steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub step: usize,
    pub seconds: f64,
    pub l2_uv_percent: f64,
}

/// One dimension's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GaussianRow {
    pub dim: usize,
    /// L2-UV (%) of the learned map at the end.
    pub l2_uv_percent: f64,
    /// L2-UV (%) of the identity map: how far the samples had to move.
    pub identity_l2_uv_percent: f64,
    pub t_params: usize,
    pub f_params: usize,
    pub seconds: f64,
    pub curve: Vec<CurvePoint>,
}

fn rows_tensor(values: Vec<f32>, dim: usize, device: &Device) -> Tensor<2> {
    let n = values.len() / dim;
    Tensor::from_data(TensorData::new(values, [n, dim]), device)
}

/// Trains T and f by NOT between `pair`'s Gaussians on `device`; `on_eval` sees each
/// curve point as it is measured.
pub fn solve(
    pair: &GaussianPair,
    config: &GaussianNotConfig,
    device: &Device,
    mut on_eval: impl FnMut(&CurvePoint),
) -> GaussianRow {
    let started = Instant::now();
    let device = device.clone().autodiff();
    let dim = pair.dim;
    let nets = MlpConfig::new(dim)
        .with_hidden(config.hidden)
        .with_layers(config.layers);
    let (mut t, mut f) = crate::device::with_seed(&device, config.seed, || {
        (nets.init_map(&device), nets.init_potential(&device))
    });
    let adam = || -> ModuleOptimizer {
        AdamConfig::new()
            .with_beta_1(config.beta_1)
            .with_beta_2(config.beta_2)
            .init()
    };
    let (mut opt_t, mut opt_f) = (adam(), adam());
    let mut rng = SeedRng::new(config.seed.wrapping_add(1));
    let mut eval_rng = SeedRng::new(config.seed.wrapping_add(2));
    let x_eval = pair.sample_source(config.eval_samples, &mut eval_rng);
    let optimal = pair.optimal_map(&x_eval);
    let variance = pair.target_variance();
    let identity_l2_uv_percent = unexplained_variance(&x_eval, &optimal, dim, variance);
    let x_eval = rows_tensor(x_eval, dim, &device);
    let score = |t: &super::nets::MlpMap| {
        let mapped = t
            .forward(x_eval.clone())
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32 rows");
        unexplained_variance(&mapped, &optimal, dim, variance)
    };

    let mut curve = Vec::new();
    let replicas = Replicas::single(&device);
    for step in 1..=config.steps {
        let progress = (step - 1) as f64 / config.steps.max(1) as f64;
        let decay = 1.0 - (1.0 - config.final_lr_fraction) * progress;
        // The trainer's order: the f-step, then K_T T-steps against the updated f.
        let x = rows_tensor(pair.sample_source(config.batch, &mut rng), dim, &device);
        let y = rows_tensor(pair.sample_target(config.batch, &mut rng), dim, &device);
        // Off the graph: a detached output would still leave T's forward recorded.
        let t_x = t.valid().forward(x.inner()).autodiff();
        (f, _) = potential_update(
            f,
            |f, v| f.forward(v),
            &mut opt_f,
            config.lr_f * decay,
            t_x,
            y,
            PotentialObjective::COMPLETE,
            &replicas,
        );
        let f_fixed = f.clone().no_grad();
        for _ in 0..config.t_steps {
            let x = rows_tensor(pair.sample_source(config.batch, &mut rng), dim, &device);
            (t, _, _) = transport_update(
                t,
                |t, x| t.forward(x),
                |t_x, _| f_fixed.forward(t_x),
                &mut opt_t,
                config.lr_t * decay,
                x,
                &replicas,
            );
        }
        if step % config.eval_every.max(1) == 0 || step == config.steps {
            let point = CurvePoint {
                step,
                seconds: started.elapsed().as_secs_f64(),
                l2_uv_percent: score(&t),
            };
            on_eval(&point);
            curve.push(point);
        }
    }
    GaussianRow {
        dim,
        l2_uv_percent: curve.last().map_or_else(|| score(&t), |p| p.l2_uv_percent),
        identity_l2_uv_percent,
        t_params: parameter_count(&t),
        f_params: parameter_count(&f),
        seconds: started.elapsed().as_secs_f64(),
        curve,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_steps_the_map_is_the_identity() {
        let pair = GaussianPair::random(4, 3);
        let config = GaussianNotConfig::new()
            .with_steps(0)
            .with_eval_samples(512);
        let row = solve(&pair, &config, &Device::flex(), |_| {});
        assert!(row.curve.is_empty());
        assert!((row.l2_uv_percent - row.identity_l2_uv_percent).abs() < 1e-9);
        assert!(
            row.identity_l2_uv_percent > 10.0,
            "{}",
            row.identity_l2_uv_percent
        );
    }

    #[test]
    fn not_learns_the_closed_form_map_in_two_dimensions() {
        let pair = GaussianPair::random(2, 1);
        let config = GaussianNotConfig::new()
            .with_hidden(32)
            .with_layers(2)
            .with_steps(600)
            .with_batch(256)
            .with_eval_samples(2048)
            .with_eval_every(300);
        let row = solve(&pair, &config, &Device::flex(), |_| {});
        assert_eq!(row.curve.len(), 2);
        assert!(
            row.l2_uv_percent < 2.0 && row.l2_uv_percent < row.identity_l2_uv_percent / 10.0,
            "L2-UV {:.3}% (identity {:.1}%)",
            row.l2_uv_percent,
            row.identity_l2_uv_percent
        );
    }
}
