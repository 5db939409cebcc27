//! Convolutions on tiny volumes (2³) as one dense matrix product over the whole batch: every
//! output voxel reads (nearly) every input voxel, so the convolution is the linear map
//! `y[b, (co, o)] = Σ x[b, (ci, i)] · M[(ci, i), (co, o)]` with `M` built from the kernel,
//! and forward, input gradient and weight gradient are each one GEMM on the tensors as they
//! lie. im2col per sample would instead run GEMMs 8 columns wide whose rows are mostly the
//! padding's zeros (19 of 27 taps at 2³).

use super::kernels::{ConvGeometry, Operand, gemm_parallel};
use rayon::prelude::*;
use std::cell::RefCell;
use std::thread::LocalKey;

/// The valid (input voxel, output voxel, tap) triples of `g`: tap = input − (output·stride −
/// padding) on each axis, inside the kernel and the input.
fn pairs(g: &ConvGeometry) -> Vec<(usize, usize, usize)> {
    let [d, h, w] = g.size;
    let [od, oh, ow] = g.output_size();
    let (k, s, p) = (g.kernel, g.stride as isize, g.padding as isize);
    let mut pairs = Vec::new();
    for o in 0..od * oh * ow {
        let out = [o / (oh * ow), o / ow % oh, o % ow];
        for t in 0..k * k * k {
            let tap = [t / (k * k), t / k % k, t % k];
            let coords: [isize; 3] =
                std::array::from_fn(|a| out[a] as isize * s - p + tap[a] as isize);
            if coords
                .iter()
                .zip([d, h, w])
                .all(|(&c, n)| (0..n as isize).contains(&c))
            {
                let i = (coords[0] as usize * h + coords[1] as usize) * w + coords[2] as usize;
                pairs.push((i, o, t));
            }
        }
    }
    pairs
}

/// Whether `g` runs dense: when at least half of the matrix `M` is nonzero (2³ at stride 1
/// and padding 1: all of it; 4³: 24%, left to im2col), and `M` stays small.
pub(super) fn pays(g: &ConvGeometry) -> bool {
    let (vi, vo) = (
        g.size.iter().product::<usize>(),
        g.output_size().iter().product::<usize>(),
    );
    let entries = g.channels_in * vi * g.channels_out * vo;
    g.batch > 0 && vi * vo > 0 && entries <= 16 << 20 && 2 * pairs(g).len() >= vi * vo
}

/// `M[(ci, i), (co, o)] = weight[co, ci, tap(i, o)]`, zero where no tap joins them;
/// `[C_in·V_in, C_out·V_out]` row-major, or its transpose where `transposed` (the GEMM
/// reads a row-major operand several times faster than a column-major one). Rows are
/// written one at a time, in parallel, each from the pairs of its own voxel.
fn matrix<'a>(
    g: &ConvGeometry,
    weight: &[f32],
    pairs: &[(usize, usize, usize)],
    transposed: bool,
    buffer: &'a mut Vec<f32>,
) -> &'a [f32] {
    let (vi, vo) = (
        g.size.iter().product::<usize>(),
        g.output_size().iter().product::<usize>(),
    );
    let (taps, ci_count, co_count) = (g.kernel.pow(3), g.channels_in, g.channels_out);
    let (rows, columns) = (ci_count * vi, co_count * vo);
    let m = zeroed(buffer, rows * columns);
    if transposed {
        // Row (co, o) holds weight[co, ci, t] at (ci, i) for each pair (i, o, t).
        let mut by_output = vec![Vec::new(); vo];
        for &(i, o, t) in pairs {
            by_output[o].push((i, t));
        }
        m.par_chunks_mut(rows).enumerate().for_each(|(r, row)| {
            let (co, o) = (r / vo, r % vo);
            for &(i, t) in &by_output[o] {
                for ci in 0..ci_count {
                    row[ci * vi + i] = weight[(co * ci_count + ci) * taps + t];
                }
            }
        });
    } else {
        // Row (ci, i) holds weight[co, ci, t] at (co, o) for each pair (i, o, t), read from
        // the weight regrouped as [ci][t][co].
        let mut by_input = vec![Vec::new(); vi];
        for &(i, o, t) in pairs {
            by_input[i].push((o, t));
        }
        let regrouped = transpose(weight, co_count, ci_count * taps);
        m.par_chunks_mut(columns).enumerate().for_each(|(r, row)| {
            let (ci, i) = (r / vi, r % vi);
            for &(o, t) in &by_input[i] {
                let w = &regrouped[(ci * taps + t) * co_count..][..co_count];
                for (co, w) in w.iter().enumerate() {
                    row[co * vo + o] = *w;
                }
            }
        });
    }
    m
}

