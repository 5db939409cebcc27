//! The Kaggle 3D MNIST reader on small files of the same structure, written by h5py (the
//! library that wrote the real file) in the layouts and types a user may meet.

use ot3d_models::mnist::Split;
use ot3d_models::voxel::{Coloring, DigitColor, GRID};
use ot3d_trainer::digits::{ClassDigits, DigitOrigin};
use ot3d_trainer::kaggle_h5::{KaggleH5Error, load_split};
use std::path::Path;
use std::process::Command;

/// Runs a Python snippet with h5py, passing `path` as argv[1]; `cargo xtask test`
/// installs h5py.
fn python(script: &str, path: &Path) {
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python3 with h5py failed (run `cargo xtask test`, which installs h5py): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Row i of X_* holds (i+1)/10 at voxel index 7i and zeros elsewhere; its label is i % 10.
const WRITE_GOOD: &str = r#"
import sys, h5py, numpy as np
def split(n, dtype):
    x = np.zeros((n, 4096), dtype=dtype)
    for i in range(n):
        x[i, i * 7] = (i + 1) / 10
    return x, np.arange(n) % 10
with h5py.File(sys.argv[1], "w") as f:
    x, y = split(6, np.float32)
    f.create_dataset("X_train", data=x)
    f.create_dataset("y_train", data=y.astype(np.int64))
    x, y = split(13, np.float64)
    f.create_dataset("X_test", data=x, chunks=(4, 4096), compression="gzip")
    f.create_dataset("y_test", data=y.astype(np.uint8))
"#;

#[test]
fn reads_f32_and_f64_contiguous_and_gzip_chunked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("full_dataset_vectors.h5");
    python(WRITE_GOOD, &path);
    for (split, n) in [(Split::Train, 6), (Split::Test, 13)] {
        let set = load_split(&path, split).unwrap();
        assert_eq!(set.len(), n);
        for i in 0..n {
            assert_eq!(set.labels[i] as usize, i % 10);
            let v = set.vector(i);
            assert_eq!(v[i * 7], (i + 1) as f32 / 10.0);
            assert_eq!(v.iter().filter(|&&x| x != 0.0).count(), 1);
        }
    }
    // Through the digit source: the test split's only three is row 3.
    let origin = DigitOrigin::KaggleH5 {
        path: path.clone(),
        coloring: Coloring::Fixed(DigitColor::Green),
    };
    let threes = ClassDigits::load(&origin, Split::Test, 3).unwrap();
    assert_eq!(threes.len(), 1);
    let grid = threes.grid(0, 0).unwrap();
    // Row 3's only voxel is flat index 21 = x 0, y 1, z 5 → (d 5, h 14, w 0), scaled to 1.
    assert_eq!(grid.get(1, 5, GRID - 1 - 1, 0), 1.0);
    assert_eq!(grid.mass(), 1.0);
}

#[test]
fn structural_problems_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let zeros_x = "f.create_dataset('X_test', data=np.zeros((2, 4096), np.float32))";
    let cases: [(String, &str); 5] = [
        (zeros_x.to_string(), "y_test"),
        (
            "f.create_dataset('X_test', data=np.zeros((2, 100), np.float32)); f.create_dataset('y_test', data=np.zeros(2, np.int32))".into(),
            "shape",
        ),
        (format!("{zeros_x}; f.create_dataset('y_test', data=np.array([3, 12]))"), "not a digit"),
        (format!("{zeros_x}; f.create_dataset('y_test', data=np.zeros(3, np.int32))"), "rows"),
        (
            "f.create_dataset('X_test', data=np.zeros((2, 4096), np.int32)); f.create_dataset('y_test', data=np.zeros(2, np.int32))".into(),
            "f32 or f64",
        ),
    ];
    for (i, (body, needle)) in cases.into_iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.h5"));
        python(
            &format!(
                "import sys, h5py, numpy as np\nwith h5py.File(sys.argv[1], 'w') as f:\n    {body}\n"
            ),
            &path,
        );
        let err = load_split(&path, Split::Test).unwrap_err();
        assert!(err.to_string().contains(needle), "case {i}: {err}");
    }
    let path = dir.path().join("nan.h5");
    python(
        "import sys, h5py, numpy as np\nx = np.zeros((2, 4096), np.float32); x[1, 9] = np.nan\nwith h5py.File(sys.argv[1], 'w') as f:\n    f.create_dataset('X_test', data=x); f.create_dataset('y_test', data=np.zeros(2, np.int8))\n",
        &path,
    );
    assert!(matches!(
        load_split(&path, Split::Test),
        Err(KaggleH5Error::BadValue { row: 1, .. })
    ));
}

#[test]
fn not_hdf5_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.h5");
    let noise: Vec<u8> = (0..5000u64)
        .map(|i| (i * 2_654_435_761 % 251) as u8)
        .collect();
    std::fs::write(&path, noise).unwrap();
    let err = load_split(&path, Split::Train).unwrap_err();
    assert!(matches!(err, KaggleH5Error::Open { .. }), "{err}");
    assert!(err.to_string().contains("--h5"));
    let err = load_split(&dir.path().join("absent.h5"), Split::Train).unwrap_err();
    assert!(matches!(err, KaggleH5Error::Open { .. }), "{err}");
}

#[test]
fn a_truncated_or_damaged_file_is_an_error_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.h5");
    python(WRITE_GOOD, &good);
    let bytes = std::fs::read(&good).unwrap();
    let path = dir.path().join("cut.h5");
    let original = |split| {
        let set = load_split(&good, split).unwrap();
        (
            set.labels.clone(),
            (0..set.len())
                .map(|i| set.vector(i).to_vec())
                .collect::<Vec<_>>(),
        )
    };
    let (mut refused, mut cases) = (0, 0);
    // Cut at 40 places across the file, and damage 40 single bytes.
    for k in 1..=80usize {
        let mut damaged = bytes.clone();
        if k <= 40 {
            damaged.truncate(bytes.len() * k / 41);
        } else {
            let at = (k - 40) * bytes.len() / 41;
            damaged[at] ^= 0xA5;
        }
        std::fs::write(&path, &damaged).unwrap();
        for split in [Split::Train, Split::Test] {
            cases += 1;
            let result = std::panic::catch_unwind(|| load_split(&path, split));
            match result {
                Err(_) => panic!("case {k} {split:?}: the reader panicked"),
                Ok(Err(e)) => {
                    refused += 1;
                    assert!(!e.to_string().is_empty());
                }
                // A cut past the split's data, or a byte in unused space or in a value, can
                // leave the split readable: then it is the original (a cut) or passed the
                // reader's checks (finite values, labels 0-9).
                Ok(Ok(set)) => {
                    if k <= 40 {
                        let read = (
                            set.labels.clone(),
                            (0..set.len())
                                .map(|i| set.vector(i).to_vec())
                                .collect::<Vec<_>>(),
                        );
                        assert!(
                            read == original(split),
                            "case {k} {split:?}: cut file read wrong"
                        );
                    }
                    assert!(!set.is_empty());
                }
            }
        }
    }
    assert!(
        refused >= 60,
        "only {refused} of {cases} damaged files refused"
    );
}
