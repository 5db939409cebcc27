//! Faults on purpose: `ot3d train` killed with SIGKILL at random moments (20 times, one
//! run), and a disk that fills up or turns read-only under a run. Every time the run
//! resumes from its last checkpoint, no checkpoint is ever unreadable, at most one
//! checkpoint interval is lost, and the resumed run ends bit-identical to one never killed.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use ot3d_models::rng::SeedRng;
use ot3d_tests::{TINY_NETS, mnist_dir};
use ot3d_trainer::training::checkpoint::load_latest_nets;
use ot3d_trainer::training::config::NetsConfig;
use ot3d_trainer::training::log::{StepRecord, read_log};
use ot3d_trainer::training::run::read_config;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHECKPOINT_EVERY: u64 = 2;

fn tiny_train(data: &Path, run: &Path, steps: u64) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ot3d"));
    command
        .args(["train", "--quiet", "--batch-size", "2", "--t-steps", "1"])
        .args(["--warm-start-steps", "0", "--select-every", "0"])
        .args(TINY_NETS)
        .args(["--checkpoint-every", &CHECKPOINT_EVERY.to_string()])
        .args(["--steps", &steps.to_string()])
        .arg("--data-dir")
        .arg(data)
        .arg("--run")
        .arg(run)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

fn resume(run: &Path, steps: u64) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ot3d"));
    command
        .args([
            "train",
            "--quiet",
            "--steps",
            &steps.to_string(),
            "--resume",
        ])
        .arg(run)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

struct Collect<'a>(&'a mut Vec<f32>);

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0
            .extend(param.val().into_data().try_to_vec::<f32>().unwrap());
    }
}

/// The latest checkpoint's step and every weight of T and f; panics if it is unreadable.
fn latest(run: &Path, nets: &NetsConfig) -> (u64, Vec<f32>) {
    let (t, f, state) = load_latest_nets(run, nets, &Device::flex()).unwrap_or_else(|e| {
        panic!(
            "the latest checkpoint of {} is unreadable: {e}",
            run.display()
        )
    });
    let mut values = Vec::new();
    t.visit(&mut Collect(&mut values));
    f.visit(&mut Collect(&mut values));
    (state.step, values)
}

