//! `cargo xtask bench`: training throughput of ot3d against a PyTorch reference of the same
//! networks and losses (`xtask/bench/torch_not.py`), A/B interleaved on the same cores, with
//! FLOP rates against the machine's measured SGEMM rate; a table and target/bench/throughput.json.

use crate::shell::{cargo, output, run, step};
use crate::wasm_pkg::target_dir;
use anyhow::{Context, Result, bail};
use ot3d_models::stats::median;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The PyTorch the reference runs on, from PyPI (pinned: figures compare across runs).
pub const TORCH_VERSION: &str = "2.9.1";

/// One table row: a batch size and the networks' widths (depths at their defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowShape {
    pub batch: usize,
    pub width: usize,
}

/// Parses "64x16,32x8" (batch × width) into rows, naming a bad one.
pub fn parse_rows(text: &str) -> Result<Vec<RowShape>> {
    text.split(',')
        .map(|item| {
            let (batch, width) = item
                .trim()
                .split_once('x')
                .with_context(|| format!("row {item:?} is not BATCHxWIDTH, e.g. 64x16"))?;
            let parse = |s: &str, what: &str, max: usize| -> Result<usize> {
                match s.parse::<usize>() {
                    Ok(v) if (1..=max).contains(&v) => Ok(v),
                    _ => bail!("row {item:?}: {what} {s:?} must be a whole number 1..={max}"),
                }
            };
            Ok(RowShape {
                batch: parse(batch, "batch", 4096)?,
                width: parse(width, "width", 256)?,
            })
        })
        .collect()
}

pub struct BenchOptions {
    pub rows: Vec<RowShape>,
    /// Timed steps of each kind per framework and row (split over the A/B rounds).
    pub reps: usize,
    /// The trainer backend: cpu, or a GPU one the trainer is built with.
    pub backend: String,
    /// Skip the PyTorch reference (no venv, no download).
    pub no_torch: bool,
    /// The trainer's CPU convolution: "gemm" (its own kernels), "gemm-im2col" (those before
    /// the direct and dense ones), "burn" or "im2col".
    pub conv: String,
    /// Untimed steps of each kind before the timed ones (GPUs compile and tune kernels then).
    pub warmup: usize,
    /// Side of the square SGEMM that measures the device's f32 limit.
    pub sgemm_size: usize,
    /// A prebuilt `ot3d` to time instead of building one (a machine without Rust).
    pub ot3d: Option<PathBuf>,
    /// A Python that already has PyTorch, instead of the virtualenv under target/bench.
    pub python: Option<PathBuf>,
    /// Where the PyTorch reference runs: "cpu" or "cuda".
    pub torch_device: String,
}

fn python_in(venv: &Path) -> PathBuf {
    venv.join("bin").join("python")
}

/// A virtualenv under target/bench with PyTorch from PyPI, made once.
fn ensure_torch(venv: &Path) -> Result<PathBuf> {
    let python = python_in(venv);
    let have = output(Command::new(&python).args(["-c", "import torch; print(torch.__version__)"]));
    if let Some(version) = have.filter(|v| v.starts_with(TORCH_VERSION)) {
        println!(
            "    pytorch {}: installed in {}",
            version.trim(),
            venv.display()
        );
        return Ok(python);
    }
    step(&format!(
        "Installing PyTorch {TORCH_VERSION} from PyPI into {} (the reference; ~4 GB with its CUDA libraries, once)",
        venv.display()
    ));
    run(Command::new("python3").args(["-m", "venv"]).arg(venv))
        .context("python3 -m venv failed: install python3-venv (apt-get install python3-venv)")?;
    run(Command::new(&python).args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        &format!("torch=={TORCH_VERSION}"),
        "numpy",
    ]))?;
    Ok(python)
}

/// A Python given by `--python`, checked to import PyTorch.
fn python_with_torch(python: &Path) -> Result<PathBuf> {
    let version = output(Command::new(python).args(["-c", "import torch; print(torch.__version__)"]))
        .with_context(|| {
            format!(
                "--python {}: it cannot import torch; install PyTorch into it, or leave --python out to use the bench's own virtualenv",
                python.display()
            )
        })?;
    println!("    pytorch {} in {}", version.trim(), python.display());
    Ok(python.to_path_buf())
}

