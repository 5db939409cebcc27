//! `cargo xtask data`: a second run changes nothing, and a corrupt file is refused with a
//! message naming the file and the fix (never silently used, never silently replaced).

use ot3d_models::mnist::MNIST_FILES;
use ot3d_tests::{mnist_dir, repo_root};
use xtask::data::ensure_mnist;

#[test]
fn second_run_is_a_no_op() {
    let Some(dir) = mnist_dir() else { return };
    let stamps = || {
        MNIST_FILES
            .iter()
            .map(|f| {
                std::fs::metadata(dir.join(f.name))
                    .unwrap()
                    .modified()
                    .unwrap()
            })
            .collect::<Vec<_>>()
    };
    let before = stamps();
    assert_eq!(ensure_mnist(&repo_root()).unwrap(), dir);
    assert_eq!(stamps(), before, "verified files must not be rewritten");
}

#[test]
fn a_corrupt_file_is_named_with_the_fix_and_kept() {
    let Some(dir) = mnist_dir() else { return };
    let root = tempfile::tempdir().unwrap();
    let copy = root.path().join("data/mnist");
    std::fs::create_dir_all(&copy).unwrap();
    for f in MNIST_FILES.iter() {
        std::fs::copy(dir.join(f.name), copy.join(f.name)).unwrap();
    }
    let victim = copy.join("train-labels-idx1-ubyte");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[1234] ^= 0x40;
    std::fs::write(&victim, &bytes).unwrap();

    let message = format!("{:#}", ensure_mnist(root.path()).unwrap_err());
    assert!(message.contains(&victim.display().to_string()), "{message}");
    assert!(
        message.contains("corrupt") && message.contains("cargo xtask data"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        bytes,
        "the file is left for the user to inspect"
    );
}

#[test]
fn a_truncated_file_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("data/mnist");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("t10k-labels-idx1-ubyte"),
        [0u8, 0, 8, 1, 0, 0, 39, 16, 7],
    )
    .unwrap();
    let message = format!("{:#}", ensure_mnist(root.path()).unwrap_err());
    assert!(
        message.contains("t10k-labels-idx1-ubyte") && message.contains("bytes"),
        "{message}"
    );
}
