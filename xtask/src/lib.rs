//! xtask's library: the automation steps, shared by `cargo xtask` and by the cross-crate
//! tests (which build the wasm package the same way the demo does).

pub mod bench;
pub mod data;
pub mod demo;
pub mod shell;
pub mod site;
pub mod test;
pub mod tools;
pub mod wasm_pkg;

use std::path::{Path, PathBuf};

/// The workspace root (the parent of xtask/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
        .to_path_buf()
}
