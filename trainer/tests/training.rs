//! NOT training on real MNIST with tiny networks for a few steps: the log, exact resume,
//! the divergence guard, Ctrl-C, run-directory protection and transfer from another run.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use ot3d_tests::mnist_dir;
use ot3d_trainer::stack::Stack;
use ot3d_trainer::training::checkpoint::{
    Checkpoint, TrainingState, latest_dir, load_latest_nets, save,
};
use ot3d_trainer::training::config::{NetsConfig, TrainConfig, WeakCost, WeakKernel};
use ot3d_trainer::training::log::read_log;
use ot3d_trainer::training::run::{Finish, Start, TrainError, read_config, train};
use std::path::Path;
use std::sync::atomic::AtomicBool;

fn tiny(steps: u64) -> Option<TrainConfig> {
    let mut config = TrainConfig::reference(mnist_dir()?);
    config.nets = NetsConfig {
        t_width: 2,
        t_depth: 1,
        f_width: 2,
        f_stages: 1,
        t_noise_channels: 0,
    };
    config.steps = steps;
    config.t_steps = 2;
    config.batch_size = 4;
    config.checkpoint_every = 2;
    config.lr_t = 1e-3;
    config.lr_f = 1e-3;
    Some(config)
}

/// One training run at a time in this test binary: runs draw from the device's global RNG
/// (parameters materialize on first use), so two runs at once could take each other's
/// draws and the exact-resume tests would flake. A CLI process trains one run.
static ONE_RUN_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A warm start small enough for tests: 4 pairs per color, 3 regression steps.
fn small_warm_start() -> ot3d_trainer::training::config::WarmStart {
    ot3d_trainer::training::config::WarmStart {
        pairs_per_color: 4,
        steps: 3,
        lr: 1e-2,
        f_steps: 0,
        cycles: 1,
        restart_after: vec![],
        anchor: 0.0,
        anchor_decay: None,
        average: 0.0,
    }
}

fn run(config: &TrainConfig, dir: &Path, start: Start) -> Result<Finish, TrainError> {
    let _one = ONE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    train(
        config,
        dir,
        start,
        &Device::flex(),
        &AtomicBool::new(false),
        false,
    )
}

fn read(path: impl AsRef<Path>) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// Every parameter value of T and f in a run's latest checkpoint, in module order.
fn weights(config: &TrainConfig, dir: &Path) -> Vec<f32> {
    let (t, f, _) = load_latest_nets(dir, &config.nets, &Device::flex()).unwrap();
    let mut values = Vec::new();
    t.visit(&mut Collect(&mut values));
    f.visit(&mut Collect(&mut values));
    values
}

struct Collect<'a>(&'a mut Vec<f32>);

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0
            .extend(param.val().into_data().try_to_vec::<f32>().unwrap());
    }
}

#[test]
fn losses_move_and_every_step_is_logged() {
    let Some(config) = tiny(4) else { return };
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        run(&config, dir.path(), Start::New).unwrap(),
        Finish::Completed { step: 4 }
    );
    let log = read_log(dir.path()).unwrap();
    assert_eq!(
        log.iter().map(|r| r.step).collect::<Vec<_>>(),
        vec![1, 2, 3, 4]
    );
    assert!(
        log.iter()
            .all(|r| r.l_f.is_finite() && r.l_t.is_finite() && r.cost >= 0.0)
    );
    assert!(
        log.windows(2).any(|w| w[0].l_f != w[1].l_f),
        "L_f never moved"
    );
    assert!(log.last().unwrap().cost > 0.0, "T left the identity");
    assert_eq!(read_config(dir.path()).unwrap(), config);
    assert!(latest_dir(dir.path()).unwrap().ends_with("step-00000004"));

    // The loss curves of this run as a PNG.
    let png = dir.path().join("losses.png");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ot3d"))
        .args(["figure", "losses"])
        .arg(dir.path())
        .arg("--out")
        .arg(&png)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
}

#[test]
fn resume_continues_bit_for_bit() {
    let Some(config) = tiny(4) else { return };
    assert_resume_is_exact(&config);
}

