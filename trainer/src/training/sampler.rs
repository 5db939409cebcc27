//! Fresh random batches of colored voxel digits of one class, as `[B, 3, 16, 16, 16]`
//! tensors: every draw picks digits uniformly and voxelizes them with a new seed, so
//! colors, rotations and jitter differ every time a digit comes back.

use crate::digits::{ClassDigits, grids_tensor};
use crate::stack::Stack;
use burn::tensor::{Device, Tensor, TensorData};
use ot3d_models::nets::{NoiseLayout, noise_values};
use ot3d_models::rng::SeedRng;
use ot3d_models::voxel::{GRID, VoxelError};

pub struct BatchSampler {
    digits: ClassDigits,
    /// Maps run on every batch (stacking: the source digits a stacked map sees).
    stack: Stack,
}

impl BatchSampler {
    pub fn new(digits: ClassDigits) -> Self {
        Self {
            digits,
            stack: Stack::default(),
        }
    }

    /// Batches pass through `stack` before they are returned.
    pub fn stacked(self, stack: Stack) -> Self {
        Self { stack, ..self }
    }

    pub fn stack(&self) -> &Stack {
        &self.stack
    }

    pub fn digits(&self) -> &ClassDigits {
        &self.digits
    }

    pub fn class_size(&self) -> usize {
        self.digits.len()
    }

    /// Draws `batch` digits using (and advancing) `rng`.
    pub fn batch(
        &self,
        batch: usize,
        rng: &mut SeedRng,
        device: &Device,
    ) -> Result<Tensor<5>, VoxelError> {
        let mut values = Vec::with_capacity(batch * 3 * GRID * GRID * GRID);
        for _ in 0..batch {
            let index = rng.below(self.digits.len() as u64) as usize;
            let seed = rng.next_u64();
            values.extend_from_slice(self.digits.grid(index, seed)?.as_slice());
        }
        Ok(self.stack.apply(grids_tensor(values, device)))
    }
}

/// Noise z for a stochastic T: `[batch, channels, 16, 16, 16]` of N(0, std²), drawn from
/// `rng` so that a resumed run draws the same noise.
pub fn noise_batch(
    batch: usize,
    channels: usize,
    std: f32,
    layout: NoiseLayout,
    rng: &mut SeedRng,
    device: &Device,
) -> Tensor<5> {
    let values = noise_values(batch, channels, std, layout, rng);
    Tensor::from_data(
        TensorData::new(values, [batch, channels, GRID, GRID, GRID]),
        device,
    )
}
