//! Tests of voxelization on synthetic digits (real MNIST is tested in the trainer).

use super::*;

/// A ring of radius 7 px around the image center with a bar through its left half: a
/// digit-like stroke that is not rotation-symmetric.
pub(crate) fn synthetic_digit() -> [u8; MNIST_PIXELS] {
    let mut pixels = [0u8; MNIST_PIXELS];
    for y in 0..MNIST_SIDE {
        for x in 0..MNIST_SIDE {
            let (dx, dy) = (x as f64 - 13.5, y as f64 - 13.5);
            let r = (dx * dx + dy * dy).sqrt();
            let ring = (1.5 - (r - 7.0).abs()).clamp(0.0, 1.0);
            let bar = if (13..15).contains(&y) && (7..14).contains(&x) {
                1.0
            } else {
                0.0
            };
            pixels[y * MNIST_SIDE + x] = (255.0 * f64::max(ring, bar)).round() as u8;
        }
    }
    pixels
}

fn config(flavor: Flavor, coloring: Coloring) -> VoxelConfig {
    VoxelConfig {
        flavor,
        coloring,
        ..VoxelConfig::default()
    }
}

fn all_flavors() -> [Flavor; 3] {
    [Flavor::Plain, Flavor::rotated(), Flavor::kaggle_style()]
}

#[test]
fn same_seed_same_grid_other_seed_other_grid() {
    let digit = synthetic_digit();
    for flavor in all_flavors() {
        let cfg = config(flavor.clone(), Coloring::Hue);
        let a = voxelize(&digit, &cfg, 17).unwrap();
        let b = voxelize(&digit, &cfg, 17).unwrap();
        let c = voxelize(&digit, &cfg, 18).unwrap();
        assert_eq!(a, b, "{} not deterministic", flavor.name());
        assert_ne!(a, c, "{} ignores its seed", flavor.name());
    }
}

#[test]
fn values_are_in_unit_range_and_shape_is_fixed() {
    let digit = synthetic_digit();
    for flavor in all_flavors() {
        for seed in 0..20 {
            let grid = voxelize(&digit, &config(flavor.clone(), Coloring::Hue), seed).unwrap();
            assert_eq!(grid.as_slice().len(), GRID_LEN);
            assert!(grid.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));
            assert!(
                grid.occupied(0.1) > 20,
                "{} seed {seed} is nearly empty",
                flavor.name()
            );
            VoxelGrid::from_vec(grid.into_vec()).unwrap();
        }
    }
}

#[test]
fn plain_extrudes_exactly_through_the_band() {
    let digit = synthetic_digit();
    let cfg = VoxelConfig {
        coloring: Coloring::Fixed(DigitColor::Yellow),
        depth_band: [3, 9],
        ..VoxelConfig::default()
    };
    let grid = voxelize(&digit, &cfg, 0).unwrap();
    let slice = resize_area(&digit.map(|p| p as f32 / 255.0), MNIST_SIDE, GRID);
    for d in 0..GRID {
        for h in 0..GRID {
            for w in 0..GRID {
                let expected = if (3..9).contains(&d) {
                    slice[h * GRID + w]
                } else {
                    0.0
                };
                assert_eq!(grid.rgb(d, h, w), [expected, expected, 0.0]);
            }
        }
    }
}

#[test]
fn each_sample_gets_one_of_the_four_colors() {
    let digit = synthetic_digit();
    let mut seen = std::collections::HashSet::new();
    for seed in 0..64 {
        let grid = voxelize(&digit, &VoxelConfig::default(), seed).unwrap();
        let totals = [0, 1, 2].map(|c| {
            grid.as_slice()[c * VOXELS..(c + 1) * VOXELS]
                .iter()
                .sum::<f32>()
        });
        let max = totals.iter().cloned().fold(0.0, f32::max);
        // Channels are either all of the digit's mass or none of it.
        let pattern = totals.map(|t| {
            assert!(
                t == 0.0 || (t - max).abs() < 1e-3 * max,
                "mixed channel totals {totals:?}"
            );
            t > 0.0
        });
        let color = DigitColor::ALL
            .into_iter()
            .find(|c| c.rgb().map(|v| v > 0.0) == pattern)
            .unwrap_or_else(|| panic!("channels {pattern:?} are none of the four colors"));
        seen.insert(color);
    }
    assert_eq!(seen.len(), 4, "64 samples should show all four colors");
}

#[test]
fn color_does_not_depend_on_flavor() {
    let digit = synthetic_digit();
    for seed in 0..10 {
        let colors: Vec<[bool; 3]> = all_flavors()
            .into_iter()
            .map(|flavor| {
                let grid = voxelize(&digit, &config(flavor, Coloring::Palette), seed).unwrap();
                [0, 1, 2].map(|c| {
                    grid.as_slice()[c * VOXELS..(c + 1) * VOXELS]
                        .iter()
                        .any(|&v| v > 0.0)
                })
            })
            .collect();
        assert!(
            colors.windows(2).all(|w| w[0] == w[1]),
            "seed {seed}: {colors:?}"
        );
    }
}

