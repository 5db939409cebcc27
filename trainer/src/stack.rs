//! Stacking: a map trained on an earlier map's outputs (T2 on T1(X), T3 on T2(T1(X))), and
//! the chain of earlier maps a stacked model runs before its own.

use crate::digits::grids_tensor;
use crate::mapping::{MapError, load_model_dir};
use burn::tensor::{Device, Tensor};
use ot3d_models::nets::TransportMap;
use ot3d_models::nets::weights::{Manifest, StackedOn};
use ot3d_models::voxel::GRID_LEN;
use std::path::{Path, PathBuf};

/// Stacking deeper than this is refused (it also stops a manifest that names itself).
pub const MAX_LEVELS: usize = 8;
/// Digits per forward pass when mapping value buffers.
const CHUNK: usize = 64;

/// Earlier maps, run in order, before a stacked map's own T.
#[derive(Default)]
pub struct Stack {
    maps: Vec<TransportMap>,
}

fn stack_error(dir: &Path, why: impl Into<String>) -> MapError {
    MapError::Stack {
        dir: dir.to_path_buf(),
        why: why.into(),
    }
}

impl Stack {
    /// Levels below the map (0: not stacked).
    pub fn levels(&self) -> usize {
        self.maps.len()
    }

    /// What runs before a map with `manifest`: nothing, or the map it is stacked on after
    /// that map's own stack. Each link's weights must still have the recorded sha256.
    pub fn below(manifest: &Manifest, device: &Device) -> Result<Self, MapError> {
        let mut links = Vec::new();
        let mut next = manifest.stacked_on.clone();
        while let Some(StackedOn { dir, sha256 }) = next {
            let dir = PathBuf::from(dir);
            if links.len() == MAX_LEVELS {
                return Err(stack_error(
                    &dir,
                    format!("more than {MAX_LEVELS} stacked maps (a loop of stacked_on links?)"),
                ));
            }
            let (t, below) = load_model_dir(&dir, device)?;
            if below.sha256 != sha256 {
                return Err(stack_error(
                    &dir,
                    format!(
                        "its weights' sha256 is {}, but the stacked map was trained on {sha256}: \
                         the map below was replaced; restore it or retrain the stacked map",
                        below.sha256
                    ),
                ));
            }
            next = below.stacked_on.clone();
            links.push(t);
        }
        links.reverse();
        Ok(Self { maps: links })
    }

    /// The stack a new map trained with `--stack-on dir` runs on: `dir`'s map after its own
    /// stack. It must map `source` → `target` digits voxelized like `manifest_like`, without
    /// noise input.
    pub fn on_top_of(
        dir: &Path,
        source: u8,
        target: u8,
        voxel: &ot3d_models::voxel::VoxelConfig,
        device: &Device,
    ) -> Result<(Self, Manifest), MapError> {
        let (t, manifest) = load_model_dir(dir, device)?;
        if (manifest.source_digit, manifest.target_digit) != (source, target) {
            return Err(stack_error(
                dir,
                format!(
                    "it maps {} → {}, but this run maps {source} → {target}: stack a map of the same pair",
                    manifest.source_digit, manifest.target_digit
                ),
            ));
        }
        if manifest.voxel != *voxel {
            return Err(stack_error(
                dir,
                "it was trained on digits voxelized differently (flavor, coloring or depth band) from this run's",
            ));
        }
        if manifest.config.noise_channels > 0 {
            return Err(stack_error(
                dir,
                "it is a stochastic map (noise input); stacking needs a deterministic map below",
            ));
        }
        let mut stack = Self::below(&manifest, device)?;
        stack.maps.push(t);
        Ok((stack, manifest))
    }

    /// The stack's output for a batch (no gradient flows into the maps below).
    pub fn apply(&self, x: Tensor<5>) -> Tensor<5> {
        self.maps
            .iter()
            .fold(x, |x, t| crate::training::steps::untracked_map(t, x, None))
    }

    /// The same for flat `3·16³`-value digits.
    pub fn apply_values(&self, values: &[f32], device: &Device) -> Vec<f32> {
        if self.maps.is_empty() {
            return values.to_vec();
        }
        let mut out = Vec::with_capacity(values.len());
        for chunk in values.chunks(CHUNK * GRID_LEN) {
            let y = self.apply(grids_tensor(chunk.to_vec(), device));
            out.extend(y.into_data().try_to_vec::<f32>().expect("T outputs f32"));
        }
        out
    }
}
