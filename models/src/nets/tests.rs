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
    let mut t = TransportMapConfig::new()
        .with_width(4)
        .with_noise_channels(2)
        .init(&device);
    // A random output layer, so that z reaches the output.
    t.out.weight = t
        .out
        .weight
        .map(|w| w.random_like(Distribution::Normal(0.0, 0.1)));
    assert_eq!(t.noise_channels(), 2);
    let z = Tensor::random([3, 2, 16, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    let x = random_digits(3, &device);
    let with_z = t.forward(x.clone(), Some(z));
    assert_eq!(with_z.dims(), [3, 3, 16, 16, 16]);
    // No z means z = 0, not a shape error.
    let zeros = Tensor::zeros([3, 2, 16, 16, 16], &device);
    let without_z = values(t.forward(x.clone(), None));
    assert_ne!(without_z, values(with_z), "z must change the output");
    assert_eq!(without_z, values(t.forward(x, Some(zeros))));
}

#[test]
fn gaussian_noise_is_seeded_and_scaled() {
    use crate::rng::SeedRng;
    let a = gaussian_noise(20_000, 0.5, &mut SeedRng::new(3));
    assert_eq!(a, gaussian_noise(20_000, 0.5, &mut SeedRng::new(3)));
    assert_ne!(a, gaussian_noise(20_000, 0.5, &mut SeedRng::new(4)));
    let mean = a.iter().map(|&v| v as f64).sum::<f64>() / a.len() as f64;
    let var = a.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / a.len() as f64;
    assert!(mean.abs() < 0.02, "mean {mean}");
    assert!((var.sqrt() - 0.5).abs() < 0.02, "std {}", var.sqrt());
}

#[test]
fn noise_layouts_fill_the_channels_per_voxel_or_per_digit() {
    use crate::rng::SeedRng;
    let grid = 16 * 16 * 16;
    // Per voxel: exactly the draws of gaussian_noise, so older maps see the same z.
    let voxel = noise_values(3, 2, 0.5, NoiseLayout::Voxel, &mut SeedRng::new(9));
    assert_eq!(
        voxel,
        gaussian_noise(3 * 2 * grid, 0.5, &mut SeedRng::new(9))
    );
    // Per digit: one value per (digit, channel), the same at every voxel, from the first
    // draws of the same stream.
    let digit = noise_values(3, 2, 0.5, NoiseLayout::Digit, &mut SeedRng::new(9));
    assert_eq!(digit.len(), 3 * 2 * grid);
    let codes = gaussian_noise(6, 0.5, &mut SeedRng::new(9));
    for (k, block) in digit.chunks(grid).enumerate() {
        assert!(
            block.iter().all(|&v| v == codes[k]),
            "block {k} is constant"
        );
    }
    assert!(codes.windows(2).all(|w| w[0] != w[1]));
    // Signs: the same draws' signs times std, constant per (digit, channel).
    let signs = noise_values(3, 2, 0.5, NoiseLayout::Signs, &mut SeedRng::new(9));
    assert_eq!(signs.len(), 3 * 2 * grid);
    for (k, block) in signs.chunks(grid).enumerate() {
        let want = if codes[k] > 0.0 { 0.5 } else { -0.5 };
        assert!(block.iter().all(|&v| v == want), "block {k}: {want}");
    }
    assert!(signs.contains(&0.5) && signs.contains(&-0.5));
    // The manifest and config spelling.
    assert_eq!(
        serde_json::to_string(&NoiseLayout::Digit).unwrap(),
        "\"digit\""
    );
    assert_eq!(
        serde_json::from_str::<NoiseLayout>("\"signs\"").unwrap(),
        NoiseLayout::Signs
    );
    assert!(serde_json::from_str::<NoiseLayout>("\"pixel\"").is_err());
    assert!(NoiseLayout::default().is_voxel());
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

mod weights_format {
    use super::*;
    use crate::nets::burnpack::Precision;
    use crate::nets::weights::*;

    fn manifest(precision: Precision) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            kind: TRANSPORT_MAP_KIND.into(),
            config: TransportShape {
                width: 4,
                depth: 1,
                noise_channels: 0,
            },
            source_digit: 3,
            target_digit: 5,
            data: "mnist".into(),
            voxel: crate::voxel::VoxelConfig::default(),
            value_range: [0.0, 1.0],
            precision,
            noise_std: 0.0,
            noise_layout: Default::default(),
            precision_max_abs_diff: 0.0,
            training_steps: 7,
            warm_start_steps: 0,
            metrics: Default::default(),
            weights_file: WEIGHTS_FILE.into(),
            weights_bytes: 0,
            sha256: String::new(),
            stacked_on: None,
            target_weight: 1.0,
            weak_gamma: None,
            weak_groups: None,
        }
    }

    #[test]
    fn the_noise_layout_is_left_out_for_voxel_noise_and_kept_for_digit_noise() {
        let plain = manifest(Precision::F32);
        let json = serde_json::to_string(&plain).unwrap();
        assert!(!json.contains("noise_layout"), "{json}");
        let back: Manifest = serde_json::from_str(&json).unwrap();
        assert_eq!(back.noise_layout, NoiseLayout::Voxel);
        let digit = Manifest {
            noise_layout: NoiseLayout::Digit,
            ..plain
        };
        let json = serde_json::to_string(&digit).unwrap();
        assert!(json.contains("\"noise_layout\":\"digit\""), "{json}");
        assert_eq!(serde_json::from_str::<Manifest>(&json).unwrap(), digit);
    }

    /// A T that is not the identity (random output layer), so loading mistakes show.
    fn trained_like(device: &Device) -> TransportMap {
        let mut t = TransportMapConfig::new()
            .with_width(4)
            .with_depth(1)
            .init(device);
        t.out.weight = t
            .out
            .weight
            .map(|w| w.random_like(Distribution::Normal(0.0, 0.1)));
        t
    }

    fn outputs(t: &TransportMap, x: Tensor<5>) -> Vec<f32> {
        values(t.forward(x, None))
    }

    #[test]
    fn round_trip_in_f32_is_exact_and_f16_is_close_and_half_the_size() {
        let device = device();
        let t = trained_like(&device);
        let x = random_digits(3, &device);
        let (_, json32, bytes32) = encode_transport_map(&t, manifest(Precision::F32)).unwrap();
        let (loaded, m) = load_transport_map(&json32, &bytes32, &device).unwrap();
        assert_eq!(outputs(&loaded, x.clone()), outputs(&t, x.clone()));
        assert_eq!(
            (m.source_digit, m.target_digit, m.training_steps),
            (3, 5, 7)
        );

        let (_, json16, bytes16) = encode_transport_map(&t, manifest(Precision::F16)).unwrap();
        assert!(
            bytes16.len() * 10 < bytes32.len() * 6,
            "{} vs {} bytes",
            bytes16.len(),
            bytes32.len()
        );
        let (loaded16, _) = load_transport_map(&json16, &bytes16, &device).unwrap();
        let worst = outputs(&loaded16, x.clone())
            .iter()
            .zip(outputs(&t, x))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst > 0.0 && worst < 1e-2, "f16 difference {worst}");
    }

    #[test]
    fn every_bad_file_is_a_typed_error() {
        let device = device();
        let t = trained_like(&device);
        let (_, json, bytes) = encode_transport_map(&t, manifest(Precision::F32)).unwrap();
        let load = |json: &str, bytes: &[u8]| {
            load_transport_map(json, bytes, &device)
                .map(|_| ())
                .unwrap_err()
        };

        assert!(matches!(
            load(&json, &bytes[..bytes.len() - 10]),
            WeightsError::WrongSize { .. }
        ));
        let mut flipped = bytes.clone();
        flipped[bytes.len() / 2] ^= 1;
        assert!(matches!(
            load(&json, &flipped),
            WeightsError::ChecksumMismatch { .. }
        ));
        let noise: Vec<u8> = (0..bytes.len()).map(|i| (i * 31 % 256) as u8).collect();
        let mut noisy = manifest(Precision::F32);
        noisy.weights_bytes = noise.len();
        noisy.sha256 = sha256_hex(&noise);
        let noisy_json = serde_json::to_string(&noisy).unwrap();
        assert!(matches!(
            load(&noisy_json, &noise),
            WeightsError::Weights(_)
        ));

        let edit = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
            f(&mut v);
            v.to_string()
        };
        let future = edit(&|v| v["format_version"] = 2.into());
        assert!(matches!(
            load(&future, &bytes),
            WeightsError::UnsupportedVersion { found: 2 }
        ));
        // A wider network than the file can hold is refused before it is built; a narrower
        // one does not fit the stored tensors.
        let wider = edit(&|v| v["config"]["width"] = 8.into());
        assert!(
            matches!(
                load(&wider, &bytes),
                WeightsError::TooSmallForNetwork { .. }
            ),
            "a network larger than the file"
        );
        let narrower = edit(&|v| v["config"]["width"] = 3.into());
        assert!(
            matches!(load(&narrower, &bytes), WeightsError::Weights(_)),
            "weights of the wrong shape"
        );
        let kind = edit(&|v| v["kind"] = "potential".into());
        assert!(matches!(
            load(&kind, &bytes),
            WeightsError::WrongKind { .. }
        ));
        let digits = edit(&|v| v["target_digit"] = 3.into());
        assert!(matches!(
            load(&digits, &bytes),
            WeightsError::BadDigits { .. }
        ));
        let depth = edit(&|v| v["config"]["depth"] = 9.into());
        assert!(matches!(load(&depth, &bytes), WeightsError::BadConfig(_)));
        assert!(matches!(
            load("{not json", &bytes),
            WeightsError::Manifest(_)
        ));
        assert!(matches!(load("{}", &bytes), WeightsError::Manifest(_)));
        let unknown = edit(&|v| v["surprise"] = 1.into());
        assert!(matches!(load(&unknown, &bytes), WeightsError::Manifest(_)));
        // Weights that diverged in training (a NaN) are refused, even with a valid checksum.
        let mut broken = t.clone();
        broken.out.bias = broken.out.bias.map(|b| b.map(|v| v.mul_scalar(f32::NAN)));
        let (_, nan_json, nan_bytes) =
            encode_transport_map(&broken, manifest(Precision::F32)).unwrap();
        let err = load(&nan_json, &nan_bytes);
        assert!(
            matches!(err, WeightsError::NonFinite { count: 3, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("diverged"), "{err}");

        for err in [load(&future, &bytes), load(&json, &flipped)] {
            assert!(err.to_string().contains("export"), "{err}");
        }
    }
}

