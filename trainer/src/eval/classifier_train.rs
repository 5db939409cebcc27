//! `ot3d classifier train`: the 3D CNN that evaluation relies on, trained on colored 3D
//! digits of all ten classes (train split) in the chosen flavors, its accuracy measured per
//! flavor on held-out test digits, exported with a manifest like T's.

use crate::atomic_file::write_atomic;
use crate::device::with_seed;
use crate::digits::{ClassDigits, DigitOrigin, DigitsError, grids_tensor};
use crate::progress::steps_bar;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use ot3d_models::mnist::Split;
use ot3d_models::nets::DigitClassifier;
use ot3d_models::nets::burnpack::{Precision, load_bytes_with};
use ot3d_models::nets::classifier_weights::{
    CLASSIFIER_KIND, CLASSIFIER_WEIGHTS_FILE, ClassifierManifest, ClassifierShape,
    encode_classifier,
};
use ot3d_models::nets::weights::{FORMAT_VERSION, MANIFEST_FILE, WeightsError};
use ot3d_models::rng::SeedRng;
use ot3d_models::voxel::{Coloring, Flavor, GRID_LEN, KaggleStyleConfig, VoxelConfig, VoxelError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A voxelization flavor by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FlavorName {
    Plain,
    Rotated,
    KaggleStyle,
}

impl FlavorName {
    pub const ALL: [FlavorName; 3] = [
        FlavorName::Plain,
        FlavorName::Rotated,
        FlavorName::KaggleStyle,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FlavorName::Plain => "plain",
            FlavorName::Rotated => "rotated",
            FlavorName::KaggleStyle => "kaggle-style",
        }
    }

    /// The flavor with its default settings.
    pub fn flavor(self) -> Flavor {
        match self {
            FlavorName::Plain => Flavor::Plain,
            FlavorName::Rotated => Flavor::Rotated { max_degrees: 45.0 },
            FlavorName::KaggleStyle => Flavor::KaggleStyle(KaggleStyleConfig::default()),
        }
    }

    /// The name of `flavor`'s kind.
    pub fn of(flavor: &Flavor) -> Self {
        match flavor {
            Flavor::Plain => FlavorName::Plain,
            Flavor::Rotated { .. } => FlavorName::Rotated,
            Flavor::KaggleStyle(_) => FlavorName::KaggleStyle,
        }
    }
}

/// Everything that defines a classifier training run (saved as `train_config.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierTrainConfig {
    pub mnist_dir: PathBuf,
    pub coloring: Coloring,
    /// Flavors mixed in training (each batch digit picks one uniformly); accuracy is
    /// reported for each.
    pub flavors: Vec<FlavorName>,
    pub width: usize,
    pub features: usize,
    pub steps: u64,
    pub batch_size: usize,
    /// Adam's learning rate at the first step; it decays linearly to a tenth by the last.
    pub lr: f64,
    pub seed: u64,
    /// Test digits per class and flavor that the accuracy is measured on.
    pub test_per_class: usize,
}

