//! The shipped weight format: a burnpack file of T plus a JSON manifest (format version,
//! model kind and config, digit pair, data flavor, value range, precision, training steps,
//! metrics, sha256 and size of the weights). Loading checks all of it and returns a typed
//! error naming the problem and the fix — never a panic, never a silently wrong map.

use super::burnpack::{BurnpackError, Precision, load_bytes_with};
use super::{NoiseLayout, TransportMap, TransportMapConfig};
use crate::voxel::VoxelConfig;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The manifest version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// File names inside a model directory.
pub const MANIFEST_FILE: &str = "manifest.json";
pub const WEIGHTS_FILE: &str = "transport.bpk";
/// The only model kind shipped so far.
pub const TRANSPORT_MAP_KIND: &str = "transport-map";

/// T's shape, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransportShape {
    pub width: usize,
    pub depth: usize,
    pub noise_channels: usize,
}

impl TransportShape {
    pub fn config(&self) -> TransportMapConfig {
        TransportMapConfig::new()
            .with_width(self.width)
            .with_depth(self.depth)
            .with_noise_channels(self.noise_channels)
    }
}

/// Everything known about a shipped map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format_version: u32,
    pub kind: String,
    pub config: TransportShape,
    pub source_digit: u8,
    pub target_digit: u8,
    /// "mnist" or "kaggle-h5".
    pub data: String,
    /// How digits were voxelized for training (the browser voxelizes the same way).
    pub voxel: VoxelConfig,
    /// Range of the input voxel values the map was trained on. Outputs are not clamped:
    /// an undertrained T can leave this range slightly.
    pub value_range: [f32; 2],
    pub precision: Precision,
    /// Standard deviation of the noise z a stochastic map (weak cost) was trained with;
    /// 0 for a deterministic map.
    #[serde(default)]
    pub noise_std: f32,
    /// How z fills the noise channels (per voxel unless the manifest says "digit").
    #[serde(default, skip_serializing_if = "NoiseLayout::is_voxel")]
    pub noise_layout: NoiseLayout,
    /// Largest |T(x)| difference between the stored precision and f32, measured at export.
    pub precision_max_abs_diff: f32,
    /// NOT outer steps the map was trained for.
    pub training_steps: u64,
    /// Regression steps of the warm start before NOT (0: none).
    #[serde(default)]
    pub warm_start_steps: u64,
    /// Evaluation results, filled in by `ot3d eval` (name → value).
    #[serde(default)]
    pub metrics: std::collections::BTreeMap<String, f64>,
    pub weights_file: String,
    pub weights_bytes: usize,
    pub sha256: String,
    /// Set on a stacked map (trained on an earlier map's outputs, T2 on T1(X)): mapping a
    /// digit runs that map first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacked_on: Option<StackedOn>,
    /// Incomplete transport's target weight w the map was trained with (1, left out of the
    /// JSON, is complete transport): its outputs cover the 1/w share of targets nearest the
    /// inputs.
    #[serde(
        default = "complete_transport",
        skip_serializing_if = "is_complete_transport"
    )]
    pub target_weight: f64,
    /// The γ of the weak cost a stochastic map was trained with (None: the strong cost).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weak_gamma: Option<f64>,
    /// For a stochastic map fitted to a style-group plan (`ot3d train --weak-groups`): the
    /// number of groups its warm start kept, whose partner the signs of z name (None: the
    /// exact weak plan, or a deterministic map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weak_groups: Option<usize>,
}

fn complete_transport() -> f64 {
    1.0
}

fn is_complete_transport(w: &f64) -> bool {
    *w == 1.0
}