fn json_of(command: &mut Command, what: &str) -> Result<Value> {
    let line = format!("{command:?}").replace('"', "");
    println!("    $ {line}");
    let out = command
        .output()
        .with_context(|| format!("cannot start {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or_default();
    serde_json::from_str(last).with_context(|| format!("{what} printed no JSON: {text:?}"))
}

fn numbers(value: &Value, key: &str) -> Vec<f64> {
    value[key]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

/// One framework's figures for a row, merged over the rounds.
#[derive(Debug, Default, Clone)]
struct Measured {
    t_ms: Vec<f64>,
    f_ms: Vec<f64>,
    peak_rss: u64,
    last: Value,
}

impl Measured {
    fn add(&mut self, value: Value) {
        self.t_ms.extend(numbers(&value, "t_step_ms"));
        self.f_ms.extend(numbers(&value, "f_step_ms"));
        self.peak_rss = self
            .peak_rss
            .max(value["peak_rss_bytes"].as_u64().unwrap_or(0));
        self.last = value;
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// The bench output directory under the cargo target directory `target` (made).
fn bench_dir(target: &Path) -> Result<PathBuf> {
    let bench_dir = target.join("bench");
    std::fs::create_dir_all(&bench_dir)
        .with_context(|| format!("cannot create {}", bench_dir.display()))?;
    Ok(bench_dir)
}

/// A prebuilt trainer named by `--ot3d`, checked to run.
fn prebuilt_trainer(path: &Path) -> Result<PathBuf> {
    if !path.is_file() {
        bail!(
            "--ot3d {}: no such file; build one with `cargo build --release -p ot3d-trainer --features BACKEND` and pass its path",
            path.display()
        );
    }
    output(Command::new(path).arg("--version")).with_context(|| {
        format!(
            "--ot3d {}: it does not run here (`ot3d --version` failed); is it built for this machine?",
            path.display()
        )
    })?;
    Ok(path.to_path_buf())
}

/// Builds the release trainer (with `backend`'s feature unless cpu); returns the bench
/// output directory (made) and the `ot3d` binary.
fn build_trainer(root: &Path, backend: &str) -> Result<(PathBuf, PathBuf)> {
    let target = target_dir(root)?;
    let bench_dir = bench_dir(&target)?;
    step("Building the trainer (release)");
    let mut build = cargo();
    build
        .current_dir(root)
        .args(["build", "--release", "-p", "ot3d-trainer"]);
    if backend != "cpu" {
        build.args(["--features", backend]);
    }
    run(&mut build)?;
    Ok((bench_dir, target.join("release").join("ot3d")))
}

/// `cargo xtask bench-gaussian`: the known-answer OT benchmark (`ot3d bench gaussian`) over
/// `dims`, its table on the terminal and target/bench/gaussian.json.
pub fn run_gaussian(root: &Path, dims: &str, steps: u32, backend: &str) -> Result<()> {
    let (bench_dir, ot3d) = build_trainer(root, backend)?;
    let json = bench_dir.join("gaussian.json");
    let figure = bench_dir.join("gaussian.png");
    step(&format!(
        "NOT between Gaussians in d = {dims}, {steps} outer steps each"
    ));
    run(Command::new(&ot3d)
        .args(["bench", "gaussian", "--dims", dims, "--backend", backend])
        .args(["--steps", &steps.to_string()])
        .arg("--json")
        .arg(&json)
        .arg("--figure")
        .arg(&figure))
}

pub fn run_bench(root: &Path, options: &BenchOptions) -> Result<()> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let (bench_dir, ot3d) = match &options.ot3d {
        Some(path) => (bench_dir(&target_dir(root)?)?, prebuilt_trainer(path)?),
        None => build_trainer(root, &options.backend)?,
    };
    let python = match (&options.python, options.no_torch) {
        (_, true) => None,
        (Some(python), false) => Some(python_with_torch(python)?),
        (None, false) => Some(ensure_torch(&bench_dir.join("venv"))?),
    };
    let script = root.join("xtask").join("bench").join("torch_not.py");

    // Both frameworks get the same cores: rayon's pool and torch's intra-op threads.
    let ours = || {
        let mut c = Command::new(&ot3d);
        c.env("RAYON_NUM_THREADS", threads.to_string());
        c
    };
    let torch = |python: &PathBuf| {
        let mut c = Command::new(python);
        c.arg(&script)
            .args(["--threads", &threads.to_string()])
            .args(["--device", &options.torch_device])
            .env("OMP_NUM_THREADS", threads.to_string())
            .env("MKL_NUM_THREADS", threads.to_string());
        c
    };

    let size = options.sgemm_size.to_string();
    step(&format!(
        "Measuring the f32 GEMM limit ({threads} threads, {size}×{size}, backend {})",
        options.backend
    ));
    let sgemm = json_of(
        ours().args([
            "bench",
            "sgemm",
            "--size",
            &size,
            "--reps",
            "5",
            "--backend",
            &options.backend,
        ]),
        "ot3d bench sgemm",
    )?;
    let sgemm_gflops = sgemm["gflops"].as_f64().unwrap_or(f64::NAN);
    let torch_sgemm = match &python {
        Some(p) => Some(json_of(
            torch(p).args(["--sgemm", &size, "--reps", "5"]),
            "the PyTorch SGEMM",
        )?),
        None => None,
    };
    let warmup = options.warmup.to_string();

    let ot3d_row = |batch: &str, width: &str, reps: &str| {
        json_of(
            ours().args([
                "bench",
                "steps",
                "--batch",
                batch,
                "--t-width",
                width,
                "--f-width",
                width,
                "--reps",
                reps,
                "--warmup",
                &warmup,
                "--backend",
                &options.backend,
                "--conv",
                &options.conv,
            ]),
            "ot3d bench steps",
        )
    };
    // A/B interleaved: two rounds, ot3d first in the first and PyTorch first in the second,
    // so drift (thermal, other load) falls on both.
    let rounds = 2;
    let reps_per_round = options.reps.div_ceil(rounds).max(1);
    let mut results = vec![(Measured::default(), Measured::default()); options.rows.len()];
    for round in 0..rounds {
        for (i, row) in options.rows.iter().enumerate() {
            step(&format!(
                "Round {}/{rounds}: batch {}, width {}",
                round + 1,
                row.batch,
                row.width
            ));
            let (b, w, r) = (
                row.batch.to_string(),
                row.width.to_string(),
                reps_per_round.to_string(),
            );
            if round % 2 == 0 {
                results[i].0.add(ot3d_row(&b, &w, &r)?);
            }
            if let Some(p) = &python {
                let value = json_of(
                    torch(p).args([
                        "--batch",
                        &b,
                        "--t-width",
                        &w,
                        "--f-width",
                        &w,
                        "--reps",
                        &r,
                        "--warmup",
                        &warmup,
                    ]),
                    "the PyTorch reference",
                )?;
                results[i].1.add(value);
            }
            if round % 2 == 1 {
                results[i].0.add(ot3d_row(&b, &w, &r)?);
            }
        }
    }

    let rows: Vec<Value> = options
        .rows
        .iter()
        .zip(&results)
        .map(|(shape, (ours, theirs))| row_json(shape, ours, theirs, sgemm_gflops))
        .collect();
    let report = json!({
        "machine": { "cpu": cpu_model(), "threads": threads },
        "backend": options.backend,
        "torch_device": torch_sgemm.as_ref().map(|s| s["device"].clone()),
        "conv": options.conv,
        "sgemm": { "ot3d_gemm": sgemm, "pytorch": torch_sgemm },
        "rows": rows,
    });
    println!("\n{}", table(&report));
    let path = bench_dir.join("throughput.json");
    let text = serde_json::to_string_pretty(&report)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

fn row_json(shape: &RowShape, ours: &Measured, theirs: &Measured, sgemm_gflops: f64) -> Value {
    let t_flops = ours.last["t_step_flops"].as_f64().unwrap_or(f64::NAN);
    let f_flops = ours.last["f_step_flops"].as_f64().unwrap_or(f64::NAN);
    let gflops = |flops: f64, ms: f64| flops / (ms / 1000.0) / 1e9;
    let (t_ours, f_ours) = (median(&ours.t_ms), median(&ours.f_ms));
    let (t_theirs, f_theirs) = (median(&theirs.t_ms), median(&theirs.f_ms));
    json!({
        "batch": shape.batch,
        "width": shape.width,
        "t_params": ours.last["t_params"],
        "f_params": ours.last["f_params"],
        "t_step_flops": t_flops,
        "f_step_flops": f_flops,
        "ot3d": {
            "t_step_ms": ours.t_ms, "f_step_ms": ours.f_ms,
            "t_step_median_ms": t_ours, "f_step_median_ms": f_ours,
            "t_step_gflops": gflops(t_flops, t_ours), "f_step_gflops": gflops(f_flops, f_ours),
            "t_step_sgemm_share": gflops(t_flops, t_ours) / sgemm_gflops,
            "f_step_sgemm_share": gflops(f_flops, f_ours) / sgemm_gflops,
            "peak_rss_bytes": ours.peak_rss,
        },
        "pytorch": if theirs.t_ms.is_empty() { Value::Null } else { json!({
            "framework": theirs.last["framework"],
            "t_params": theirs.last["t_params"],
            "f_params": theirs.last["f_params"],
            "t_step_ms": theirs.t_ms, "f_step_ms": theirs.f_ms,
            "t_step_median_ms": t_theirs, "f_step_median_ms": f_theirs,
            "t_step_gflops": gflops(t_flops, t_theirs), "f_step_gflops": gflops(f_flops, f_theirs),
            "peak_rss_bytes": theirs.peak_rss,
        })},
        "ratio_t_step": t_ours / t_theirs,
        "ratio_f_step": f_ours / f_theirs,
    })
}

/// The report as a terminal table.
pub fn table(report: &Value) -> String {
    let sgemm = report["sgemm"]["ot3d_gemm"]["gflops"]
        .as_f64()
        .unwrap_or(f64::NAN);
    let torch_sgemm = report["sgemm"]["pytorch"]["gflops"].as_f64();
    let backend = report["backend"].as_str().unwrap_or("?");
    let size = &report["sgemm"]["ot3d_gemm"]["size"];
    let torch_device = report["torch_device"]
        .as_str()
        .map_or(String::new(), |d| format!(", PyTorch on {d}"));
    let mut out = format!(
        "{} ({} threads), backend {backend}{}{torch_device}\nSGEMM {size}³ f32: {} {:.1} GFLOP/s{}\n\n",
        report["machine"]["cpu"].as_str().unwrap_or("?"),
        report["machine"]["threads"],
        match (backend, report["conv"].as_str()) {
            ("cpu", Some(conv)) | (_, Some(conv @ "im2col")) => format!(", {conv} conv3d"),
            _ => String::new(),
        },
        if backend == "cpu" {
            "gemm crate (burn's CPU backend)".to_string()
        } else {
            format!("burn's matmul on {backend}")
        },
        sgemm,
        torch_sgemm.map_or(String::new(), |g| format!(", PyTorch {g:.1} GFLOP/s")),
    );
    out += &format!(
        "{:<10} {:>5} {:>10} {:>10} {:>6} {:>10} {:>10} {:>6} {:>14} {:>10} {:>10}\n",
        "batch×w",
        "step",
        "ot3d ms",
        "torch ms",
        "ratio",
        "GFLOP",
        "ot3d GF/s",
        "%SGEMM",
        "torch GF/s",
        "ot3d RSS",
        "torch RSS"
    );
    let mib = |v: &Value| {
        v.as_f64()
            .map_or("-".into(), |b| format!("{:.0} MiB", b / 1048576.0))
    };
    let num = |v: &Value, digits: usize| {
        v.as_f64()
            .filter(|x| x.is_finite())
            .map_or("-".into(), |x| format!("{x:.digits$}"))
    };
    for row in report["rows"].as_array().into_iter().flatten() {
        let label = format!("{}×{}", row["batch"], row["width"]);
        for (kind, key) in [("T", "t"), ("f", "f")] {
            let ours = &row["ot3d"];
            let theirs = &row["pytorch"];
            let share = ours[format!("{key}_step_sgemm_share")]
                .as_f64()
                .map(|s| s * 100.0);
            out += &format!(
                "{:<10} {:>5} {:>10} {:>10} {:>6} {:>10} {:>10} {:>6} {:>14} {:>10} {:>10}\n",
                label,
                kind,
                num(&ours[format!("{key}_step_median_ms")], 0),
                num(&theirs[format!("{key}_step_median_ms")], 0),
                num(&row[format!("ratio_{key}_step")], 2),
                num(
                    &json!(row[format!("{key}_step_flops")].as_f64().map(|f| f / 1e9)),
                    2
                ),
                num(&ours[format!("{key}_step_gflops")], 1),
                share.map_or("-".into(), |s| format!("{s:.0}%")),
                num(&theirs[format!("{key}_step_gflops")], 1),
                mib(&ours["peak_rss_bytes"]),
                mib(&theirs["peak_rss_bytes"]),
            );
        }
    }
    out += "\nms: median per step after a warm-up; ratio = ot3d / PyTorch (below 1: ot3d faster);\n\
            GFLOP: convolutions and linear layers of one step (models::nets::flops).";
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_parse_and_bad_ones_are_named() {
        assert_eq!(
            parse_rows("64x16, 32x8").unwrap(),
            vec![
                RowShape {
                    batch: 64,
                    width: 16
                },
                RowShape {
                    batch: 32,
                    width: 8
                }
            ]
        );
        for (bad, says) in [
            ("64", "BATCHxWIDTH"),
            ("0x16", "batch"),
            ("64x999", "width"),
            ("ax8", "batch"),
        ] {
            let err = parse_rows(bad).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn the_table_shows_ratios_shares_and_missing_reference() {
        let ours = Measured {
            t_ms: vec![100.0, 300.0, 200.0],
            f_ms: vec![50.0],
            peak_rss: 2 * 1048576,
            last: json!({"t_step_flops": 2e9, "f_step_flops": 1e9, "t_params": 10, "f_params": 20}),
        };
        let theirs = Measured {
            t_ms: vec![400.0],
            f_ms: vec![25.0],
            peak_rss: 1048576,
            last: json!({"framework": "pytorch"}),
        };
        let row = row_json(&RowShape { batch: 8, width: 4 }, &ours, &theirs, 20.0);
        assert_eq!(row["ratio_t_step"], 0.5);
        assert_eq!(row["ratio_f_step"], 2.0);
        // 2 GFLOP in 0.2 s = 10 GFLOP/s, half of a 20 GFLOP/s SGEMM.
        assert_eq!(row["ot3d"]["t_step_gflops"], 10.0);
        assert_eq!(row["ot3d"]["t_step_sgemm_share"], 0.5);
        let without = row_json(
            &RowShape { batch: 8, width: 4 },
            &ours,
            &Measured::default(),
            20.0,
        );
        assert!(without["pytorch"].is_null());
        let report = json!({
            "machine": {"cpu": "test cpu", "threads": 2},
            "backend": "cpu",
            "conv": "gemm",
            "sgemm": {"ot3d_gemm": {"gflops": 20.0, "size": 2048}, "pytorch": null},
            "rows": [row, without],
        });
        let text = table(&report);
        assert!(
            text.contains("test cpu (2 threads), backend cpu, gemm conv3d"),
            "{text}"
        );
        assert!(
            text.contains("SGEMM 2048³ f32: gemm crate (burn's CPU backend) 20.0 GFLOP/s"),
            "{text}"
        );
        assert!(text.contains("8×4"));
        assert!(
            text.contains("0.50") && text.contains("50%") && text.contains("2 MiB"),
            "{text}"
        );
        let on_gpu = json!({
            "machine": {"cpu": "test cpu", "threads": 16},
            "backend": "vulkan",
            "torch_device": "NVIDIA H200",
            "conv": "gemm",
            "sgemm": {"ot3d_gemm": {"gflops": 2e4, "size": 8192}, "pytorch": {"gflops": 5e4}},
            "rows": [],
        });
        let gpu_text = table(&on_gpu);
        assert!(
            gpu_text.contains("backend vulkan, PyTorch on NVIDIA H200\nSGEMM 8192³ f32: burn's matmul on vulkan 20000.0 GFLOP/s, PyTorch 50000.0 GFLOP/s"),
            "{gpu_text}"
        );
    }

    #[test]
    fn a_missing_prebuilt_trainer_or_python_is_named_with_the_fix() {
        let err = prebuilt_trainer(Path::new("/nonexistent/ot3d")).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("--ot3d /nonexistent/ot3d") && text.contains("cargo build --release"),
            "{text}"
        );
        let err = python_with_torch(Path::new("/nonexistent/python3")).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("--python /nonexistent/python3") && text.contains("cannot import torch"),
            "{text}"
        );
    }
}
