//! The discrete-OT baseline: each mapped test digit's exact-OT partner among as many
//! training digits of the target class in its color, and how far T(x) lies from that
//! partner and from any training digit — what the network does beyond the pairing.

use super::evaluate::sq_distance_matrix;
use crate::digits::{ClassDigits, DigitOrigin, DigitsError};
use crate::mapping::MappedColor;
use burn::tensor::Device;
use ot3d_models::assignment::min_cost_assignment;
use ot3d_models::mnist::Split;
use ot3d_models::voxel::{Coloring, DigitColor, GRID_LEN, VoxelConfig};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One color's mapped test digits with their partners.
#[derive(Debug, Clone)]
pub struct Partnered {
    pub color: DigitColor,
    pub inputs: Vec<f32>,
    pub outputs: Vec<f32>,
    /// Digit `i` is the training digit exact OT pairs with input `i`.
    pub partners: Vec<f32>,
    /// The training digits the partners were picked from (as many as inputs).
    pub pool: Vec<f32>,
}

/// For each color block, as many random training digits of `target` in that color as
/// there are inputs, and the exact OT assignment (squared distance) of inputs to them.
pub fn partner_each_color(
    mapped: Vec<MappedColor>,
    voxel: &VoxelConfig,
    mnist_dir: &Path,
    target: u8,
    seed: u64,
    device: &Device,
) -> Result<Vec<Partnered>, DigitsError> {
    mapped
        .into_iter()
        .enumerate()
        .map(|(k, part)| {
            let n = part.inputs.len() / GRID_LEN;
            let origin = DigitOrigin::Mnist {
                dir: mnist_dir.to_path_buf(),
                voxel: VoxelConfig {
                    coloring: Coloring::Fixed(part.color),
                    ..voxel.clone()
                },
            };
            let pool = ClassDigits::load(&origin, Split::Train, target)?
                .sample_values(n, seed.wrapping_add(1000 + k as u64))?;
            let cost = sq_distance_matrix(&part.inputs, &pool, device);
            let partners = min_cost_assignment(&cost, n)
                .into_iter()
                .flat_map(|j| pool[j * GRID_LEN..(j + 1) * GRID_LEN].to_vec())
                .collect();
            Ok(Partnered {
                color: part.color,
                inputs: part.inputs,
                outputs: part.outputs,
                partners,
                pool,
            })
        })
        .collect()
}

/// Distances (per voxel, ‖a − b‖²/D) that place T(x) between copying its partner and
/// making a new digit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// Training digits per color the partners come from (= test digits per color).
    pub pool_per_color: usize,
    /// Mean ‖x − partner(x)‖²: the exact discrete OT cost to training targets.
    pub partner_cost: f64,
    /// Mean ‖T(x) − partner(x)‖²: 0 would mean T copies its pairing.
    pub map_to_partner: f64,
    /// Mean over T(x) of the least ‖T(x) − y‖² over the whole pool (all colors).
    pub map_to_nearest: f64,
    /// The same for real target test digits: how far new real digits lie from the pool.
    pub real_to_nearest: f64,
    /// Share of T(x) whose nearest pool digit is its own partner.
    pub nearest_is_partner: f64,
}

fn mean_sq(a: &[f32], b: &[f32]) -> f64 {
    let per_digit: Vec<f64> = a
        .chunks(GRID_LEN)
        .zip(b.chunks(GRID_LEN))
        .map(|(x, y)| {
            x.iter()
                .zip(y)
                .map(|(p, q)| f64::from(p - q).powi(2))
                .sum::<f64>()
                / GRID_LEN as f64
        })
        .collect();
    per_digit.iter().sum::<f64>() / per_digit.len().max(1) as f64
}

