//! Shape, initialization and gradient tests of the networks on the CPU (flex) backend.

use super::*;
use burn::tensor::{Device, Distribution, Tensor, TensorData};

fn device() -> Device {
    Device::flex()
}

fn random_digits(batch: usize, device: &Device) -> Tensor<5> {
    Tensor::random(
        [batch, 3, 16, 16, 16],
        Distribution::Uniform(0.0, 1.0),
        device,
    )
}

fn values(t: Tensor<5>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

#[test]
fn upsample_repeats_and_pool_averages() {
    let device = device();
    let x = Tensor::<1>::from_data(
        TensorData::from([1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]),
        &device,
    )
    .reshape([1, 1, 2, 2, 2]);
    let up = upsample_nearest2(x.clone());
    assert_eq!(up.dims(), [1, 1, 4, 4, 4]);
    let v = values(up.clone());
    // Voxel (d, h, w) of the upsampled grid comes from (d/2, h/2, w/2).
    for d in 0..4 {
        for h in 0..4 {
            for w in 0..4 {
                assert_eq!(
                    v[(d * 4 + h) * 4 + w],
                    (1 + (d / 2) * 4 + (h / 2) * 2 + w / 2) as f32
                );
            }
        }
    }
    assert_eq!(values(avg_pool2(up)), values(x.clone()));
    assert_eq!(values(avg_pool2(x)), vec![4.5]);
}

#[test]
fn transport_map_starts_as_the_identity_at_every_depth() {
    let device = device();
    for depth in 1..=3 {
        let t = TransportMapConfig::new()
            .with_width(4)
            .with_depth(depth)
            .init(&device);
        let x = random_digits(2, &device);
        let y = t.forward(x.clone(), None);
        assert_eq!(y.dims(), [2, 3, 16, 16, 16]);
        assert_eq!(values(y), values(x), "depth {depth}");
    }
}

#[test]
fn transport_map_takes_noise_channels() {
    let device = device();
    let t = TransportMapConfig::new()
        .with_width(4)
        .with_noise_channels(2)
        .init(&device);
    assert_eq!(t.noise_channels(), 2);
    let z = Tensor::random([3, 2, 16, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    assert_eq!(
        t.forward(random_digits(3, &device), Some(z)).dims(),
        [3, 3, 16, 16, 16]
    );
}

#[test]
fn potential_gives_one_finite_scalar_per_digit() {
    let device = device();
    for stages in 1..=4 {
        let f = PotentialConfig::new()
            .with_width(4)
            .with_stages(stages)
            .init(&device);
        let out = f.forward(random_digits(5, &device));
        assert_eq!(out.dims(), [5, 1]);
        assert!(
            out.into_data()
                .try_to_vec::<f32>()
                .unwrap()
                .iter()
                .all(|v| v.is_finite())
        );
    }
}

#[test]
fn gradients_reach_the_zero_initialized_output_layer() {
    let device = device().autodiff();
    let t = TransportMapConfig::new()
        .with_width(4)
        .with_depth(1)
        .init(&device);
    let x = random_digits(2, &device);
    let target = random_digits(2, &device);
    let loss = (t.forward(x, None) - target).powi_scalar(2).mean();
    let grads = loss.backward();
    let grad = t
        .out
        .weight
        .val()
        .grad(&grads)
        .expect("gradient for the output conv");
    let norm: f32 = grad.abs().sum().into_scalar();
    assert!(norm > 0.0, "the identity start must still be trainable");
}

#[test]
fn configs_validate_and_count_parameters() {
    assert!(TransportMapConfig::new().with_depth(4).validate().is_err());
    assert!(TransportMapConfig::new().with_width(0).validate().is_err());
    assert!(PotentialConfig::new().with_stages(5).validate().is_err());
    let device = device();
    let t = TransportMapConfig::new().init(&device);
    let f = PotentialConfig::new().init(&device);
    let (nt, nf) = (parameter_count(&t), parameter_count(&f));
    assert!((100_000..2_000_000).contains(&nt), "T has {nt} parameters");
    assert!((100_000..2_000_000).contains(&nf), "f has {nf} parameters");
}

#[test]
fn burnpack_round_trip_and_errors() {
    use super::burnpack::{BurnpackError, load_bytes, to_bytes};
    let device = device();
    let config = PotentialConfig::new().with_width(4).with_stages(2);
    let f = config.init(&device);
    let bytes = to_bytes(&f).unwrap();
    let loaded = load_bytes(config.init(&device), &bytes).unwrap();
    let x = random_digits(2, &device);
    let (a, b) = (f.forward(x.clone()), loaded.forward(x));
    assert_eq!(
        a.into_data().try_to_vec::<f32>().unwrap(),
        b.into_data().try_to_vec::<f32>().unwrap()
    );

    let other = PotentialConfig::new()
        .with_width(8)
        .with_stages(2)
        .init(&device);
    assert!(matches!(
        load_bytes(other, &bytes),
        Err(BurnpackError::Mismatch(_)) | Err(BurnpackError::Decode(_))
    ));
    assert!(load_bytes(config.init(&device), &bytes[..bytes.len() / 2]).is_err());
    assert!(load_bytes(config.init(&device), b"definitely not burnpack").is_err());
}
