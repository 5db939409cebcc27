//! The discrete-OT baseline: each held-out source digit's partner among as many training
//! digits of the target class under the exact OT assignment (quadratic cost), to show
//! beside T(x) what the network does beyond copying a paired training digit.

use crate::assignment::min_cost_assignment;
use crate::digit_pack::{DigitPack, DigitPackError};
use crate::mnist::{LabeledImages, MNIST_PIXELS, MNIST_SIDE, Split};
use crate::voxel::{GRID, resize_area};

/// The 16×16 image a plain voxel digit extrudes. A plain digit of color `rgb` is this image
/// copied into every slice of the depth band and scaled by `rgb`, so over voxels
/// `‖x − y‖² = band · ‖rgb‖² · ‖a − b‖²` for the images `a`, `b`: the exact assignment on
/// images is the one on plain voxel digits of any one color (the per-color blocks of the
/// trainer's warm start and of `ot3d eval`'s exact-OT cost).
pub fn plain_image(pixels: &[u8; MNIST_PIXELS]) -> Vec<f32> {
    let unit: Vec<f32> = pixels.iter().map(|&p| p as f32 / 255.0).collect();
    resize_area(&unit, MNIST_SIDE, GRID)
}

/// `‖a − b‖²` per pixel of the 16×16 images.
fn image_cost(a: &[f32], b: &[f32]) -> f64 {
    let sum: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    sum / (GRID * GRID) as f64
}

/// `partner[i]`: the index in `candidates` that exact OT (uniform weights, squared distance
/// of the plain images) pairs with `sources[i]`. Both sets must have the same, non-zero size.
pub fn ot_partners(
    sources: &[[u8; MNIST_PIXELS]],
    candidates: &[[u8; MNIST_PIXELS]],
) -> Result<Vec<usize>, PartnersError> {
    let n = sources.len();
    if n == 0 || candidates.len() != n {
        return Err(PartnersError::SizeMismatch {
            sources: n,
            candidates: candidates.len(),
        });
    }
    let a: Vec<Vec<f32>> = sources.iter().map(plain_image).collect();
    let b: Vec<Vec<f32>> = candidates.iter().map(plain_image).collect();
    let cost: Vec<f64> = a
        .iter()
        .flat_map(|x| b.iter().map(move |y| image_cost(x, y)))
        .collect();
    Ok(min_cost_assignment(&cost, n))
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PartnersError {
    #[error(
        "exact OT pairs equal-size sets: {sources} source digits and {candidates} candidates (pick as many training digits as gallery digits)"
    )]
    SizeMismatch { sources: usize, candidates: usize },
    #[error(transparent)]
    Pack(#[from] DigitPackError),
}

/// The partners of a gallery's digits: the first `gallery.len()` training digits of class
/// `target` in file order, reordered so that entry `i` is gallery digit `i`'s OT partner.
pub fn partner_pack(
    gallery: &DigitPack,
    train: &LabeledImages,
    target: u8,
) -> Result<DigitPack, PartnersError> {
    let candidates = DigitPack::select(train, Split::Train, target, gallery.len())?;
    let partners = ot_partners(&gallery.images, &candidates.images)?;
    Ok(DigitPack {
        digit: target,
        split: Split::Train,
        indices: partners.iter().map(|&j| candidates.indices[j]).collect(),
        images: partners.iter().map(|&j| candidates.images[j]).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SeedRng;
    use crate::voxel::{Coloring, DigitColor, VoxelConfig, voxelize};

    fn random_digit(rng: &mut SeedRng) -> [u8; MNIST_PIXELS] {
        let mut pixels = [0u8; MNIST_PIXELS];
        for p in pixels.iter_mut() {
            if rng.uniform_f64() < 0.3 {
                *p = (rng.uniform_f64() * 255.0) as u8;
            }
        }
        pixels
    }

    #[test]
    fn image_cost_is_a_fixed_multiple_of_the_voxel_cost_for_each_color() {
        let mut rng = SeedRng::new(4);
        let digits: Vec<_> = (0..6).map(|_| random_digit(&mut rng)).collect();
        for color in DigitColor::ALL {
            let config = VoxelConfig {
                coloring: Coloring::Fixed(color),
                ..VoxelConfig::default()
            };
            let mut ratios = Vec::new();
            for pair in digits.windows(2) {
                let x = voxelize(&pair[0], &config, 0).unwrap().into_vec();
                let y = voxelize(&pair[1], &config, 0).unwrap().into_vec();
                let voxel: f64 = x
                    .iter()
                    .zip(&y)
                    .map(|(a, b)| f64::from(a - b).powi(2))
                    .sum();
                ratios.push(voxel / image_cost(&plain_image(&pair[0]), &plain_image(&pair[1])));
            }
            for r in &ratios {
                assert!((r / ratios[0] - 1.0).abs() < 1e-4, "{color:?}: {ratios:?}");
            }
        }
    }

    #[test]
    fn partners_are_the_least_cost_permutation() {
        let mut rng = SeedRng::new(7);
        let sources: Vec<_> = (0..5).map(|_| random_digit(&mut rng)).collect();
        // The candidates are the sources shuffled and lightly perturbed: OT undoes the shuffle.
        let order = [3, 0, 4, 1, 2];
        let candidates: Vec<_> = order
            .iter()
            .map(|&i| {
                let mut d = sources[i];
                d[100] = d[100].saturating_add(3);
                d
            })
            .collect();
        let partners = ot_partners(&sources, &candidates).unwrap();
        for (i, &j) in partners.iter().enumerate() {
            assert_eq!(order[j], i, "{partners:?}");
        }
        assert!(matches!(
            ot_partners(&sources, &candidates[..4]),
            Err(PartnersError::SizeMismatch {
                sources: 5,
                candidates: 4
            })
        ));
        assert!(ot_partners(&[], &[]).is_err());
    }

    #[test]
    fn partner_pack_reorders_training_digits_of_the_target_class() {
        let mut rng = SeedRng::new(1);
        let images: Vec<_> = (0..12).map(|_| random_digit(&mut rng)).collect();
        let labels = vec![3, 5, 3, 5, 5, 3, 1, 5, 3, 5, 3, 5];
        let data = LabeledImages {
            images: images.clone(),
            labels,
        };
        let gallery = DigitPack::select(&data, Split::Test, 3, 4).unwrap();
        let pack = partner_pack(&gallery, &data, 5).unwrap();
        assert_eq!((pack.digit, pack.split, pack.len()), (5, Split::Train, 4));
        let mut chosen = pack.indices.clone();
        chosen.sort_unstable();
        assert_eq!(chosen, [1, 3, 4, 7], "a permutation of the first four 5s");
        let expected = ot_partners(
            &gallery.images,
            &[images[1], images[3], images[4], images[7]],
        )
        .unwrap();
        let first_fives = [1u32, 3, 4, 7];
        for (i, &j) in expected.iter().enumerate() {
            assert_eq!(pack.indices[i], first_fives[j]);
            assert_eq!(pack.images[i], images[first_fives[j] as usize]);
        }
        assert!(matches!(
            partner_pack(&gallery, &data, 1),
            Err(PartnersError::Pack(DigitPackError::NotEnough { .. }))
        ));
    }
}
