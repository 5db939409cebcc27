//! The page in a real browser: Debian's chromium, headless, driven by playwright-core
//! (tests/browser/drive.mjs) against the site built the way `cargo xtask web` builds it and
//! served from 127.0.0.1. Checks that both backends map a digit like the native model,
//! that links reproduce a view, that bad links and corrupt weights give clear messages, that
//! the view shows both digits, that the discrete-OT baseline shows each gallery digit's
//! exact-OT partner, and that no request leaves 127.0.0.1.

use burn::tensor::{Device, Tensor};
use ot3d_models::digit_pack::DigitPack;
use ot3d_models::mnist::{LabeledImages, Split};
use ot3d_models::nets::weights::load_transport_map;
use ot3d_models::ot_partners::partner_pack;
use ot3d_models::render::BACKGROUND;
use ot3d_models::voxel::{Coloring, DigitColor, GRID, VoxelConfig, voxelize_slice};
use ot3d_tests::repo_root;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const CHROMIUM: &str = "/usr/bin/chromium";
/// Largest |browser − native| allowed in T(x) (float order differs across backends).
const TOLERANCE: f32 = 1e-4;

/// Chromium and playwright-core, or None (skipped) unless OT3D_REQUIRE_DATA says the
/// environment was prepared by `cargo xtask test`, where missing tools are a failure.
fn driver() -> Option<PathBuf> {
    let dir = repo_root().join("tests/browser");
    let ready = Path::new(CHROMIUM).is_file() && dir.join("node_modules/playwright-core").is_dir();
    if ready {
        return Some(dir);
    }
    let fix = "run `cargo xtask test`, which installs Debian's chromium and playwright-core";
    if std::env::var_os("OT3D_REQUIRE_DATA").is_some() {
        panic!("the browser test needs {CHROMIUM} and tests/browser/node_modules: {fix}");
    }
    eprintln!("skipped: no chromium or playwright-core ({fix})");
    None
}

struct Site {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn build_site() -> Site {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site");
    xtask::site::build_site_into(&repo_root(), &path).expect("building the site");
    Site { _dir: dir, path }
}

fn run_scenarios(driver: &Path, scenarios: Vec<Value>) -> Vec<Value> {
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("results.json");
    let config = work.path().join("config.json");
    let body = json!({"chromium": CHROMIUM, "out": out, "scenarios": scenarios});
    std::fs::write(&config, body.to_string()).unwrap();
    let status = Command::new("node")
        .arg(driver.join("drive.mjs"))
        .arg(&config)
        .current_dir(driver)
        .status()
        .expect("running node");
    assert!(status.success(), "the browser driver failed");
    let results: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap();
    for r in &results {
        assert!(
            r.get("failure").is_none(),
            "scenario {} failed in the browser: {}",
            r["name"],
            r["failure"]
        );
    }
    results
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("an array of numbers")
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

/// The page's input is the trainer's voxelization bit for bit and its T(x) is native's
/// within TOLERANCE; returns the largest difference.
fn assert_matches_native(name: &str, result: &Value, input: &[f32], output: &[f32]) -> f32 {
    assert_eq!(
        floats(&result["input"]),
        input,
        "{name}: the page voxelizes like the trainer"
    );
    let diff = max_abs_diff(&floats(&result["output"]), output);
    assert!(
        diff <= TOLERANCE,
        "{name}: T(x) differs from native by {diff}"
    );
    diff
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Model `name`'s input and native T(x) for a gallery digit in `color`, as the page builds
/// them (the model's voxel config, the color fixed, the MNIST index as seed).
fn native(
    site: &Path,
    name: &str,
    pixels: &[u8],
    seed: u64,
    color: DigitColor,
) -> (Vec<f32>, Vec<f32>) {
    let dir = site.join("models").join(name);
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    let weights = std::fs::read(dir.join("transport.bpk")).unwrap();
    let device = Device::flex();
    let (t, manifest) = load_transport_map(&manifest, &weights, &device).unwrap();
    let config = VoxelConfig {
        coloring: Coloring::Fixed(color),
        ..manifest.voxel
    };
    let input = voxelize_slice(pixels, &config, seed).unwrap().into_vec();
    let x = Tensor::<1>::from_floats(&input[..], &device).reshape([1, 3, GRID, GRID, GRID]);
    let output = t.forward(x, None).into_data().try_to_vec::<f32>().unwrap();
    (input, output)
}

/// Pixels that are neither the background nor near-black, in the left and right halves.
fn drawn_pixels(png_path: &str) -> (usize, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(png_path).unwrap(),
    ));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let (mut left, mut right) = (0, 0);
    for y in 0..info.height as usize {
        for x in 0..info.width as usize {
            let at = (y * info.width as usize + x) * channels;
            let rgb = [buf[at], buf[at + 1], buf[at + 2]];
            let far = rgb
                .iter()
                .zip(BACKGROUND)
                .any(|(&c, b)| (c as i32 - b as i32).abs() > 40);
            if far {
                if x < info.width as usize / 2 {
                    left += 1;
                } else {
                    right += 1;
                }
            }
        }
    }
    (left, right)
}

fn assert_local_only(r: &Value, origin: &str) {
    for url in r["requests"].as_array().unwrap() {
        let url = url.as_str().unwrap();
        assert!(
            url.starts_with(origin) || url.starts_with("blob:") || url.starts_with("data:"),
            "scenario {}: request left 127.0.0.1: {url}",
            r["name"]
        );
    }
}

#[test]
fn the_page_maps_renders_and_shares_views() {
    let Some(driver) = driver() else { return };
    for name in ["three-to-five", "two-to-four"] {
        if !repo_root().join("models/pretrained").join(name).is_dir() {
            panic!("models/pretrained/{name} is missing: the page ships that model");
        }
    }
    let site = build_site();
    let port = xtask::demo::serve_in_background(&site.path).unwrap();
    let origin = format!("http://127.0.0.1:{port}/");

    // A corrupted copy of the weights, served separately.
    let broken = tempfile::tempdir().unwrap();
    copy_tree(&site.path, broken.path());
    let weights = broken.path().join("models/three-to-five/transport.bpk");
    let mut bytes = std::fs::read(&weights).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&weights, bytes).unwrap();
    let broken_port = xtask::demo::serve_in_background(broken.path()).unwrap();
    let missing = tempfile::tempdir().unwrap();
    copy_tree(&site.path, missing.path());
    std::fs::remove_file(missing.path().join("models/three-to-five/transport.bpk")).unwrap();
    let missing_port = xtask::demo::serve_in_background(missing.path()).unwrap();

