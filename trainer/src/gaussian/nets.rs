//! Small MLPs for vectors in R^d: the map T(x) = x + g(x) (g's last layer starts at zero,
//! so T starts as the identity) and the potential f: R^d → R.

use burn::config::Config;
use burn::module::{Initializer, Module};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation::celu;
use burn::tensor::{Device, Tensor};

/// Shape of both MLPs.
#[derive(Config, Debug, PartialEq)]
pub struct MlpConfig {
    /// Input (and, for T, output) dimension.
    pub dim: usize,
    /// Units per hidden layer.
    #[config(default = 128)]
    pub hidden: usize,
    /// Hidden layers.
    #[config(default = 3)]
    pub layers: usize,
}

// CELU: smooth, so f can approximate the quadratic potentials of Gaussian OT without kinks.
fn act(x: Tensor<2>) -> Tensor<2> {
    celu(x, 1.0)
}

fn hidden_stack(config: &MlpConfig, device: &Device) -> Vec<Linear> {
    (0..config.layers)
        .map(|i| {
            let inputs = if i == 0 { config.dim } else { config.hidden };
            LinearConfig::new(inputs, config.hidden).init(device)
        })
        .collect()
}

fn through(layers: &[Linear], x: Tensor<2>) -> Tensor<2> {
    layers.iter().fold(x, |h, layer| act(layer.forward(h)))
}

/// T: `[B, d] → [B, d]`, residual.
#[derive(Module, Debug)]
pub struct MlpMap {
    hidden: Vec<Linear>,
    out: Linear,
}

/// f: `[B, d] → [B, 1]`.
#[derive(Module, Debug)]
pub struct MlpPotential {
    hidden: Vec<Linear>,
    out: Linear,
}

impl MlpConfig {
    pub fn init_map(&self, device: &Device) -> MlpMap {
        MlpMap {
            hidden: hidden_stack(self, device),
            out: LinearConfig::new(self.hidden, self.dim)
                .with_initializer(Initializer::Zeros)
                .init(device),
        }
    }

    pub fn init_potential(&self, device: &Device) -> MlpPotential {
        MlpPotential {
            hidden: hidden_stack(self, device),
            out: LinearConfig::new(self.hidden, 1).init(device),
        }
    }
}

impl MlpMap {
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        x.clone() + self.out.forward(through(&self.hidden, x))
    }
}

impl MlpPotential {
    pub fn forward(&self, y: Tensor<2>) -> Tensor<2> {
        self.out.forward(through(&self.hidden, y))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn map_starts_as_identity_and_shapes_hold() {
        let device = Device::flex();
        let config = MlpConfig::new(5).with_hidden(16).with_layers(2);
        let x = Tensor::<2>::from_data(
            TensorData::new((0..15).map(|v| v as f32 * 0.1).collect::<Vec<_>>(), [3, 5]),
            &device,
        );
        let t = config.init_map(&device);
        let same = t.forward(x.clone()).into_data();
        same.assert_eq(&x.clone().into_data(), true);
        let f = config.init_potential(&device);
        assert_eq!(f.forward(x).dims(), [3, 1]);
    }
}
