//! `ot3d data preview`: a PNG sheet of colored 3D digits, so every flavor can be looked at.

use crate::atomic_file::write_atomic;
use crate::digits::{ClassDigits, DigitsError};
use ot3d_models::render::{render_voxels, tile};
use std::path::Path;

/// What a preview sheet shows.
#[derive(Debug, Clone)]
pub struct PreviewRequest {
    pub count: usize,
    pub seed: u64,
    /// Pixels per voxel edge.
    pub cell: usize,
    pub columns: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error(transparent)]
    Digits(#[from] DigitsError),
    #[error("cannot write {path}: {error}")]
    Write { path: String, error: std::io::Error },
}

/// Renders `request.count` random digits of `digits` into one PNG at `out` (written
/// atomically). Returns the positions (within the class) of the digits shown.
pub fn write_preview(
    digits: &ClassDigits,
    request: &PreviewRequest,
    out: &Path,
) -> Result<Vec<usize>, PreviewError> {
    let picked = digits
        .sample(request.count, request.seed)
        .map_err(|e| PreviewError::Digits(e.into()))?;
    let pictures: Vec<_> = picked
        .iter()
        .map(|(_, g)| render_voxels(g, request.cell))
        .collect();
    let sheet = tile(&pictures, request.columns, request.cell.max(2));
    write_atomic(out, &sheet.to_png()).map_err(|error| PreviewError::Write {
        path: out.display().to_string(),
        error,
    })?;
    Ok(picked.into_iter().map(|(i, _)| i).collect())
}
