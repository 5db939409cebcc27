//! ot3d-trainer: the native side of ot3d — data loading (MNIST IDX, Kaggle 3D MNIST .h5),
//! per-class colored voxel digit sets, previews, NOT training, and file helpers.

pub mod allocator;
pub mod atomic_file;
pub mod bench;
pub mod device;
pub mod digits;
pub mod eval;
pub mod export;
pub mod gaussian;
pub mod kaggle_h5;
pub mod linalg;
pub mod mapping;
pub mod mnist_dir;
pub mod npy;
pub mod preview;
pub mod progress;
pub mod stack;
pub mod training;
