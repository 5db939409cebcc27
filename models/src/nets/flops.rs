//! Floating-point operations of T and f, counted from their configs layer by layer (the
//! convolutions and the linear head; activations, pooling and sums are left out), and of
//! one NOT training step, for throughput figures in GFLOP/s.

use super::{PotentialConfig, TransportMapConfig};

/// One layer with weights: a 3D convolution (k³ kernel, output `side`³ voxels) or, with
/// `kernel` 1 and `side` 1, a linear layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    pub inputs: usize,
    pub outputs: usize,
    pub kernel: usize,
    pub side: usize,
    pub bias: bool,
}

impl Layer {
    const fn conv(inputs: usize, outputs: usize, kernel: usize, side: usize, bias: bool) -> Self {
        Self {
            inputs,
            outputs,
            kernel,
            side,
            bias,
        }
    }

    /// Multiply-adds of one sample's forward pass.
    pub fn macs(&self) -> u64 {
        (self.inputs * self.outputs * self.kernel.pow(3) * self.side.pow(3)) as u64
    }

    pub fn params(&self) -> usize {
        self.inputs * self.outputs * self.kernel.pow(3) + if self.bias { self.outputs } else { 0 }
    }
}

/// T's layers, input side first (mirrors `TransportMapConfig::init`).
pub fn transport_layers(config: &TransportMapConfig) -> Vec<Layer> {
    let widths: Vec<usize> = (0..=config.depth).map(|l| config.width << l).collect();
    let side = |level: usize| 16 >> level;
    let mut layers = vec![
        Layer::conv(3 + config.noise_channels, widths[0], 3, 16, true),
        Layer::conv(widths[0], widths[0], 3, 16, true),
    ];
    for level in 1..=config.depth {
        layers.push(Layer::conv(
            widths[level - 1],
            widths[level],
            3,
            side(level),
            true,
        ));
        layers.push(Layer::conv(
            widths[level],
            widths[level],
            3,
            side(level),
            true,
        ));
    }
    for level in (0..config.depth).rev() {
        layers.push(Layer::conv(
            widths[level + 1],
            widths[level],
            3,
            side(level),
            true,
        ));
        layers.push(Layer::conv(
            2 * widths[level],
            widths[level],
            3,
            side(level),
            true,
        ));
    }
    layers.push(Layer::conv(widths[0], 3, 1, 16, true));
    layers
}

/// f's layers, input side first (mirrors `PotentialConfig::init`).
pub fn potential_layers(config: &PotentialConfig) -> Vec<Layer> {
    let widths: Vec<usize> = (0..=config.stages)
        .map(|s| config.width << s.min(3))
        .collect();
    let mut layers = vec![Layer::conv(3, widths[0], 3, 16, true)];
    for stage in 0..=config.stages {
        let (inputs, outputs, side) = (widths[stage.saturating_sub(1)], widths[stage], 16 >> stage);
        layers.push(Layer::conv(inputs, outputs, 3, side, true));
        layers.push(Layer::conv(outputs, outputs, 3, side, true));
        if inputs != outputs {
            layers.push(Layer::conv(inputs, outputs, 1, side, false));
        }
    }
    let side: usize = 16 >> config.stages;
    layers.push(Layer::conv(
        widths[config.stages] * side.pow(3),
        1,
        1,
        1,
        true,
    ));
    layers
}

/// FLOPs (2 per multiply-add) of one forward pass of `layers` over `batch` samples.
pub fn forward_flops(layers: &[Layer], batch: usize) -> u64 {
    2 * batch as u64 * layers.iter().map(Layer::macs).sum::<u64>()
}

/// FLOPs of the first layer alone (its input gradient is never needed: data has none).
fn first_layer_flops(layers: &[Layer], batch: usize) -> u64 {
    forward_flops(&layers[..1.min(layers.len())], batch)
}

/// One strong-cost T-step on `batch` digits: T forward, f forward, f's input gradient (f is
/// fixed), T's weight and input gradients (none into the data).
pub fn t_step_flops(t: &TransportMapConfig, f: &PotentialConfig, batch: usize) -> u64 {
    let (t, f) = (transport_layers(t), potential_layers(f));
    let (t_fwd, f_fwd) = (forward_flops(&t, batch), forward_flops(&f, batch));
    3 * t_fwd - first_layer_flops(&t, batch) + 2 * f_fwd
}

