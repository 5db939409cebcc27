//! ot3d-models: everything the native trainer and the browser share, as pure Rust with
//! no I/O beyond bytes in and out, so it builds unchanged for x86_64 and wasm32.
//!
//! # Tensor layout
//! A colored 3D digit is a [`voxel::VoxelGrid`]: `f32` values in `[0, 1]`, shape
//! `[3, 16, 16, 16]` = (C, D, H, W), row-major (W fastest):
//! - C: red, green, blue;
//! - D: depth, the axis the viewer looks along (slice 0 is nearest the viewer);
//! - H: rows, top to bottom, as in the MNIST image;
//! - W: columns, left to right, as in the MNIST image.
//!
//! Every function that draws random numbers takes an explicit seed and uses
//! [`rng::SeedRng`] and `libm`, so the same seed gives bit-identical voxels natively
//! and in wasm.

pub mod assignment;
pub mod digit_pack;
pub mod mnist;
#[cfg(feature = "nn")]
pub mod nets;
pub mod ot_partners;
pub mod render;
pub mod rng;
pub mod stats;
pub mod voxel;
pub mod weak_plan;
