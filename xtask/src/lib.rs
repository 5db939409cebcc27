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

/// The workspace root: the nearest directory above the running package's manifest whose
/// Cargo.toml declares `[workspace]`. The package directory is read at run time (cargo
/// sets `CARGO_MANIFEST_DIR` for `cargo run` and `cargo test`), because the compile-time
/// path goes stale when a reused target directory serves a checkout at another path.
pub fn repo_root() -> PathBuf {
    let package = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    workspace_root_above(&package).unwrap_or_else(|| {
        package
            .parent()
            .expect("xtask lives one level below the workspace root")
            .to_path_buf()
    })
}

/// The nearest ancestor of `dir` (itself included) whose Cargo.toml has a `[workspace]` table.
fn workspace_root_above(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml"))
                .is_ok_and(|toml| toml.lines().any(|l| l.trim() == "[workspace]"))
        })
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_root_is_the_workspace_holding_xtask() {
        let root = repo_root();
        assert!(
            root.join("xtask/Cargo.toml").is_file(),
            "{}",
            root.display()
        );
        assert!(root.join("Cargo.lock").is_file(), "{}", root.display());
    }

    #[test]
    fn workspace_root_is_found_from_a_nested_directory_and_not_outside_one() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("ws/a/b");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(
            dir.path().join("ws/Cargo.toml"),
            "[workspace]\nmembers = []\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("ws/a/Cargo.toml"),
            "[package]\nname = \"a\"\n",
        )
        .unwrap();
        assert_eq!(workspace_root_above(&nested), Some(dir.path().join("ws")));
        let outside = tempfile::tempdir().unwrap();
        assert_eq!(workspace_root_above(outside.path()), None);
    }
}