/// The earlier map a stacked map runs after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackedOn {
    /// Its model directory, as given to `ot3d train --stack-on`.
    pub dir: String,
    /// Its weights' sha256, so a changed directory is caught.
    pub sha256: String,
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error(
        "the manifest is not valid JSON for this format: {0}. Re-export the model with `ot3d export`"
    )]
    Manifest(String),
    #[error(
        "manifest format version {found} is not supported (this build reads version {FORMAT_VERSION}); re-export the model with this version of `ot3d export`"
    )]
    UnsupportedVersion { found: u32 },
    #[error("the manifest describes a {found:?}, not a {expected:?}")]
    WrongKind {
        found: String,
        expected: &'static str,
    },
    #[error("the manifest's network config is invalid: {0}")]
    BadConfig(String),
    #[error(
        "the manifest's digits {source_digit} → {target_digit} are not two different digits 0-9"
    )]
    BadDigits { source_digit: u8, target_digit: u8 },
    #[error(
        "the weights file has {found} bytes but the manifest says {expected}: truncated or replaced; download or export it again"
    )]
    WrongSize { expected: usize, found: usize },
    #[error(
        "the weights file's sha256 is {found}, the manifest says {expected}: corrupt or not this model's weights; download or export it again"
    )]
    ChecksumMismatch { expected: String, found: String },
    #[error("the weights file does not hold this network: {0}")]
    Weights(#[from] BurnpackError),
    #[error(
        "the manifest's network ({parameters} parameters) needs at least {least} bytes of weights, but weights_bytes is {declared}: the manifest does not describe these weights; export the model again"
    )]
    TooSmallForNetwork {
        parameters: usize,
        least: usize,
        declared: usize,
    },
    #[error(
        "the weights hold {count} non-finite values (NaN or infinity), first in {tensor}: the model diverged in training; export a checkpoint from before the divergence"
    )]
    NonFinite { count: usize, tensor: String },
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Manifest {
    /// Parses and checks a manifest on its own (before the weights are read).
    pub fn parse(json: &str) -> Result<Self, WeightsError> {
        let manifest: Manifest = parse_versioned(json, TRANSPORT_MAP_KIND)?;
        manifest
            .config
            .config()
            .validate()
            .map_err(WeightsError::BadConfig)?;
        let noisy = manifest.config.noise_channels > 0;
        if noisy && !(manifest.noise_std.is_finite() && manifest.noise_std > 0.0) {
            return Err(WeightsError::BadConfig(format!(
                "a map with noise channels needs a positive noise_std, got {}",
                manifest.noise_std
            )));
        }
        if !(manifest.target_weight.is_finite() && manifest.target_weight >= 1.0) {
            return Err(WeightsError::BadConfig(format!(
                "target_weight must be a number ≥ 1 (1 = complete transport), got {}",
                manifest.target_weight
            )));
        }
        manifest
            .voxel
            .validate()
            .map_err(|e| WeightsError::BadConfig(e.to_string()))?;
        let digits_ok = manifest.source_digit <= 9
            && manifest.target_digit <= 9
            && manifest.source_digit != manifest.target_digit;
        if !digits_ok {
            return Err(WeightsError::BadDigits {
                source_digit: manifest.source_digit,
                target_digit: manifest.target_digit,
            });
        }
        Ok(manifest)
    }

    /// Checks `weights` against this (already parsed) manifest and loads them into T.
    pub fn load_weights(
        &self,
        weights: &[u8],
        device: &Device,
    ) -> Result<TransportMap, WeightsError> {
        self.verify_weights(weights)?;
        // Before building the network: a manifest naming a huge network for a small file
        // must not allocate that network.
        let config = self.config.config();
        let parameters: usize = super::flops::transport_layers(&config)
            .iter()
            .map(super::flops::Layer::params)
            .sum();
        let least = parameters * self.precision.bytes_per_value();
        if self.weights_bytes < least {
            return Err(WeightsError::TooSmallForNetwork {
                parameters,
                least,
                declared: self.weights_bytes,
            });
        }
        let empty = |device: &Device| {
            let _guard = super::init_guard();
            config.init(device)
        };
        // Values are checked on the CPU: a browser cannot read a GPU tensor back
        // synchronously, and a few hundred KB load twice in a blink.
        let cpu = Device::flex();
        let on_cpu = load_bytes_with(empty(&cpu), weights, self.precision)?;
        check_finite(&on_cpu)?;
        if *device == cpu {
            return Ok(on_cpu);
        }
        Ok(load_bytes_with(empty(device), weights, self.precision)?)
    }

    /// Checks that `weights` are the bytes this manifest describes.
    pub fn verify_weights(&self, weights: &[u8]) -> Result<(), WeightsError> {
        verify_bytes(weights, self.weights_bytes, &self.sha256)
    }
}

