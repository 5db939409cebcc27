//! Training steps hold no memory across steps: an f-step runs T without recording its
//! graph. Its own test binary (one process, one test), so the resident set it reads is this
//! test's alone.

use burn::optim::AdamConfig;
use burn::tensor::{Device, Distribution, Tensor};
use ot3d_models::nets::{PotentialConfig, TransportMapConfig};
use ot3d_trainer::device::with_seed;
use ot3d_trainer::training::losses::PotentialObjective;
use ot3d_trainer::training::replicas::Replicas;
use ot3d_trainer::training::steps::f_step;

/// Resident memory of this process in MiB (Linux's /proc/self/statm, second field, pages).
fn resident_mib() -> Option<f64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: f64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096.0 / (1024.0 * 1024.0))
}

#[test]
fn f_steps_do_not_keep_the_maps_graph() {
    if resident_mib().is_none() {
        eprintln!("skipped: no /proc/self/statm on this system");
        return;
    }
    let device = Device::flex().autodiff();
    // The preset's networks at batch 8: one T forward records ~10 MiB of activations and
    // im2col buffers for a backward that an f-step never runs.
    let (t, mut f) = with_seed(&device, 0, || {
        (
            TransportMapConfig::new().with_width(8).init(&device),
            PotentialConfig::new().with_width(8).init(&device),
        )
    });
    let mut optimizer = AdamConfig::new().init();
    let batch =
        || Tensor::<5>::random([8, 3, 16, 16, 16], Distribution::Uniform(0.0, 1.0), &device);
    let mut steps = |n: usize| {
        for _ in 0..n {
            (f, _) = f_step(
                &t,
                f.clone(),
                &mut optimizer,
                1e-4,
                batch(),
                batch(),
                None,
                PotentialObjective::COMPLETE,
                &Replicas::single(&device),
            );
        }
    };
    // Warm-up: allocator pools and Adam's moments reach their steady size.
    steps(10);
    let before = resident_mib().unwrap();
    steps(40);
    let grown = resident_mib().unwrap() - before;
    eprintln!("40 f-steps: {before:.0} MiB resident, then {grown:+.1} MiB");
    assert!(
        grown < 64.0,
        "40 f-steps grew the resident set by {grown:.0} MiB: something keeps each step's graph"
    );
}
