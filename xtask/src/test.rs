//! `cargo xtask test`: everything CI checks, in the order a failure is cheapest to find.

use crate::shell::{cargo, run, step};
use crate::tools::{
    WASM_TARGET, ensure_browser_tools, ensure_h5py, ensure_node, ensure_vulkan,
    ensure_wasm_bindgen, ensure_wasm_target,
};
use anyhow::Result;
use std::path::Path;

/// Features the lint and test builds turn on: the trainer's wgpu backend, so that its code
/// is linted and its test runs (on Mesa's CPU Vulkan driver) in the same build as the rest.
/// (Not `vulkan`: cubecl's own SPIR-V crashes lavapipe's shader compiler in Mesa 22.3 and
/// 25.0, while wgpu's WGSL → SPIR-V path runs.)
const TEST_FEATURES: &str = "ot3d-trainer/wgpu";

pub fn run_all(root: &Path) -> Result<()> {
    let started = std::time::Instant::now();
    step("Tools: checking what the tests need");
    ensure_wasm_target()?;
    ensure_wasm_bindgen(root)?;
    ensure_node()?;
    ensure_h5py()?;
    ensure_vulkan()?;
    ensure_browser_tools(root)?;
    crate::data::ensure_mnist(root)?;

    step("Formatting: cargo fmt --check");
    run(cargo()
        .current_dir(root)
        .args(["fmt", "--all", "--", "--check"]))?;

    step("Lints: clippy on every crate and target (and the wgpu backend), warnings are errors");
    run(cargo().current_dir(root).args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--features",
        TEST_FEATURES,
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
    let mut test = cargo();
    test.current_dir(root).env("OT3D_REQUIRE_DATA", "1").args([
        "test",
        "--workspace",
        "--features",
        TEST_FEATURES,
    ]);
    // Mesa's Vulkan loader complains on every device it opens without a runtime dir.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join("ot3d-xdg-runtime");
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
        test.env("XDG_RUNTIME_DIR", dir);
    }
    run(&mut test)?;

    println!(
        "\nAll checks passed in {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