/// Parses a manifest of `kind`, reading `format_version` and `kind` first, so an old or
/// future file, or another model's manifest, gets that message rather than whichever field
/// differs.
pub(crate) fn parse_versioned<T: serde::de::DeserializeOwned>(
    json: &str,
    kind: &'static str,
) -> Result<T, WeightsError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| WeightsError::Manifest(e.to_string()))?;
    match value.get("format_version").and_then(|v| v.as_u64()) {
        Some(v) if v == FORMAT_VERSION as u64 => {}
        Some(v) => return Err(WeightsError::UnsupportedVersion { found: v as u32 }),
        None => return Err(WeightsError::Manifest("no format_version field".into())),
    }
    match value.get("kind").and_then(|k| k.as_str()) {
        Some(found) if found == kind => {}
        found => {
            return Err(WeightsError::WrongKind {
                found: found.unwrap_or("(no kind field)").to_string(),
                expected: kind,
            });
        }
    }
    serde_json::from_value(value).map_err(|e| WeightsError::Manifest(e.to_string()))
}

/// Refuses a module holding NaN or infinite parameters (a diverged run's weights).
pub fn check_finite<M: burn::module::Module>(module: &M) -> Result<(), WeightsError> {
    struct Count {
        count: usize,
        first: Option<String>,
        index: usize,
    }
    impl burn::module::ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let values = param.val().into_data();
            let bad = values.iter::<f32>().filter(|v| !v.is_finite()).count();
            if bad > 0 && self.first.is_none() {
                self.first = Some(format!(
                    "parameter tensor #{} {:?}",
                    self.index,
                    values.shape()
                ));
            }
            self.count += bad;
            self.index += 1;
        }
    }
    let mut visitor = Count {
        count: 0,
        first: None,
        index: 0,
    };
    module.visit(&mut visitor);
    match visitor.first {
        None => Ok(()),
        Some(tensor) => Err(WeightsError::NonFinite {
            count: visitor.count,
            tensor,
        }),
    }
}

/// Checks that `bytes` have the size and sha256 a manifest names.
pub(crate) fn verify_bytes(bytes: &[u8], size: usize, sha256: &str) -> Result<(), WeightsError> {
    if bytes.len() != size {
        return Err(WeightsError::WrongSize {
            expected: size,
            found: bytes.len(),
        });
    }
    let found = sha256_hex(bytes);
    if found != sha256 {
        return Err(WeightsError::ChecksumMismatch {
            expected: sha256.to_string(),
            found,
        });
    }
    Ok(())
}

/// Loads a shipped transport map from its manifest text and weight bytes, checking both.
pub fn load_transport_map(
    manifest_json: &str,
    weights: &[u8],
    device: &Device,
) -> Result<(TransportMap, Manifest), WeightsError> {
    let manifest = Manifest::parse(manifest_json)?;
    let t = manifest.load_weights(weights, device)?;
    Ok((t, manifest))
}

/// Encodes T at `manifest.precision` and fills in the manifest's size and sha256 of the
/// weights. Returns (completed manifest, its JSON, weights).
pub fn encode_transport_map(
    t: &TransportMap,
    mut manifest: Manifest,
) -> Result<(Manifest, String, Vec<u8>), WeightsError> {
    let weights = super::burnpack::to_bytes_with(t, manifest.precision)?;
    manifest.weights_bytes = weights.len();
    manifest.sha256 = sha256_hex(&weights);
    let json = serde_json::to_string_pretty(&manifest).expect("a manifest serializes");
    Ok((manifest, json, weights))
}
