//! The model loader under 10,000+ mutated manifests and weight files made from real ones
//! (the shipped 3 → 5 map and freshly encoded small maps, f32 and f16): truncation, bit
//! flips, overwritten headers, appended garbage, wrong shapes, versions and sizes. Every
//! case must end in `Ok` or a typed error — never a panic — and never allocate much more
//! than the files' size. Its own test binary: the allocator below counts every thread.

use burn::module::Module;
use burn::tensor::{Device, Distribution};
use ot3d_models::nets::TransportMapConfig;
use ot3d_models::nets::burnpack::Precision;
use ot3d_models::nets::weights::{
    FORMAT_VERSION, Manifest, TRANSPORT_MAP_KIND, TransportShape, WeightsError,
    encode_transport_map, load_transport_map, sha256_hex,
};
use ot3d_models::rng::SeedRng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

/// Bytes allocated now and the peak since the last reset, across all threads.
static CURRENT: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

struct Counting;

fn track(delta: isize) {
    let now = CURRENT.fetch_add(delta, Ordering::Relaxed) + delta;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            track(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        track(-(layout.size() as isize));
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new_size) };
        if !q.is_null() {
            track(new_size as isize - layout.size() as isize);
        }
        q
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak bytes allocated (above what was live before) while `f` runs.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, (PEAK.load(Ordering::Relaxed) - base).max(0) as usize)
}

/// A real (manifest JSON, weights) pair.
struct Original {
    name: String,
    manifest: serde_json::Value,
    weights: Vec<u8>,
}

fn small_map(width: usize, depth: usize, precision: Precision, device: &Device) -> Original {
    let mut t = TransportMapConfig::new()
        .with_width(width)
        .with_depth(depth)
        .init(device);
    // Non-zero output layer, as after training.
    t = t.map(&mut RandomizeOut);
    let manifest = Manifest {
        format_version: FORMAT_VERSION,
        kind: TRANSPORT_MAP_KIND.into(),
        config: TransportShape {
            width,
            depth,
            noise_channels: 0,
        },
        source_digit: 3,
        target_digit: 5,
        data: "mnist".into(),
        voxel: Default::default(),
        value_range: [0.0, 1.0],
        precision,
        noise_std: 0.0,
        noise_layout: Default::default(),
        precision_max_abs_diff: 0.0,
        training_steps: 1,
        warm_start_steps: 0,
        metrics: Default::default(),
        weights_file: "transport.bpk".into(),
        weights_bytes: 0,
        sha256: String::new(),
        stacked_on: None,
        target_weight: 1.0,
        weak_gamma: None,
        weak_groups: None,
    };
    let (_, json, weights) = encode_transport_map(&t, manifest).unwrap();
    Original {
        name: format!("width {width} depth {depth} {precision:?}"),
        manifest: serde_json::from_str(&json).unwrap(),
        weights,
    }
}

struct RandomizeOut;

impl burn::module::ModuleMapper for RandomizeOut {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<burn::tensor::Tensor<D>>,
    ) -> burn::module::Param<burn::tensor::Tensor<D>> {
        param.map(|w| w.random_like(Distribution::Normal(0.0, 0.05)))
    }
}

fn shipped() -> Original {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pretrained/three-to-five");
    let text = std::fs::read_to_string(dir.join("manifest.json"))
        .expect("the shipped map's manifest is in the repository");
    Original {
        name: "shipped three-to-five".into(),
        manifest: serde_json::from_str(&text).unwrap(),
        weights: std::fs::read(dir.join("transport.bpk")).unwrap(),
    }
}