/// 4 steps straight and 2 + resume 2 give identical weights, state and losses.
fn assert_resume_is_exact(config: &TrainConfig) {
    let straight = tempfile::tempdir().unwrap();
    run(config, straight.path(), Start::New).unwrap();

    let split = tempfile::tempdir().unwrap();
    let half = TrainConfig {
        steps: 2,
        ..config.clone()
    };
    run(&half, split.path(), Start::New).unwrap();
    run(config, split.path(), Start::Resume).unwrap();

    // Weight files embed random parameter ids, so compare the values themselves.
    let (a, b) = (
        weights(config, straight.path()),
        weights(config, split.path()),
    );
    assert_eq!(a.len(), b.len());
    let differing = a
        .iter()
        .zip(&b)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count();
    assert_eq!(
        differing,
        0,
        "{differing} of {} parameters differ after resume",
        a.len()
    );
    assert_eq!(
        read(latest_dir(straight.path()).unwrap().join("state.json")),
        read(latest_dir(split.path()).unwrap().join("state.json"))
    );
    // Wall-clock seconds are the one field allowed to differ.
    let losses = |dir: &Path| {
        read_log(dir)
            .unwrap()
            .into_iter()
            .map(|r| {
                (
                    r.step,
                    r.l_f,
                    r.l_t,
                    r.cost,
                    r.gamma,
                    r.spread,
                    r.anchor_fit,
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(straight.path()), losses(split.path()));
}

#[test]
fn weak_cost_ramps_gamma_spreads_outputs_and_resumes_exactly() {
    let Some(mut config) = tiny(4) else { return };
    config.nets.t_noise_channels = 1;
    config.weak = Some(WeakCost {
        gamma: 0.5,
        gamma_ramp_steps: 2,
        draws: 3,
        noise_std: 0.5,
        noise_layout: Default::default(),
        kernel: Default::default(),
        groups: 0,
    });
    let dir = tempfile::tempdir().unwrap();
    run(&config, dir.path(), Start::New).unwrap();
    let log = read_log(dir.path()).unwrap();
    assert_eq!(
        log.iter().map(|r| r.gamma).collect::<Vec<_>>(),
        vec![Some(0.25), Some(0.5), Some(0.5), Some(0.5)]
    );
    // T starts deterministic (zero output layer); once trained, z moves its output.
    let spread = log.last().unwrap().spread.unwrap();
    assert!(spread > 0.0 && spread.is_finite(), "spread {spread}");
    assert!(log.iter().all(|r| r.l_t.is_finite() && r.cost >= 0.0));
    assert_resume_is_exact(&config);
}

#[test]
fn distance_kernel_trains_and_resumes_exactly() {
    let Some(mut config) = tiny(4) else { return };
    config.nets.t_noise_channels = 1;
    config.weak = Some(WeakCost {
        gamma: 1.0,
        gamma_ramp_steps: 0,
        draws: 3,
        noise_std: 0.5,
        noise_layout: Default::default(),
        kernel: WeakKernel::Distance,
        groups: 0,
    });
    let dir = tempfile::tempdir().unwrap();
    run(&config, dir.path(), Start::New).unwrap();
    let log = read_log(dir.path()).unwrap();
    // The distance kernel's spread is half the mean per-value distance between draws.
    let spread = log.last().unwrap().spread.unwrap();
    assert!(spread > 0.0 && spread.is_finite(), "spread {spread}");
    assert!(log.iter().all(|r| r.l_t.is_finite() && r.cost > 0.0));
    assert_resume_is_exact(&config);
}

#[test]
fn weak_cost_settings_are_checked() {
    let Some(config) = tiny(4) else { return };
    let weak = WeakCost {
        gamma: 0.5,
        gamma_ramp_steps: 0,
        draws: 2,
        noise_std: 0.1,
        noise_layout: Default::default(),
        kernel: Default::default(),
        groups: 0,
    };
    let with = |gamma: f64, draws: usize, noise: usize| TrainConfig {
        nets: NetsConfig {
            t_noise_channels: noise,
            ..config.nets.clone()
        },
        weak: Some(WeakCost {
            gamma,
            draws,
            ..weak.clone()
        }),
        ..config.clone()
    };
    assert!(with(0.5, 2, 1).validate().is_ok());
    for (bad, words) in [
        (with(0.5, 2, 0), "noise channels"),
        (with(1.5, 2, 1), "gamma"),
        (with(0.5, 1, 1), "draws"),
        (
            TrainConfig {
                weak: None,
                ..with(0.5, 2, 1)
            },
            "strong",
        ),
    ] {
        let err = bad.validate().unwrap_err();
        assert!(err.contains(words), "{err}");
    }
    assert_eq!(weak.gamma_at(1), 0.5);
    let ramp = WeakCost {
        gamma_ramp_steps: 4,
        ..weak
    };
    assert_eq!(
        [1, 2, 4, 9].map(|s| ramp.gamma_at(s)),
        [0.125, 0.25, 0.5, 0.5]
    );
}

#[test]
fn divergence_stops_and_keeps_the_last_good_checkpoint() {
    let Some(config) = tiny(2) else { return };
    let dir = tempfile::tempdir().unwrap();
    run(&config, dir.path(), Start::New).unwrap();
    let good = latest_dir(dir.path()).unwrap();
    let good_t = read(good.join("t.bpk"));

    // The same run continued under an impossible bound "diverges" at its next step.
    let strict = TrainConfig {
        steps: 4,
        max_abs_loss: 1e-30,
        ..config
    };
    let err = run(&strict, dir.path(), Start::Resume).unwrap_err();
    match &err {
        TrainError::Diverged {
            step, checkpoint, ..
        } => {
            assert_eq!(*step, 3);
            assert_eq!(checkpoint.as_deref(), Some(good.as_path()));
        }
        other => panic!("expected divergence, got {other}"),
    }
    assert!(err.to_string().contains("last good checkpoint"), "{err}");
    assert_eq!(latest_dir(dir.path()).unwrap(), good);
    assert_eq!(read(good.join("t.bpk")), good_t);

    let fresh = tempfile::tempdir().unwrap();
    let err = run(&strict, fresh.path(), Start::New).unwrap_err();
    assert!(
        err.to_string().contains("No checkpoint was written yet"),
        "{err}"
    );
}

#[test]
fn a_stop_request_checkpoints_and_returns() {
    let Some(config) = tiny(50) else { return };
    let dir = tempfile::tempdir().unwrap();
    let stop = AtomicBool::new(true);
    let finish = train(
        &config,
        dir.path(),
        Start::New,
        &Device::flex(),
        &stop,
        false,
    )
    .unwrap();
    assert_eq!(finish, Finish::Interrupted { step: 1 });
    assert!(latest_dir(dir.path()).unwrap().ends_with("step-00000001"));
}

#[test]
fn a_new_run_never_overwrites_an_old_one() {
    let Some(config) = tiny(1) else { return };
    let dir = tempfile::tempdir().unwrap();
    run(&config, dir.path(), Start::New).unwrap();
    let before = read(dir.path().join("log.jsonl"));
    let err = run(&config, dir.path(), Start::New).unwrap_err();
    assert!(matches!(err, TrainError::RunExists { .. }), "{err}");
    assert_eq!(read(dir.path().join("log.jsonl")), before);

    let empty = tempfile::tempdir().unwrap();
    let err = run(&config, empty.path(), Start::Resume).unwrap_err();
    assert!(err.to_string().contains("no checkpoint"), "{err}");
}

#[test]
fn init_from_starts_where_another_run_ended() {
    let Some(mut config) = tiny(2) else { return };
    config.t_steps = 1;
    let first = tempfile::tempdir().unwrap();
    run(&config, first.path(), Start::New).unwrap();

    // A fresh T is the identity, so its first T-step costs exactly 0; a transferred T does not.
    let one = TrainConfig {
        steps: 1,
        ..config.clone()
    };
    let fresh = tempfile::tempdir().unwrap();
    run(&one, fresh.path(), Start::New).unwrap();
    assert_eq!(read_log(fresh.path()).unwrap()[0].cost, 0.0);
    let transferred = tempfile::tempdir().unwrap();
    run(
        &one,
        transferred.path(),
        Start::InitFrom(first.path().to_path_buf()),
    )
    .unwrap();
    assert!(read_log(transferred.path()).unwrap()[0].cost > 0.0);

    let wider = TrainConfig {
        nets: NetsConfig {
            t_width: 3,
            ..config.nets.clone()
        },
        ..one
    };
    let other = tempfile::tempdir().unwrap();
    let err = run(
        &wider,
        other.path(),
        Start::InitFrom(first.path().to_path_buf()),
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::NetsMismatch { .. }), "{err}");
}

#[test]
fn saving_a_step_twice_never_removes_what_latest_names() {
    let Some(config) = tiny(1) else { return };
    let dir = tempfile::tempdir().unwrap();
    let device = Device::flex();
    let adam = || burn::optim::AdamConfig::new().init();
    // Under the init lock: an init here must not land between another test's seed and init.
    let (t, f) = ot3d_trainer::device::unseeded(|| {
        (
            config.nets.transport().init(&device),
            config.nets.potential().init(&device),
        )
    });
    let checkpoint = Checkpoint {
        t,
        f,
        opt_t: adam(),
        opt_f: adam(),
        state: TrainingState {
            step: 7,
            rng: [1, 2, 3, 4],
            average_updates: None,
        },
        t_average: None,
    };
    let first = save(dir.path(), &checkpoint).unwrap();
    // What a process killed while writing step 5 left: swept by the next save.
    let stale = dir.path().join("checkpoints/.step-00000005.partial");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("t.bpk"), b"half").unwrap();
    let second = save(dir.path(), &checkpoint).unwrap();
    assert!(!stale.exists(), "a stale partial checkpoint is removed");
    assert!(first.ends_with("step-00000007") && second.ends_with("step-00000007-2"));
    assert!(
        first.is_dir(),
        "the earlier copy stays until pruned by newer steps"
    );
    assert_eq!(latest_dir(dir.path()).unwrap(), second);
    let (_, _, state) = load_latest_nets(dir.path(), &config.nets, &device).unwrap();
    assert_eq!(state.step, 7);
}

#[test]
fn warm_start_pairs_by_exact_ot_then_regresses_t_before_not() {
    use ot3d_models::mnist::Split;
    use ot3d_models::voxel::{GRID_LEN, VoxelConfig};
    use ot3d_trainer::digits::ClassDigits;
    use ot3d_trainer::eval::metrics::dominant_color;
    use ot3d_trainer::training::config::WarmStart;
    use ot3d_trainer::training::warm_start::REPORT_FILE;
    use ot3d_trainer::training::warm_start::ot_pairs;

    let Some(mut config) = tiny(2) else { return };
    // The pairs: per color block, an exact assignment beats random pairing of the same
    // digits, and every pair keeps its color.
    let origin = config.data.origin();
    let threes = ClassDigits::load(&origin, Split::Train, 3).unwrap();
    let fives = ClassDigits::load(&origin, Split::Train, 5).unwrap();
    let pairs = ot_pairs(
        &threes,
        &Stack::default(),
        &fives,
        &VoxelConfig::default(),
        6,
        1.0,
        1,
        &Device::flex(),
    )
    .unwrap();
    assert_eq!(pairs.len(), 24, "6 pairs in each of the 4 colors");
    assert!(
        pairs.ot_cost < pairs.random_cost,
        "{} vs {}",
        pairs.ot_cost,
        pairs.random_cost
    );
    for i in 0..pairs.len() {
        let x = &pairs.sources[i * GRID_LEN..(i + 1) * GRID_LEN];
        let y = &pairs.targets[i * GRID_LEN..(i + 1) * GRID_LEN];
        assert_eq!(
            dominant_color(x),
            dominant_color(y),
            "pair {i} mixes colors"
        );
    }

    // In a run: the warm start writes its report, then NOT runs its steps; a run without
    // it writes none.
    config.warm_start = Some(WarmStart {
        pairs_per_color: 4,
        steps: 3,
        lr: 1e-2,
        f_steps: 2,
        cycles: 1,
        restart_after: vec![],
        anchor: 0.0,
        anchor_decay: None,
        average: 0.0,
    });
    let dir = tempfile::tempdir().unwrap();
    let plain = tempfile::tempdir().unwrap();
    let without = TrainConfig {
        warm_start: None,
        steps: 1,
        ..config.clone()
    };
    run(&without, plain.path(), Start::New).unwrap();
    assert_eq!(
        run(&config, dir.path(), Start::New).unwrap(),
        Finish::Completed { step: 2 }
    );
    let report: serde_json::Value =
        serde_json::from_slice(&read(dir.path().join(REPORT_FILE))).unwrap();
    assert_eq!(report["pairs"], 16);
    assert!(
        report["final_regression_loss"]
            .as_f64()
            .unwrap()
            .is_finite()
    );
    // Every regression step and every f-only step is in the report's curves.
    assert_eq!(report["regression_losses"].as_array().unwrap().len(), 3);
    let f_losses = report["potential_losses"].as_array().unwrap();
    assert_eq!(f_losses.len(), 2);
    assert!(f_losses.iter().all(|v| v.as_f64().unwrap().is_finite()));
    assert!(!plain.path().join(REPORT_FILE).exists());
    assert_eq!(read_log(dir.path()).unwrap().len(), 2);

    // Transfer learning: the warm start regresses the transferred T onto the OT pairs.
    let transferred = tempfile::tempdir().unwrap();
    run(
        &config,
        transferred.path(),
        Start::InitFrom(plain.path().to_path_buf()),
    )
    .unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&read(transferred.path().join(REPORT_FILE))).unwrap();
    assert_eq!(report["regression_losses"].as_array().unwrap().len(), 3);
    assert_eq!(read_log(transferred.path()).unwrap().len(), 2);

    let bad = TrainConfig {
        warm_start: Some(WarmStart {
            pairs_per_color: 1,
            ..small_warm_start()
        }),
        ..config.clone()
    };
    assert!(bad.validate().unwrap_err().contains("pairs per color"));

    // Warm restarts: the same first step, then a fresh Adam state changes the path.
    let cycled = |cycles: u64| {
        let mut c = config.clone();
        c.warm_start = Some(WarmStart {
            pairs_per_color: 4,
            steps: 4,
            lr: 1e-2,
            f_steps: 0,
            cycles,
            restart_after: vec![],
            anchor: 0.0,
            anchor_decay: None,
            average: 0.0,
        });
        c
    };
    let losses = |cycles: u64| {
        let dir = tempfile::tempdir().unwrap();
        run(&cycled(cycles), dir.path(), Start::New).unwrap();
        let report: serde_json::Value =
            serde_json::from_slice(&read(dir.path().join(REPORT_FILE))).unwrap();
        report["regression_losses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect::<Vec<_>>()
    };
    let (one, two) = (losses(1), losses(2));
    // One restart after step 2, given as a step: the same path as two cycles.
    let dir = tempfile::tempdir().unwrap();
    let mut at_two = cycled(1);
    at_two.warm_start.as_mut().unwrap().restart_after = vec![2];
    run(&at_two, dir.path(), Start::New).unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&read(dir.path().join(REPORT_FILE))).unwrap();
    let restarted: Vec<f64> = report["regression_losses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    assert_eq!(restarted, two);
    for bad in [0, 4] {
        let mut c = cycled(1);
        c.warm_start.as_mut().unwrap().restart_after = vec![bad];
        let err = c.validate().unwrap_err();
        assert!(
            err.contains("restarts must come after a step in 1..4"),
            "{err}"
        );
    }
    assert_eq!(
        one[..3],
        two[..3],
        "identical until the restart after step 2"
    );
    assert_ne!(one[3], two[3], "the restart changes step 4");
    for bad in [0, 5] {
        let err = cycled(bad).validate().unwrap_err();
        assert!(err.contains("cycles must be 1..=4"), "{err}");
    }
    assert!(
        !serde_json::to_string(&cycled(1))
            .unwrap()
            .contains("cycles"),
        "one cycle is left out of config.json, so older configs stay equal"
    );
}

#[test]
fn stacking_trains_on_the_map_below_and_maps_through_it() {
    use ot3d_models::mnist::Split;
    use ot3d_models::nets::burnpack::Precision;
    use ot3d_models::nets::weights::MANIFEST_FILE;
    use ot3d_models::rng::SeedRng;
    use ot3d_trainer::digits::ClassDigits;
    use ot3d_trainer::export::{PrecisionChoice, apply, export};
    use ot3d_trainer::mapping::{MapRequest, load_model_dir, map_digits, split_pairs};
    use ot3d_trainer::training::sampler::BatchSampler;

    let Some(config) = tiny(2) else { return };
    let device = Device::flex();
    let work = tempfile::tempdir().unwrap();
    let (run1, map1) = (work.path().join("run1"), work.path().join("map1"));
    run(&config, &run1, Start::New).unwrap();
    export(
        &run1,
        &map1,
        PrecisionChoice::Exactly(Precision::F32),
        &device,
    )
    .unwrap();

    // T2 learns from T1's outputs, starting as T1.
    let stacked = TrainConfig {
        stack_on: Some(map1.clone()),
        ..config.clone()
    };
    let (run2, map2) = (work.path().join("run2"), work.path().join("map2"));
    run(&stacked, &run2, Start::InitFrom(run1.clone())).unwrap();
    assert_eq!(read_config(&run2).unwrap().stack_on, Some(map1.clone()));
    let exported = export(
        &run2,
        &map2,
        PrecisionChoice::Exactly(Precision::F32),
        &device,
    )
    .unwrap();
    let (t1, m1) = load_model_dir(&map1, &device).unwrap();
    let link = exported
        .manifest
        .stacked_on
        .clone()
        .expect("a stacked map names its base");
    assert_eq!(
        (link.dir.as_str(), &link.sha256),
        (map1.to_str().unwrap(), &m1.sha256)
    );

    // Its batches are T1's outputs on the same draws.
    let origin = config.data.origin();
    let threes = || ClassDigits::load(&origin, Split::Train, 3).unwrap();
    let (stack, _) = Stack::on_top_of(&map1, 3, 5, config.data.voxel(), &device).unwrap();
    assert_eq!(stack.levels(), 1);
    let sampler = BatchSampler::new(threes()).stacked(stack);
    let plain = BatchSampler::new(threes());
    let draw = |s: &BatchSampler| {
        let mut rng = SeedRng::new(5);
        s.batch(3, &mut rng, &device)
            .unwrap()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let raw = draw(&plain);
    assert_eq!(draw(&sampler), apply(&t1, &raw, &device));

    // Mapping a digit runs T1, then T2; inputs stay the raw digits.
    let (t2, m2) = load_model_dir(&map2, &device).unwrap();
    let request = MapRequest {
        mnist_dir: mnist_dir().unwrap(),
        split: Split::Test,
        count: 4,
        coloring: None,
        seed: 1,
    };
    let (_, pairs) = map_digits(&t2, &m2, &request, &device).unwrap();
    let (inputs, outputs) = split_pairs(&pairs);
    let through = apply(&t2, &apply(&t1, &inputs, &device), &device);
    let diff = outputs
        .iter()
        .zip(&through)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(diff < 1e-6, "{diff}");
    // A third level sees both maps below it.
    let (two_below, _) = Stack::on_top_of(&map2, 3, 5, config.data.voxel(), &device).unwrap();
    assert_eq!(two_below.levels(), 2);

    // The map below was replaced: named, not silently mapped through another map.
    let mut tampered = m2.clone();
    tampered.stacked_on.as_mut().unwrap().sha256 = "0".repeat(64);
    let err = map_digits(&t2, &tampered, &request, &device)
        .unwrap_err()
        .to_string();
    assert!(err.contains("replaced") && err.contains("map1"), "{err}");
    // A map of another pair cannot be stacked on.
    let other = work.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    for file in std::fs::read_dir(&map1).unwrap() {
        let file = file.unwrap().path();
        std::fs::copy(&file, other.join(file.file_name().unwrap())).unwrap();
    }
    let text = std::fs::read_to_string(other.join(MANIFEST_FILE)).unwrap();
    std::fs::write(
        other.join(MANIFEST_FILE),
        text.replace("\"source_digit\": 3", "\"source_digit\": 2"),
    )
    .unwrap();
    let wrong = TrainConfig {
        stack_on: Some(other),
        ..config
    };
    let err = run(&wrong, &work.path().join("run3"), Start::New).unwrap_err();
    assert!(
        matches!(err, TrainError::Stack(_)) && err.to_string().contains("maps 2 → 5"),
        "{err}"
    );
}

#[test]
fn incomplete_transport_pairs_with_nearer_targets_and_trains_with_w() {
    use ot3d_models::mnist::Split;
    use ot3d_models::nets::burnpack::Precision;
    use ot3d_models::voxel::VoxelConfig;
    use ot3d_trainer::digits::ClassDigits;
    use ot3d_trainer::export::{PrecisionChoice, export};
    use ot3d_trainer::training::config::WarmStart;
    use ot3d_trainer::training::warm_start::REPORT_FILE;
    use ot3d_trainer::training::warm_start::{ot_pairs, targets_per_block};

    let Some(config) = tiny(2) else { return };
    let device = Device::flex();
    let origin = config.data.origin();
    let threes = ClassDigits::load(&origin, Split::Train, 3).unwrap();
    let fives = ClassDigits::load(&origin, Split::Train, 5).unwrap();
    // The same 8 sources per color; w times as many targets, the first 8 of them the ones
    // w = 1 draws, so the incomplete optimum can only be cheaper, and strictly so here.
    let costs: Vec<f64> = [1.0, 2.0, 4.0]
        .iter()
        .map(|&w| {
            let pairs = ot_pairs(
                &threes,
                &Stack::default(),
                &fives,
                &VoxelConfig::default(),
                8,
                w,
                3,
                &device,
            )
            .unwrap();
            assert_eq!(pairs.len(), 32, "every source keeps one partner (w = {w})");
            pairs.ot_cost
        })
        .collect();
    assert!(costs[1] < costs[0] && costs[2] < costs[1], "{costs:?}");
    assert_eq!(targets_per_block(8, 2.5), 20);

    // A run with w = 2: its warm start offers twice the targets, NOT trains against the
    // constrained potential, and the export records w.
    let weighted = TrainConfig {
        target_weight: 2.0,
        warm_start: Some(WarmStart {
            pairs_per_color: 4,
            steps: 2,
            lr: 1e-2,
            f_steps: 1,
            cycles: 1,
            restart_after: vec![],
            anchor: 0.0,
            anchor_decay: None,
            average: 0.0,
        }),
        ..config.clone()
    };
    let work = tempfile::tempdir().unwrap();
    let (dir, model) = (work.path().join("run"), work.path().join("model"));
    assert_eq!(
        run(&weighted, &dir, Start::New).unwrap(),
        Finish::Completed { step: 2 }
    );
    assert_eq!(read_config(&dir).unwrap().target_weight, 2.0);
    let report: serde_json::Value = serde_json::from_slice(&read(dir.join(REPORT_FILE))).unwrap();
    assert_eq!(report["targets_per_block"], 8);
    // The constrained potential scores everything ≤ 0, so L_f = mean f(T(x)) − 2 mean f(y)
    // stays finite and every logged loss is a number.
    let log = read_log(&dir).unwrap();
    assert!(log.iter().all(|r| r.l_f.is_finite() && r.l_t.is_finite()));
    let exported = export(
        &dir,
        &model,
        PrecisionChoice::Exactly(Precision::F32),
        &device,
    )
    .unwrap();
    assert_eq!(exported.manifest.target_weight, 2.0);
    // A complete-transport config keeps w out of its JSON, so older configs read the same.
    let json = serde_json::to_string(&config).unwrap();
    assert!(!json.contains("target_weight"), "{json}");
    assert!(
        serde_json::to_string(&weighted)
            .unwrap()
            .contains("\"target_weight\":2.0")
    );

    // w below 1 or not a number is refused, naming the range.
    for bad in [0.5, f64::NAN, 17.0] {
        let err = TrainConfig {
            target_weight: bad,
            ..config.clone()
        }
        .validate()
        .unwrap_err();
        assert!(err.contains("target weight w must be in [1, 16]"), "{err}");
    }
}

#[test]
fn a_deterministic_run_starts_a_stochastic_one_whose_draws_differ() {
    use ot3d_models::mnist::Split;
    use ot3d_models::nets::burnpack::Precision;
    use ot3d_models::voxel::GRID_LEN;
    use ot3d_trainer::export::{PrecisionChoice, export};
    use ot3d_trainer::mapping::{MapRequest, load_model_dir, map_digits, map_draws, split_pairs};

    let Some(config) = tiny(2) else { return };
    let device = Device::flex();
    let work = tempfile::tempdir().unwrap();
    let path = |name: &str| work.path().join(name);
    run(&config, &path("strong"), Start::New).unwrap();
    let weak = TrainConfig {
        nets: NetsConfig {
            t_noise_channels: 1,
            ..config.nets.clone()
        },
        weak: Some(WeakCost {
            gamma: 0.5,
            gamma_ramp_steps: 1,
            draws: 2,
            noise_std: 0.1,
            noise_layout: Default::default(),
            kernel: Default::default(),
            groups: 0,
        }),
        ..config.clone()
    };
    assert_eq!(
        run(&weak, &path("weak"), Start::InitFrom(path("strong"))).unwrap(),
        Finish::Completed { step: 2 }
    );
    let f32_only = PrecisionChoice::Exactly(Precision::F32);
    export(&path("weak"), &path("weak-map"), f32_only, &device).unwrap();
    export(&path("strong"), &path("strong-map"), f32_only, &device).unwrap();
    let (t, manifest) = load_model_dir(&path("weak-map"), &device).unwrap();
    assert_eq!(manifest.weak_gamma, Some(0.5));
    assert_eq!(manifest.weak_groups, None, "fitted to the exact weak plan");
    assert_eq!(manifest.config.noise_channels, 1);

    // Draws of z for one digit give different outputs; the same seed the same ones.
    let request = MapRequest {
        mnist_dir: mnist_dir().unwrap(),
        split: Split::Test,
        count: 2,
        coloring: None,
        seed: 4,
    };
    let (_, pairs) = map_digits(&t, &manifest, &request, &device).unwrap();
    let (inputs, _) = split_pairs(&pairs);
    let drawn = map_draws(&t, &manifest, &inputs, 3, 7, &device).unwrap();
    assert_eq!(drawn.len(), 2 * 3 * GRID_LEN);
    let digit = |v: &[f32], i: usize| v[i * GRID_LEN..(i + 1) * GRID_LEN].to_vec();
    let apart = |a: Vec<f32>, b: Vec<f32>| {
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    assert!(apart(digit(&drawn, 0), digit(&drawn, 1)) > 1e-6);
    assert!(apart(digit(&drawn, 1), digit(&drawn, 2)) > 1e-6);
    assert_eq!(
        drawn,
        map_draws(&t, &manifest, &inputs, 3, 7, &device).unwrap()
    );
    // A deterministic map's draws are all T(x).
    let (strong, strong_manifest) = load_model_dir(&path("strong-map"), &device).unwrap();
    let same = map_draws(&strong, &strong_manifest, &inputs, 2, 7, &device).unwrap();
    assert_eq!(digit(&same, 0), digit(&same, 1));
    // A stochastic run does not start a deterministic one.
    let err = run(&config, &path("back"), Start::InitFrom(path("weak"))).unwrap_err();
    assert!(matches!(err, TrainError::NetsMismatch { .. }), "{err}");
}

#[test]
fn a_stochastic_warm_start_fits_the_discrete_weak_plan() {
    use ot3d_models::mnist::Split;
    use ot3d_models::nets::NoiseLayout;
    use ot3d_models::nets::burnpack::Precision;
    use ot3d_models::voxel::{GRID_LEN, VoxelConfig};
    use ot3d_trainer::digits::ClassDigits;
    use ot3d_trainer::export::{PrecisionChoice, export};
    use ot3d_trainer::mapping::{MapRequest, load_model_dir, map_digits, map_draws, split_pairs};
    use ot3d_trainer::training::warm_start::{read_report, weak_ot_pairs};

    let Some(config) = tiny(1) else { return };
    let device = Device::flex();
    let origin = config.data.origin();
    let threes = ClassDigits::load(&origin, Split::Train, 3).unwrap();
    let fives = ClassDigits::load(&origin, Split::Train, 5).unwrap();
    // The same 8 sources and targets per color for every γ: γ = 0 is the exact assignment,
    // and larger γ spreads each source over more targets at a higher transport cost.
    let plans: Vec<_> = [0.0, 0.5, 1.0]
        .iter()
        .map(|&gamma| {
            let pairs = weak_ot_pairs(
                &threes,
                &Stack::default(),
                &fives,
                &VoxelConfig::default(),
                8,
                1.0,
                gamma,
                3,
                &device,
            )
            .unwrap();
            assert_eq!((pairs.len(), pairs.supports.len()), (32, 32));
            for support in &pairs.supports {
                let total: f64 = support.iter().map(|(_, w)| w).sum();
                assert!((total - 1.0).abs() < 1e-9, "{support:?}");
                assert!(support.iter().all(|&(j, _)| j < 32));
            }
            assert!(pairs.gap < 1e-3, "γ {gamma}: gap {}", pairs.gap);
            pairs
        })
        .collect();
    assert!((plans[0].cost - plans[0].ot_cost).abs() < 1e-6);
    assert_eq!((plans[0].spread, plans[0].mean_support()), (0.0, 1.0));
    assert!(plans[1].spread >= plans[0].spread && plans[2].spread >= plans[1].spread - 1e-6);
    assert!(plans[2].spread > 0.0 && plans[2].mean_support() > 1.0);
    assert!(plans[2].cost >= plans[0].cost - 1e-9);

    // A stochastic run's warm start regresses T(x, z) onto the plan, draws matched to
    // targets; its report names the plan, and the draws of z come apart.
    let mut strong = config.clone();
    strong.warm_start = Some(small_warm_start());
    let weak = TrainConfig {
        nets: NetsConfig {
            t_noise_channels: 1,
            ..strong.nets.clone()
        },
        weak: Some(WeakCost {
            gamma: 1.0,
            gamma_ramp_steps: 0,
            draws: 2,
            noise_std: 1.0,
            noise_layout: NoiseLayout::Digit,
            kernel: Default::default(),
            groups: 0,
        }),
        ..strong.clone()
    };
    let work = tempfile::tempdir().unwrap();
    let path = |name: &str| work.path().join(name);
    run(&strong, &path("strong"), Start::New).unwrap();
    let strong_report = read_report(&path("strong")).unwrap().unwrap();
    assert_eq!(strong_report.weak_plan, None);
    assert_eq!(
        run(&weak, &path("weak"), Start::InitFrom(path("strong"))).unwrap(),
        Finish::Completed { step: 1 }
    );
    let report = read_report(&path("weak")).unwrap().unwrap();
    let plan = report.weak_plan.expect("a weak plan in the report");
    assert_eq!((plan.gamma, plan.draws), (1.0, 2));
    assert!(plan.mean_support >= 1.0 && plan.gap < 1e-3, "{plan:?}");
    assert!(plan.cost >= report.pair_ot_cost - 1e-9, "{plan:?}");
    assert!(
        plan.final_draw_spread > 0.0 && plan.final_draw_spread.is_finite(),
        "{plan:?}"
    );
    assert_eq!(report.regression_losses.len(), 3);
    assert!(report.regression_losses.iter().all(|l| l.is_finite()));

    // The export records the per-digit noise, and mapping draws it that way: two draws of
    // one digit differ, and the same seed repeats them.
    export(
        &path("weak"),
        &path("weak-map"),
        PrecisionChoice::Exactly(Precision::F32),
        &device,
    )
    .unwrap();
    let (t, manifest) = load_model_dir(&path("weak-map"), &device).unwrap();
    assert_eq!(manifest.noise_layout, NoiseLayout::Digit);
    let request = MapRequest {
        mnist_dir: mnist_dir().unwrap(),
        split: Split::Test,
        count: 1,
        coloring: None,
        seed: 2,
    };
    let (_, pairs) = map_digits(&t, &manifest, &request, &device).unwrap();
    let (inputs, _) = split_pairs(&pairs);
    let drawn = map_draws(&t, &manifest, &inputs, 2, 5, &device).unwrap();
    assert_ne!(drawn[..GRID_LEN], drawn[GRID_LEN..]);
    assert_eq!(
        drawn,
        map_draws(&t, &manifest, &inputs, 2, 5, &device).unwrap()
    );
}

#[test]
fn style_groups_pair_each_source_with_one_target_per_group_and_train_anchored() {
    use ot3d_models::mnist::Split;
    use ot3d_models::nets::NoiseLayout;
    use ot3d_models::voxel::{GRID_LEN, VoxelConfig};
    use ot3d_trainer::digits::ClassDigits;
    use ot3d_trainer::training::config::WarmStart;
    use ot3d_trainer::training::style_groups::grouped_ot_pairs;
    use ot3d_trainer::training::warm_start::{REPORT_FILE, read_report};

    let Some(mut config) = tiny(4) else { return };
    let device = Device::flex();
    let origin = config.data.origin();
    let threes = ClassDigits::load(&origin, Split::Train, 3).unwrap();
    let fives = ClassDigits::load(&origin, Split::Train, 5).unwrap();
    // 8 sources and targets per color, at most 2 groups. γ = 0 keeps the exact assignment
    // (K = 1: spreading never pays); a γ so large that spreading always pays takes K = 2:
    // every source has a partner in each group, the two differ, and the plan costs at
    // least the exact assignment on the same digits.
    let plan = |gamma: f64| {
        grouped_ot_pairs(
            &threes,
            &Stack::default(),
            &fives,
            &VoxelConfig::default(),
            8,
            2,
            gamma,
            3,
            &device,
        )
        .unwrap()
    };
    let (exact, candidates) = plan(0.0);
    assert_eq!(exact.groups, 1);
    assert_eq!(candidates.len(), 2);
    assert_eq!((candidates[0].groups, candidates[1].groups), (1, 2));
    assert!((candidates[0].cost - exact.ot_cost).abs() < 1e-9);
    assert_eq!(candidates[0].spread, 0.0);
    let (pairs, spread_out) = plan(1e6);
    assert_eq!(pairs.groups, 2);
    assert_eq!(spread_out[1].objective, pairs.objective(1e6));
    assert!(spread_out[1].objective < spread_out[0].objective);
    assert_eq!(pairs.len(), 32);
    assert_eq!(pairs.targets.len(), 2 * pairs.sources.len());
    for i in 0..pairs.len() {
        assert_ne!(pairs.target(i, 0), pairs.target(i, 1), "source {i}");
    }
    assert!(
        pairs.cost >= pairs.ot_cost - 1e-9,
        "{} < {}",
        pairs.cost,
        pairs.ot_cost
    );
    assert!(
        pairs.cost < pairs.random_cost,
        "{} vs random {}",
        pairs.cost,
        pairs.random_cost
    );
    assert!(pairs.spread > 0.0);
    assert_eq!(pairs.objective(0.0), pairs.cost);
    // The same digits the exact pairs use: each source's partners share its color block.
    let block = |digit: &[f32]| {
        (0..3)
            .map(|c| {
                digit[c * GRID_LEN / 3..(c + 1) * GRID_LEN / 3]
                    .iter()
                    .sum::<f32>()
            })
            .map(|v| v > 0.0)
            .collect::<Vec<_>>()
    };
    for i in 0..pairs.len() {
        let x = &pairs.sources[i * GRID_LEN..(i + 1) * GRID_LEN];
        assert_eq!(block(x), block(pairs.target(i, 1)), "source {i}");
    }

    // A run: the warm start fits the groups (its report says so), and anchored NOT logs the
    // fit and the spread every step and resumes exactly.
    config.nets.t_noise_channels = 2;
    config.weak = Some(WeakCost {
        gamma: 0.5,
        gamma_ramp_steps: 0,
        draws: 2,
        noise_std: 1.0,
        noise_layout: NoiseLayout::Digit,
        kernel: Default::default(),
        groups: 4,
    });
    config.warm_start = Some(WarmStart {
        anchor: 1.0,
        ..small_warm_start()
    });
    let dir = tempfile::tempdir().unwrap();
    run(&config, dir.path(), Start::New).unwrap();
    let report = read_report(dir.path()).unwrap().unwrap();
    assert_eq!(report.weak_plan, None);
    let groups = report.style_groups.expect("the style groups in the report");
    assert_eq!((groups.max_groups, groups.gamma, groups.draws), (4, 0.5, 2));
    assert_eq!(
        groups
            .candidates
            .iter()
            .map(|c| c.groups)
            .collect::<Vec<_>>(),
        vec![1, 2, 4]
    );
    // The plan kept is the candidate with the least γ-weak cost.
    let least = groups
        .candidates
        .iter()
        .min_by(|a, b| a.objective.total_cmp(&b.objective))
        .unwrap();
    assert_eq!(
        (groups.groups, groups.objective),
        (least.groups, least.objective)
    );
    assert!(groups.cost >= report.pair_ot_cost - 1e-9, "{groups:?}");
    assert!((groups.objective - (groups.cost - 0.5 * groups.spread)).abs() < 1e-12);
    assert!(groups.final_draw_spread > 0.0, "{groups:?}");
    let log = read_log(dir.path()).unwrap();
    assert_eq!(log.len(), 4);
    for record in &log {
        let fit = record.anchor_fit.expect("every anchored step logs its fit");
        assert!(fit.is_finite() && fit > 0.0, "step {}: {fit}", record.step);
        assert!(
            record.spread.is_some_and(|s| s > 0.0),
            "step {}",
            record.step
        );
    }
    assert_resume_is_exact(&config);

    // The export records the groups kept, which only warm_start.json knows: without it the
    // export is refused, naming the file.
    {
        use ot3d_models::nets::burnpack::Precision;
        use ot3d_trainer::export::{PrecisionChoice, export};
        let device = Device::flex();
        let f32_only = PrecisionChoice::Exactly(Precision::F32);
        let out = dir.path().join("map");
        export(dir.path(), &out, f32_only, &device).unwrap();
        let (_, manifest) = ot3d_trainer::mapping::load_model_dir(&out, &device).unwrap();
        assert_eq!(
            (manifest.weak_gamma, manifest.weak_groups),
            (Some(0.5), Some(groups.groups))
        );
        std::fs::remove_file(dir.path().join(REPORT_FILE)).unwrap();
        let err = export(dir.path(), &dir.path().join("map2"), f32_only, &device)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(REPORT_FILE) && err.contains("--weak-groups"),
            "{err}"
        );
    }

    // Settings that cannot name a group are refused, each with its fix.
    let with = |change: &dyn Fn(&mut TrainConfig)| {
        let mut bad = config.clone();
        change(&mut bad);
        bad.validate().unwrap_err()
    };
    for (err, words) in [
        (
            with(&|c| c.weak.as_mut().unwrap().groups = 3),
            "2, 4, 8 or 16",
        ),
        (
            with(&|c| c.weak.as_mut().unwrap().noise_layout = NoiseLayout::Voxel),
            "--noise-layout digit",
        ),
        (with(&|c| c.nets.t_noise_channels = 1), "--noise-channels 2"),
        (
            with(&|c| c.warm_start.as_mut().unwrap().pairs_per_color = 6),
            "multiple of 4",
        ),
        (with(&|c| c.warm_start = None), "--warm-start-steps"),
        (
            with(&|c| c.weak.as_mut().unwrap().groups = 0),
            "--weak-groups K",
        ),
    ] {
        assert!(err.contains(words), "{words}: {err}");
    }
}

#[test]
fn anchored_not_trains_on_the_pairs_logs_their_fit_and_resumes_exactly() {
    use ot3d_trainer::training::config::WarmStart;
    let Some(mut config) = tiny(4) else { return };
    config.warm_start = Some(WarmStart {
        anchor: 1.0,
        ..small_warm_start()
    });
    let dir = tempfile::tempdir().unwrap();
    run(&config, dir.path(), Start::New).unwrap();
    let log = read_log(dir.path()).unwrap();
    assert_eq!(log.len(), 4);
    for record in &log {
        let fit = record.anchor_fit.expect("every anchored step logs its fit");
        assert!(fit.is_finite() && fit > 0.0, "step {}: {fit}", record.step);
    }
    // The config keeps the anchor; a resumed run solves the same pairs again and draws the
    // same batches from them.
    assert_eq!(
        read_config(dir.path()).unwrap().warm_start.unwrap().anchor,
        1.0
    );
    assert_resume_is_exact(&config);

    // A decaying anchor: its schedule depends on the step alone, so a resumed run is exact
    // too, and the config keeps the final weight.
    let mut decayed = config.clone();
    let decay = ot3d_trainer::training::config::AnchorDecay {
        to: 0.01,
        over_steps: 4,
    };
    decayed.warm_start.as_mut().unwrap().anchor_decay = Some(decay.clone());
    let decayed_dir = tempfile::tempdir().unwrap();
    run(&decayed, decayed_dir.path(), Start::New).unwrap();
    assert_eq!(
        read_config(decayed_dir.path())
            .unwrap()
            .warm_start
            .unwrap()
            .anchor_decay,
        Some(decay)
    );
    // The same batches with another λ from step 2 on: other weights.
    let (constant, decaying) = (
        weights(&config, dir.path()),
        weights(&decayed, decayed_dir.path()),
    );
    assert!(
        constant.iter().zip(&decaying).any(|(a, b)| a != b),
        "the decayed anchor changed nothing"
    );
    assert_resume_is_exact(&decayed);

    // Without the anchor no fit is logged.
    config.warm_start.as_mut().unwrap().anchor = 0.0;
    let plain = tempfile::tempdir().unwrap();
    run(&config, plain.path(), Start::New).unwrap();
    assert!(
        read_log(plain.path())
            .unwrap()
            .iter()
            .all(|r| r.anchor_fit.is_none())
    );
}

/// Outside the library's test binary on purpose: burn's parameters draw their initial values
/// from the device's global RNG lazily, on first use, so a test that seeds or draws from it
/// can change the weights of another test running beside it (the Gaussian solver's bound
/// test in the library failed that way). Here it holds `ONE_RUN_AT_A_TIME` like every run.
#[test]
fn the_anchor_term_is_added_to_the_not_loss() {
    use burn::optim::{AdamConfig, ModuleOptimizer};
    use burn::tensor::Distribution;
    use ot3d_models::nets::{Potential, PotentialConfig, TransportMap, TransportMapConfig};
    use ot3d_trainer::training::replicas::Replicas;
    use ot3d_trainer::training::steps::{anchored_t_step, t_step};

    let _one = ONE_RUN_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let device = Device::flex().autodiff();
    let (t, f): (TransportMap, Potential) = {
        let _guard = ot3d_models::nets::init_guard();
        device.seed(7);
        let t = TransportMapConfig::new()
            .with_width(2)
            .with_depth(1)
            .init(&device);
        let f = PotentialConfig::new()
            .with_width(2)
            .with_stages(1)
            .init(&device);
        (t, f)
    };
    let batch =
        || Tensor::<5>::random([3, 3, 16, 16, 16], Distribution::Uniform(0.0, 1.0), &device);
    let (x, y) = (batch(), batch());
    let outputs = |t: &TransportMap| {
        t.forward(x.clone(), None)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    };
    let f_fixed = f.no_grad();
    let step = |anchor: f64| {
        let mut optimizer: ModuleOptimizer = AdamConfig::new().init();
        anchored_t_step(
            t.clone(),
            &f_fixed,
            &mut optimizer,
            1e-4,
            x.clone(),
            y.clone(),
            anchor,
            1.0,
            &Replicas::single(&device),
        )
    };
    // λ = 0 is the plain T-step, to the bit.
    let mut optimizer: ModuleOptimizer = AdamConfig::new().init();
    let (plain, l_t, cost) = t_step(
        t.clone(),
        &f_fixed,
        &mut optimizer,
        1e-4,
        x.clone(),
        1.0,
        &Replicas::single(&device),
    );
    let (zero, l_t0, cost0, fit0) = step(0.0);
    assert_eq!((l_t, cost), (l_t0, cost0));
    assert_eq!(outputs(&plain), outputs(&zero));
    // The fit is ‖T(x) − y‖²/D before the update: T starts as the identity.
    let expected = (x.clone() - y.clone())
        .powi_scalar(2)
        .mean()
        .into_scalar::<f32>();
    assert!(
        (fit0 - expected as f64).abs() < 1e-6,
        "{fit0} vs {expected}"
    );
    // A dominant anchor makes the step a descent step on the fit.
    let (anchored, _, _, fit_before) = step(1e4);
    let after = (anchored.forward(x.clone(), None) - y.clone())
        .powi_scalar(2)
        .mean()
        .into_scalar::<f32>() as f64;
    assert!(after < fit_before, "{after} vs {fit_before}");
    assert_ne!(outputs(&anchored), outputs(&zero));
}

/// `average: d` hands NOT (and a warm-start-only run's checkpoint) the moving average of
/// T's regression iterates: a decay near 0 is the last iterate, 0.9 is not. NOT's own steps
/// barely move the weights here (learning rates 1e-30), so the checkpoint shows the warm
/// start's T.
#[test]
fn a_weight_averaged_warm_start_continues_from_the_average() {
    use ot3d_trainer::training::config::WarmStart;

    let Some(mut config) = tiny(1) else { return };
    config.lr_t = 1e-30;
    config.lr_f = 1e-30;
    // f is untouched by the warm start and barely moved after it: the weights differ in T.
    let mut weights_with = |average: f64| {
        config.warm_start = Some(WarmStart {
            steps: 6,
            average,
            ..small_warm_start()
        });
        let dir = tempfile::tempdir().unwrap();
        run(&config, dir.path(), Start::New).unwrap();
        assert_eq!(
            read_config(dir.path()).unwrap().warm_start.unwrap().average,
            average
        );
        weights(&config, dir.path())
    };
    let farthest = |a: &[f32], b: &[f32]| {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0, f32::max)
    };
    let last = weights_with(0.0);
    assert!(farthest(&last, &weights_with(1e-9)) < 1e-6);
    let averaged = weights_with(0.9);
    assert!(averaged.iter().all(|v| v.is_finite()));
    assert!(farthest(&last, &averaged) > 1e-4);
}

#[test]
fn the_drift_penalty_reaches_every_f_step_and_resumes_exactly() {
    use ot3d_trainer::training::warm_start::REPORT_FILE;
    let Some(plain) = tiny(4) else { return };
    let warmed = TrainConfig {
        warm_start: Some(ot3d_trainer::training::config::WarmStart {
            f_steps: 3,
            ..small_warm_start()
        }),
        ..plain.clone()
    };
    let potential_losses = |dir: &Path| -> Vec<f64> {
        let report: serde_json::Value =
            serde_json::from_slice(&read(dir.join(REPORT_FILE))).unwrap();
        serde_json::from_value(report["potential_losses"].clone()).unwrap()
    };
    for config in [&plain, &warmed] {
        let drifted = TrainConfig {
            f_drift: 100.0,
            ..config.clone()
        };
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        run(config, a.path(), Start::New).unwrap();
        run(&drifted, b.path(), Start::New).unwrap();
        assert_eq!(read_config(b.path()).unwrap().f_drift, 100.0);
        // The logged L_f is the dual without the penalty: the first f-step's is the same,
        // since both runs start from the same f; the penalty changes the update after it.
        let (log_a, log_b) = (read_log(a.path()).unwrap(), read_log(b.path()).unwrap());
        if config.warm_start.is_none() {
            assert_eq!(log_a[0].l_f, log_b[0].l_f);
        } else {
            // The warm start's f-only steps run the penalized f-step too.
            let (plain_f, drifted_f) = (potential_losses(a.path()), potential_losses(b.path()));
            assert_eq!((plain_f.len(), drifted_f.len()), (3, 3));
            assert_eq!(plain_f[0], drifted_f[0]);
            assert_ne!(plain_f[1..], drifted_f[1..], "the penalty never reached f");
        }
        assert!(
            log_a
                .iter()
                .zip(&log_b)
                .skip(1)
                .any(|(p, d)| p.l_f != d.l_f),
            "the penalty never changed an L_f"
        );
        assert_ne!(weights(config, a.path()), weights(&drifted, b.path()));
    }
    assert_resume_is_exact(&TrainConfig {
        f_drift: 100.0,
        ..plain
    });
}

#[test]
fn a_not_phase_weight_average_is_the_runs_map_and_resumes_exactly() {
    let Some(plain) = tiny(2) else { return };
    let config = TrainConfig {
        t_average: 0.9,
        checkpoint_every: 1,
        ..plain
    };
    let dir = tempfile::tempdir().unwrap();
    run(&config, dir.path(), Start::New).unwrap();
    assert_eq!(read_config(dir.path()).unwrap().t_average, 0.9);
    // Both kept checkpoints hold T's last iterate and the average, read back as plain values.
    let t_values = |step: u64, file: &str| {
        let bytes = read(
            dir.path()
                .join(format!("checkpoints/step-{step:08}"))
                .join(file),
        );
        let template = config.nets.transport().init(&Device::flex());
        let t = ot3d_models::nets::burnpack::load_bytes(template, &bytes).unwrap();
        let mut values = Vec::new();
        t.visit(&mut Collect(&mut values));
        values
    };
    let state = |step: u64| -> serde_json::Value {
        serde_json::from_slice(&read(
            dir.path()
                .join(format!("checkpoints/step-{step:08}/state.json")),
        ))
        .unwrap()
    };
    assert_eq!(state(1)["average_updates"], 1);
    assert_eq!(state(2)["average_updates"], 2);
    let (average_1, t_2, average_2) = (
        t_values(1, "t_average.bpk"),
        t_values(2, "t.bpk"),
        t_values(2, "t_average.bpk"),
    );
    // The second update's decay is min(0.9, (1 + 2)/(10 + 2)) = 1/4.
    for ((a1, t2), a2) in average_1.iter().zip(&t_2).zip(&average_2) {
        let expected = 0.25 * a1 + 0.75 * t2;
        assert!(
            (a2 - expected).abs() <= 1e-6 + 1e-5 * expected.abs(),
            "{a2} vs {expected}"
        );
    }
    assert_ne!(average_2, t_2, "the average is not the last iterate");
    // The run's map (export, --init-from) is the average: T's values lead `weights`.
    assert_eq!(
        weights(&config, dir.path())[..average_2.len()],
        average_2[..]
    );
    assert_resume_is_exact(&TrainConfig { steps: 4, ..config });
}

/// Data-parallel training over two devices (the one CPU twice) follows the single-device
/// run: every gradient step of the warm start, the potential warm-up and anchored NOT sums
/// the halves' gradients into the whole batch's (the replicas' unit tests check the sums
/// themselves; Adam's steps would hide a scale error here).
#[test]
fn training_on_two_devices_follows_training_on_one() {
    use ot3d_trainer::training::run::train_on;
    let Some(mut config) = tiny(3) else { return };
    config.warm_start = Some(ot3d_trainer::training::config::WarmStart {
        f_steps: 2,
        anchor: 1.0,
        ..small_warm_start()
    });
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    run(&config, one.path(), Start::New).unwrap();
    {
        let _one = ONE_RUN_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let devices = [Device::flex(), Device::flex()];
        let finish = train_on(
            &config,
            two.path(),
            Start::New,
            &devices,
            &AtomicBool::new(false),
            false,
        )
        .unwrap();
        assert_eq!(finish, Finish::Completed { step: 3 });
    }
    let (a, b) = (weights(&config, one.path()), weights(&config, two.path()));
    let worst = a
        .iter()
        .zip(&b)
        .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
    assert!(worst < 1e-4, "weights differ by up to {worst}");
    let (log_a, log_b) = (read_log(one.path()).unwrap(), read_log(two.path()).unwrap());
    for (ra, rb) in log_a.iter().zip(&log_b) {
        assert!((ra.l_f - rb.l_f).abs() < 1e-5, "{ra:?} vs {rb:?}");
        assert!((ra.cost - rb.cost).abs() < 1e-6, "{ra:?} vs {rb:?}");
    }
    assert_eq!(log_a.len(), 3);
}

/// Model selection: validated every 2 steps on held-out training 3s, the best T kept (and
/// only it), exported as the run's map; `--latest`'s export still reaches the last T.
#[test]
fn model_selection_keeps_and_exports_the_t_with_the_best_validation_fid() {
    use ot3d_models::mnist::Split;
    use ot3d_models::nets::burnpack::Precision;
    use ot3d_trainer::digits::ClassDigits;
    use ot3d_trainer::export::{MapChoice, PrecisionChoice, export_map};
    use ot3d_trainer::training::config::Selection;
    use ot3d_trainer::training::selection::{SelectionRecord, hold_out, read_record};

    let Some(mut config) = tiny(5) else { return };
    let judge = ot3d_tests::repo_root().join("models/pretrained/classifier");
    config.select = Some(Selection {
        every: 2,
        held_out: 16,
        judge: judge.clone(),
        keep_all: false,
    });
    config.checkpoint_every = 100;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("run");
    run(&config, &dir, Start::New).unwrap();
    let record = read_record(&dir).unwrap().expect("a selection record");
    // Steps 2 and 4, and the last one; each validation step was checkpointed too.
    let steps: Vec<u64> = record.history.iter().map(|p| p.step).collect();
    assert_eq!(steps, vec![2, 4, 5]);
    assert!(dir.join("checkpoints/step-00000004").is_dir());
    let best = record.best.clone().unwrap();
    let lowest = record
        .history
        .iter()
        .min_by(|a, b| a.fid.total_cmp(&b.fid))
        .unwrap();
    assert_eq!(&best, lowest);
    assert!(
        record
            .history
            .iter()
            .all(|p| p.fid.is_finite() && (0.0..=1.0).contains(&p.target_accuracy))
    );
    let kept: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("selected-t-"))
        .collect();
    assert_eq!(kept, vec![SelectionRecord::weights_file(best.step)]);

    let device = Device::flex();
    let f32_only = PrecisionChoice::Exactly(Precision::F32);
    let export_as =
        |which, name| export_map(&dir, &work.path().join(name), f32_only, which, &device).unwrap();
    let chosen = export_as(MapChoice::Run, "m");
    assert_eq!(chosen.manifest.training_steps, best.step);
    let last = export_as(MapChoice::Latest, "l");
    assert_eq!(last.manifest.training_steps, 5);
    if best.step != 5 {
        assert_ne!(chosen.manifest.sha256, last.manifest.sha256);
    }

    // Only the chosen T was kept: --step reaches it, and names the fix for any other.
    let at_best = export_as(MapChoice::Step(best.step), "s");
    assert_eq!(at_best.manifest.sha256, chosen.manifest.sha256);
    assert!(
        at_best.selection.is_none(),
        "not reported as the run's choice"
    );
    let step_error = |step| {
        export_map(
            &dir,
            &work.path().join("e"),
            f32_only,
            MapChoice::Step(step),
            &device,
        )
        .unwrap_err()
        .to_string()
    };
    let other = steps.iter().copied().find(|&s| s != best.step).unwrap();
    let err = step_error(other);
    assert!(err.contains("--select-keep-all"), "{err}");
    let err = step_error(3);
    assert!(
        err.contains("not validated") && err.contains("2, 4, 5"),
        "{err}"
    );

    // Keeping every validated T: each step exports, the chosen one is the run's map.
    let mut keeping = config.clone();
    keeping.select.as_mut().unwrap().keep_all = true;
    let kept_dir = work.path().join("kept");
    run(&keeping, &kept_dir, Start::New).unwrap();
    let kept_record = read_record(&kept_dir).unwrap().unwrap();
    assert_eq!(
        kept_record, record,
        "keeping changes no training or validation"
    );
    let mut hashes = Vec::new();
    for &step in &steps {
        assert!(
            kept_dir
                .join(SelectionRecord::validated_file(step))
                .is_file()
        );
        let out = work.path().join(format!("k{step}"));
        let report = export_map(&kept_dir, &out, f32_only, MapChoice::Step(step), &device).unwrap();
        assert_eq!(report.manifest.training_steps, step);
        hashes.push(report.manifest.sha256);
    }
    // (Weight files hash alike only within one run: they carry the run's parameter ids.)
    let kept_as = |which, name| {
        export_map(&kept_dir, &work.path().join(name), f32_only, which, &device)
            .unwrap()
            .manifest
            .sha256
    };
    let best_index = steps.iter().position(|&s| s == best.step).unwrap();
    assert_eq!(hashes[best_index], kept_as(MapChoice::Run, "kr"));
    assert_eq!(
        hashes[2],
        kept_as(MapChoice::Latest, "kl"),
        "step 5 is the last T"
    );
    assert_ne!(hashes[0], hashes[1]);

    // `--init-from` starts from the run's map, the selected T, not the last iterate: with
    // the record's choice moved to step 2, a run that barely moves T (lr 1e-12; 0 is
    // refused) holds step 2's T.
    let mut moved = kept_record.clone();
    moved.best = kept_record.history.iter().find(|p| p.step == 2).cloned();
    std::fs::write(
        kept_dir.join("selection.json"),
        serde_json::to_string(&moved).unwrap(),
    )
    .unwrap();
    std::fs::copy(
        kept_dir.join(SelectionRecord::validated_file(2)),
        kept_dir.join(SelectionRecord::weights_file(2)),
    )
    .unwrap();
    let still = TrainConfig {
        steps: 1,
        lr_t: 1e-12,
        select: None,
        ..config.clone()
    };
    let from = work.path().join("from");
    run(&still, &from, Start::InitFrom(kept_dir.clone())).unwrap();
    let t_values = |t: ot3d_models::nets::TransportMap| {
        let mut values = Vec::new();
        t.visit(&mut Collect(&mut values));
        values
    };
    let empty = || ot3d_trainer::device::unseeded(|| config.nets.transport().init(&device));
    let at_2 =
        t_values(ot3d_trainer::training::selection::selected_t(&kept_dir, 2, empty()).unwrap());
    let gap = |values: Vec<f32>| {
        values
            .iter()
            .zip(&at_2)
            .fold(0f32, |m, (p, q)| m.max((p - q).abs()))
    };
    assert!(gap(weights(&still, &from)) < 1e-6);
    assert!(
        gap(weights(&config, &kept_dir)) > 1e-4,
        "step 5's T differs"
    );

    // The held-out digits are the class's last ones, and too many are refused.
    let threes = ClassDigits::load(&config.data.origin(), Split::Train, 3).unwrap();
    let select = config.select.clone().unwrap();
    let (training, held) = hold_out(&threes, &select).unwrap();
    assert_eq!(
        (training.len() + held.len(), held.len()),
        (threes.len(), 16)
    );
    let voxels = |d: &ClassDigits, i: usize| d.grid(i, 9).unwrap().into_vec();
    assert_eq!(voxels(&held, 0), voxels(&threes, threes.len() - 16));
    assert_eq!(voxels(&training, 0), voxels(&threes, 0));
    let too_many = Selection {
        held_out: threes.len(),
        ..select.clone()
    };
    let err = hold_out(&threes, &too_many).unwrap_err().to_string();
    assert!(err.contains("--select-held-out"), "{err}");

    // A missing judge is named with the fix, before any training.
    config.select = Some(Selection {
        judge: work.path().join("no-judge"),
        ..select
    });
    let err = run(&config, &work.path().join("run2"), Start::New)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no-judge") && err.contains("--select-judge"),
        "{err}"
    );
    assert!(!work.path().join("run2/config.json").exists());
}

