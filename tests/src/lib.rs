//! Helpers for ot3d's cross-crate tests: finding the repository and the MNIST data, and
//! deciding whether a test that needs the data may skip.

use ot3d_models::mnist::{LabeledImages, MNIST_FILES, MnistFile, Split};
use std::path::PathBuf;

/// The smallest networks `ot3d train` and `ot3d bench steps` take, as flags: tests that run
/// the binary train these in a second or two.
pub const TINY_NETS: [&str; 8] = [
    "--t-width",
    "2",
    "--t-depth",
    "1",
    "--f-width",
    "2",
    "--f-stages",
    "1",
];

pub fn repo_root() -> PathBuf {
    xtask::repo_root()
}

/// The MNIST directory (data/mnist) if it holds the four files. When they are absent the
/// calling test is skipped (None) unless OT3D_REQUIRE_DATA is set, as `cargo xtask test`
/// and CI do after fetching them — there a missing file is a failure.
pub fn mnist_dir() -> Option<PathBuf> {
    let dir = repo_root().join("data/mnist");
    if MNIST_FILES.iter().all(|f| dir.join(f.name).is_file()) {
        Some(dir)
    } else if std::env::var_os("OT3D_REQUIRE_DATA").is_some() {
        panic!(
            "MNIST missing in {} although OT3D_REQUIRE_DATA is set: run `cargo xtask data`",
            dir.display()
        )
    } else {
        eprintln!(
            "skipped: MNIST not in {} (run `cargo xtask data`)",
            dir.display()
        );
        None
    }
}

/// Loads a verified MNIST split from data/mnist (None: skipped, see [`mnist_dir`]).
pub fn mnist_split(split: Split) -> Option<LabeledImages> {
    let dir = mnist_dir()?;
    let read = |spec: &MnistFile| {
        let bytes = std::fs::read(dir.join(spec.name)).expect("reading MNIST");
        spec.verify(&bytes)
            .expect("MNIST corrupt: delete data/mnist and run `cargo xtask data`");
        bytes
    };
    let (images, labels) = split.files();
    Some(LabeledImages::parse(&read(images), &read(labels)).expect("verified MNIST parses"))
}