/// For each row of `digits`, the index and distance of its nearest row of `pool`.
fn nearest(digits: &[f32], pool: &[f32], device: &Device) -> Vec<(usize, f64)> {
    let columns = pool.len() / GRID_LEN;
    sq_distance_matrix(digits, pool, device)
        .chunks(columns)
        .map(|row| {
            row.iter()
                .copied()
                .enumerate()
                .fold(
                    (0, f64::INFINITY),
                    |best, (j, d)| if d < best.1 { (j, d) } else { best },
                )
        })
        .collect()
}

/// The baseline figures over all color blocks; `real_targets` are real target test digits.
pub fn baseline(blocks: &[Partnered], real_targets: &[f32], device: &Device) -> Baseline {
    let pool: Vec<f32> = blocks.iter().flat_map(|b| b.pool.iter().copied()).collect();
    let inputs: Vec<f32> = blocks
        .iter()
        .flat_map(|b| b.inputs.iter().copied())
        .collect();
    let outputs: Vec<f32> = blocks
        .iter()
        .flat_map(|b| b.outputs.iter().copied())
        .collect();
    let partners: Vec<f32> = blocks
        .iter()
        .flat_map(|b| b.partners.iter().copied())
        .collect();
    let mean_distance = |found: &[(usize, f64)]| {
        found.iter().map(|&(_, d)| d).sum::<f64>() / found.len().max(1) as f64
    };
    let map_nearest = nearest(&outputs, &pool, device);
    let hits = map_nearest
        .iter()
        .zip(partners.chunks(GRID_LEN))
        .filter(|&(&(j, _), partner)| pool[j * GRID_LEN..(j + 1) * GRID_LEN] == *partner)
        .count();
    Baseline {
        pool_per_color: blocks.first().map_or(0, |b| b.pool.len() / GRID_LEN),
        partner_cost: mean_sq(&inputs, &partners),
        map_to_partner: mean_sq(&outputs, &partners),
        map_to_nearest: mean_distance(&map_nearest),
        real_to_nearest: mean_distance(&nearest(real_targets, &pool, device)),
        nearest_is_partner: hits as f64 / map_nearest.len().max(1) as f64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ot3d_models::rng::SeedRng;

    fn digits(rng: &mut SeedRng, n: usize) -> Vec<f32> {
        (0..n * GRID_LEN)
            .map(|_| rng.uniform_f64() as f32)
            .collect()
    }

    #[test]
    fn a_map_that_copies_its_partner_scores_zero_distance_and_all_hits() {
        let device = Device::flex();
        let mut rng = SeedRng::new(3);
        let (inputs, pool) = (digits(&mut rng, 4), digits(&mut rng, 4));
        // Partners: the pool in a fixed order; T copies them exactly.
        let order = [2usize, 0, 3, 1];
        let partners: Vec<f32> = order
            .iter()
            .flat_map(|&j| pool[j * GRID_LEN..(j + 1) * GRID_LEN].to_vec())
            .collect();
        let block = Partnered {
            color: DigitColor::Red,
            inputs: inputs.clone(),
            outputs: partners.clone(),
            partners: partners.clone(),
            pool: pool.clone(),
        };
        let real = digits(&mut rng, 3);
        let b = baseline(std::slice::from_ref(&block), &real, &device);
        assert_eq!(b.pool_per_color, 4);
        assert!(b.map_to_partner < 1e-12 && b.map_to_nearest < 1e-6, "{b:?}");
        assert_eq!(b.nearest_is_partner, 1.0);
        assert!((b.partner_cost - mean_sq(&inputs, &partners)).abs() < 1e-12);
        // Uniform noise in [0,1): E(a − b)² = 1/6, and a nearest neighbor is a bit closer.
        assert!(
            b.real_to_nearest > 0.12 && b.real_to_nearest < 1.0 / 6.0,
            "{b:?}"
        );

        // A map that returns its input is as far from its partner as the OT cost.
        let identity = Partnered {
            outputs: inputs.clone(),
            ..block
        };
        let b = baseline(&[identity], &real, &device);
        assert!((b.map_to_partner - b.partner_cost).abs() < 1e-12);
    }
}