/// A resumed run continues its selection record; a validation lost to a crash between its
/// step's checkpoint and the record is redone on resuming.
#[test]
fn a_resumed_run_continues_its_model_selection() {
    use ot3d_trainer::training::config::Selection;
    use ot3d_trainer::training::selection::{SELECTION_FILE, SelectionRecord, read_record};

    let Some(mut config) = tiny(3) else { return };
    config.select = Some(Selection {
        every: 2,
        held_out: 16,
        judge: ot3d_tests::repo_root().join("models/pretrained/classifier"),
        keep_all: false,
    });
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("run");
    run(&config, &dir, Start::New).unwrap();
    let first = read_record(&dir).unwrap().unwrap();
    assert_eq!(
        first.history.iter().map(|p| p.step).collect::<Vec<_>>(),
        vec![2, 3]
    );
    // As if the process died after step 3's checkpoint, before its validation was recorded.
    let mut lost = first.clone();
    lost.history.pop();
    if lost.best.as_ref().is_some_and(|b| b.step == 3) {
        // Its weights were written only with the record: the earlier best stands.
        let path = dir.join(SelectionRecord::weights_file(3));
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        std::fs::write(dir.join(SelectionRecord::weights_file(2)), bytes).unwrap();
        lost.best = Some(lost.history[0].clone());
    }
    std::fs::write(
        dir.join(SELECTION_FILE),
        serde_json::to_string(&lost).unwrap(),
    )
    .unwrap();
    let mut longer = config.clone();
    longer.steps = 6;
    std::fs::write(
        dir.join("config.json"),
        serde_json::to_string(&longer).unwrap(),
    )
    .unwrap();
    run(&longer, &dir, Start::Resume).unwrap();
    let record = read_record(&dir).unwrap().unwrap();
    let steps: Vec<u64> = record.history.iter().map(|p| p.step).collect();
    assert_eq!(steps, vec![2, 3, 4, 6]);
    // Step 3 validated again from its checkpoint: the same T, the same score.
    assert_eq!(record.history[1], first.history[1]);
    let best = record.best.unwrap();
    assert!(dir.join(SelectionRecord::weights_file(best.step)).is_file());
}

