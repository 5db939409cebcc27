//! Everything that defines a training run, saved as `config.json` beside it. Defaults are
//! the NOT reference's (K_T = 10, Adam lr 1e-4 with betas 0.9/0.999, batch 64).

use crate::digits::DigitOrigin;
use ot3d_models::nets::{PotentialConfig, TransportMapConfig};
use ot3d_models::voxel::VoxelConfig;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where the digits come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DataSource {
    /// MNIST IDX files in `dir`, voxelized by `voxel`.
    Mnist { dir: PathBuf, voxel: VoxelConfig },
    /// The Kaggle 3D MNIST file at `path`, colored by `voxel.coloring`.
    KaggleH5 { path: PathBuf, voxel: VoxelConfig },
}

impl DataSource {
    /// The name a model manifest records: "mnist" or "kaggle-h5".
    pub fn name(&self) -> &'static str {
        match self {
            DataSource::Mnist { .. } => "mnist",
            DataSource::KaggleH5 { .. } => "kaggle-h5",
        }
    }

    /// How the digits are voxelized (for kaggle-h5, only the coloring applies).
    pub fn voxel(&self) -> &VoxelConfig {
        match self {
            DataSource::Mnist { voxel, .. } | DataSource::KaggleH5 { voxel, .. } => voxel,
        }
    }

    /// Where the data tools read these digits.
    pub fn origin(&self) -> DigitOrigin {
        match self {
            DataSource::Mnist { dir, voxel } => DigitOrigin::Mnist {
                dir: dir.clone(),
                voxel: voxel.clone(),
            },
            DataSource::KaggleH5 { path, voxel } => DigitOrigin::KaggleH5 {
                path: path.clone(),
                coloring: voxel.coloring,
            },
        }
    }
}

/// Networks' shapes (the burn configs, stored as plain numbers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetsConfig {
    pub t_width: usize,
    pub t_depth: usize,
    pub f_width: usize,
    pub f_stages: usize,
}

impl Default for NetsConfig {
    fn default() -> Self {
        Self {
            t_width: 16,
            t_depth: 2,
            f_width: 16,
            f_stages: 3,
        }
    }
}

impl NetsConfig {
    pub fn transport(&self) -> TransportMapConfig {
        TransportMapConfig::new()
            .with_width(self.t_width)
            .with_depth(self.t_depth)
    }

    pub fn potential(&self) -> PotentialConfig {
        PotentialConfig::new()
            .with_width(self.f_width)
            .with_stages(self.f_stages)
    }
}

/// A training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Digit class mapped from.
    pub source: u8,
    /// Digit class mapped to.
    pub target: u8,
    pub data: DataSource,
    pub nets: NetsConfig,
    /// Outer steps (one f-step and `t_steps` T-steps each).
    pub steps: u64,
    /// T-steps per outer step (K_T).
    pub t_steps: u32,
    pub batch_size: usize,
    pub lr_t: f64,
    pub lr_f: f64,
    pub beta_1: f32,
    pub beta_2: f32,
    /// Write a checkpoint every this many outer steps (and always at the end).
    pub checkpoint_every: u64,
    /// A loss whose magnitude exceeds this stops the run as diverged.
    pub max_abs_loss: f64,
    pub seed: u64,
}

impl TrainConfig {
    /// The reference settings on plain MNIST digits 3 → 5.
    pub fn reference(mnist_dir: PathBuf) -> Self {
        Self {
            source: 3,
            target: 5,
            data: DataSource::Mnist {
                dir: mnist_dir,
                voxel: VoxelConfig::default(),
            },
            nets: NetsConfig::default(),
            steps: 10_000,
            t_steps: 10,
            batch_size: 64,
            lr_t: 1e-4,
            lr_f: 1e-4,
            beta_1: 0.9,
            beta_2: 0.999,
            checkpoint_every: 100,
            max_abs_loss: 1e6,
            seed: 0,
        }
    }

    /// Checks every field; the message names the field and the allowed range.
    pub fn validate(&self) -> Result<(), String> {
        if self.source > 9 || self.target > 9 {
            return Err(format!(
                "digits must be 0-9, got source {} and target {}",
                self.source, self.target
            ));
        }
        if self.source == self.target {
            return Err(format!(
                "source and target are both {}: pick two different digits",
                self.source
            ));
        }
        self.data
            .voxel()
            .validate()
            .map_err(|e| format!("voxel settings: {e}"))?;
        self.nets.transport().validate()?;
        self.nets.potential().validate()?;
        let positive = [
            ("steps", self.steps as f64),
            ("t_steps", self.t_steps as f64),
            ("batch_size", self.batch_size as f64),
            ("checkpoint_every", self.checkpoint_every as f64),
            ("lr_t", self.lr_t),
            ("lr_f", self.lr_f),
            ("max_abs_loss", self.max_abs_loss),
        ];
        for (name, value) in positive {
            if !(value.is_finite() && value > 0.0) {
                return Err(format!("{name} must be a positive number, got {value}"));
            }
        }
        if self.batch_size > 4096 {
            return Err(format!(
                "batch_size {} is larger than 4096",
                self.batch_size
            ));
        }
        for (name, beta) in [("beta_1", self.beta_1), ("beta_2", self.beta_2)] {
            if !(0.0..1.0).contains(&beta) {
                return Err(format!("{name} must be in [0, 1), got {beta}"));
            }
        }
        Ok(())
    }
}
