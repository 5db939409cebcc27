//! `cargo xtask test`: everything CI checks, in the order a failure is cheapest to find.

use crate::shell::{cargo, run, step};
use crate::tools::{
    WASM_TARGET, ensure_h5py, ensure_node, ensure_wasm_bindgen, ensure_wasm_target,
};
use anyhow::Result;
use std::path::Path;

pub fn run_all(root: &Path) -> Result<()> {
    let started = std::time::Instant::now();
    step("Tools: checking what the tests need");
    ensure_wasm_target()?;
    ensure_wasm_bindgen(root)?;
    ensure_node()?;
    ensure_h5py()?;
    crate::data::ensure_mnist(root)?;

    step("Formatting: cargo fmt --check");
    run(cargo()
        .current_dir(root)
        .args(["fmt", "--all", "--", "--check"]))?;

    step("Lints: clippy on every crate and target, warnings are errors");
    run(cargo().current_dir(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;

    step(&format!(
        "wasm32: the shared models crate and the browser crate build for {WASM_TARGET}"
    ));
    run(cargo().current_dir(root).args([
        "clippy",
        "-p",
        "ot3d-models",
        "-p",
        "ot3d-wasm",
        "--target",
        WASM_TARGET,
        "--",
        "-D",
        "warnings",
    ]))?;

    step(
        "CUDA: the trainer's cuda feature type-checks (linking needs a CUDA machine with network)",
    );
    // DOCS_RS=1 makes burn's CUDA backend skip the LLVM bundle it downloads when built.
    run(cargo().current_dir(root).env("DOCS_RS", "1").args([
        "check",
        "-p",
        "ot3d-trainer",
        "--features",
        "cuda",
    ]))?;

    step("Tests: every crate (data-dependent tests must find the data)");
    run(cargo()
        .current_dir(root)
        .env("OT3D_REQUIRE_DATA", "1")
        .args(["test", "--workspace"]))?;

    println!(
        "\nAll checks passed in {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