/// Restarts: the recipe trained at seeds 5 and 6 in seed-5/ and seed-6/, each a whole run
/// with its own selection; the run's map (export, figures, --init-from) is the restart with
/// the lowest validation FID-3D. A resumed run trains only the restarts not yet done.
#[test]
fn restarts_train_each_seed_and_the_run_exports_the_best_validated_one() {
    use ot3d_models::nets::burnpack::Precision;
    use ot3d_trainer::export::{MapChoice, PrecisionChoice, export_map};
    use ot3d_trainer::training::config::Selection;
    use ot3d_trainer::training::restarts::{
        RESTARTS_FILE, RestartsRecord, map_run, read_restarts, restart_dir,
    };
    use ot3d_trainer::training::selection::read_record;

    let Some(mut config) = tiny(3) else { return };
    config.select = Some(Selection {
        every: 3,
        held_out: 16,
        judge: ot3d_tests::repo_root().join("models/pretrained/classifier"),
        keep_all: false,
    });
    config.seed = 5;
    config.restarts = 2;
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("run");
    assert_eq!(
        run(&config, &dir, Start::New).unwrap(),
        Finish::Completed { step: 3 }
    );
    assert_eq!(read_config(&dir).unwrap(), config, "the run's own config");
    for seed in [5, 6] {
        let sub = read_config(&restart_dir(&dir, seed)).unwrap();
        assert_eq!((sub.seed, sub.restarts), (seed, 1));
        assert_eq!(sub.steps, 3);
    }
    let record = read_restarts(&dir).unwrap().expect("a restarts record");
    assert_eq!(
        record.restarts.iter().map(|r| r.seed).collect::<Vec<_>>(),
        vec![5, 6]
    );
    for r in &record.restarts {
        assert!(r.finished && r.failed.is_none() && r.seconds > 0.0, "{r:?}");
        let own = read_record(&dir.join(&r.dir)).unwrap().unwrap().best;
        assert_eq!(r.best, own, "each restart's best is its own selection's");
    }
    let chosen = record.chosen().unwrap().clone();
    let other = record
        .restarts
        .iter()
        .find(|r| r.seed != chosen.seed)
        .unwrap();
    assert!(chosen.best.as_ref().unwrap().fid <= other.best.as_ref().unwrap().fid);
    assert_eq!(map_run(&dir).unwrap(), dir.join(&chosen.dir));

    // The run exports the chosen restart's selected T, exactly as that restart would.
    let device = Device::flex();
    let f32_only = PrecisionChoice::Exactly(Precision::F32);
    let export = |from: &Path, name| {
        export_map(
            from,
            &work.path().join(name),
            f32_only,
            MapChoice::Run,
            &device,
        )
        .unwrap()
    };
    let whole = export(&dir, "m");
    let direct = export(&dir.join(&chosen.dir), "d");
    assert_eq!(whole.manifest.sha256, direct.manifest.sha256);
    assert_eq!(whole.restarts.as_ref(), Some(&record));
    // Its figure: the chosen restart's curves and the run's best validation over minutes.
    let png = work.path().join("losses.png");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ot3d"))
        .args(["figure", "losses"])
        .arg(&dir)
        .arg("--out")
        .arg(&png)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains(&chosen.dir), "{said}");
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));

    // As if the process died before the second restart began: resuming trains it alone.
    let first_log = read(dir.join(&record.restarts[0].dir).join("log.jsonl"));
    std::fs::remove_dir_all(dir.join(&record.restarts[1].dir)).unwrap();
    let partial = RestartsRecord {
        restarts: record.restarts[..1].to_vec(),
    };
    std::fs::write(
        dir.join(RESTARTS_FILE),
        serde_json::to_string(&partial).unwrap(),
    )
    .unwrap();
    assert_eq!(map_run(&dir).unwrap(), dir.join(&record.restarts[0].dir));
    run(&config, &dir, Start::Resume).unwrap();
    let resumed = read_restarts(&dir).unwrap().unwrap();
    assert_eq!(resumed.restarts.len(), 2);
    assert_eq!(
        read(dir.join(&record.restarts[0].dir).join("log.jsonl")),
        first_log,
        "the finished restart was not trained again"
    );
    // The same seed trains the same restart (validation included).
    assert_eq!(resumed.restarts[1].best, record.restarts[1].best);
    // Extended on resume (--steps), every restart trains on to the new last step.
    let mut longer = config.clone();
    longer.steps = 4;
    run(&longer, &dir, Start::Resume).unwrap();
    for r in &read_restarts(&dir).unwrap().unwrap().restarts {
        assert!(r.finished, "{r:?}");
        let sub = dir.join(&r.dir);
        assert!(
            latest_dir(&sub).unwrap().ends_with("step-00000004"),
            "{r:?}"
        );
        assert_eq!(read_config(&sub).unwrap().steps, 4);
    }

    // Restarts choose by validation: without model selection they are refused, and so is a
    // new run in the restarts' directory.
    let mut blind = config.clone();
    blind.select = None;
    let err = run(&blind, &work.path().join("blind"), Start::New)
        .unwrap_err()
        .to_string();
    assert!(err.contains("--restarts 1"), "{err}");
    let err = run(&config, &dir, Start::New).unwrap_err().to_string();
    assert!(err.contains("--resume"), "{err}");
}
