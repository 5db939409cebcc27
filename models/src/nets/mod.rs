//! The networks of Neural Optimal Transport on voxel digits: the transport map T (a 3D UNet
//! with residual output) and the potential f (a 3D ResNet), as burn modules; and the 3D
//! digit classifier that evaluates maps.

pub mod burnpack;
mod classifier;
pub mod classifier_weights;
mod potential;
mod resample;
mod transport;
pub mod weights;

pub use classifier::{CLASSES, ClassifierConfig, DigitClassifier};
pub use potential::{Potential, PotentialConfig};
pub use resample::{avg_pool2, upsample_nearest2};
pub use transport::{TransportMap, TransportMapConfig, gaussian_noise};

use burn::module::Module;

/// Number of scalar parameters of a module.
pub fn parameter_count<M: Module>(module: &M) -> usize {
    module.num_params()
}

#[cfg(test)]
mod tests;
