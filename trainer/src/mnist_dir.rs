//! Loading MNIST from a directory of the four canonical IDX files, each verified against
//! its checksums before use.

use ot3d_models::mnist::{ChecksumError, IdxError, LabeledImages, MnistFile, Split};
use std::path::{Path, PathBuf};

/// Where `cargo xtask data` puts MNIST, relative to the repository root.
pub const DEFAULT_MNIST_DIR: &str = "data/mnist";

/// The fix printed with every MNIST problem.
const FETCH_HINT: &str = "run `cargo xtask data` in the ot3d checkout (it fetches and verifies MNIST), or pass --data-dir DIR";

#[derive(Debug, thiserror::Error)]
pub enum MnistDirError {
    #[error("MNIST file {path} not found: {FETCH_HINT}")]
    Missing { path: PathBuf },
    // Causes are part of each message (not `source` fields), so a chained print shows them once.
    #[error("cannot read {path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{path} is not the canonical MNIST file: {problem}. Delete it and {FETCH_HINT}")]
    Checksum {
        path: PathBuf,
        problem: ChecksumError,
    },
    #[error("{path} is not a valid IDX file: {problem}. Delete it and {FETCH_HINT}")]
    Idx { path: PathBuf, problem: IdxError },
}

/// Reads one canonical file and checks its length, MD5 and SHA-256.
pub fn read_verified(dir: &Path, spec: &MnistFile) -> Result<Vec<u8>, MnistDirError> {
    let path = dir.join(spec.name);
    let bytes = std::fs::read(&path).map_err(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            MnistDirError::Missing { path: path.clone() }
        } else {
            MnistDirError::Read {
                path: path.clone(),
                error,
            }
        }
    })?;
    spec.verify(&bytes)
        .map_err(|problem| MnistDirError::Checksum { path, problem })?;
    Ok(bytes)
}

/// Loads one split (images and labels), verified.
pub fn load_split(dir: &Path, split: Split) -> Result<LabeledImages, MnistDirError> {
    let (images_spec, labels_spec) = split.files();
    let images = read_verified(dir, images_spec)?;
    let labels = read_verified(dir, labels_spec)?;
    LabeledImages::parse(&images, &labels).map_err(|problem| MnistDirError::Idx {
        path: dir.join(images_spec.name),
        problem,
    })
}