/// Steps in log.jsonl that parse (a line cut by the kill does not).
fn logged_steps(run: &Path) -> u64 {
    std::fs::read_to_string(run.join("log.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<StepRecord>(l).ok())
        .map(|r| r.step)
        .max()
        .unwrap_or(0)
}

fn losses(run: &Path) -> Vec<(u64, f64, f64, f64)> {
    read_log(run)
        .unwrap()
        .into_iter()
        .map(|r| (r.step, r.l_f, r.l_t, r.cost))
        .collect()
}

#[test]
fn sigkill_at_random_moments_loses_at_most_one_interval_and_resumes_exactly() {
    let Some(data) = mnist_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let run = work.path().join("killed");
    let mut rng = SeedRng::new(9);
    let (mut nets, mut checkpoint_step, mut kills_mid_training) = (None, 0u64, 0);
    for trial in 0..20 {
        // Until a checkpoint exists there is nothing to resume: a new run each time.
        let fresh = !run.join("checkpoints/LATEST").exists();
        if fresh {
            let _ = std::fs::remove_dir_all(&run);
        }
        let before = logged_steps(&run);
        let mut child = if fresh {
            tiny_train(&data, &run, 100_000)
        } else {
            resume(&run, 100_000)
        }
        .spawn()
        .unwrap();
        // Half the kills at any moment from the start (loading data, writing config,
        // the first steps); half once training is under way, at a random point of a step
        // or of a checkpoint being written.
        let started = Instant::now();
        if trial % 2 == 1 {
            while logged_steps(&run) <= before && started.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        std::thread::sleep(Duration::from_millis(rng.below(700)));
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            panic!(
                "trial {trial}: the run ended by itself: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        if !run.join("checkpoints/LATEST").exists() {
            // Killed before the first checkpoint: nothing to resume yet, and nothing may
            // claim otherwise; start over.
            assert_eq!(checkpoint_step, 0, "trial {trial}: LATEST disappeared");
            continue;
        }
        let config = read_config(&run).expect("config.json is always whole");
        let (step, _) = latest(&run, &config.nets);
        let logged = logged_steps(&run);
        assert!(
            step >= checkpoint_step,
            "trial {trial}: checkpoint went back"
        );
        assert!(
            logged.saturating_sub(step) <= CHECKPOINT_EVERY,
            "trial {trial}: {logged} steps logged but the checkpoint is at {step}: more than one interval lost"
        );
        if logged > before {
            kills_mid_training += 1;
        }
        checkpoint_step = step;
        nets = Some(config.nets);
    }
    let nets = nets.expect("some trial got past the first checkpoint");
    assert!(
        kills_mid_training >= 8,
        "only {kills_mid_training} kills landed during training"
    );

    // Finish the killed run a few steps past its checkpoint, and train the same run
    // without interruption: same weights, same loss at every step.
    let end = checkpoint_step + 4;
    let out = resume(&run, end).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let clean = work.path().join("clean");
    let out = tiny_train(&data, &clean, end).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (killed_step, killed_weights) = latest(&run, &nets);
    let (clean_step, clean_weights) = latest(&clean, &nets);
    assert_eq!((killed_step, clean_step), (end, end));
    assert_eq!(
        killed_weights, clean_weights,
        "weights differ from the uninterrupted run"
    );
    assert_eq!(losses(&run), losses(&clean), "the loss log differs");
    println!("20 kills ({kills_mid_training} during training); resumed exactly to step {end}");
}

/// Runs `script` with sh as root of its own user and mount namespaces (`unshare -rm`), so it
/// can mount a small tmpfs without privileges and leave no mount behind.
fn in_mount_namespace(script: &str, env: &[(&str, &Path)]) -> std::process::Output {
    let mut command = Command::new("unshare");
    command.args(["-rm", "sh", "-c", script]);
    for (name, value) in env {
        command.env(name, value);
    }
    command
        .output()
        .expect("unshare (util-linux) runs: it makes the small disk these tests fill")
}

#[test]
fn a_full_or_read_only_disk_is_a_clear_error_and_the_checkpoint_survives() {
    let Some(data) = mnist_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let source = work.path().join("run");
    let out = tiny_train(&data, &source, 2).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = read_config(&source).unwrap();
    let (step, weights) = latest(&source, &config.nets);
    assert_eq!(step, 2);

    let mount = work.path().join("disk");
    let results = work.path().join("results");
    std::fs::create_dir_all(&mount).unwrap();
    std::fs::create_dir_all(&results).unwrap();
    // A 2 MiB disk holding the run, then filled until ~12 KiB are left: room for the log
    // lines of a few steps, not for a checkpoint. Then the same disk read-only.
    let script = r#"
        set -e
        mount -t tmpfs -o size=2m tmpfs "$MNT"
        cp -r "$SRC" "$MNT/run"
        avail=$(df --output=avail -B1 "$MNT" | tail -1)
        dd if=/dev/zero of="$MNT/filler" bs=4096 count=$(( (avail - 12288) / 4096 )) 2>/dev/null
        set +e
        "$OT3D" train --quiet --steps 8 --resume "$MNT/run" 2> "$OUT/full.stderr"
        echo $? > "$OUT/full.code"
        cp -r "$MNT/run" "$OUT/after-full"
        mount -o remount,ro "$MNT"
        "$OT3D" train --quiet --steps 8 --resume "$MNT/run" 2> "$OUT/ro.stderr"
        echo $? > "$OUT/ro.code"
        cp -r "$MNT/run" "$OUT/after-ro"
    "#;
    let ot3d = Path::new(env!("CARGO_BIN_EXE_ot3d"));
    let out = in_mount_namespace(
        script,
        &[
            ("MNT", &mount),
            ("SRC", &source),
            ("OUT", &results),
            ("OT3D", ot3d),
        ],
    );
    assert!(
        out.status.success(),
        "the test's script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |name: &str| std::fs::read_to_string(results.join(name)).unwrap();
    for (case, hint) in [("full", "the disk is full"), ("ro", "not writable")] {
        let code = read(&format!("{case}.code"));
        let stderr = read(&format!("{case}.stderr"));
        assert_ne!(code.trim(), "0", "{case}: training did not fail: {stderr}");
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
        assert!(stderr.contains(hint), "{case}: no hint in {stderr}");
        // The checkpoint from before is still the latest, readable, and unchanged.
        let after = results.join(format!("after-{case}"));
        assert_eq!(
            latest(&after, &config.nets),
            (step, weights.clone()),
            "{case}"
        );
        println!("{case}: {}", stderr.trim());
    }
    // The full disk let training run until its first checkpoint write failed.
    let full = read("full.stderr");
    assert!(
        full.contains("cannot write the checkpoint of step 4") && full.contains("is intact"),
        "{full}"
    );
}

#[test]
fn a_checkpoint_with_nan_weights_is_refused_on_resume() {
    let Some(data) = mnist_dir() else { return };
    let work = tempfile::tempdir().unwrap();
    let run = work.path().join("run");
    let out = tiny_train(&data, &run, 2).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Replace T's weights in the latest checkpoint by the same network holding a NaN.
    let config = read_config(&run).unwrap();
    let device = Device::flex();
    let (t, _, _) = load_latest_nets(&run, &config.nets, &device).unwrap();
    let broken = t.map(&mut Poison);
    let latest_name = std::fs::read_to_string(run.join("checkpoints/LATEST")).unwrap();
    let path = run
        .join("checkpoints")
        .join(latest_name.trim())
        .join("t.bpk");
    std::fs::write(
        &path,
        ot3d_models::nets::burnpack::to_bytes(&broken).unwrap(),
    )
    .unwrap();

    let out = resume(&run, 4).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("non-finite") && stderr.contains("t.bpk") && stderr.contains("LATEST"),
        "{stderr}"
    );
}

/// Sets the first value of every float parameter to NaN.
struct Poison;

impl burn::module::ModuleMapper for Poison {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|w| {
            let mut values = w.to_data().try_to_vec::<f32>().unwrap();
            values[0] = f32::NAN;
            Tensor::from_data(
                burn::tensor::TensorData::new(values, w.shape()),
                &w.device(),
            )
        })
    }
}