    let shots = tempfile::tempdir().unwrap();
    let shot = |name: &str| {
        shots
            .path()
            .join(format!("{name}.png"))
            .display()
            .to_string()
    };
    let shared = "#d=7&c=blue&th=0.40&t=0.50&cam=60,10,30.0";
    let scenarios = vec![
        json!({"name": "webgpu", "url": format!("{origin}#d=5&c=green"), "screenshot": shot("webgpu")}),
        json!({"name": "cpu", "url": format!("{origin}#d=5&c=green&cpu=1")}),
        json!({"name": "shared", "url": format!("{origin}{shared}")}),
        json!({"name": "shared-again", "url": format!("{origin}{shared}")}),
        json!({"name": "bad-state", "url": format!("{origin}#d=abc&c=purple&th=9&zz=1")}),
        json!({"name": "digit-out-of-range", "url": format!("{origin}#d=99999")}),
        json!({"name": "corrupt-weights", "url": format!("http://127.0.0.1:{broken_port}/")}),
        json!({"name": "missing-weights", "url": format!("http://127.0.0.1:{missing_port}/")}),
        json!({"name": "interact", "url": format!("{origin}#d=2&cpu=1"), "actions": [
            {"type": "click", "selector": "[data-color=yellow]"},
            {"type": "key", "selector": "#view", "key": "ArrowRight"},
            {"type": "draw", "strokes": [[[0.3, 0.2], [0.7, 0.2], [0.5, 0.5], [0.7, 0.8], [0.3, 0.8]]]},
            {"type": "click", "selector": "#save-vox", "wait": false},
            {"type": "click", "selector": "#save-png", "wait": false}
        ]}),
        json!({"name": "two-to-four", "url": format!("{origin}#m=two-to-four&d=4&c=red&cpu=1")}),
        json!({"name": "phone", "url": format!("{origin}#d=3&cpu=1"), "viewport": {"width": 390, "height": 844}, "screenshot": shot("phone")}),
    ];
    let results = run_scenarios(&driver, scenarios);
    let get = |name: &str| results.iter().find(|r| r["name"] == name).unwrap();
    for r in &results {
        assert_local_only(r, "http://127.0.0.1:");
    }