#[test]
fn a_deterministic_map_gains_noise_inputs_and_keeps_its_outputs_at_zero_scale() {
    let device = Device::flex();
    let config = TransportMapConfig::new().with_width(2).with_depth(1);
    let t = config.init(&device);
    // A non-identity T: its zero-initialized output layer given values.
    let t = t.map(&mut Perturb);
    let fresh = config.clone().with_noise_channels(2).init(&device);
    let x = Tensor::<5>::random([2, 3, 16, 16, 16], Distribution::Uniform(0.0, 1.0), &device);
    let z = Tensor::<5>::random([2, 2, 16, 16, 16], Distribution::Normal(0.0, 1.0), &device);
    let before = t.forward(x.clone(), None);
    let silent = t.clone().with_noise_input(&fresh, 0.0);
    assert_eq!(silent.noise_channels(), 2);
    let diff = (silent.forward(x.clone(), Some(z.clone())) - before.clone())
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(diff < 1e-6, "{diff}");
    // At a small scale the draws differ, a little.
    let noisy = t.with_noise_input(&fresh, 0.1);
    let moved = (noisy.forward(x, Some(z)) - before)
        .abs()
        .max()
        .into_scalar::<f32>();
    assert!(moved > 1e-6 && moved < 1.0, "{moved}");
}

/// Sets every float parameter to a small random value.
struct Perturb;

impl burn::module::ModuleMapper for Perturb {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<Tensor<D>>,
    ) -> burn::module::Param<Tensor<D>> {
        let value = param.val();
        let random = Tensor::<D>::random(
            value.dims(),
            burn::tensor::Distribution::Normal(0.0, 0.1),
            &value.device(),
        );
        burn::module::Param::from_tensor(random)
    }
}