#[test]
fn rotation_keeps_mass_and_moves_voxels() {
    let digit = synthetic_digit();
    let cfg = config(Flavor::Plain, Coloring::Fixed(DigitColor::Red));
    let plain = voxelize(&digit, &cfg, 0).unwrap();
    let rotated_cfg = config(Flavor::rotated(), Coloring::Fixed(DigitColor::Red));
    let mut moved = 0;
    for seed in 0..30 {
        let rotated = voxelize(&digit, &rotated_cfg, seed).unwrap();
        let ratio = rotated.mass() / plain.mass();
        assert!(
            (ratio - 1.0).abs() < 0.03,
            "seed {seed}: mass ratio {ratio}"
        );
        if rotated != plain {
            moved += 1;
        }
    }
    assert_eq!(moved, 30);
}

#[test]
fn kaggle_style_without_rotation_or_jitter_fills_the_thickness() {
    let digit = synthetic_digit();
    let k = KaggleStyleConfig {
        max_angles_degrees: [0.0; 3],
        jitter: 0.0,
        thickness: 4.0,
        ..KaggleStyleConfig::default()
    };
    let grid = voxelize(
        &digit,
        &config(
            Flavor::KaggleStyle(k.clone()),
            Coloring::Fixed(DigitColor::Blue),
        ),
        5,
    )
    .unwrap();
    for d in 0..GRID {
        let slice_mass: f32 = (0..GRID * GRID)
            .map(|i| grid.get(2, d, i / GRID, i % GRID))
            .sum();
        assert_eq!(
            slice_mass > 0.0,
            (6..10).contains(&d),
            "slice {d} mass {slice_mass}"
        );
    }
    // Mass ≈ stroke mass × area scale × thickness, less what the cap at 1 clips.
    let stroke: f64 = digit
        .iter()
        .map(|&p| p as f64 / 255.0)
        .filter(|&v| v >= k.min_intensity as f64)
        .sum();
    let expected = stroke * (GRID as f64 / MNIST_SIDE as f64).powi(2) * k.thickness;
    let ratio = grid.mass() / expected;
    assert!((0.75..=1.0).contains(&ratio), "mass ratio {ratio}");
}

#[test]
fn kaggle_style_rotates_out_of_the_plane() {
    let digit = synthetic_digit();
    let cfg = config(Flavor::kaggle_style(), Coloring::Fixed(DigitColor::Green));
    let depths = |grid: &VoxelGrid| {
        (0..GRID)
            .filter(|&d| (0..GRID * GRID).any(|i| grid.get(1, d, i / GRID, i % GRID) > 0.0))
            .count()
    };
    let widest = (0..20)
        .map(|seed| depths(&voxelize(&digit, &cfg, seed).unwrap()))
        .max()
        .unwrap();
    assert!(
        widest >= 8,
        "3D rotations should spread the digit over many slices, saw {widest}"
    );
}

#[test]
fn bad_configs_and_inputs_are_errors() {
    let digit = synthetic_digit();
    let mut cfg = VoxelConfig {
        depth_band: [12, 6],
        ..VoxelConfig::default()
    };
    assert_eq!(
        voxelize(&digit, &cfg, 0),
        Err(VoxelError::BadDepthBand { start: 12, end: 6 })
    );
    cfg.depth_band = [0, 17];
    assert!(voxelize(&digit, &cfg, 0).is_err());
    let cfg = config(Flavor::Rotated { max_degrees: -1.0 }, Coloring::Palette);
    assert!(
        voxelize(&digit, &cfg, 0)
            .unwrap_err()
            .to_string()
            .contains("max_degrees")
    );
    let err = voxelize_slice(&[0; 100], &VoxelConfig::default(), 0).unwrap_err();
    assert_eq!(
        err,
        VoxelError::WrongLength {
            what: "MNIST image",
            expected: 784,
            found: 100
        }
    );
    assert!(VoxelGrid::from_vec(vec![0.0; 5]).is_err());
    assert!(VoxelGrid::from_vec(vec![2.0; GRID_LEN]).is_err());
}

#[test]
fn config_json_round_trips_and_rejects_typos() {
    for flavor in all_flavors() {
        let cfg = config(flavor, Coloring::Fixed(DigitColor::Green));
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<VoxelConfig>(&json).unwrap(), cfg);
    }
    let json = r#"{"flavor":{"kind":"rotated","max_degrees":30},"coloring":"hue"}"#;
    let cfg: VoxelConfig = serde_json::from_str(json).unwrap();
    assert_eq!(cfg.flavor, Flavor::Rotated { max_degrees: 30.0 });
    assert_eq!(cfg.depth_band, [6, 12]);
    assert!(serde_json::from_str::<VoxelConfig>(r#"{"flavour":"plain"}"#).is_err());
}
