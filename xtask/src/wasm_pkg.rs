//! Building the browser crate: `cargo build --target wasm32-unknown-unknown --release -p
//! ot3d-wasm`, then `wasm-bindgen` to JS glue for the web (the site) or for Node (tests).

use crate::shell::{cargo, output, run};
use crate::tools::{WASM_TARGET, wasm_bindgen_program};
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Who loads the generated JS.
#[derive(Debug, Clone, Copy)]
pub enum GlueTarget {
    /// ES module for the page.
    Web,
    /// CommonJS module for Node (tests).
    NodeJs,
}

impl GlueTarget {
    fn flag(self) -> &'static str {
        match self {
            GlueTarget::Web => "web",
            GlueTarget::NodeJs => "nodejs",
        }
    }
}

/// The cargo target directory (honours CARGO_TARGET_DIR and config). CARGO_TARGET_DIR,
/// when set, is taken as is, so a machine without cargo (a GPU server running a prebuilt
/// bench) can name one.
pub fn target_dir(root: &Path) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        return std::path::absolute(&dir)
            .with_context(|| format!("CARGO_TARGET_DIR {dir:?} is not a usable path"));
    }
    let json =
        output(
            cargo()
                .current_dir(root)
                .args(["metadata", "--format-version", "1", "--no-deps"]),
        )
        .context("`cargo metadata` failed")?;
    let key = "\"target_directory\":\"";
    let start = json
        .find(key)
        .context("cargo metadata has no target_directory")?
        + key.len();
    let end = start
        + json[start..]
            .find('"')
            .context("unterminated target_directory")?;
    Ok(PathBuf::from(json[start..end].replace("\\\\", "\\")))
}

/// Builds ot3d-wasm in release and writes `ot3d_wasm.js` + `ot3d_wasm_bg.wasm` into `out`.
pub fn build(root: &Path, glue: GlueTarget, out: &Path) -> Result<()> {
    run(cargo().current_dir(root).args([
        "build",
        "--release",
        "-p",
        "ot3d-wasm",
        "--target",
        WASM_TARGET,
    ]))?;
    let wasm = target_dir(root)?
        .join(WASM_TARGET)
        .join("release/ot3d_wasm.wasm");
    run(Command::new(wasm_bindgen_program())
        .args(["--target", glue.flag(), "--no-typescript", "--out-dir"])
        .arg(out)
        .arg(&wasm))
    .context("wasm-bindgen failed: run `cargo xtask test` once, which installs the CLI at the locked version")
}