/// `src: [rows, columns]` transposed, in 16 × 16 tiles (a strided walk through megabytes
/// of weights cost more than the GEMM at 128 channels).
fn transpose(src: &[f32], rows: usize, columns: usize) -> Vec<f32> {
    const TILE: usize = 16;
    let mut dst = vec![0.0f32; rows * columns];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..columns).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(columns) {
                    dst[c * rows + r] = src[r * columns + c];
                }
            }
        }
    }
    dst
}

thread_local! {
    /// The matrix and its gradient, kept between calls: at 2³ × 128 channels each is 4 MiB,
    /// whose fresh pages cost more to fault in than the GEMM takes.
    static MATRIX: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static GRADIENT: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `f` on this thread's buffer in `slot`, or on a new one where it is in use (a call nested
/// in another's wait for rayon's workers). Also the grouped weight gradient's ([`super::batched`]).
pub(super) fn with_buffer<R>(
    slot: &'static LocalKey<RefCell<Vec<f32>>>,
    f: impl FnOnce(&mut Vec<f32>) -> R,
) -> R {
    slot.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => f(&mut buffer),
        Err(_) => f(&mut Vec::new()),
    })
}

/// `buffer`'s first `len` entries, zeroed (grown first if needed).
fn zeroed(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    let m = &mut buffer[..len];
    m.par_chunks_mut(1 << 16).for_each(|c| c.fill(0.0));
    m
}

/// `y = conv(x, weight)`: `[B, C_in·V_in] · M`.
pub(super) fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let pairs = pairs(g);
    let (k, n) = (g.input_len() / g.batch, g.output_len() / g.batch);
    let mut y = super::kernels::zeros_parallel(g.output_len());
    with_buffer(&MATRIX, |buffer| {
        let m = matrix(g, weight, &pairs, false, buffer);
        let lhs = Operand::new(x, k, 1);
        gemm_parallel((g.batch, n, k), &mut y, n, lhs, Operand::new(m, n, 1));
    });
    y
}

/// The gradients of [`forward`]: `∂x = dy · Mᵀ` and `∂M = xᵀ · dy`, whose entries summed
/// per (co, ci, tap) are `∂weight`.
pub(super) fn backward(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    (input_grad, weight_grad): (bool, bool),
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let pairs = pairs(g);
    let (k, n) = (g.input_len() / g.batch, g.output_len() / g.batch);
    let dx = input_grad.then(|| {
        let mut dx = super::kernels::zeros_parallel(g.input_len());
        with_buffer(&MATRIX, |buffer| {
            let m_t = matrix(g, weight, &pairs, true, buffer);
            let lhs = Operand::new(dy, n, 1);
            gemm_parallel((g.batch, k, n), &mut dx, k, lhs, Operand::new(m_t, k, 1));
        });
        dx
    });
    let dw = weight_grad.then(|| {
        // ∂M = xᵀ · dy, summed per (ci, t, co) (in the order its rows are read).
        let mut by_input = vec![0.0f32; g.weight_len()];
        with_buffer(&GRADIENT, |buffer| {
            let dm = zeroed(buffer, k * n);
            let (lhs, rhs) = (Operand::new(x, 1, k), Operand::new(dy, n, 1));
            gemm_parallel((k, n, g.batch), dm, n, lhs, rhs);
            let (vi, vo, taps) = (k / g.channels_in, n / g.channels_out, g.kernel.pow(3));
            for ci in 0..g.channels_in {
                for &(i, o, t) in &pairs {
                    let row = &dm[(ci * vi + i) * n..][..n];
                    let sums = &mut by_input[(ci * taps + t) * g.channels_out..][..g.channels_out];
                    for (co, sum) in sums.iter_mut().enumerate() {
                        *sum += row[co * vo + o];
                    }
                }
            }
        });
        transpose(&by_input, g.channels_in * g.kernel.pow(3), g.channels_out)
    });
    (dx, dw)
}
