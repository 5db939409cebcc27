//! Weight gradients of convolutions with small outputs (4³ or fewer voxels per sample) as
//! im2col + GEMM over several samples at once, `∂Wᵀ += [tile_1 … tile_G] · [dy_1 … dy_G]ᵀ`:
//! one sample's tile there is only 8–64 columns, so the per-sample GEMM reduces over 64
//! values at most and mostly loads and stores its `[C_in·k³ × C_out]` accumulator. The tiles
//! come from the padded input, one plain copy per output line ([`grid::im2col_sample`]).

use super::dense::with_buffer;
use super::grid::{self, Scratch};
use super::kernels::{ConvGeometry, Operand, gemm_into, sample_runs, summed_transposed};
use rayon::prelude::*;
use std::cell::RefCell;

/// Output voxels per sample up to which a conv runs here (4³).
const MAX_VOXELS: usize = 64;

/// GEMM columns a group aims for: the `gemm` crate's AVX-512 tiles are 48 × 8 and pack
/// columns in panels; 256 columns of 64-channel patches keep a tile near 1.7 MiB.
const TARGET_COLUMNS: usize = 256;

/// Whether `g`'s weight gradient runs here: a kernel wider than 1 and small outputs (on
/// 64 × 64 channels at 4³, batch 16: 2.5–3.1 → 1.5–1.7 ms, `ot3d bench conv`).
pub(super) fn pays(g: &ConvGeometry) -> bool {
    let voxels = g.output_voxels();
    g.kernel > 1 && voxels > 0 && voxels <= MAX_VOXELS && g.batch > 0
}

/// Samples per GEMM: enough for [`TARGET_COLUMNS`] columns, but at least one group per thread.
fn group_size(g: &ConvGeometry) -> usize {
    let wanted = TARGET_COLUMNS.div_ceil(g.output_voxels());
    let per_thread = g.batch.div_ceil(rayon::current_num_threads());
    wanted.min(per_thread).max(1)
}

/// The im2col tiles of `samples` consecutive samples of `x`, side by side:
/// `tile: [C_in·k³, samples·V_out]`, sample `s` in columns `s·V_out..(s+1)·V_out`.
fn im2col_group(
    g: &ConvGeometry,
    x: &[f32],
    samples: usize,
    tile: &mut [f32],
    scratch: &mut Scratch,
) -> usize {
    let (voxels, sample_in) = (g.output_voxels(), g.input_len() / g.batch);
    let width = samples * voxels;
    for s in 0..samples {
        let x_s = &x[s * sample_in..][..sample_in];
        grid::im2col_sample(g, x_s, width, &mut tile[s * voxels..], scratch);
    }
    width
}

thread_local! {
    /// A group's im2col tile and its dy, kept between calls (the tile is up to ~2 MiB,
    /// whose zeroing on every call showed in profiles).
    static TILE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static DY: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `∂L/∂weight` of `y = conv(x, weight)` given `dy`, `[C_out, C_in, k, k, k]`: one run of
/// samples per thread, each summing a GEMM per group of samples; the runs' sums added in order.
pub(super) fn weight_gradient(g: &ConvGeometry, x: &[f32], dy: &[f32]) -> Vec<f32> {
    let (rows, voxels, c_out) = (g.patch_rows(), g.output_voxels(), g.channels_out);
    let (sample_in, sample_out) = (g.input_len() / g.batch, c_out * voxels);
    let group = group_size(g);
    let columns = group * voxels;
    let partials: Vec<Vec<f32>> = sample_runs(g.batch, rayon::current_num_threads())
        .into_par_iter()
        .map(|run| {
            // ∂Wᵀ: [rows × C_out], as in the per-sample path.
            let mut dw_t = vec![0.0f32; rows * c_out];
            let mut scratch = Scratch::default();
            with_buffer(&TILE, |tile| {
                let tile = grid::sized(tile, rows * columns);
                with_buffer(&DY, |dy_group| {
                    let dy_group = grid::sized(dy_group, c_out * columns);
                    for first in run.clone().step_by(group) {
                        let samples = group.min(run.end - first);
                        let x_group = &x[first * sample_in..][..samples * sample_in];
                        let width = im2col_group(g, x_group, samples, tile, &mut scratch);
                        // dy of the group as [C_out × width], in the tile's column order.
                        for s in 0..samples {
                            let dy_s = &dy[(first + s) * sample_out..][..sample_out];
                            for (c, dy_c) in dy_s.chunks_exact(voxels).enumerate() {
                                dy_group[c * width + s * voxels..][..voxels].copy_from_slice(dy_c);
                            }
                        }
                        // ∂Wᵀ[rows × C_out] += tile[rows × width] · dy_groupᵀ[width × C_out]
                        let patches = Operand::new(&tile[..rows * width], width, 1);
                        let dy_t = Operand::new(&dy_group[..c_out * width], 1, width);
                        gemm_into((rows, c_out, width), &mut dw_t, c_out, true, patches, dy_t);
                    }
                })
            });
            dw_t
        })
        .collect();
    summed_transposed(partials, rows, c_out)
}
