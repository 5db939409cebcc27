//! The 3D digit classifier that judges maps: a small 3D CNN `[B, 3, 16, 16, 16]` → ten
//! logits, whose penultimate features are the embedding FID-3D compares.

use super::leaky_relu;
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv3d, Conv3dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig3d};
use burn::tensor::{Device, Tensor};

const SLOPE: f64 = 0.2;
/// Digit classes.
pub const CLASSES: usize = 10;

/// Shape of the classifier.
#[derive(Config, Debug, PartialEq)]
pub struct ClassifierConfig {
    /// Channels of the first conv; doubled at each of the three stride-2 convs.
    #[config(default = 16)]
    pub width: usize,
    /// Size of the penultimate feature vector (FID-3D's embedding).
    #[config(default = 64)]
    pub features: usize,
}

fn conv(channels_in: usize, channels_out: usize, stride: usize, device: &Device) -> Conv3d {
    Conv3dConfig::new([channels_in, channels_out], [3, 3, 3])
        .with_stride([stride; 3])
        .with_padding(PaddingConfig3d::Explicit(1, 1, 1))
        .init(device)
}

#[derive(Module, Debug)]
pub struct DigitClassifier {
    /// 16³ (stride 1), then 8³, 4³, 2³ (stride 2).
    convs: Vec<Conv3d>,
    embed: Linear,
    head: Linear,
}

impl ClassifierConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=128).contains(&self.width) {
            return Err(format!("classifier width {} must be 1..=128", self.width));
        }
        if !(2..=1024).contains(&self.features) {
            return Err(format!(
                "classifier features {} must be 2..=1024",
                self.features
            ));
        }
        Ok(())
    }

    /// Builds the classifier; panics only on a config that [`validate`](Self::validate)
    /// rejects.
    pub fn init(&self, device: &Device) -> DigitClassifier {
        self.validate().expect("invalid ClassifierConfig");
        let w = self.width;
        let convs = vec![
            conv(3, w, 1, device),
            conv(w, 2 * w, 2, device),
            conv(2 * w, 4 * w, 2, device),
            conv(4 * w, 8 * w, 2, device),
        ];
        DigitClassifier {
            convs,
            // The 2³ grid is flattened: where a stroke sits matters for telling digits apart.
            embed: LinearConfig::new(8 * w * 8, self.features).init(device),
            head: LinearConfig::new(self.features, CLASSES).init(device),
        }
    }
}

impl DigitClassifier {
    /// Penultimate features `[B, features]` (after the activation).
    pub fn features(&self, x: Tensor<5>) -> Tensor<2> {
        let mut h = x;
        for conv in &self.convs {
            h = super::conv3d_leaky(conv, h, SLOPE);
        }
        let batch = h.dims()[0];
        leaky_relu(self.embed.forward(h.reshape([batch as i32, -1])), SLOPE)
    }

    /// Class logits `[B, 10]`.
    pub fn forward(&self, x: Tensor<5>) -> Tensor<2> {
        self.head.forward(self.features(x))
    }

    /// The predicted digit of each sample.
    pub fn predict(&self, x: Tensor<5>) -> Vec<u8> {
        self.predict_from_features(self.features(x))
    }

    /// The predicted digits for penultimate features already computed by
    /// [`features`](Self::features), so one pass serves both.
    pub fn predict_from_features(&self, features: Tensor<2>) -> Vec<u8> {
        self.head
            .forward(features)
            .argmax(1)
            .into_data()
            .convert::<i64>()
            .try_to_vec::<i64>()
            .expect("argmax gives integers")
            .into_iter()
            .map(|c| c as u8)
            .collect()
    }
}
