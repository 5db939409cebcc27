//! `ot3d map`: run a shipped T on held-out digits and save inputs and outputs as a float32
//! `.npy` of shape [N, 2, 3, 16, 16, 16] (index 0 = input x, 1 = T(x)).

use crate::digits::{ClassDigits, DigitOrigin, DigitsError};
use crate::export::apply_with_noise;
use crate::stack::Stack;
use burn::tensor::Device;
use ot3d_models::mnist::Split;
use ot3d_models::nets::weights::{MANIFEST_FILE, Manifest, WeightsError};
use ot3d_models::nets::{TransportMap, noise_values};
use ot3d_models::rng::{SeedRng, sample_seed};
use ot3d_models::voxel::{Coloring, DigitColor, GRID, GRID_LEN, VoxelError};
use std::path::{Path, PathBuf};

/// Digits mapped per forward pass (bounds memory for large N).
const CHUNK: usize = 64;
/// Mixed into the seed for noise draws, so z is independent of the digits' colors.
const NOISE_SEED: u64 = 0x006e_6f69_7365;

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error(
        "cannot read {path}: {error}. Pass a model directory holding {MANIFEST_FILE} and its weights (e.g. models/pretrained/NAME), or export one with `ot3d export`"
    )]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{dir}: {problem}")]
    Weights { dir: PathBuf, problem: WeightsError },
    #[error("this map was trained on {data} digits; `ot3d map` reads MNIST digits only for now")]
    UnsupportedData { data: String },
    #[error(transparent)]
    Data(#[from] DigitsError),
    #[error("cannot voxelize: {0}")]
    Voxel(#[from] VoxelError),
    #[error("the stacked-on map {dir}: {why}")]
    Stack { dir: PathBuf, why: String },
    #[error("cannot compare these maps: {why}")]
    Compare { why: String },
}

/// Loads a model directory (manifest + weights), fully validated.
pub fn load_model_dir(dir: &Path, device: &Device) -> Result<(TransportMap, Manifest), MapError> {
    let read = |path: PathBuf| std::fs::read(&path).map_err(|error| MapError::Read { path, error });
    let json = read(dir.join(MANIFEST_FILE))?;
    let json = String::from_utf8_lossy(&json);
    let manifest = Manifest::parse(&json).map_err(|problem| MapError::Weights {
        dir: dir.to_path_buf(),
        problem,
    })?;
    let weights = read(dir.join(&manifest.weights_file))?;
    let t = manifest
        .load_weights(&weights, device)
        .map_err(|problem| MapError::Weights {
            dir: dir.to_path_buf(),
            problem,
        })?;
    Ok((t, manifest))
}

/// What to map.
#[derive(Debug, Clone)]
pub struct MapRequest {
    pub mnist_dir: PathBuf,
    pub split: Split,
    pub count: usize,
    /// Overrides the manifest's coloring (None keeps it).
    pub coloring: Option<Coloring>,
    pub seed: u64,
}

/// Inputs and outputs, `[N, 2, 3, 16, 16, 16]` flattened, with N.
pub fn map_digits(
    t: &TransportMap,
    manifest: &Manifest,
    request: &MapRequest,
    device: &Device,
) -> Result<(usize, Vec<f32>), MapError> {
    if manifest.data != "mnist" {
        return Err(MapError::UnsupportedData {
            data: manifest.data.clone(),
        });
    }
    let mut voxel = manifest.voxel.clone();
    if let Some(coloring) = request.coloring {
        voxel.coloring = coloring;
    }
    let origin = DigitOrigin::Mnist {
        dir: request.mnist_dir.clone(),
        voxel,
    };
    let digits = ClassDigits::load(&origin, request.split, manifest.source_digit)?;
    let picked = digits.sample(request.count, request.seed)?;
    // A stochastic map gets z per digit from the seed and the digit's index, so one digit
    // maps the same way whatever else is in the request.
    let noise_len = t.noise_channels() * GRID * GRID * GRID;
    let noise: Vec<f32> = picked
        .iter()
        .flat_map(|(index, _)| {
            let mut rng = SeedRng::new(sample_seed(request.seed ^ NOISE_SEED, *index as u64));
            noise_values(
                1,
                t.noise_channels(),
                manifest.noise_std,
                manifest.noise_layout,
                &mut rng,
            )
        })
        .collect();
    let inputs: Vec<f32> = picked.into_iter().flat_map(|(_, g)| g.into_vec()).collect();
    let n = inputs.len() / GRID_LEN;
    // A stacked map maps what the maps below it made of the digits.
    let stack = Stack::below(manifest, device)?;
    let mut out = Vec::with_capacity(2 * inputs.len());
    for (i, chunk) in inputs.chunks(CHUNK * GRID_LEN).enumerate() {
        let z = (noise_len > 0).then(|| {
            let start = i * CHUNK * noise_len;
            &noise[start..start + chunk.len() / GRID_LEN * noise_len]
        });
        let staged = stack.apply_values(chunk, device);
        let mapped = apply_with_noise(t, &staged, z, device);
        for (x, y) in chunk.chunks(GRID_LEN).zip(mapped.chunks(GRID_LEN)) {
            out.extend_from_slice(x);
            out.extend_from_slice(y);
        }
    }
    Ok((n, out))
}

/// `draws` outputs T(x, z) of every digit of `inputs`, each with its own z drawn from
/// `seed`: `[n · draws]` digits, input-major (the draws of digit 0 first). A deterministic
/// map gives `draws` copies of T(x).
pub fn map_draws(
    t: &TransportMap,
    manifest: &Manifest,
    inputs: &[f32],
    draws: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<f32>, MapError> {
    let stack = Stack::below(manifest, device)?;
    let staged = stack.apply_values(inputs, device);
    let noise_len = t.noise_channels() * GRID * GRID * GRID;
    let mut rng = SeedRng::new(seed ^ NOISE_SEED);
    let mut out = Vec::with_capacity(staged.len() * draws);
    // Chunks of whole digits' draws, so a forward pass holds at most ~CHUNK digits.
    let per_chunk = (CHUNK / draws.max(1)).max(1);
    for chunk in staged.chunks(per_chunk * GRID_LEN) {
        let repeated: Vec<f32> = chunk
            .chunks(GRID_LEN)
            .flat_map(|digit| digit.repeat(draws))
            .collect();
        let n = repeated.len() / GRID_LEN;
        let z = noise_values(
            n,
            t.noise_channels(),
            manifest.noise_std,
            manifest.noise_layout,
            &mut rng,
        );
        out.extend(apply_with_noise(
            t,
            &repeated,
            (noise_len > 0).then_some(&z[..]),
            device,
        ));
    }
    Ok(out)
}

/// The `.npy` shape of `n` mapped digits.
pub fn npy_shape(n: usize) -> [usize; 6] {
    [n, 2, 3, GRID, GRID, GRID]
}

/// Splits `map_digits`' interleaved `[x, T(x), x, T(x), …]` into (inputs, outputs).
pub fn split_pairs(pairs: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut inputs = Vec::with_capacity(pairs.len() / 2);
    let mut outputs = Vec::with_capacity(pairs.len() / 2);
    for (i, digit) in pairs.chunks(GRID_LEN).enumerate() {
        if i % 2 == 0 {
            &mut inputs
        } else {
            &mut outputs
        }
        .extend_from_slice(digit);
    }
    (inputs, outputs)
}

/// Source test digits of one color and their maps.
pub struct MappedColor {
    pub color: DigitColor,
    pub inputs: Vec<f32>,
    pub outputs: Vec<f32>,
}

/// `per_color` source test digits in each of the four colors and their maps; color k is drawn with seed `seed + k`, so eval and figures
/// given one seed show the same digits.
pub fn map_each_color(
    t: &TransportMap,
    manifest: &Manifest,
    mnist_dir: &Path,
    per_color: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<MappedColor>, MapError> {
    DigitColor::ALL
        .into_iter()
        .enumerate()
        .map(|(k, color)| {
            let request = MapRequest {
                mnist_dir: mnist_dir.to_path_buf(),
                split: Split::Test,
                count: per_color,
                coloring: Some(Coloring::Fixed(color)),
                seed: seed + k as u64,
            };
            let (_, pairs) = map_digits(t, manifest, &request, device)?;
            let (inputs, outputs) = split_pairs(&pairs);
            Ok(MappedColor {
                color,
                inputs,
                outputs,
            })
        })
        .collect()
}
