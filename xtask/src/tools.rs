//! Installing what the build and the tests need, each only when missing: the rustup
//! wasm32 target, wasm-bindgen's CLI at the version Cargo.lock pins, Node.js, h5py, and
//! Debian packages (Mesa's software Vulkan driver).

use crate::shell::{cargo, output, run, step};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// The `wasm-bindgen` version locked in Cargo.lock: the CLI must match it exactly.
pub fn locked_wasm_bindgen_version(root: &Path) -> Result<String> {
    let lock =
        std::fs::read_to_string(root.join("Cargo.lock")).context("cannot read Cargo.lock")?;
    let mut lines = lock.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line == "name = \"wasm-bindgen\""
            && let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = "))
        {
            return Ok(version.trim_matches('"').to_string());
        }
    }
    bail!("Cargo.lock has no wasm-bindgen package; is the ot3d-wasm crate in the workspace?")
}

pub fn ensure_wasm_target() -> Result<()> {
    let installed =
        output(Command::new("rustup").args(["target", "list", "--installed"])).unwrap_or_default();
    if installed.lines().any(|l| l.trim() == WASM_TARGET) {
        println!("    rustup target {WASM_TARGET}: installed");
        return Ok(());
    }
    step(&format!(
        "Installing the rustup target {WASM_TARGET} (the browser build needs it)"
    ));
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// The `wasm-bindgen` CLI: from PATH, else where `cargo install` puts it (a fresh
/// machine's shell may not have ~/.cargo/bin on PATH yet).
pub fn wasm_bindgen_program() -> PathBuf {
    if output(Command::new("wasm-bindgen").arg("--version")).is_some() {
        return PathBuf::from("wasm-bindgen");
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .unwrap_or_default();
    cargo_home.join("bin/wasm-bindgen")
}

pub fn ensure_wasm_bindgen(root: &Path) -> Result<()> {
    let version = locked_wasm_bindgen_version(root)?;
    let have = output(Command::new(wasm_bindgen_program()).arg("--version")).unwrap_or_default();
    if have.split_whitespace().nth(1) == Some(version.as_str()) {
        println!("    wasm-bindgen CLI {version}: installed");
        return Ok(());
    }
    step(&format!(
        "Installing wasm-bindgen-cli {version} to match Cargo.lock (found {:?}; takes ~5 minutes once)",
        have.trim()
    ));
    // Not --locked: the CLI's own lock file pins a crate that no longer builds.
    run(cargo().args(["install", "wasm-bindgen-cli", "--version", &version]))
}

pub fn ensure_node() -> Result<()> {
    match output(Command::new("node").arg("--version")) {
        Some(v) => {
            println!("    node {}: installed", v.trim());
            Ok(())
        }
        None => bail!(
            "Node.js is not installed; the wasm tests run under it. Install Node.js 20 (Debian: apt-get install nodejs npm)"
        ),
    }
}

/// h5py writes the small Kaggle-format files the .h5 reader is tested on.
pub fn ensure_h5py() -> Result<()> {
    if output(Command::new("python3").args(["-c", "import h5py"])).is_some() {
        println!("    python3 h5py: installed");
        return Ok(());
    }
    step("Installing h5py (the tests write small Kaggle-format .h5 files with it)");
    let pip = run(Command::new("python3").args(["-m", "pip", "install", "--quiet", "h5py"]));
    if pip.is_err() {
        println!("    pip could not install h5py; trying Debian's python3-h5py");
        run(Command::new("apt-get").args(["install", "-y", "-q", "python3-h5py"]))?;
    }
    Ok(())
}

fn debian_package_installed(name: &str) -> bool {
    output(Command::new("dpkg-query").args(["-W", "-f=${Status}", name]))
        .is_some_and(|status| status.contains("install ok installed"))
}

/// Installs the Debian `packages` that are missing (apt-get update first), saying `why`.
pub fn ensure_debian_packages(packages: &[&str], why: &str) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !debian_package_installed(p))
        .collect();
    if missing.is_empty() {
        println!("    Debian packages {}: installed", packages.join(", "));
        return Ok(());
    }
    step(&format!(
        "Installing Debian packages {} ({why})",
        missing.join(", ")
    ));
    let fix = format!(
        "install them by hand: sudo apt-get install {}",
        missing.join(" ")
    );
    run(Command::new("apt-get").args(["update", "-q"])).with_context(|| fix.clone())?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-q", "--no-install-recommends"])
        .args(&missing))
    .with_context(|| fix.clone())?;
    Ok(())
}

/// Mesa's lavapipe (a Vulkan driver on the CPU) and the Vulkan loader: the trainer's
/// wgpu backend is tested on them.
pub fn ensure_vulkan() -> Result<()> {
    ensure_debian_packages(
        &["mesa-vulkan-drivers", "libvulkan1"],
        "the trainer's wgpu backend is tested on Mesa's CPU Vulkan driver",
    )
}

/// Debian's chromium and npm's playwright-core (pinned in tests/browser/package-lock.json;
/// it downloads no browser): the page's tests drive the one with the other.
pub fn ensure_browser_tools(root: &Path) -> Result<()> {
    ensure_debian_packages(&["chromium"], "the page's tests run in headless chromium")?;
    let dir = root.join("tests/browser");
    if dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        println!("    playwright-core: installed in {}", dir.display());
        return Ok(());
    }
    step(
        "Installing playwright-core (npm ci in tests/browser; it drives chromium in the page tests)",
    );
    run(Command::new("npm")
        .current_dir(&dir)
        .args(["ci", "--no-audit", "--no-fund"]))
    .context("npm ci failed in tests/browser: is the npm registry reachable?")
}
