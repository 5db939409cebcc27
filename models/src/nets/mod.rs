//! The networks of Neural Optimal Transport on voxel digits: the transport map T (a 3D UNet
//! with residual output) and the potential f (a 3D ResNet), as burn modules.

pub mod burnpack;
mod potential;
mod resample;
mod transport;
pub mod weights;

pub use potential::{Potential, PotentialConfig};
pub use resample::{avg_pool2, upsample_nearest2};
pub use transport::{TransportMap, TransportMapConfig};

use burn::module::Module;

/// Number of scalar parameters of a module.
pub fn parameter_count<M: Module>(module: &M) -> usize {
    module.num_params()
}

#[cfg(test)]
mod tests;
