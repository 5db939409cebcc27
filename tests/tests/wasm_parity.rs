//! The browser computes the same voxels as the native tools: ot3d-wasm built for
//! wasm32-unknown-unknown and run under Node gives bit-identical grids for the same
//! digits, configs and seeds.

use ot3d_models::mnist::{MNIST_PIXELS, Split};
use ot3d_models::voxel::{
    Coloring, DigitColor, Flavor, KaggleStyleConfig, VoxelConfig, voxelize_slice,
};
use ot3d_tests::{mnist_split, repo_root};
use std::process::Command;
use xtask::wasm_pkg::{GlueTarget, build};

const NODE_SCRIPT: &str = r#"
const fs = require('fs');
const [pkg, digitsPath, casesPath, outPath] = process.argv.slice(2);
const wasm = require(pkg + '/ot3d_wasm.js');
const digits = fs.readFileSync(digitsPath);
const cases = JSON.parse(fs.readFileSync(casesPath, 'utf8'));
const out = [];
for (let i = 0; i * 784 < digits.length; i++) {
  const pixels = digits.subarray(i * 784, (i + 1) * 784);
  for (const c of cases) {
    const grid = wasm.voxelizeDigit(pixels, c.config, BigInt(c.seed));
    out.push(Buffer.from(grid.buffer, grid.byteOffset, grid.byteLength));
  }
}
let error = '';
try { wasm.voxelizeDigit(new Uint8Array(5), '{}', 0n); } catch (e) { error = String(e.message || e); }
fs.writeFileSync(outPath, Buffer.concat(out));
fs.writeFileSync(outPath + '.error', error);
"#;

fn configs() -> Vec<VoxelConfig> {
    let base = VoxelConfig::default();
    vec![
        base.clone(),
        VoxelConfig {
            flavor: Flavor::rotated(),
            coloring: Coloring::Hue,
            ..base.clone()
        },
        VoxelConfig {
            flavor: Flavor::kaggle_style(),
            ..base.clone()
        },
        VoxelConfig {
            flavor: Flavor::KaggleStyle(KaggleStyleConfig {
                jitter: 1.0,
                max_angles_degrees: [90.0, 10.0, 180.0],
                ..Default::default()
            }),
            coloring: Coloring::Fixed(DigitColor::Blue),
            depth_band: [2, 14],
        },
    ]
}

fn digits() -> Vec<[u8; MNIST_PIXELS]> {
    let mut digits: Vec<[u8; MNIST_PIXELS]> = match mnist_split(Split::Test) {
        Some(set) => set.images[..12].to_vec(),
        None => Vec::new(),
    };
    // A synthetic diagonal stroke, so the test means something even without MNIST.
    let mut stroke = [0u8; MNIST_PIXELS];
    for i in 4..24 {
        for t in 0..3 {
            stroke[i * 28 + (i + t).min(27)] = 200 + t as u8 * 20;
        }
    }
    digits.push(stroke);
    digits
}

#[test]
fn wasm_voxels_are_bit_identical_to_native() {
    let root = repo_root();
    let work = tempfile::tempdir().unwrap();
    let pkg = work.path().join("pkg");
    build(&root, GlueTarget::NodeJs, &pkg).expect("building ot3d-wasm for Node");

    let digits = digits();
    let seeds = [0u64, 7, 123_456_789, u64::MAX - 3];
    let cases: Vec<(VoxelConfig, u64)> = configs()
        .into_iter()
        .flat_map(|c| seeds.map(|s| (c.clone(), s)))
        .collect();
    // Seeds travel as strings: JSON numbers lose precision past 2^53.
    let cases_json: Vec<serde_json::Value> = cases
        .iter()
        .map(|(c, s)| serde_json::json!({ "config": serde_json::to_string(c).unwrap(), "seed": s.to_string() }))
        .collect();
    let digits_path = work.path().join("digits.bin");
    let cases_path = work.path().join("cases.json");
    let out_path = work.path().join("out.bin");
    let script_path = work.path().join("parity.js");
    std::fs::write(&digits_path, digits.concat()).unwrap();
    std::fs::write(&cases_path, serde_json::to_string(&cases_json).unwrap()).unwrap();
    std::fs::write(&script_path, NODE_SCRIPT).unwrap();
    let status = Command::new("node")
        .arg(&script_path)
        .arg(&pkg)
        .args([&digits_path, &cases_path, &out_path])
        .status()
        .expect("node runs (cargo xtask test checks it is installed)");
    assert!(status.success(), "node parity script failed");

    let bytes = std::fs::read(&out_path).unwrap();
    let wasm: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let mut native = Vec::new();
    for digit in &digits {
        for (config, seed) in &cases {
            native.extend(voxelize_slice(digit, config, *seed).unwrap().into_vec());
        }
    }
    assert_eq!(
        wasm.len(),
        native.len(),
        "wasm returned a different number of values"
    );
    let differing = wasm
        .iter()
        .zip(&native)
        .filter(|(a, b)| a.to_bits() != b.to_bits())
        .count();
    assert_eq!(
        differing,
        0,
        "{differing} of {} values differ between wasm and native",
        native.len()
    );
    assert!(native.iter().any(|&v| v > 0.5), "grids are not empty");

    let error = std::fs::read_to_string(out_path.with_extension("bin.error")).unwrap();
    assert!(
        error.contains("784"),
        "a wrong-sized digit gives a clear error in JS, got {error:?}"
    );
}
