//! Reader for the real Kaggle 3D MNIST file `full_dataset_vectors.h5`: datasets `X_train`
//! [10000, 4096], `y_train` [10000], `X_test` [2000, 4096], `y_test` [2000]; vectors as
//! f32 or f64, labels of any integer type. Pure Rust (hdf5-pure), no libhdf5 needed.

use hdf5_pure::{DType, File};
use ot3d_models::mnist::Split;
use ot3d_models::voxel::VOXELS;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum KaggleH5Error {
    #[error(
        "cannot open {path} as HDF5: {message}. Pass the Kaggle 3D MNIST file full_dataset_vectors.h5 with --h5"
    )]
    Open { path: PathBuf, message: String },
    #[error(
        "{path} has no dataset {name:?} (it has {found:?}); is it the Kaggle 3D MNIST full_dataset_vectors.h5?"
    )]
    MissingDataset {
        path: PathBuf,
        name: &'static str,
        found: Vec<String>,
    },
    #[error("{path}: dataset {name} has shape {found:?}, expected {expected}")]
    Shape {
        path: PathBuf,
        name: &'static str,
        found: Vec<u64>,
        expected: String,
    },
    #[error("{path}: dataset {name} has type {found}, expected {expected}")]
    Type {
        path: PathBuf,
        name: &'static str,
        found: String,
        expected: &'static str,
    },
    #[error("{path}: cannot read dataset {name}: {message}")]
    Read {
        path: PathBuf,
        name: &'static str,
        message: String,
    },
    #[error("{path}: {images} has {rows} rows but {labels} has {labels_len}")]
    CountMismatch {
        path: PathBuf,
        images: &'static str,
        rows: usize,
        labels: &'static str,
        labels_len: usize,
    },
    #[error("{path}: {name}[{index}] = {value} is not a digit 0-9")]
    BadLabel {
        path: PathBuf,
        name: &'static str,
        index: usize,
        value: i64,
    },
    #[error("{path}: {name} row {row} holds {value}, but densities must be finite and >= 0")]
    BadValue {
        path: PathBuf,
        name: &'static str,
        row: usize,
        value: f32,
    },
}

/// One split of the Kaggle set: `vectors` holds `labels.len()` rows of 4096 densities.
#[derive(Debug, Clone, PartialEq)]
pub struct KaggleSplit {
    pub vectors: Vec<f32>,
    pub labels: Vec<u8>,
}

impl KaggleSplit {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn vector(&self, index: usize) -> &[f32] {
        &self.vectors[index * VOXELS..(index + 1) * VOXELS]
    }

    pub fn indices_of(&self, digit: u8) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.labels[i] == digit)
            .collect()
    }
}

fn dataset_names(split: Split) -> (&'static str, &'static str) {
    match split {
        Split::Train => ("X_train", "y_train"),
        Split::Test => ("X_test", "y_test"),
    }
}

/// Reads one split from the file at `path`.
pub fn load_split(path: &Path, split: Split) -> Result<KaggleSplit, KaggleH5Error> {
    let owned = || path.to_path_buf();
    let file = File::open(path).map_err(|e| KaggleH5Error::Open {
        path: owned(),
        message: e.to_string(),
    })?;
    let (x_name, y_name) = dataset_names(split);
    let open = |name: &'static str| {
        file.dataset(name)
            .map_err(|_| KaggleH5Error::MissingDataset {
                path: owned(),
                name,
                found: file.root().datasets().unwrap_or_default(),
            })
    };
    let read_error = |name: &'static str| {
        move |e: hdf5_pure::Error| KaggleH5Error::Read {
            path: path.to_path_buf(),
            name,
            message: e.to_string(),
        }
    };

    let x = open(x_name)?;
    let shape = x.shape().map_err(read_error(x_name))?;
    if shape.len() != 2 || shape[1] != VOXELS as u64 {
        return Err(KaggleH5Error::Shape {
            path: owned(),
            name: x_name,
            found: shape,
            expected: format!("[N, {VOXELS}]"),
        });
    }
    let vectors = match x.dtype().map_err(read_error(x_name))? {
        DType::F32 | DType::F64 => x.read_f32().map_err(read_error(x_name))?,
        other => {
            return Err(KaggleH5Error::Type {
                path: owned(),
                name: x_name,
                found: other.to_string(),
                expected: "f32 or f64",
            });
        }
    };
    if let Some(at) = vectors.iter().position(|v| !v.is_finite() || *v < 0.0) {
        return Err(KaggleH5Error::BadValue {
            path: owned(),
            name: x_name,
            row: at / VOXELS,
            value: vectors[at],
        });
    }

    let y = open(y_name)?;
    let y_shape = y.shape().map_err(read_error(y_name))?;
    let rows = shape[0] as usize;
    if y_shape.len() != 1 {
        return Err(KaggleH5Error::Shape {
            path: owned(),
            name: y_name,
            found: y_shape,
            expected: "[N]".into(),
        });
    }
    let raw_labels = match y.dtype().map_err(read_error(y_name))? {
        DType::I8
        | DType::I16
        | DType::I32
        | DType::I64
        | DType::U8
        | DType::U16
        | DType::U32
        | DType::U64 => y.read_i64().map_err(read_error(y_name))?,
        other => {
            return Err(KaggleH5Error::Type {
                path: owned(),
                name: y_name,
                found: other.to_string(),
                expected: "an integer type",
            });
        }
    };
    if raw_labels.len() != rows {
        return Err(KaggleH5Error::CountMismatch {
            path: owned(),
            images: x_name,
            rows,
            labels: y_name,
            labels_len: raw_labels.len(),
        });
    }
    let labels = raw_labels
        .iter()
        .enumerate()
        .map(|(index, &value)| {
            u8::try_from(value)
                .ok()
                .filter(|l| *l <= 9)
                .ok_or(KaggleH5Error::BadLabel {
                    path: owned(),
                    name: y_name,
                    index,
                    value,
                })
        })
        .collect::<Result<Vec<u8>, _>>()?;
    Ok(KaggleSplit { vectors, labels })
}