impl ClassifierTrainConfig {
    pub fn new(mnist_dir: PathBuf) -> Self {
        Self {
            mnist_dir,
            coloring: Coloring::Palette,
            flavors: vec![FlavorName::Plain],
            width: 16,
            features: 64,
            steps: 3000,
            batch_size: 64,
            lr: 2e-3,
            seed: 0,
            test_per_class: 100,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.shape().config().validate()?;
        if self.flavors.is_empty() {
            return Err("pick at least one flavor".into());
        }
        if self.steps == 0 || self.batch_size == 0 || self.test_per_class == 0 {
            return Err("steps, batch size and test digits per class must be positive".into());
        }
        if self.batch_size > 4096 {
            return Err(format!(
                "batch size {} is larger than 4096",
                self.batch_size
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(format!("learning rate must be positive, got {}", self.lr));
        }
        Ok(())
    }

    fn shape(&self) -> ClassifierShape {
        ClassifierShape {
            width: self.width,
            features: self.features,
        }
    }

    fn voxel(&self, flavor: FlavorName) -> VoxelConfig {
        VoxelConfig {
            flavor: flavor.flavor(),
            coloring: self.coloring,
            ..VoxelConfig::default()
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClassifierError {
    #[error("invalid classifier settings: {0}")]
    Config(String),
    #[error(transparent)]
    Data(#[from] DigitsError),
    #[error("cannot voxelize: {0}")]
    Voxel(#[from] VoxelError),
    #[error(transparent)]
    Weights(#[from] WeightsError),
    #[error("the classifier's loss became {0} at step {1}: lower --lr")]
    Diverged(f32, u64),
    #[error("cannot write {path}: {error}")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "cannot read {path}: {error}. Pass a classifier directory (e.g. models/pretrained/classifier), or train one with `ot3d classifier train`"
    )]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// `count` random digits drawn from `sets` (uniform flavor set, class, digit), as
/// (flattened grids, labels).
fn draw(
    sets: &[Vec<ClassDigits>],
    count: usize,
    rng: &mut SeedRng,
) -> Result<(Vec<f32>, Vec<i64>), VoxelError> {
    let mut values = Vec::with_capacity(count * GRID_LEN);
    let mut labels = Vec::with_capacity(count);
    for _ in 0..count {
        let classes = &sets[rng.below(sets.len() as u64) as usize];
        let class = &classes[rng.below(classes.len() as u64) as usize];
        let i = rng.below(class.len() as u64) as usize;
        values.extend_from_slice(class.grid(i, rng.next_u64())?.as_slice());
        labels.push(class.digit as i64);
    }
    Ok((values, labels))
}

/// The classifier's predictions for flattened grids, in chunks that bound memory.
pub fn predict(classifier: &DigitClassifier, grids: &[f32], device: &Device) -> Vec<u8> {
    grids
        .chunks(256 * GRID_LEN)
        .flat_map(|chunk| classifier.predict(grids_tensor(chunk.to_vec(), device)))
        .collect()
}

/// Held-out test digits: `per_class` of every class, voxelized by `voxel` with a fixed
/// seed, as (grids, labels).
pub fn test_digits(
    classes: &[ClassDigits],
    voxel: &VoxelConfig,
    per_class: usize,
) -> Result<(Vec<f32>, Vec<u8>), VoxelError> {
    let mut grids = Vec::new();
    let mut labels = Vec::new();
    for class in classes {
        for (_, grid) in class.with_voxel(voxel).sample(per_class, 7)? {
            grids.extend_from_slice(grid.as_slice());
            labels.push(class.digit);
        }
    }
    Ok((grids, labels))
}

/// Share of `predicted` equal to `labels`.
pub fn accuracy(predicted: &[u8], labels: &[u8]) -> f64 {
    let right = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    right as f64 / labels.len().max(1) as f64
}

/// Trains a classifier per `config`; returns it (on `device`, for inference) with its
/// test accuracy per flavor.
pub fn train_classifier(
    config: &ClassifierTrainConfig,
    device: &Device,
    progress: bool,
) -> Result<(DigitClassifier, BTreeMap<String, f64>), ClassifierError> {
    config.validate().map_err(ClassifierError::Config)?;
    let origin = DigitOrigin::Mnist {
        dir: config.mnist_dir.clone(),
        voxel: config.voxel(FlavorName::Plain),
    };
    let train_classes = ClassDigits::load_all(&origin, Split::Train)?;
    let sets: Vec<Vec<ClassDigits>> = config
        .flavors
        .iter()
        .map(|&f| {
            let voxel = config.voxel(f);
            train_classes.iter().map(|c| c.with_voxel(&voxel)).collect()
        })
        .collect();

    let train_device = device.clone().autodiff();
    let mut model = with_seed(&train_device, config.seed, || {
        config.shape().config().init(&train_device)
    });
    let mut optimizer = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&train_device);
    let mut rng = SeedRng::new(config.seed);

    let bar = steps_bar(config.steps, progress);
    for step in 1..=config.steps {
        let (values, labels) = draw(&sets, config.batch_size, &mut rng)?;
        let x = grids_tensor(values, &train_device);
        let n = labels.len();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), &train_device);
        let loss = loss_fn.forward(model.forward(x), y);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        // Linear decay to a tenth of the rate: late steps refine instead of bouncing.
        let lr = config.lr * (1.0 - 0.9 * (step - 1) as f64 / config.steps as f64);
        model = optimizer.step(lr, model, grads);
        let value = loss.into_scalar::<f32>();
        if !value.is_finite() {
            return Err(ClassifierError::Diverged(value, step));
        }
        bar.set_message(format!("loss {value:.4}"));
        bar.inc(1);
    }
    bar.finish_and_clear();

    let model = model.valid();
    // Measure what ships: the stored f32 weights loaded on the inference device.
    let bytes = ot3d_models::nets::burnpack::to_bytes_with(&model, Precision::F32)
        .map_err(WeightsError::from)?;
    let empty = crate::device::unseeded(|| config.shape().config().init(device));
    let model = load_bytes_with(empty, &bytes, Precision::F32).map_err(WeightsError::from)?;

    let test_classes = ClassDigits::load_all(&origin, Split::Test)?;
    let mut accuracies = BTreeMap::new();
    for flavor in FlavorName::ALL {
        let (grids, labels) =
            test_digits(&test_classes, &config.voxel(flavor), config.test_per_class)?;
        let predicted = predict(&model, &grids, device);
        accuracies.insert(flavor.name().to_string(), accuracy(&predicted, &labels));
    }
    Ok((model, accuracies))
}

/// Writes the classifier and its manifest into `out` (weights first, each atomically).
pub fn save_classifier(
    classifier: &DigitClassifier,
    config: &ClassifierTrainConfig,
    test_accuracy: BTreeMap<String, f64>,
    out: &Path,
) -> Result<ClassifierManifest, ClassifierError> {
    let manifest = ClassifierManifest {
        format_version: FORMAT_VERSION,
        kind: CLASSIFIER_KIND.into(),
        config: config.shape(),
        voxel: config.voxel(config.flavors[0]),
        training_flavors: config.flavors.iter().map(|f| f.name().into()).collect(),
        test_accuracy,
        training_steps: config.steps,
        precision: Precision::F32,
        weights_file: CLASSIFIER_WEIGHTS_FILE.into(),
        weights_bytes: 0,
        sha256: String::new(),
    };
    let (manifest, json, weights) = encode_classifier(classifier, manifest)?;
    let train_json = serde_json::to_string_pretty(config).expect("a config serializes");
    let write = |file: &str, bytes: &[u8]| {
        let path = out.join(file);
        write_atomic(&path, bytes).map_err(|error| ClassifierError::Write { path, error })
    };
    write(CLASSIFIER_WEIGHTS_FILE, &weights)?;
    write("train_config.json", train_json.as_bytes())?;
    write(MANIFEST_FILE, json.as_bytes())?;
    Ok(manifest)
}

/// Loads a classifier directory (manifest + weights), fully validated.
pub fn load_classifier(
    dir: &Path,
    device: &Device,
) -> Result<(DigitClassifier, ClassifierManifest), ClassifierError> {
    let read =
        |path: PathBuf| std::fs::read(&path).map_err(|error| ClassifierError::Read { path, error });
    let json = read(dir.join(MANIFEST_FILE))?;
    let manifest = ClassifierManifest::parse(&String::from_utf8_lossy(&json))?;
    let weights = read(dir.join(&manifest.weights_file))?;
    let classifier = manifest.load_weights(&weights, device)?;
    Ok((classifier, manifest))
}
