//! Per-class sets of colored 3D digits: the digits of one class in one split, from MNIST
//! (voxelized by a flavor) or from the Kaggle 3D MNIST file, each drawn reproducibly from
//! a seed.

use crate::kaggle_h5::{self, KaggleH5Error, KaggleSplit};
use crate::mnist_dir::{self, MnistDirError};
use burn::tensor::{Device, Tensor, TensorData};
use ot3d_models::mnist::{LabeledImages, Split};
use ot3d_models::rng::{SeedRng, sample_seed};
use ot3d_models::voxel::{
    Coloring, GRID, GRID_LEN, VoxelConfig, VoxelError, VoxelGrid, from_kaggle_vector, voxelize,
};
use std::path::PathBuf;
use std::sync::Arc;

/// Digits stored one after another (`N·3·16³` values) as a `[N, 3, 16, 16, 16]` tensor.
pub fn grids_tensor(values: Vec<f32>, device: &Device) -> Tensor<5> {
    let n = values.len() / GRID_LEN;
    Tensor::from_data(TensorData::new(values, [n, 3, GRID, GRID, GRID]), device)
}

/// Where digits come from.
#[derive(Debug, Clone)]
pub enum DigitOrigin {
    /// MNIST IDX files in this directory, voxelized with this config.
    Mnist { dir: PathBuf, voxel: VoxelConfig },
    /// The Kaggle 3D MNIST file, colored with this coloring.
    KaggleH5 { path: PathBuf, coloring: Coloring },
}

#[derive(Debug, thiserror::Error)]
pub enum DigitsError {
    #[error(transparent)]
    Mnist(#[from] MnistDirError),
    #[error(transparent)]
    Kaggle(#[from] KaggleH5Error),
    #[error("invalid voxel settings: {0}")]
    Voxel(#[from] VoxelError),
    #[error("digit {0} is not 0-9")]
    BadDigit(u8),
    #[error("the {split} split has no digit {digit}")]
    Empty { split: &'static str, digit: u8 },
}

#[derive(Debug, Clone)]
enum Source {
    Mnist(Arc<LabeledImages>, VoxelConfig),
    Kaggle(Arc<KaggleSplit>, Coloring),
}

/// The digits of one class in one split.
#[derive(Debug, Clone)]
pub struct ClassDigits {
    source: Source,
    /// Indices into the split of the digits of this class, in file order.
    indices: Vec<usize>,
    pub digit: u8,
    pub split: Split,
}

impl ClassDigits {
    /// Loads the split and keeps the digits of class `digit`.
    pub fn load(origin: &DigitOrigin, split: Split, digit: u8) -> Result<Self, DigitsError> {
        if digit > 9 {
            return Err(DigitsError::BadDigit(digit));
        }
        let (source, indices) = match origin {
            DigitOrigin::Mnist { dir, voxel } => {
                voxel.validate()?;
                let set = mnist_dir::load_split(dir, split)?;
                let indices = set.indices_of(digit);
                (Source::Mnist(Arc::new(set), voxel.clone()), indices)
            }
            DigitOrigin::KaggleH5 { path, coloring } => {
                let set = kaggle_h5::load_split(path, split)?;
                let indices = set.indices_of(digit);
                (Source::Kaggle(Arc::new(set), *coloring), indices)
            }
        };
        if indices.is_empty() {
            return Err(DigitsError::Empty {
                split: split.name(),
                digit,
            });
        }
        Ok(Self {
            source,
            indices,
            digit,
            split,
        })
    }

    /// The digits of every class 0-9 in `split`, reading the split once.
    pub fn load_all(origin: &DigitOrigin, split: Split) -> Result<Vec<Self>, DigitsError> {
        let first = Self::load(origin, split, 0)?;
        (0..10u8)
            .map(|digit| {
                let indices = match &first.source {
                    Source::Mnist(set, _) => set.indices_of(digit),
                    Source::Kaggle(set, _) => set.indices_of(digit),
                };
                if indices.is_empty() {
                    return Err(DigitsError::Empty {
                        split: split.name(),
                        digit,
                    });
                }
                Ok(Self {
                    source: first.source.clone(),
                    indices,
                    digit,
                    split,
                })
            })
            .collect()
    }

    /// The same digits voxelized by `voxel` (MNIST digits only; Kaggle digits are
    /// already voxels and keep their own).
    pub fn with_voxel(&self, voxel: &VoxelConfig) -> Self {
        let source = match &self.source {
            Source::Mnist(set, _) => Source::Mnist(set.clone(), voxel.clone()),
            kaggle => kaggle.clone(),
        };
        Self {
            source,
            ..self.clone()
        }
    }

    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// These digits without their last `count` (in file order), and those last `count`:
    /// a held-out split. Each digit keeps its own voxelization (color, rotation), which
    /// follows its index in the split, not its position here.
    pub fn split_off_last(&self, count: usize) -> (Self, Self) {
        let keep = self.indices.len().saturating_sub(count);
        let part = |indices: &[usize]| Self {
            indices: indices.to_vec(),
            ..self.clone()
        };
        (part(&self.indices[..keep]), part(&self.indices[keep..]))
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The `i`-th digit of the class (in file order) as a voxel grid. Its randomness
    /// (color, rotation, jitter) is fixed by `seed` and the digit's index in the split,
    /// so it does not depend on which other digits are drawn with it.
    pub fn grid(&self, i: usize, seed: u64) -> Result<VoxelGrid, VoxelError> {
        let index = self.indices[i];
        let sample = sample_seed(seed, index as u64);
        match &self.source {
            Source::Mnist(set, config) => voxelize(&set.images[index], config, sample),
            Source::Kaggle(set, coloring) => {
                let rgb = coloring.draw(&mut SeedRng::new(sample));
                from_kaggle_vector(set.vector(index), rgb)
            }
        }
    }

    /// The values of [`sample`](Self::sample)'s digits, one after another (`N·3·16³`).
    pub fn sample_values(&self, count: usize, seed: u64) -> Result<Vec<f32>, VoxelError> {
        Ok(self
            .sample(count, seed)?
            .into_iter()
            .flat_map(|(_, g)| g.into_vec())
            .collect())
    }

    /// `count` distinct digits of the class picked at random by `seed` (all of them if
    /// the class has fewer), as (position in class, grid).
    pub fn sample(&self, count: usize, seed: u64) -> Result<Vec<(usize, VoxelGrid)>, VoxelError> {
        let mut rng = SeedRng::new(seed);
        let mut order: Vec<usize> = (0..self.len()).collect();
        let take = count.min(order.len());
        // Partial Fisher–Yates: the first `take` entries become a uniform random subset.
        for i in 0..take {
            let j = i + rng.below((order.len() - i) as u64) as usize;
            order.swap(i, j);
        }
        order[..take]
            .iter()
            .map(|&i| Ok((i, self.grid(i, seed)?)))
            .collect()
    }
}