    // Both backends map a digit like the native model.
    let gallery =
        DigitPack::decode(&std::fs::read(site.path.join("digits/test-3.bin")).unwrap()).unwrap();
    let (input, output) = native(
        &site.path,
        "three-to-five",
        &gallery.images[5],
        u64::from(gallery.indices[5]),
        DigitColor::Green,
    );
    for (name, backend) in [("webgpu", "WebGPU"), ("cpu", "CPU (wasm)")] {
        let r = get(name);
        assert_eq!(r["status"], "ready", "{name}: {}", r["errorText"]);
        assert_eq!(r["backend"], backend, "{name}: {}", r["timingText"]);
        assert_eq!(
            r["consoleErrors"].as_array().unwrap().len(),
            0,
            "{name}: {}",
            r["consoleErrors"]
        );
        let diff = assert_matches_native(name, r, &input, &output);
        assert!(r["medianMs"].as_f64().unwrap() > 0.0);
        assert!(r["timingText"].as_str().unwrap().contains("median of 5"));
        eprintln!(
            "{name}: max |browser − native| = {diff:.2e}, {}",
            r["timingText"]
        );
        assert_local_only(r, &origin);
    }
    assert_eq!(get("cpu")["controls"]["cpu"], true);

    // The discrete-OT baseline: the site's partner pack is exact OT between the gallery and
    // the first 256 training 5s, and the page shows gallery digit 5's partner in its color.
    let mnist = xtask::data::mnist_dir(&repo_root());
    let read = |name: &str| std::fs::read(mnist.join(name)).unwrap();
    let (images, labels) = Split::Train.files();
    let train = LabeledImages::parse(&read(images.name), &read(labels.name)).unwrap();
    let partners = |source: u8, target: u8, gallery: &DigitPack| {
        let path = site
            .path
            .join(format!("digits/ot-partners-{source}to{target}.bin"));
        let shipped = DigitPack::decode(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(shipped, partner_pack(gallery, &train, target).unwrap());
        shipped
    };
    let fives = partners(3, 5, &gallery);
    let partner_grid = |pack: &DigitPack, i: usize, color: DigitColor| {
        let config = VoxelConfig {
            coloring: Coloring::Fixed(color),
            ..VoxelConfig::default()
        };
        voxelize_slice(&pack.images[i], &config, 0)
            .unwrap()
            .into_vec()
    };
    let cost = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| f64::from(x - y).powi(2))
            .sum::<f64>()
            / a.len() as f64
    };
    let assert_partner = |r: &Value, pack: &DigitPack, i: usize, input: &[f32], color| {
        assert_eq!(
            r["partner"]["mnistIndex"], pack.indices[i],
            "{}",
            r["partnerText"]
        );
        let expected = cost(input, &partner_grid(pack, i, color));
        let shown = r["partner"]["cost"].as_f64().unwrap();
        assert!((shown - expected).abs() < 1e-6, "{shown} vs {expected}");
        assert_eq!(r["partnerShown"], true);
        let text = r["partnerText"].as_str().unwrap();
        assert!(
            text.contains(&format!("#{}", pack.indices[i])) && text.contains("not a lookup"),
            "{text}"
        );
    };
    for name in ["webgpu", "cpu"] {
        assert_partner(get(name), &fives, 5, &input, DigitColor::Green);
    }

    // The 3D view shows both digits.
    let (left, right) = drawn_pixels(&shot("webgpu").replace(".png", "-view.png"));
    assert!(
        left > 2000 && right > 2000,
        "digit pixels: left {left}, right {right}"
    );

    // A link reproduces its view.
    let (a, b) = (get("shared"), get("shared-again"));
    assert_eq!(a["hash"], shared);
    assert_eq!(
        a["controls"],
        json!({"threshold": 0.4, "t": 0.5, "cpu": false, "color": "blue"})
    );
    assert_eq!(a["cubes"], b["cubes"]);
    assert_eq!(a["input"], b["input"]);
    assert!(max_abs_diff(&floats(&a["output"]), &floats(&b["output"])) <= TOLERANCE);
    assert_eq!(a["problems"].as_array().unwrap().len(), 0);

    // Bad link state: messages, defaults, still working.
    let bad = get("bad-state");
    assert_eq!(bad["status"], "ready");
    let notice = bad["noticeText"].as_str().unwrap();
    for needle in [
        "d=\"abc\" is not a digit number",
        "c=\"purple\"",
        "th=9 is outside",
        "unknown key \"zz\"",
    ] {
        assert!(notice.contains(needle), "{needle} not in {notice}");
    }
    assert_eq!(bad["hash"], "#d=0&c=red&th=0.30&t=1.00&cam=25,20,38.0");
    let range = get("digit-out-of-range");
    assert_eq!(range["status"], "ready");
    assert!(
        range["noticeText"]
            .as_str()
            .unwrap()
            .contains("the gallery has digits 0 to 255")
    );

    // Corrupt or missing weights: a clear message, no map.
    let corrupt = get("corrupt-weights");
    assert_eq!(corrupt["status"], "error");
    let text = corrupt["errorText"].as_str().unwrap();
    assert!(
        text.contains("sha256") && text.contains("cargo xtask web"),
        "{text}"
    );
    assert!(corrupt["output"].is_null());
    let missing = get("missing-weights");
    assert_eq!(missing["status"], "error");
    assert!(
        missing["errorText"].as_str().unwrap().contains("HTTP 404"),
        "{}",
        missing["errorText"]
    );

    // Controls, keyboard, drawing and downloads.
    let interact = get("interact");
    assert_eq!(interact["status"], "ready", "{}", interact["errorText"]);
    let hash = interact["hash"].as_str().unwrap();
    assert!(
        hash.contains("c=yellow") && hash.contains("cam=35,20"),
        "{hash}"
    );
    let parsed = ot3d_wasm::state::parse_hash(hash);
    let strokes = parsed.state.strokes.expect("the drawing is in the link");
    let pixels = ot3d_wasm::drawing::rasterize(&strokes).unwrap();
    let config = VoxelConfig {
        coloring: Coloring::Fixed(DigitColor::Yellow),
        ..VoxelConfig::default()
    };
    let drawn = voxelize_slice(&pixels, &config, 0).unwrap().into_vec();
    assert_eq!(
        floats(&interact["input"]),
        drawn,
        "the drawn digit is the trainer's encoding"
    );
    let downloads: Vec<&str> = interact["downloads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert_eq!(
        downloads,
        [
            "ot3d-three-to-five-drawn-yellow.vox",
            "ot3d-three-to-five-drawn-yellow.png"
        ]
    );
    assert!(interact["partner"].is_null());
    assert_eq!(interact["partnerShown"], false);
    assert!(
        interact["partnerText"]
            .as_str()
            .unwrap()
            .contains("a drawing has no partner"),
        "{}",
        interact["partnerText"]
    );

    // The other shipped pair: its own gallery (test 2s) and its own weights.
    let other = get("two-to-four");
    assert_eq!(other["status"], "ready", "{}", other["errorText"]);
    assert_eq!(other["problems"].as_array().unwrap().len(), 0);
    assert!(other["hash"].as_str().unwrap().contains("m=two-to-four"));
    let twos =
        DigitPack::decode(&std::fs::read(site.path.join("digits/test-2.bin")).unwrap()).unwrap();
    assert!(twos.images.len() > 4);
    let (input, output) = native(
        &site.path,
        "two-to-four",
        &twos.images[4],
        u64::from(twos.indices[4]),
        DigitColor::Red,
    );
    assert_matches_native("two-to-four", other, &input, &output);
    let fours = partners(2, 4, &twos);
    assert_partner(other, &fours, 4, &input, DigitColor::Red);

    // Phone-sized screen.
    let phone = get("phone");
    assert_eq!(phone["status"], "ready");
    let (left, right) = drawn_pixels(&shot("phone").replace(".png", "-view.png"));
    assert!(
        left > 300 && right > 300,
        "phone view: left {left}, right {right}"
    );

    if let Some(keep) = std::env::var_os("OT3D_KEEP_SCREENSHOTS") {
        for name in ["webgpu", "phone"] {
            for suffix in ["", "-view"] {
                let file = format!("{name}{suffix}.png");
                std::fs::copy(shots.path().join(&file), Path::new(&keep).join(&file)).unwrap();
            }
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_tree(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}
