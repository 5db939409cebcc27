//! The `ot3d` binary as a user meets it: previews of every flavor, and clear errors for
//! missing or corrupt data and bad arguments.

use ot3d_tests::{TINY_NETS, mnist_dir};
use std::path::Path;
use std::process::{Command, Output};

fn ot3d(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ot3d"))
        .args(args)
        .output()
        .expect("ot3d runs")
}

/// Runs `ot3d args` and checks that it fails with `message` on stderr.
fn refused(args: &[&str], message: &str) {
    let out = ot3d(args);
    assert!(!out.status.success(), "{args:?} succeeded");
    assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Decodes a PNG and returns (width, height, share of pixels that are not background).
fn png_summary(path: &Path) -> (u32, u32, f64) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bg = ot3d_models::render::BACKGROUND;
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(3).collect();
    let colored = pixels.iter().filter(|p| **p != bg).count();
    (
        info.width,
        info.height,
        colored as f64 / pixels.len() as f64,
    )
}

#[test]
fn preview_writes_a_png_of_colored_digits_for_every_flavor() {
    let Some(dir) = mnist_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    for flavor in ["plain", "rotated", "kaggle-style"] {
        let out = work.path().join(format!("{flavor}.png"));
        let result = ot3d(&[
            "data",
            "preview",
            "--flavor",
            flavor,
            "--digit",
            "5",
            "--count",
            "6",
            "--columns",
            "3",
            "--data-dir",
            dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(result.status.success(), "{flavor}: {}", stderr(&result));
        let (width, height, colored) = png_summary(&out);
        assert!(
            width > height,
            "{flavor}: 3 columns × 2 rows should be wider than tall"
        );
        assert!(
            (0.03..0.6).contains(&colored),
            "{flavor}: {colored:.3} of the sheet is digits"
        );
    }
}

#[test]
fn same_seed_same_picture() {
    let Some(dir) = mnist_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: &str| {
        let out = work.path().join(name);
        let result = ot3d(&[
            "data",
            "preview",
            "--flavor",
            "kaggle-style",
            "--seed",
            seed,
            "--count",
            "3",
            "--data-dir",
            dir.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(result.status.success(), "{}", stderr(&result));
        std::fs::read(out).unwrap()
    };
    assert_eq!(run("a.png", "4"), run("b.png", "4"));
    assert_ne!(run("a.png", "4"), run("c.png", "5"));
}

#[test]
fn info_prints_the_canonical_counts() {
    let Some(dir) = mnist_dir() else { return };
    let result = ot3d(&["data", "info", "--data-dir", dir.to_str().unwrap()]);
    assert!(result.status.success(), "{}", stderr(&result));
    let text = String::from_utf8_lossy(&result.stdout);
    for count in ["6131", "5421", "1010", "892"] {
        assert!(text.contains(count), "{count} missing from:\n{text}");
    }
}

#[test]
fn missing_data_names_the_file_and_the_fix() {
    let work = tempfile::tempdir().unwrap();
    let result = ot3d(&["data", "info", "--data-dir", work.path().to_str().unwrap()]);
    assert!(!result.status.success());
    let err = stderr(&result);
    assert!(
        err.contains("train-images-idx3-ubyte") && err.contains("cargo xtask data"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn a_corrupt_byte_is_caught_and_named() {
    let Some(dir) = mnist_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    for f in ot3d_models::mnist::MNIST_FILES.iter() {
        std::fs::copy(dir.join(f.name), work.path().join(f.name)).unwrap();
    }
    let victim = work.path().join("t10k-images-idx3-ubyte");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[5000] ^= 0x01;
    std::fs::write(&victim, bytes).unwrap();
    let out = work.path().join("never.png");
    let result = ot3d(&[
        "data",
        "preview",
        "--split",
        "test",
        "--data-dir",
        work.path().to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!result.status.success());
    let err = stderr(&result);
    assert!(
        err.contains("t10k-images-idx3-ubyte")
            && err.contains("md5")
            && err.contains("cargo xtask data"),
        "{err}"
    );
    assert!(!out.exists(), "no picture from corrupt data");
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let cases: [(&[&str], &str); 20] = [
        (
            &["train", "--t-average", "1", "--dry-run"],
            "T's weight average decay must be in [0, 1) (0 = none), got 1",
        ),
        (
            &["train", "--f-drift=-1", "--dry-run"],
            "f drift penalty must be a number >= 0 (0 = none), got -1",
        ),
        (
            &[
                "train",
                "--warm-start-anchor",
                "0",
                "--warm-start-anchor-final",
                "1",
                "--dry-run",
            ],
            "--warm-start-anchor-final decays the anchor: give --warm-start-anchor",
        ),
        (
            &[
                "train",
                "--warm-start-anchor",
                "10",
                "--warm-start-anchor-final",
                "20",
                "--dry-run",
            ],
            "anchor's final weight must be in (0, anchor = 10]",
        ),
        (
            &["train", "--warm-start-average", "1", "--dry-run"],
            "weight average decay must be in [0, 1)",
        ),
        (&["train", "--noise-draws", "3"], "--weak-gamma"),
        (
            &[
                "train",
                "--warm-start-steps",
                "0",
                "--warm-start-average",
                "0.9",
                "--dry-run",
            ],
            "--warm-start-average averages the warm start's regression",
        ),
        (
            &["train", "--warm-start-anchor=-1", "--dry-run"],
            "warm start anchor must be a number >= 0",
        ),
        (
            &[
                "train",
                "--warm-start-steps",
                "0",
                "--warm-start-anchor",
                "1",
                "--dry-run",
            ],
            "--warm-start-anchor needs a warm start",
        ),
        (
            &[
                "train",
                "--weak-gamma",
                "0.5",
                "--warm-start-anchor",
                "1",
                "--dry-run",
            ],
            "warm start anchor needs one target per source",
        ),
        (
            &["train", "--w", "0.5", "--dry-run"],
            "target weight w must be in [1, 16]",
        ),
        (&["train", "--w", "many", "--dry-run"], "--w"),
        (
            &[
                "figure",
                "compare",
                "--weights",
                "a",
                "--weights",
                "b",
                "--label",
                "x",
                "--out",
                "f.png",
            ],
            "1 --label for 2 --weights",
        ),
        (&["train", "--weak-gamma", "1.5", "--dry-run"], "gamma"),
        (
            &["train", "--weak-gamma", "0.5", "--noise-draws", "1"],
            "draws",
        ),
        (&["data", "preview", "--digit", "11"], "11"),
        (&["data", "preview", "--flavor", "cubist"], "cubist"),
        (&["data", "preview", "--flavor", "kaggle-h5"], "--h5"),
        (
            &["data", "preview", "--band-start", "9", "--band-end", "4"],
            "depth band",
        ),
        (
            &[
                "data",
                "preview",
                "--flavor",
                "rotated",
                "--max-degrees",
                "400",
            ],
            "max_degrees",
        ),
    ];
    for (args, needle) in cases {
        let result = ot3d(args);
        assert!(!result.status.success(), "{args:?} should fail");
        let err = stderr(&result);
        assert!(
            err.contains(needle) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
}

#[test]
fn dry_run_shows_the_weak_cost_and_a_noise_input_for_t() {
    let Some(dir) = mnist_dir() else { return };
    let dir = dir.to_str().unwrap();
    let strong = ot3d(&["train", "--dry-run", "--data-dir", dir]);
    let weak = ot3d(&[
        "train",
        "--dry-run",
        "--data-dir",
        dir,
        "--weak-gamma",
        "0.5",
        "--noise-channels",
        "2",
    ]);
    let (strong, weak) = (
        String::from_utf8_lossy(&strong.stdout).into_owned(),
        String::from_utf8_lossy(&weak.stdout).into_owned(),
    );
    assert!(strong.contains("\"weak\": null"), "{strong}");
    assert!(
        weak.contains("\"gamma\": 0.5") && weak.contains("\"t_noise_channels\": 2"),
        "{weak}"
    );
    let t_params = |text: &str| -> u64 {
        let line = text.lines().find(|l| l.starts_with("T ")).unwrap();
        line.split_whitespace()
            .find_map(|w| w.parse().ok())
            .unwrap()
    };
    // Two more input channels into T's first 3³ conv (width 8 in the default preset).
    assert_eq!(t_params(&weak) - t_params(&strong), 2 * 8 * 27);
    // Per-voxel noise is the default and stays out of the config; per-digit noise is named.
    assert!(!weak.contains("noise_layout"), "{weak}");
    let digit = dry_run_config(&[
        "--data-dir",
        dir,
        "--weak-gamma",
        "1",
        "--noise-layout",
        "digit",
    ]);
    assert_eq!(digit["weak"]["noise_layout"], "digit");
    // The quadratic kernel is the default and stays out of the config; the distance is named.
    assert!(!weak.contains("kernel"), "{weak}");
    let distance = dry_run_config(&[
        "--data-dir",
        dir,
        "--weak-gamma",
        "1",
        "--weak-kernel",
        "distance",
    ]);
    assert_eq!(distance["weak"]["kernel"], "distance");
    // Style groups are off by default and stay out of the config; with them an anchor is
    // accepted, and without them refused with the flag that fixes it.
    assert!(!weak.contains("groups"), "{weak}");
    let grouped = dry_run_config(&[
        "--data-dir",
        dir,
        "--weak-gamma",
        "0.5",
        "--weak-groups",
        "4",
        "--noise-layout",
        "digit",
        "--noise-channels",
        "2",
        "--warm-start-anchor",
        "30",
    ]);
    assert_eq!(grouped["weak"]["groups"], 4);
    assert_eq!(grouped["weak"]["noise_layout"], "digit");
    assert_eq!(grouped["warm_start"]["anchor"], 30.0);
    // Sign codes name the groups as well (one of 2^channels codes per digit).
    let signed = dry_run_config(&[
        "--data-dir",
        dir,
        "--weak-gamma",
        "1",
        "--weak-groups",
        "4",
        "--noise-layout",
        "signs",
        "--noise-channels",
        "2",
        "--warm-start-anchor",
        "30",
    ]);
    assert_eq!(signed["weak"]["noise_layout"], "signs");
    let anchored_plan = ot3d(&[
        "train",
        "--dry-run",
        "--data-dir",
        dir,
        "--weak-gamma",
        "0.5",
        "--warm-start-anchor",
        "30",
    ]);
    assert!(
        !anchored_plan.status.success() && stderr(&anchored_plan).contains("--weak-groups K"),
        "{}",
        stderr(&anchored_plan)
    );
    let bad = ot3d(&[
        "train",
        "--dry-run",
        "--data-dir",
        dir,
        "--weak-gamma",
        "1",
        "--noise-layout",
        "pixel",
    ]);
    assert!(
        !bad.status.success() && stderr(&bad).contains("invalid value 'pixel'"),
        "{}",
        stderr(&bad)
    );
    let strong_only = ot3d(&[
        "train",
        "--dry-run",
        "--data-dir",
        dir,
        "--noise-layout",
        "digit",
    ]);
    assert!(
        !strong_only.status.success() && stderr(&strong_only).contains("--weak-gamma"),
        "{}",
        stderr(&strong_only)
    );
}

/// The config `ot3d train --dry-run ARGS` prints.
fn dry_run_config(args: &[&str]) -> serde_json::Value {
    let out = ot3d(&[&["train", "--dry-run"], args].concat());
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = &stdout[..stdout
        .find("\nT (")
        .expect("parameter counts after the config")];
    serde_json::from_str(json).unwrap()
}

/// The train_config.json a shipped map was trained with.
fn shipped_train_config(model: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/pretrained")
        .join(model)
        .join("train_config.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn classifier_train_without_flags_is_the_shipped_classifier_recipe() {
    let dry_run = |args: &[&str]| -> serde_json::Value {
        let out = ot3d(&[&["classifier", "train", "--dry-run"], args].concat());
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    // No flags: exactly the config the shipped classifier was trained with (the README
    // promises it), not a different network written over it.
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../models/pretrained/classifier/train_config.json"),
    )
    .unwrap();
    assert_eq!(
        dry_run(&[]),
        serde_json::from_str::<serde_json::Value>(&shipped).unwrap()
    );
    let flavors = dry_run(&["--flavors", "plain,rotated,kaggle-style", "--steps", "10"]);
    assert_eq!(
        flavors["flavors"],
        serde_json::json!(["plain", "rotated", "kaggle-style"])
    );
    assert_eq!(flavors["steps"], 10);
    assert_eq!(flavors["width"], 16);
    let out = ot3d(&["classifier", "train", "--dry-run", "--width", "0"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid classifier settings"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn train_without_flags_is_the_shipped_recipe_and_flags_override_presets() {
    let Some(dir) = mnist_dir() else { return };
    let dir = dir.to_str().unwrap();
    // No flags: the cpu-3to5 preset, exactly the shipped map's training config.
    let mut default = dry_run_config(&["--data-dir", dir]);
    let shipped = shipped_train_config("three-to-five");
    default["data"]["dir"] = shipped["data"]["dir"].clone();
    assert_eq!(default, shipped);
    // The 2 → 4 map: the same preset, only the pair changed.
    let mut pair = dry_run_config(&["--data-dir", dir, "--source", "2", "--target", "4"]);
    let shipped = shipped_train_config("two-to-four");
    pair["data"]["dir"] = shipped["data"]["dir"].clone();
    assert_eq!(pair, shipped);

    // The GPU preset is the NOT reference; a flag given changes only its own setting.
    let gpu = dry_run_config(&[
        "--data-dir",
        dir,
        "--preset",
        "gpu-3to5",
        "--batch-size",
        "16",
    ]);
    assert_eq!(
        (
            &gpu["nets"]["t_width"],
            &gpu["t_steps"],
            &gpu["steps"],
            &gpu["batch_size"]
        ),
        (&16.into(), &10.into(), &10000.into(), &16.into())
    );
    assert!(gpu["warm_start"].is_null());
    let gpu_warm = dry_run_config(&[
        "--data-dir",
        dir,
        "--preset",
        "gpu-3to5",
        "--warm-start-steps",
        "50",
    ]);
    assert_eq!(gpu_warm["warm_start"]["steps"], 50);
    assert_eq!(gpu_warm["warm_start"]["pairs_per_color"], 1024);
    // The CPU preset's warm start, changed and switched off.
    let cpu = dry_run_config(&[
        "--data-dir",
        dir,
        "--warm-start-lr",
        "0.01",
        "--t-width",
        "4",
    ]);
    assert_eq!(
        (
            &cpu["warm_start"]["lr"],
            &cpu["warm_start"]["steps"],
            &cpu["nets"]["t_width"]
        ),
        (&0.01.into(), &1800.into(), &4.into())
    );
    // Model selection: the preset's, changed, switched off; its settings without it refused.
    assert_eq!(
        cpu["select"],
        serde_json::json!({"every": 100, "held_out": 500, "judge": "models/pretrained/classifier"})
    );
    assert!(gpu["select"].is_null(), "the reference selects nothing");
    let fewer = dry_run_config(&["--data-dir", dir, "--select-held-out", "64"]);
    assert_eq!(
        (&fewer["select"]["held_out"], &fewer["select"]["every"]),
        (&64.into(), &100.into())
    );
    let off = dry_run_config(&["--data-dir", dir, "--select-every", "0"]);
    assert!(off.get("select").is_none(), "no selection is not written");
    let keeping = dry_run_config(&["--data-dir", dir, "--select-keep-all"]);
    assert_eq!(keeping["select"]["keep_all"], true);
    assert!(
        cpu["select"].get("keep_all").is_none(),
        "not kept by default"
    );
    refused(
        &[
            "train",
            "--dry-run",
            "--select-every",
            "0",
            "--select-keep-all",
        ],
        "give --select-every N > 0",
    );
    // Restarts: the preset's three, chosen among by the validation; one without it, one
    // when transferring, and more than one there refused.
    assert_eq!(cpu["restarts"], 3);
    assert!(gpu.get("restarts").is_none(), "one run is not written");
    assert!(off.get("restarts").is_none(), "no selection, one run");
    let two = dry_run_config(&["--data-dir", dir, "--restarts", "2"]);
    assert_eq!(two["restarts"], 2);
    let transferred = dry_run_config(&["--data-dir", dir, "--init-from", "runs/x"]);
    assert!(transferred.get("restarts").is_none(), "{transferred}");
    refused(
        &["train", "--dry-run", "--restarts", "2", "--init-from", "x"],
        "give --restarts 1 with --init-from",
    );
    refused(
        &[
            "train",
            "--dry-run",
            "--restarts",
            "2",
            "--select-every",
            "0",
        ],
        "give --select-every N > 0, or --restarts 1",
    );
    refused(
        &["train", "--dry-run", "--restarts", "0"],
        "restarts must be 1..=16",
    );
    refused(
        &[
            "train",
            "--dry-run",
            "--select-every",
            "0",
            "--select-judge",
            "x",
        ],
        "give --select-every N > 0",
    );
    let anchored = dry_run_config(&["--data-dir", dir, "--warm-start-anchor", "0.5"]);
    assert_eq!(anchored["warm_start"]["anchor"], 0.5);
    assert_eq!(cpu["warm_start"]["anchor"], 30.0, "the preset's anchor");
    let unanchored = dry_run_config(&["--data-dir", dir, "--warm-start-anchor", "0"]);
    assert!(
        unanchored["warm_start"].get("anchor").is_none(),
        "no anchor is not written"
    );
    let decayed = dry_run_config(&[
        "--data-dir",
        dir,
        "--warm-start-anchor",
        "100",
        "--warm-start-anchor-final",
        "1",
        "--steps",
        "600",
    ]);
    assert_eq!(
        (
            &decayed["warm_start"]["anchor"],
            &decayed["warm_start"]["anchor_decay"]
        ),
        (
            &100.0.into(),
            &serde_json::json!({"to": 1.0, "over_steps": 600})
        )
    );
    assert!(
        anchored["warm_start"].get("anchor_decay").is_none(),
        "a constant anchor writes no final weight"
    );
    let drifted = dry_run_config(&["--data-dir", dir, "--f-drift", "10"]);
    assert_eq!(drifted["f_drift"], 10.0);
    assert_eq!(cpu["f_drift"], 1.0, "the preset's drift penalty");
    let undrifted = dry_run_config(&["--data-dir", dir, "--f-drift", "0"]);
    assert!(
        undrifted.get("f_drift").is_none(),
        "no drift penalty is not written"
    );
    let averaged_t = dry_run_config(&["--data-dir", dir, "--t-average", "0.9"]);
    assert_eq!(averaged_t["t_average"], 0.9);
    assert_eq!(cpu["t_average"], 0.99, "the preset's average of T");
    let last_iterate = dry_run_config(&["--data-dir", dir, "--t-average", "0"]);
    assert!(
        last_iterate.get("t_average").is_none(),
        "no average of T is not written"
    );
    let averaged = dry_run_config(&["--data-dir", dir, "--warm-start-average", "0.999"]);
    assert_eq!(averaged["warm_start"]["average"], 0.999);
    assert!(
        cpu["warm_start"].get("average").is_none(),
        "no average is not written"
    );
    let cycled = dry_run_config(&["--data-dir", dir, "--warm-start-cycles", "3"]);
    assert_eq!(cycled["warm_start"]["cycles"], 3);
    assert!(
        cpu["warm_start"].get("cycles").is_none(),
        "one cycle is not written"
    );
    let off = dry_run_config(&["--data-dir", dir, "--warm-start-steps", "0"]);
    assert!(off["warm_start"].is_null());
    let err = stderr(&ot3d(&["train", "--dry-run", "--preset", "tpu"]));
    assert!(
        err.contains("cpu-3to5") && err.contains("gpu-3to5"),
        "{err}"
    );
}

#[test]
fn ctrl_c_stops_training_cleanly_with_a_checkpoint() {
    let Some(dir) = mnist_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let run = work.path().join("run");
    let child = Command::new(env!("CARGO_BIN_EXE_ot3d"))
        .args([
            "train",
            "--quiet",
            "--steps",
            "100000",
            "--batch-size",
            "2",
            "--t-steps",
            "1",
            "--warm-start-steps",
            "0",
            "--select-every",
            "0",
        ])
        .args(TINY_NETS)
        .args([
            "--data-dir",
            dir.to_str().unwrap(),
            "--run",
            run.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until training is under way (a logged step), then interrupt it.
    let log = run.join("log.jsonl");
    let started = std::time::Instant::now();
    while std::fs::read_to_string(&log).map_or(true, |t| t.is_empty()) {
        assert!(
            started.elapsed().as_secs() < 120,
            "training never logged a step"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("stopped at step") && stdout.contains("--resume"),
        "{stdout}"
    );
    let latest = std::fs::read_to_string(run.join("checkpoints/LATEST")).unwrap();
    assert!(
        run.join("checkpoints")
            .join(latest.trim())
            .join("t.bpk")
            .is_file()
    );
}

#[test]
fn export_digits_writes_the_page_gallery_of_test_digits() {
    use ot3d_models::digit_pack::DigitPack;
    use ot3d_models::mnist::Split;
    let Some(dir) = mnist_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("digits-3.bin");
    let data = dir.to_str().unwrap();
    let result = ot3d(&[
        "export-digits",
        "--digit",
        "3",
        "--count",
        "200",
        "--data-dir",
        data,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(result.status.success(), "{}", stderr(&result));
    let pack = DigitPack::decode(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!((pack.digit, pack.split, pack.len()), (3, Split::Test, 200));
    let test = ot3d_tests::mnist_split(Split::Test).unwrap();
    for (index, image) in pack.indices.iter().zip(&pack.images) {
        assert_eq!(test.labels[*index as usize], 3);
        assert_eq!(&test.images[*index as usize], image);
    }
    let too_many = ot3d(&[
        "export-digits",
        "--digit",
        "3",
        "--count",
        "5000",
        "--data-dir",
        data,
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!too_many.status.success());
    assert!(
        stderr(&too_many).contains("only 1010 digits of class 3"),
        "{}",
        stderr(&too_many)
    );
}

/// `ot3d bench steps` prints one JSON row per convolution route, and names the route it timed.
#[test]
fn bench_steps_times_each_convolution_route() {
    for (conv, framework) in [
        ("gemm", "cpu, gemm conv"),
        ("gemm-im2col", "cpu, gemm-im2col conv"),
        ("burn", "cpu, burn conv"),
        ("im2col", "cpu, im2col conv"),
    ] {
        let mut args = vec![
            "bench", "steps", "--batch", "2", "--reps", "1", "--conv", conv,
        ];
        args.extend(TINY_NETS);
        let out = ot3d(&args);
        assert!(out.status.success(), "{conv}: {}", stderr(&out));
        let row: serde_json::Value =
            serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{conv}: {e}"));
        assert!(
            row["framework"].as_str().unwrap().contains(framework),
            "{conv}: {row}"
        );
        assert!(row["t_step_median_ms"].as_f64().unwrap() > 0.0, "{row}");
    }
}

/// `ot3d bench conv` times forward, input gradient and weight gradient of one convolution by
/// both kernel sets, and refuses a volume of no voxels.
#[test]
fn bench_conv_times_each_pass_by_each_kernel() {
    let out = ot3d(&[
        "bench",
        "conv",
        "--batch",
        "2",
        "--channels-in",
        "3",
        "--channels-out",
        "5",
        "--size",
        "8",
        "--reps",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let mut seen: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            assert_eq!(r["ms"].as_array().unwrap().len(), 2, "{r}");
            assert!(r["gflops"].as_f64().unwrap() > 0.0, "{r}");
            assert_eq!(
                (r["channels_in"].as_u64(), r["size"].as_u64()),
                (Some(3), Some(8))
            );
            (
                r["kernel"].as_str().unwrap().into(),
                r["pass"].as_str().unwrap().into(),
            )
        })
        .collect();
    seen.sort();
    let mut want = Vec::new();
    for kernel in ["direct", "im2col-gemm"] {
        for pass in ["forward", "input-gradient", "weight-gradient"] {
            want.push((kernel.to_string(), pass.to_string()));
        }
    }
    want.sort();
    assert_eq!(seen, want);
    let empty = ot3d(&["bench", "conv", "--size", "0"]);
    assert!(!empty.status.success());
    assert!(stderr(&empty).contains("--size"), "{}", stderr(&empty));
}

#[test]
fn train_on_two_devices_splits_the_batch_and_refuses_an_uneven_one() {
    let Some(dir) = mnist_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let run = work.path().join("run");
    let train = |devices: &str, batch: &str| {
        let mut args = vec![
            "train",
            "--quiet",
            "--steps",
            "2",
            "--t-steps",
            "1",
            "--warm-start-steps",
            "3",
            "--warm-start-pairs",
            "2",
            "--warm-start-f-steps",
            "1",
            "--select-every",
            "0",
            "--batch-size",
            batch,
            "--devices",
            devices,
            "--data-dir",
            dir.to_str().unwrap(),
            "--run",
            run.to_str().unwrap(),
        ];
        args.extend(TINY_NETS);
        ot3d(&args)
    };
    let out = train("0,1,2", "4");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("batch size 4 does not split evenly over 3 devices")
            && stderr(&out).contains("multiple of 3"),
        "{}",
        stderr(&out)
    );
    assert!(!run.join("config.json").exists(), "nothing written");
    let out = train("0,1", "4");
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("on 2 cpu devices (data-parallel, batch 2 per device)"),
        "{stdout}"
    );
    assert!(run.join("checkpoints/step-00000002").is_dir());
    // A GPU index given twice is refused before any device is touched.
    refused(
        &[
            "train",
            "--backend",
            "vulkan",
            "--devices",
            "0,0",
            "--dry-run",
        ],
        "names vulkan device 0 twice",
    );
}
