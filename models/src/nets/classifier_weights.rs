//! The shipped classifier: a burnpack file plus a manifest like T's (format version, kind
//! "digit-classifier", config, data, voxelization, test accuracy per flavor, sha256), loaded
//! with the same checks and typed errors.

use super::burnpack::{Precision, load_bytes_with, to_bytes_with};
use super::weights::{WeightsError, parse_versioned, sha256_hex, verify_bytes};
use super::{ClassifierConfig, DigitClassifier};
use crate::voxel::VoxelConfig;
use burn::tensor::Device;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const CLASSIFIER_KIND: &str = "digit-classifier";
pub const CLASSIFIER_WEIGHTS_FILE: &str = "classifier.bpk";

/// The classifier's shape, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierShape {
    pub width: usize,
    pub features: usize,
}

impl ClassifierShape {
    pub fn config(&self) -> ClassifierConfig {
        ClassifierConfig::new()
            .with_width(self.width)
            .with_features(self.features)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierManifest {
    pub format_version: u32,
    pub kind: String,
    pub config: ClassifierShape,
    /// How its training digits were voxelized (flavors are mixed per `training_flavors`).
    pub voxel: VoxelConfig,
    /// Flavors it was trained on ("plain", "rotated", "kaggle-style").
    pub training_flavors: Vec<String>,
    /// Accuracy on held-out test digits of all ten classes, per flavor.
    pub test_accuracy: BTreeMap<String, f64>,
    pub training_steps: u64,
    pub precision: Precision,
    pub weights_file: String,
    pub weights_bytes: usize,
    pub sha256: String,
}

impl ClassifierManifest {
    pub fn parse(json: &str) -> Result<Self, WeightsError> {
        let manifest: ClassifierManifest = parse_versioned(json, CLASSIFIER_KIND)?;
        manifest
            .config
            .config()
            .validate()
            .map_err(WeightsError::BadConfig)?;
        manifest
            .voxel
            .validate()
            .map_err(|e| WeightsError::BadConfig(e.to_string()))?;
        Ok(manifest)
    }

    /// Checks `weights` against this manifest and loads them.
    pub fn load_weights(
        &self,
        weights: &[u8],
        device: &Device,
    ) -> Result<DigitClassifier, WeightsError> {
        verify_bytes(weights, self.weights_bytes, &self.sha256)?;
        let empty = {
            let _guard = super::init_guard();
            self.config.config().init(device)
        };
        let classifier = load_bytes_with(empty, weights, self.precision)?;
        super::weights::check_finite(&classifier)?;
        Ok(classifier)
    }
}

/// Encodes the classifier and completes the manifest's size and sha256: (manifest, JSON,
/// weights).
pub fn encode_classifier(
    classifier: &DigitClassifier,
    mut manifest: ClassifierManifest,
) -> Result<(ClassifierManifest, String, Vec<u8>), WeightsError> {
    let weights = to_bytes_with(classifier, manifest.precision)?;
    manifest.weights_bytes = weights.len();
    manifest.sha256 = sha256_hex(&weights);
    let json = serde_json::to_string_pretty(&manifest).expect("a manifest serializes");
    Ok((manifest, json, weights))
}
