//! Modules to and from burnpack bytes (burn's `.bpk` format), with every failure a typed
//! error: a truncated or foreign file, or one whose tensors do not fit the module.

use burn::module::Module;
use burn::store::{BurnpackStore, HalfPrecisionAdapter, ModuleSnapshot};
use burn::tensor::Bytes;

/// How weights are stored on disk (in memory they are always f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    /// Conv and linear weights as f16: half the size.
    F16,
}

impl Precision {
    /// Bytes per stored value at the smallest (what a file of N values needs at least).
    pub fn bytes_per_value(self) -> usize {
        match self {
            Precision::F32 => 4,
            Precision::F16 => 2,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BurnpackError {
    #[error("cannot encode the weights: {0}")]
    Encode(String),
    #[error("not a readable burnpack file: {0}")]
    Decode(String),
    #[error("the weights do not fit this network: {0}")]
    Mismatch(String),
}

/// Encodes all parameters of `module` (with their ids, so optimizer state can follow them).
pub fn to_bytes<M: Module>(module: &M) -> Result<Vec<u8>, BurnpackError> {
    to_bytes_with(module, Precision::F32)
}

/// Encodes `module` at the given precision.
pub fn to_bytes_with<M: Module>(
    module: &M,
    precision: Precision,
) -> Result<Vec<u8>, BurnpackError> {
    let mut store = BurnpackStore::from_bytes(None);
    if precision == Precision::F16 {
        store = store.with_to_adapter(HalfPrecisionAdapter::new());
    }
    module
        .save_into(&mut store)
        .map_err(|e| BurnpackError::Encode(e.to_string()))?;
    let bytes = store
        .get_bytes()
        .map_err(|e| BurnpackError::Encode(e.to_string()))?;
    Ok(bytes.to_vec())
}

/// Loads parameters into `module` (built from the same config): every tensor must be
/// present, of the right shape, and none may be left over.
pub fn load_bytes<M: Module>(module: M, bytes: &[u8]) -> Result<M, BurnpackError> {
    load_bytes_with(module, bytes, Precision::F32)
}

/// Loads weights stored at `precision` (f16 values are widened back to f32).
pub fn load_bytes_with<M: Module>(
    mut module: M,
    bytes: &[u8],
    precision: Precision,
) -> Result<M, BurnpackError> {
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes.to_vec())));
    if precision == Precision::F16 {
        store = store.with_from_adapter(HalfPrecisionAdapter::new());
    }
    let result = module
        .load_from(&mut store)
        .map_err(|e| BurnpackError::Decode(e.to_string()))?;
    let mut problems: Vec<String> = result.errors.iter().map(|e| format!("{e:?}")).collect();
    problems.extend(
        result
            .missing
            .iter()
            .map(|(path, _)| format!("missing tensor {path}")),
    );
    problems.extend(
        result
            .unused
            .iter()
            .map(|path| format!("unexpected tensor {path}")),
    );
    if !problems.is_empty() {
        return Err(BurnpackError::Mismatch(problems.join("; ")));
    }
    Ok(module)
}
