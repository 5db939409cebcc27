//! Helpers for ot3d's cross-crate tests: finding the repository, the MNIST data, and
//! deciding whether a test that needs data may skip.

use ot3d_models::mnist::{LabeledImages, Split};
use std::path::PathBuf;

pub fn repo_root() -> PathBuf {
    xtask::repo_root()
}

/// Loads a verified MNIST split from data/mnist. When the data is absent the test is
/// skipped (returns None) unless OT3D_REQUIRE_DATA is set, as `cargo xtask test` and CI
/// do after fetching it — there a missing file is a failure.
pub fn mnist_split(split: Split) -> Option<LabeledImages> {
    let dir = repo_root().join("data/mnist");
    let (images_spec, labels_spec) = split.files();
    let read = |name: &str| std::fs::read(dir.join(name));
    match (read(images_spec.name), read(labels_spec.name)) {
        (Ok(images), Ok(labels)) => {
            images_spec
                .verify(&images)
                .expect("MNIST images corrupt: delete data/mnist and run `cargo xtask data`");
            labels_spec
                .verify(&labels)
                .expect("MNIST labels corrupt: delete data/mnist and run `cargo xtask data`");
            Some(LabeledImages::parse(&images, &labels).expect("verified MNIST parses"))
        }
        _ if std::env::var_os("OT3D_REQUIRE_DATA").is_some() => {
            panic!(
                "MNIST missing in {} although OT3D_REQUIRE_DATA is set: run `cargo xtask data`",
                dir.display()
            )
        }
        _ => {
            eprintln!(
                "skipped: MNIST not in {} (run `cargo xtask data`)",
                dir.display()
            );
            None
        }
    }
}