/// One f-step on `batch` digits of each class: T forward (no gradient), f forward on both
/// batches, f's weight gradients and its input gradients except into the data.
pub fn f_step_flops(t: &TransportMapConfig, f: &PotentialConfig, batch: usize) -> u64 {
    let (t, f) = (transport_layers(t), potential_layers(f));
    let f_fwd = forward_flops(&f, 2 * batch);
    forward_flops(&t, batch) + 3 * f_fwd - first_layer_flops(&f, 2 * batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nets::parameter_count;
    use burn::tensor::Device;

    #[test]
    fn a_tiny_t_counted_by_hand() {
        // Width 1, depth 1: 3→1 and 1→1 at 16³, 1→2 (stride 2) and 2→2 at 8³, up: 2→1 and
        // 2→1 at 16³, head 1→3 (1×1) at 16³.
        let config = TransportMapConfig::new().with_width(1).with_depth(1);
        let by_hand: u64 = 3 * 27 * 4096
            + 27 * 4096
            + 2 * 27 * 512
            + 4 * 27 * 512
            + 2 * 27 * 4096
            + 2 * 27 * 4096
            + 3 * 4096;
        assert_eq!(by_hand, 979_968);
        assert_eq!(forward_flops(&transport_layers(&config), 1), 2 * by_hand);
        assert_eq!(forward_flops(&transport_layers(&config), 5), 10 * by_hand);
    }

    #[test]
    fn a_tiny_f_counted_by_hand() {
        // Width 1, one stage: conv_in 3→1 at 16³; block 0: 1→1, 1→1 at 16³; block 1: 1→2,
        // 2→2 at 8³ and a 1×1 shortcut 1→2; head 2·8³ → 1.
        let config = PotentialConfig::new().with_width(1).with_stages(1);
        let by_hand: u64 =
            3 * 27 * 4096 + 27 * 4096 + 27 * 4096 + 2 * 27 * 512 + 4 * 27 * 512 + 2 * 512 + 1024;
        assert_eq!(forward_flops(&potential_layers(&config), 1), 2 * by_hand);
    }

    #[test]
    fn the_layer_lists_are_the_real_networks() {
        // Same parameter count as the burn modules, for several shapes: a layer missing or
        // extra in the list would show here.
        let device = Device::flex();
        for (width, depth, noise) in [(1, 1, 0), (8, 2, 0), (16, 3, 2), (5, 2, 1)] {
            let config = TransportMapConfig::new()
                .with_width(width)
                .with_depth(depth)
                .with_noise_channels(noise);
            let counted: usize = transport_layers(&config).iter().map(Layer::params).sum();
            assert_eq!(
                counted,
                parameter_count(&config.init(&device)),
                "T {config:?}"
            );
        }
        for (width, stages) in [(1, 1), (8, 3), (16, 3), (4, 4)] {
            let config = PotentialConfig::new().with_width(width).with_stages(stages);
            let counted: usize = potential_layers(&config).iter().map(Layer::params).sum();
            assert_eq!(
                counted,
                parameter_count(&config.init(&device)),
                "f {config:?}"
            );
        }
    }

    #[test]
    fn training_steps_count_forward_and_backward() {
        let t = TransportMapConfig::new().with_width(1).with_depth(1);
        let f = PotentialConfig::new().with_width(1).with_stages(1);
        let (t_fwd, f_fwd) = (
            forward_flops(&transport_layers(&t), 2),
            forward_flops(&potential_layers(&f), 2),
        );
        let (t_first, f_first) = (2 * 2 * 3 * 27 * 4096, 2 * 2 * 3 * 27 * 4096);
        assert_eq!(t_step_flops(&t, &f, 2), 3 * t_fwd - t_first + 2 * f_fwd);
        assert_eq!(f_step_flops(&t, &f, 2), t_fwd + 3 * 2 * f_fwd - 2 * f_first);
    }
}