/// One mutated case: (what was done, manifest text, weights).
fn mutate(original: &Original, rng: &mut SeedRng) -> (String, String, Vec<u8>) {
    let mut manifest = original.manifest.clone();
    let mut weights = original.weights.clone();
    let len = weights.len();
    let pick = |rng: &mut SeedRng, n: usize| rng.below(n.max(1) as u64) as usize;
    // Most weight mutations re-sign the manifest, so the bytes reach the burnpack parser
    // rather than stopping at the size or checksum check.
    let mut resign = true;
    let what = match rng.below(12) {
        0 => {
            let at = pick(rng, len);
            weights.truncate(at);
            format!("weights truncated to {at} bytes")
        }
        1 => {
            let flips = 1 + pick(rng, 8);
            for _ in 0..flips {
                let at = pick(rng, len);
                weights[at] ^= 1 << pick(rng, 8);
            }
            format!("{flips} bit flips")
        }
        2 => {
            // The header and metadata: sizes, offsets, shapes, names.
            let start = pick(rng, 256.min(len));
            let count = 1 + pick(rng, 8);
            let value = [0xFF, 0x00, 0x7F, 0x80][pick(rng, 4)];
            for b in weights.iter_mut().skip(start).take(count) {
                *b = value;
            }
            format!("{count} header bytes at {start} set to {value:#x}")
        }
        3 => {
            let start = pick(rng, len);
            let count = 1 + pick(rng, 64);
            for b in weights.iter_mut().skip(start).take(count) {
                *b = rng.below(256) as u8;
            }
            format!("{count} random bytes at {start}")
        }
        4 => {
            let extra = 1 + pick(rng, 4096);
            weights.extend((0..extra).map(|i| (i * 131 % 251) as u8));
            format!("{extra} bytes appended")
        }
        5 => {
            resign = false;
            let flips = 1 + pick(rng, 4);
            for _ in 0..flips {
                let at = pick(rng, len);
                weights[at] ^= 0x10;
            }
            "bytes changed, manifest not updated (checksum)".into()
        }
        6 => {
            let key = ["width", "depth", "noise_channels"][pick(rng, 3)];
            let value: serde_json::Value = [
                serde_json::Value::from(0),
                1.into(),
                2.into(),
                3.into(),
                255.into(),
                256.into(),
                257.into(),
                (-1).into(),
                1e12.into(),
                "8".into(),
                serde_json::Value::Null,
            ][pick(rng, 11)]
            .clone();
            manifest["config"][key] = value.clone();
            format!("config.{key} = {value}")
        }
        7 => {
            resign = false;
            let value: serde_json::Value = [
                serde_json::Value::from(0),
                1.into(),
                u64::MAX.into(),
                (1u64 << 40).into(),
                (-5).into(),
                (len as u64 * 2).into(),
            ][pick(rng, 6)]
            .clone();
            manifest["weights_bytes"] = value.clone();
            format!("weights_bytes = {value}")
        }
        8 => {
            let (key, value): (&str, serde_json::Value) = [
                ("format_version", serde_json::Value::from(0)),
                ("format_version", (FORMAT_VERSION + 1).into()),
                ("format_version", "1".into()),
                ("kind", "digit-classifier".into()),
                ("precision", "F64".into()),
                ("precision", "F16".into()),
                ("precision", "F32".into()),
                ("source_digit", 12.into()),
                ("target_digit", 3.into()),
                ("noise_std", (-1.0).into()),
                ("value_range", serde_json::json!([1.0])),
                ("voxel", serde_json::json!({"flavor": {"kind": "nope"}})),
            ][pick(rng, 12)]
            .clone();
            manifest[key] = value.clone();
            format!("{key} = {value}")
        }
        9 => {
            resign = false;
            manifest["sha256"] = ["", "00", "zz", &"f".repeat(64)][pick(rng, 4)].into();
            "sha256 replaced".into()
        }
        10 => {
            // Both at once: a wider network with its weights cut short.
            manifest["config"]["width"] = (1 + pick(rng, 64)).into();
            weights.truncate(pick(rng, len));
            "width changed and weights truncated".into()
        }
        _ => {
            // Text-level damage to the manifest: a character deleted, doubled or replaced.
            let mut text = manifest.to_string().into_bytes();
            let at = pick(rng, text.len());
            match rng.below(3) {
                0 => {
                    text.remove(at);
                }
                1 => text.insert(at, text[at]),
                _ => text[at] = b"{}[],:\"0x -"[pick(rng, 11)],
            }
            return (
                format!("manifest text damaged at {at}"),
                String::from_utf8_lossy(&text).into_owned(),
                weights,
            );
        }
    };
    if resign {
        manifest["weights_bytes"] = weights.len().into();
        manifest["sha256"] = sha256_hex(&weights).into();
    }
    (what, manifest.to_string(), weights)
}

#[test]
fn ten_thousand_mutated_files_never_panic_nor_overallocate() {
    let device = Device::flex();
    let originals = [
        small_map(2, 1, Precision::F32, &device),
        small_map(3, 2, Precision::F16, &device),
        small_map(1, 3, Precision::F32, &device),
        shipped(),
    ];
    // Every original loads as it is.
    for original in &originals {
        load_transport_map(&original.manifest.to_string(), &original.weights, &device)
            .unwrap_or_else(|e| panic!("{}: {e}", original.name));
    }
    // The shipped map (183 KB) is slower to load: a smaller share of the cases.
    let cases = [3000, 3000, 3000, 1200];
    let mut rng = SeedRng::new(0xF022);
    let (mut ok, mut errors) = (0usize, std::collections::BTreeMap::<String, usize>::new());
    let mut worst = (0.0f64, String::new());
    for (original, &count) in originals.iter().zip(&cases) {
        for case in 0..count {
            let (what, json, weights) = mutate(original, &mut rng);
            let (result, peak) = peak_during(|| {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    load_transport_map(&json, &weights, &device).map(|_| ())
                }))
            });
            let label = format!("{} case {case}: {what}", original.name);
            match result {
                Err(_) => panic!("{label}: the loader panicked"),
                Ok(Ok(())) => ok += 1,
                Ok(Err(e)) => {
                    assert!(!e.to_string().is_empty(), "{label}: empty message");
                    let kind = format!("{e:?}");
                    let kind = kind.split(['(', ' ', '{']).next().unwrap_or("").to_string();
                    *errors.entry(kind).or_default() += 1;
                    // A typed error for what was done to the file.
                    if what.starts_with("weights_bytes") || what.starts_with("sha256") {
                        assert!(
                            matches!(
                                e,
                                WeightsError::WrongSize { .. }
                                    | WeightsError::ChecksumMismatch { .. }
                                    | WeightsError::Manifest(_)
                            ),
                            "{label}: {e}"
                        );
                    }
                }
            }
            // Allocation bounded by the input: a few copies of the files, plus a fixed
            // allowance for the network the (validated) manifest describes.
            let input = json.len() + weights.len();
            let ratio = peak as f64 / (input as f64 + 1.0);
            if ratio > worst.0 {
                worst = (ratio, label.clone());
            }
            assert!(
                peak <= 8 * input + (2 << 20),
                "{label}: {peak} bytes allocated for {input} bytes of input"
            );
        }
    }
    let total: usize = cases.iter().sum();
    assert!(total >= 10_000);
    println!(
        "{total} mutated files: {ok} loaded, errors {errors:?}; most allocated per input byte: {:.1} ({})",
        worst.0, worst.1
    );
    // The mutations reach the deep checks, not only the first one.
    for kind in [
        "Weights",
        "WrongSize",
        "ChecksumMismatch",
        "Manifest",
        "BadConfig",
    ] {
        assert!(
            errors.get(kind).copied().unwrap_or(0) > 0,
            "no case ended in {kind}: {errors:?}"
        );
    }
}
