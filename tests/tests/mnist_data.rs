//! The real MNIST files (fetched by `cargo xtask data`): class counts of the canonical
//! split, and voxelization properties on real digits.

use ot3d_models::mnist::Split;
use ot3d_models::voxel::{Coloring, DigitColor, Flavor, VoxelConfig, voxelize};
use ot3d_tests::mnist_split;

#[test]
fn class_counts_are_the_canonical_ones() {
    let (Some(train), Some(test)) = (mnist_split(Split::Train), mnist_split(Split::Test)) else {
        return;
    };
    assert_eq!((train.len(), test.len()), (60_000, 10_000));
    let (train_counts, test_counts) = (train.class_counts(), test.class_counts());
    assert_eq!((train_counts[3], train_counts[5]), (6131, 5421));
    assert_eq!((test_counts[3], test_counts[5]), (1010, 892));
    assert_eq!(train_counts, Split::Train.class_counts());
    assert_eq!(test_counts, Split::Test.class_counts());
}

#[test]
fn rotation_keeps_the_mass_of_real_digits() {
    let Some(test) = mnist_split(Split::Test) else {
        return;
    };
    let red = Coloring::Fixed(DigitColor::Red);
    let plain = VoxelConfig {
        coloring: red,
        ..VoxelConfig::default()
    };
    let rotated = VoxelConfig {
        flavor: Flavor::rotated(),
        coloring: red,
        ..VoxelConfig::default()
    };
    let mut worst: f64 = 0.0;
    for (i, &index) in test.indices_of(3).iter().take(300).enumerate() {
        let image = &test.images[index];
        let before = voxelize(image, &plain, i as u64).unwrap().mass();
        let after = voxelize(image, &rotated, i as u64).unwrap().mass();
        worst = worst.max((after / before - 1.0).abs());
    }
    // MNIST digits sit in a 20×20 box of the 28×28 frame, so ±45° clips almost nothing;
    // bilinear resampling changes mass by a few percent at most.
    assert!(worst < 0.05, "worst relative mass change {worst:.4}");
}

#[test]
fn every_flavor_gives_a_substantial_digit_for_every_real_three() {
    let Some(test) = mnist_split(Split::Test) else {
        return;
    };
    for flavor in [Flavor::Plain, Flavor::rotated(), Flavor::kaggle_style()] {
        let config = VoxelConfig {
            flavor: flavor.clone(),
            ..VoxelConfig::default()
        };
        for (i, &index) in test.indices_of(3).iter().enumerate() {
            let grid = voxelize(&test.images[index], &config, i as u64).unwrap();
            let occupied = grid.occupied(0.1);
            assert!(
                occupied >= 40,
                "{} three #{index}: only {occupied} voxels",
                flavor.name()
            );
        }
    }
}
