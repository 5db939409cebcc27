//! 3D convolution on f32 slices and its gradients: the kernel choice per geometry (the direct
//! kernel for stride 1, one dense product for 2³ volumes, weight gradients of other small
//! outputs over groups of samples), and im2col + GEMM for the rest,
//! where the weight gradient is one long-reduction GEMM per sample and the input gradient a
//! GEMM and a col2im.

use super::batched;
use super::channel_gradient;
use super::dense;
use super::direct::{self, Isa};
use super::grid;
use rayon::prelude::*;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU8, Ordering};

/// One convolution's geometry: cubic kernel, the same stride and (symmetric, zero) padding
/// on every axis, no dilation, one group; tensors are contiguous `[B, C, D, H, W]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub channels_in: usize,
    pub channels_out: usize,
    /// Input D, H, W.
    pub size: [usize; 3],
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

impl ConvGeometry {
    /// Output D, H, W.
    pub fn output_size(&self) -> [usize; 3] {
        self.size
            .map(|s| (s + 2 * self.padding - self.kernel) / self.stride + 1)
    }

    /// Why this geometry cannot be convolved, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        if self.kernel == 0 || self.stride == 0 {
            return Err(format!(
                "kernel {} and stride {} must be positive",
                self.kernel, self.stride
            ));
        }
        if self
            .size
            .iter()
            .any(|&s| s + 2 * self.padding < self.kernel)
        {
            return Err(format!(
                "input {:?} with padding {} is smaller than the kernel {}",
                self.size, self.padding, self.kernel
            ));
        }
        Ok(())
    }

    fn input_voxels(&self) -> usize {
        self.size.iter().product()
    }

    pub(super) fn output_voxels(&self) -> usize {
        self.output_size().iter().product()
    }

    /// Rows of the im2col matrix: one per input channel and kernel offset.
    pub(super) fn patch_rows(&self) -> usize {
        self.channels_in * self.kernel.pow(3)
    }

    /// Whether the padded-grid path ([`grid`]) runs this conv: stride 1 on lines of at
    /// least 8 voxels. On smaller volumes the grid's padding columns cost more GEMM work than
    /// the per-line im2col saves (at 4³ the grid is 6³: 2.25× the columns).
    pub(super) fn on_grid(&self) -> bool {
        self.stride == 1 && self.size[2] >= 8
    }

    /// The stride-1 convolution whose forward is this one's input gradient (a "full"
    /// correlation of dy with the flipped kernel): channels swapped, on the output's grid,
    /// padding k − 1 − p. `None` for strides > 1 and paddings ≥ k.
    fn input_gradient_geometry(&self) -> Option<ConvGeometry> {
        (self.stride == 1 && self.padding < self.kernel).then(|| ConvGeometry {
            channels_in: self.channels_out,
            channels_out: self.channels_in,
            size: self.output_size(),
            padding: self.kernel - 1 - self.padding,
            ..*self
        })
    }

    /// A 1×1×1 kernel at stride 1 without padding reads the input as its own im2col matrix.
    fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.channels_in * self.input_voxels()
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.channels_out * self.output_voxels()
    }

    pub fn weight_len(&self) -> usize {
        self.channels_out * self.patch_rows()
    }
}

/// Which kernels run the convolutions besides im2col + GEMM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GridKernel {
    /// The direct kernel ([`direct`]) in the best version this CPU has for stride-1
    /// convolutions on the padded grid (forward, and the input gradient as the transposed
    /// convolution's forward; the weight gradient where lines fill its vectors), 2³
    /// volumes as one dense product ([`dense`]), and the weight gradients of other small
    /// outputs over groups of samples ([`batched`]); the default.
    Direct,
    /// The same with the direct kernel in a given version (falls back to im2col + GEMM where
    /// the CPU lacks it).
    DirectIsa(Isa),
    /// im2col + the `gemm` crate everywhere (the kernels before the direct and dense ones).
    Gemm,
}

static GRID_KERNEL: AtomicU8 = AtomicU8::new(0);

/// Picks the convolution kernels for the whole process.
pub fn set_grid_kernel(kernel: GridKernel) {
    let code = match kernel {
        GridKernel::Direct => 0,
        GridKernel::DirectIsa(Isa::Avx512) => 1,
        GridKernel::DirectIsa(Isa::Avx2) => 2,
        GridKernel::DirectIsa(Isa::Portable) => 3,
        GridKernel::Gemm => 4,
    };
    GRID_KERNEL.store(code, Ordering::SeqCst);
}

/// The kernels a call runs: the direct one in a version (`None`: im2col + GEMM on the
/// grid), and whether tiny volumes run dense.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kernels {
    direct: Option<Isa>,
    dense: bool,
    /// Weight gradients of small outputs over groups of samples ([`batched`]).
    batched: bool,
}

impl Kernels {
    /// im2col + GEMM only.
    const GEMM: Kernels = Kernels {
        direct: None,
        dense: false,
        batched: false,
    };
}

/// The kernels [`set_grid_kernel`] picked.
fn kernels() -> Kernels {
    let wanted = match GRID_KERNEL.load(Ordering::SeqCst) {
        // Plain Rust is no match for the `gemm` crate's hand-written kernels.
        0 => Some(Isa::detected()).filter(|isa| *isa != Isa::Portable),
        1 => Some(Isa::Avx512),
        2 => Some(Isa::Avx2),
        3 => Some(Isa::Portable),
        _ => return Kernels::GEMM,
    };
    Kernels {
        direct: wanted.filter(|isa| isa.available()),
        dense: true,
        batched: true,
    }
}

/// A matrix operand: its values and its (row, column) strides.
#[derive(Clone, Copy)]
pub(super) struct Operand<'a> {
    values: &'a [f32],
    strides: (usize, usize),
}

impl<'a> Operand<'a> {
    pub(super) fn new(values: &'a [f32], row_stride: usize, column_stride: usize) -> Self {
        Operand {
            values,
            strides: (row_stride, column_stride),
        }
    }

    /// Whether an `rows × columns` matrix fits in `values`.
    fn holds(&self, rows: usize, columns: usize) -> bool {
        rows == 0
            || columns == 0
            || self.values.len() > (rows - 1) * self.strides.0 + (columns - 1) * self.strides.1
    }
}

/// `dst[m×n] = (accumulate ? dst : 0) + lhs[m×k] · rhs[k×n]`, `dst` row-major with row
/// stride `dst_row_stride`, on the calling thread (the callers parallelize over samples).
pub(super) fn gemm_into(
    shape: (usize, usize, usize),
    dst: &mut [f32],
    dst_row_stride: usize,
    accumulate: bool,
    lhs: Operand,
    rhs: Operand,
) {
    gemm_on(shape, dst, dst_row_stride, accumulate, (lhs, rhs), false);
}

/// [`gemm_into`] on every thread of rayon's pool (the `gemm` crate splits the work).
pub(super) fn gemm_parallel(
    shape: (usize, usize, usize),
    dst: &mut [f32],
    dst_row_stride: usize,
    lhs: Operand,
    rhs: Operand,
) {
    gemm_on(shape, dst, dst_row_stride, false, (lhs, rhs), true);
}

fn gemm_on(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_row_stride: usize,
    accumulate: bool,
    (lhs, rhs): (Operand, Operand),
    parallel: bool,
) {
    assert!(
        Operand::new(dst, dst_row_stride, 1).holds(m, n),
        "GEMM destination too small"
    );
    assert!(lhs.holds(m, k), "GEMM lhs too small");
    assert!(rhs.holds(k, n), "GEMM rhs too small");
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the asserts bound every index gemm reads or writes; dst is exclusive.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_row_stride as isize,
            accumulate,
            lhs.values.as_ptr(),
            lhs.strides.1 as isize,
            lhs.strides.0 as isize,
            rhs.values.as_ptr(),
            rhs.strides.1 as isize,
            rhs.strides.0 as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            if parallel {
                gemm::Parallelism::Rayon(0)
            } else {
                gemm::Parallelism::None
            },
        );
    }
}

/// The samples `0..batch` in `parts` contiguous runs of near-equal length.
pub(super) fn sample_runs(batch: usize, parts: usize) -> Vec<std::ops::Range<usize>> {
    let parts = parts.clamp(1, batch.max(1));
    (0..parts)
        .map(|i| batch * i / parts..batch * (i + 1) / parts)
        .filter(|r| !r.is_empty())
        .collect()
}

/// Floats per parallel chunk of [`zeros_parallel`].
const ZERO_CHUNK: usize = 1 << 16;

/// `vec![0.0; len]` zeroed by every thread: `vec!` zeroes on the calling thread (a block the
/// heap hands back is `memset`) while the kernels' workers wait for it.
pub(super) fn zeros_parallel(len: usize) -> Vec<f32> {
    let mut values = Vec::with_capacity(len);
    values.spare_capacity_mut()[..len]
        .par_chunks_mut(ZERO_CHUNK)
        .for_each(|chunk| {
            zero_filled(chunk);
        });
    // SAFETY: the chunks above cover the first `len` values, each written.
    unsafe { values.set_len(len) };
    values
}

/// `values` filled with zeros, as the initialized floats they now are.
fn zero_filled(values: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    values.fill(MaybeUninit::new(0.0));
    // SAFETY: every value was written just above.
    unsafe { assume_written(values) }
}

/// `values` as initialized floats.
///
/// # Safety
/// Every value of `values` has been written.
pub(super) unsafe fn assume_written(values: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: `MaybeUninit<f32>` has `f32`'s layout, and the caller vouches that every value
    // is initialized.
    unsafe { &mut *(values as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// `y = conv(x, weight)` without bias: `x: [B, C_in, D, H, W]`, `weight: [C_out, C_in, k, k, k]`
/// → `[B, C_out, OD, OH, OW]`; per sample, per tile of output lines, an im2col and a GEMM;
/// samples in parallel.
pub fn forward(g: &ConvGeometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    forward_by(g, x, weight, kernels(), None)
}

/// What the forward does to its output before it returns: a per-channel bias, then a leaky
/// ReLU of the given slope (1: none). Run on each sample right after its convolution, while
/// the sample's output is still in cache, instead of as two more passes over the batch.
#[derive(Debug, Clone, Copy)]
pub struct Epilogue<'a> {
    /// One value per output channel.
    pub bias: &'a [f32],
    /// Leaky ReLU slope for negative values; 1 leaves them as they are.
    pub slope: f32,
}

impl Epilogue<'_> {
    /// `y ← act(y + bias[c])` over one sample's output `[C_out, voxels]`; the same float
    /// operations, in the same order, as a bias add followed by burn's leaky ReLU.
    pub fn apply(&self, y_sample: &mut [f32]) {
        let voxels = y_sample.len() / self.bias.len().max(1);
        if voxels == 0 {
            return;
        }
        let slope = self.slope;
        for (channel, &bias) in y_sample.chunks_exact_mut(voxels).zip(self.bias) {
            if slope == 1.0 {
                channel.iter_mut().for_each(|v| *v += bias);
            } else {
                // A select of the factor and one multiply (z · 1 = z exactly), which
                // vectorizes.
                for v in channel {
                    let z = *v + bias;
                    *v = z * if z >= 0.0 { 1.0 } else { slope };
                }
            }
        }
    }
}

/// [`forward`] followed by `epilogue` on every sample: `act(conv(x, weight) + bias)`.
pub fn forward_fused(g: &ConvGeometry, x: &[f32], weight: &[f32], epilogue: Epilogue) -> Vec<f32> {
    assert_eq!(epilogue.bias.len(), g.channels_out, "bias length");
    forward_by(g, x, weight, kernels(), Some(epilogue))
}

/// [`forward`] on the given kernels, with an optional epilogue.
fn forward_by(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    kernels: Kernels,
    epilogue: Option<Epilogue>,
) -> Vec<f32> {
    assert_eq!(x.len(), g.input_len(), "input length");
    assert_eq!(weight.len(), g.weight_len(), "weight length");
    if kernels.dense && dense::pays(g) {
        let mut y = dense::forward(g, x, weight);
        if let Some(epilogue) = epilogue {
            let sample_out = g.channels_out * g.output_voxels();
            y.par_chunks_mut(sample_out.max(1))
                .for_each(|y_b| epilogue.apply(y_b));
        }
        return y;
    }
    let isa = kernels.direct;
    let (rows, n) = (g.patch_rows(), g.output_voxels());
    let sample_in = g.channels_in * g.input_voxels();
    let sample_out = g.channels_out * n;
    if sample_out == 0 {
        return vec![0.0; g.output_len()];
    }
    let len = g.output_len();
    let mut y: Vec<f32> = Vec::with_capacity(len);
    let direct = isa
        .filter(|_| g.stride == 1 && !g.is_pointwise())
        .map(|isa| {
            (
                isa,
                direct::pack_weights(g, weight),
                direct::Plan::forward(g, isa),
            )
        });
    let w = Operand::new(weight, rows, 1);

    // The direct kernel writes every value of a sample's output; the other kernels get it
    // zeroed by the sample's own thread just before they write it (in cache then), not by
    // the caller for the whole batch first.
    y.spare_capacity_mut()[..len]
        .par_chunks_mut(sample_out)
        .enumerate()
        .for_each_init(grid::Scratch::default, |scratch, (b, y_b)| {
            let x_b = &x[b * sample_in..(b + 1) * sample_in];
            let y_b = if let Some((isa, packed, plan)) = &direct {
                grid::forward_sample_direct((*isa, plan), g, x_b, packed, y_b, scratch);
                // SAFETY: the direct kernel wrote every value of `y_b`.
                unsafe { assume_written(y_b) }
            } else {
                let y_b = zero_filled(y_b);
                if g.is_pointwise() {
                    let patches = Operand::new(x_b, n, 1);
                    gemm_into((g.channels_out, n, rows), y_b, n, false, w, patches);
                } else if g.on_grid() {
                    grid::forward_sample(g, x_b, weight, y_b, scratch);
                } else {
                    grid::forward_sample_strided(g, x_b, weight, y_b, scratch);
                }
                y_b
            };
            if let Some(epilogue) = epilogue {
                epilogue.apply(y_b);
            }
        });
    // SAFETY: the chunks above cover the first `len` values (`len` is a whole number of
    // samples), each written.
    unsafe { y.set_len(len) };
    y
}

/// `W'[ci, co, t] = W[co, ci, k³ − 1 − t]`: the weight of the transposed convolution
/// (channels swapped, the kernel flipped along all three axes).
fn flipped_transposed(g: &ConvGeometry, weight: &[f32]) -> Vec<f32> {
    let taps = g.kernel.pow(3);
    let mut flipped = vec![0.0f32; weight.len()];
    for co in 0..g.channels_out {
        for ci in 0..g.channels_in {
            let src = &weight[(co * g.channels_in + ci) * taps..][..taps];
            let dst = &mut flipped[(ci * g.channels_out + co) * taps..][..taps];
            for (d, s) in dst.iter_mut().zip(src.iter().rev()) {
                *d = *s;
            }
        }
    }
    flipped
}

/// The gradients of `y = conv(x, weight)` given `dy = ∂L/∂y`: `∂L/∂x` when `input_grad`,
/// `∂L/∂weight` when `weight_grad` (each `None` when not asked for). The batch is split in
/// one run of samples per thread; each run accumulates its own weight gradient (per tile, one
/// GEMM reducing over the tile's output voxels), then the runs' partial sums are added in
/// order. The input gradient is, per tile, `Wᵀ · dy` and a col2im; on the grid, the
/// transposed convolution's forward.
pub fn backward(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    input_grad: bool,
    weight_grad: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    backward_by(g, x, weight, dy, (input_grad, weight_grad), kernels())
}

/// [`backward`] on the given kernels.
fn backward_by(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    (input_grad, weight_grad): (bool, bool),
    kernels: Kernels,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    assert_eq!(x.len(), g.input_len(), "input length");
    assert_eq!(weight.len(), g.weight_len(), "weight length");
    assert_eq!(dy.len(), g.output_len(), "output gradient length");
    if !input_grad && !weight_grad {
        return (None, None);
    }
    if kernels.dense && dense::pays(g) {
        return dense::backward(g, x, weight, dy, (input_grad, weight_grad));
    }
    if weight_grad && kernels.batched && batched::pays(g) {
        let dw = batched::weight_gradient(g, x, dy);
        let (dx, _) = backward_by(g, x, weight, dy, (input_grad, false), kernels);
        return (dx, Some(dw));
    }
    let isa = kernels.direct;
    // With the direct kernel, every stride-1 conv's input gradient is the transposed conv's
    // forward on it; without, those on the grid.
    let transposed_pays = g.on_grid() || (isa.is_some() && g.stride == 1);
    if input_grad && !g.is_pointwise() && transposed_pays {
        // On the grid, ∂x is the forward of the transposed conv on dy: one GEMM of depth
        // C_out·k³ per tile and an im2col copy, where `Wᵀ · dy` has depth C_out (8–16 here,
        // so the GEMM mostly loads and stores) and col2im adds every entry back.
        if let Some(t) = g.input_gradient_geometry() {
            let dx = forward_by(&t, dy, &flipped_transposed(g, weight), kernels, None);
            let (_, dw) = backward_by(g, x, weight, dy, (false, weight_grad), kernels);
            return (Some(dx), dw);
        }
    }
    let (rows, n) = (g.patch_rows(), g.output_voxels());
    let sample_in = g.channels_in * g.input_voxels();
    let sample_out = g.channels_out * n;
    let pointwise = g.is_pointwise();
    // Wᵀ: [rows × C_out].
    let w_t = Operand::new(weight, 1, rows);
    let mut dx = input_grad.then(|| zeros_parallel(g.input_len()));
    let runs = sample_runs(g.batch, rayon::current_num_threads());
    // Each run's slice of dx, so the runs write disjoint memory.
    let mut dx_runs: Vec<Option<&mut [f32]>> = Vec::with_capacity(runs.len());
    match dx.as_mut() {
        Some(dx) => {
            let mut rest: &mut [f32] = dx;
            for run in &runs {
                let (head, tail) = rest.split_at_mut(run.len() * sample_in);
                dx_runs.push(Some(head));
                rest = tail;
            }
        }
        None => dx_runs.extend(runs.iter().map(|_| None)),
    }
    let on_grid = !pointwise && g.on_grid();
    // The direct kernel's weight gradient, where it runs, planned once for every sample.
    let direct_dw = isa
        .filter(|&isa| weight_grad && on_grid && direct::weight_gradient_pays(g, isa))
        .map(|isa| (isa, direct::Plan::new(g, isa)));
    let buffer = if pointwise || on_grid || !input_grad {
        0
    } else {
        rows * n
    };
    // Off the grid, the weight gradient by lanes over output channels where it runs (AVX-512),
    // else by the whole sample's im2col and one GEMM.
    let channel_dw = isa == Some(Isa::Avx512) && channel_gradient::pays(g);
    let patches_len = if pointwise || on_grid || !weight_grad || channel_dw {
        0
    } else {
        rows * n
    };
    let partials: Vec<Option<Vec<f32>>> = runs
        .into_par_iter()
        .zip(dx_runs)
        .map(|(run, mut dx_run)| {
            // This run's ∂W, transposed: [rows × C_out]. GEMMs into it read the im2col tile
            // row-major and dy column-major, ~2× faster than `dy · tileᵀ` into [C_out × rows]
            // (gemm 0.19, f32, on this project's CPUs; with AVX-512 ~7×).
            let mut dw = weight_grad.then(|| vec![0.0f32; g.weight_len()]);
            let mut tile = vec![0.0f32; buffer];
            // The whole sample's im2col for the weight gradient off the grid.
            let mut patches = vec![0.0f32; patches_len];
            let mut scratch = grid::Scratch::default();
            for (i, b) in run.enumerate() {
                let x_b = &x[b * sample_in..(b + 1) * sample_in];
                let dy_b = &dy[b * sample_out..(b + 1) * sample_out];
                let dx_b = dx_run
                    .as_deref_mut()
                    .map(|dx_run| &mut dx_run[i * sample_in..(i + 1) * sample_in]);
                if pointwise {
                    if let Some(dw) = dw.as_mut() {
                        // dWᵀ[rows × C_out] += x_b[rows × n] · dy_bᵀ[n × C_out]
                        let (x_op, dy_t) = (Operand::new(x_b, n, 1), Operand::new(dy_b, 1, n));
                        gemm_into(
                            (rows, g.channels_out, n),
                            dw,
                            g.channels_out,
                            true,
                            x_op,
                            dy_t,
                        );
                    }
                    if let Some(dx_b) = dx_b {
                        let dy_op = Operand::new(dy_b, n, 1);
                        gemm_into((rows, n, g.channels_out), dx_b, n, false, w_t, dy_op);
                    }
                    continue;
                }
                if on_grid {
                    let mut dw = dw.as_deref_mut();
                    if let Some((isa, plan)) = &direct_dw
                        && let Some(dw) = dw.take()
                    {
                        let kernel = (*isa, plan);
                        grid::weight_gradient_sample_direct(kernel, g, x_b, dy_b, dw, &mut scratch);
                    }
                    if dw.is_some() || dx_b.is_some() {
                        grid::backward_sample(g, x_b, weight, dy_b, dw, dx_b, &mut scratch);
                    }
                    continue;
                }
                if let Some(dw) = dw.as_deref_mut() {
                    if channel_dw {
                        grid::weight_gradient_sample_channels(g, x_b, dy_b, dw, &mut scratch);
                    } else {
                        // dWᵀ[rows × C_out] += patches[rows × n] · dy_bᵀ[n × C_out]
                        let patches = &mut patches[..rows * n];
                        grid::im2col_sample(g, x_b, n, patches, &mut scratch);
                        let patches = Operand::new(patches, n, 1);
                        let dy_t = Operand::new(dy_b, 1, n);
                        gemm_into(
                            (rows, g.channels_out, n),
                            dw,
                            g.channels_out,
                            true,
                            patches,
                            dy_t,
                        );
                    }
                }
                if let Some(dx_b) = dx_b {
                    // tile[rows × n] = Wᵀ[rows × C_out] · dy_b[C_out × n], added back onto ∂x.
                    let dst = &mut tile[..rows * n];
                    let dy_op = Operand::new(dy_b, n, 1);
                    gemm_into((rows, n, g.channels_out), dst, n, false, w_t, dy_op);
                    grid::col2im_sample(g, dst, n, dx_b, &mut scratch);
                }
            }
            dw
        })
        .collect();
    let dw = weight_grad
        .then(|| summed_transposed(partials.into_iter().flatten(), rows, g.channels_out));
    (dx, dw)
}

/// The sum of weight gradients `[rows × C_out]`, added in order, as `[C_out × rows]`.
pub(super) fn summed_transposed(
    partials: impl IntoIterator<Item = Vec<f32>>,
    rows: usize,
    channels_out: usize,
) -> Vec<f32> {
    let mut total_t = vec![0.0f32; rows * channels_out];
    for partial in partials {
        for (t, p) in total_t.iter_mut().zip(partial) {
            *t += p;
        }
    }
    // [rows × C_out] → [C_out × rows]
    let mut total = vec![0.0f32; rows * channels_out];
    for (r, row) in total_t.chunks_exact(channels_out).enumerate() {
        for (o, v) in row.iter().enumerate() {
            total[o * rows + r] = *v;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution by its definition, in f64.
    fn direct(g: &ConvGeometry, x: &[f32], weight: &[f32]) -> Vec<f64> {
        let [d, h, w] = g.size;
        let [od, oh, ow] = g.output_size();
        let k = g.kernel;
        let mut y = vec![0.0f64; g.output_len()];
        for b in 0..g.batch {
            for o in 0..g.channels_out {
                for (zd, zh, zw) in
                    (0..od).flat_map(|a| (0..oh).flat_map(move |b| (0..ow).map(move |c| (a, b, c))))
                {
                    let mut acc = 0.0f64;
                    for c in 0..g.channels_in {
                        for kd in 0..k {
                            for kh in 0..k {
                                for kw in 0..k {
                                    let id = (zd * g.stride + kd) as isize - g.padding as isize;
                                    let ih = (zh * g.stride + kh) as isize - g.padding as isize;
                                    let iw = (zw * g.stride + kw) as isize - g.padding as isize;
                                    if id < 0
                                        || ih < 0
                                        || iw < 0
                                        || id >= d as isize
                                        || ih >= h as isize
                                        || iw >= w as isize
                                    {
                                        continue;
                                    }
                                    let xi = (((b * g.channels_in + c) * d + id as usize) * h
                                        + ih as usize)
                                        * w
                                        + iw as usize;
                                    let wi = (((o * g.channels_in + c) * k + kd) * k + kh) * k + kw;
                                    acc += x[xi] as f64 * weight[wi] as f64;
                                }
                            }
                        }
                    }
                    y[(((b * g.channels_out + o) * od + zd) * oh + zh) * ow + zw] = acc;
                }
            }
        }
        y
    }

    fn values(count: usize, seed: u64) -> Vec<f32> {
        let mut rng = crate::rng::SeedRng::new(seed);
        (0..count).map(|_| rng.normal() as f32).collect()
    }

    fn geometries() -> Vec<ConvGeometry> {
        let g = |batch, channels_in, channels_out, size, kernel, stride, padding| ConvGeometry {
            batch,
            channels_in,
            channels_out,
            size,
            kernel,
            stride,
            padding,
        };
        vec![
            g(3, 2, 4, [5, 6, 7], 3, 1, 1),
            g(2, 3, 5, [6, 6, 6], 3, 2, 1),
            g(2, 3, 2, [5, 4, 7], 3, 2, 1),
            g(2, 4, 3, [4, 5, 3], 1, 1, 0),
            g(1, 2, 2, [4, 4, 4], 3, 1, 0),
            g(2, 1, 2, [3, 3, 3], 5, 1, 2),
            g(5, 2, 3, [2, 2, 2], 3, 2, 1),
            // Lines of ≥ 8 voxels: the padded-grid path.
            g(2, 2, 3, [4, 5, 9], 3, 1, 1),
            g(1, 2, 2, [3, 4, 8], 3, 1, 0),
            g(2, 1, 2, [5, 5, 8], 5, 1, 2),
            // 2³ and smaller: one dense product over the batch.
            g(3, 4, 5, [2, 2, 2], 3, 1, 1),
            g(2, 3, 2, [1, 2, 2], 3, 1, 1),
            // Padding ≥ kernel: the grid's own col2im input gradient.
            g(2, 2, 3, [3, 3, 8], 1, 1, 1),
            g(1, 2, 2, [2, 3, 8], 3, 1, 3),
            // Lines of 4 filling AVX-512 vectors, whole vectors per plane: the direct
            // forward reads shifted copies (also without padding, and with kernel 5).
            g(2, 2, 3, [3, 8, 4], 3, 1, 1),
            g(1, 2, 2, [4, 6, 6], 3, 1, 0),
            g(1, 2, 2, [8, 8, 4], 5, 1, 2),
            g(2, 3, 2, [5, 8, 4], 3, 1, 1),
        ]
    }

    #[test]
    fn both_paths_are_covered() {
        let on_grid = geometries().iter().filter(|g| g.on_grid()).count();
        let pointwise = geometries().iter().filter(|g| g.is_pointwise()).count();
        assert!(on_grid >= 3, "{on_grid} geometries on the grid");
        let dense = geometries().iter().filter(|g| dense::pays(g)).count();
        assert!(dense >= 2, "{dense} geometries dense");
        let batched = geometries()
            .iter()
            .filter(|g| batched::pays(g) && !dense::pays(g))
            .count();
        assert!(
            batched >= 3,
            "{batched} weight gradients over groups of samples"
        );
        let transposed = geometries()
            .iter()
            .filter(|g| g.on_grid() && g.input_gradient_geometry().is_some())
            .count();
        assert!(
            transposed >= 2,
            "{transposed} input gradients as transposed convs"
        );
        assert!(
            on_grid - transposed >= 2,
            "too few col2im input gradients on the grid"
        );
        assert!(
            geometries().len() - on_grid - pointwise >= 3,
            "too few on the line path"
        );
        let shifted = geometries()
            .iter()
            .filter(|g| !dense::pays(g) && direct::shifts_pay(g, Isa::Avx512))
            .count();
        assert!(shifted >= 4, "{shifted} direct forwards on shifted copies");
    }

    #[test]
    fn forward_matches_the_definition() {
        for (i, g) in geometries().into_iter().enumerate() {
            g.check().unwrap();
            let x = values(g.input_len(), 1 + i as u64);
            let w = values(g.weight_len(), 100 + i as u64);
            let want = direct(&g, &x, &w);
            for kernel in grid_kernels() {
                let y = forward_by(&g, &x, &w, kernel, None);
                for (a, b) in y.iter().zip(&want) {
                    assert!(
                        (*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()),
                        "{g:?} {kernel:?}: {a} vs {b}"
                    );
                }
            }
        }
    }

    /// Every choice of kernels this CPU runs: im2col + GEMM alone, and with tiny volumes
    /// dense and each version of the direct kernel.
    fn grid_kernels() -> Vec<Kernels> {
        let mut kernels = vec![Kernels::GEMM];
        for isa in [Isa::Avx512, Isa::Avx2, Isa::Portable] {
            if isa.available() {
                kernels.push(Kernels {
                    direct: Some(isa),
                    dense: true,
                    batched: true,
                });
            }
        }
        kernels
    }

    /// The direct kernel's edges: output channels in several register blocks, the last one
    /// partly empty; lines longer than one vector with a partial last one; vector counts
    /// that are not multiples of its three-vector blocks; lines of 8 paired in one AVX-512
    /// vector, one left alone; lines of 3–4 four to a vector; the networks' own 16³ and 8³
    /// shapes.
    #[test]
    fn direct_kernel_matches_the_definition_at_its_edges() {
        let g = |channels_in, channels_out, size| ConvGeometry {
            batch: 2,
            channels_in,
            channels_out,
            size,
            kernel: 3,
            stride: 1,
            padding: 1,
        };
        let geometries = [
            g(5, 11, [4, 3, 19]),
            g(3, 17, [3, 4, 16]),
            g(2, 8, [2, 2, 25]),
            g(3, 8, [16, 16, 16]),
            g(16, 16, [8, 8, 8]),
            // Lines of 8, two to an AVX-512 vector, an odd number of them.
            g(3, 5, [3, 3, 8]),
            // Lines of ≤ 4, four to an AVX-512 vector, the last vector part empty.
            g(6, 9, [4, 4, 4]),
            g(2, 3, [3, 3, 3]),
        ];
        for (i, g) in geometries.into_iter().enumerate() {
            assert!(!dense::pays(&g), "{g:?}");
            let x = values(g.input_len(), 500 + i as u64);
            let w = values(g.weight_len(), 600 + i as u64);
            let want = direct(&g, &x, &w);
            // The gradients by the adjoint identities in random directions u and V:
            // ⟨dy, conv(u, W)⟩ = ⟨∂x, u⟩ and ⟨dy, conv(x, V)⟩ = ⟨∂W, V⟩.
            let dy = values(g.output_len(), 700 + i as u64);
            let (u, v) = (
                values(g.input_len(), 800 + i as u64),
                values(g.weight_len(), 900 + i as u64),
            );
            let dot64 = |a: &[f64]| a.iter().zip(&dy).map(|(a, b)| a * *b as f64).sum::<f64>();
            let dot32 = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum::<f64>()
            };
            let (want_u, want_v) = (dot64(&direct(&g, &u, &w)), dot64(&direct(&g, &x, &v)));
            for kernel in grid_kernels() {
                let y = forward_by(&g, &x, &w, kernel, None);
                for (j, (a, b)) in y.iter().zip(&want).enumerate() {
                    assert!(
                        (*a as f64 - b).abs() < 1e-4 * (1.0 + b.abs()),
                        "{g:?} {kernel:?} y[{j}]: {a} vs {b}"
                    );
                }
                let (dx, dw) = backward_by(&g, &x, &w, &dy, (true, true), kernel);
                let (got_u, got_v) = (dot32(&dx.unwrap(), &u), dot32(&dw.unwrap(), &v));
                assert!(
                    (got_u - want_u).abs() < 1e-4 * (1.0 + want_u.abs()),
                    "{g:?} {kernel:?} dx: {got_u} vs {want_u}"
                );
                assert!(
                    (got_v - want_v).abs() < 1e-4 * (1.0 + want_v.abs()),
                    "{g:?} {kernel:?} dw: {got_v} vs {want_v}"
                );
            }
        }
    }

    /// The gradients are the adjoints of the forward map: for every direction u of the
    /// input, ⟨dy, conv(u, W)⟩ = ⟨dx, u⟩, and likewise for the weight. Checked against the
    /// definition with unit directions, i.e. entry by entry.
    #[test]
    fn gradients_are_the_adjoints_of_the_definition() {
        for (i, g) in geometries().into_iter().enumerate() {
            let x = values(g.input_len(), 11 + i as u64);
            let w = values(g.weight_len(), 111 + i as u64);
            let dy = values(g.output_len(), 211 + i as u64);
            let dot = |a: &[f64]| a.iter().zip(&dy).map(|(a, b)| a * *b as f64).sum::<f64>();
            let want_dx: Vec<f64> = (0..x.len())
                .map(|j| {
                    let mut unit = vec![0.0f32; x.len()];
                    unit[j] = 1.0;
                    dot(&direct(&g, &unit, &w))
                })
                .collect();
            let want_dw: Vec<f64> = (0..w.len())
                .map(|j| {
                    let mut unit = vec![0.0f32; w.len()];
                    unit[j] = 1.0;
                    dot(&direct(&g, &x, &unit))
                })
                .collect();
            for kernel in grid_kernels() {
                let (dx, dw) = backward_by(&g, &x, &w, &dy, (true, true), kernel);
                let (dx, dw) = (dx.unwrap(), dw.unwrap());
                for (j, (got, want)) in dx.iter().zip(&want_dx).enumerate() {
                    assert!(
                        (*got as f64 - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "{g:?} {kernel:?} dx[{j}]"
                    );
                }
                for (j, (got, want)) in dw.iter().zip(&want_dw).enumerate() {
                    assert!(
                        (*got as f64 - want).abs() < 1e-3 * (1.0 + want.abs()),
                        "{g:?} {kernel:?} dw[{j}]"
                    );
                }
                // Asking for one gradient gives the same numbers as asking for both.
                let (only_dx, none) = backward_by(&g, &x, &w, &dy, (true, false), kernel);
                assert_eq!(only_dx.unwrap(), dx);
                assert!(none.is_none());
                let (none, only_dw) = backward_by(&g, &x, &w, &dy, (false, true), kernel);
                assert!(none.is_none());
                assert_eq!(only_dw.unwrap(), dw);
            }
        }
    }

    /// The direct weight gradient where [`backward`] leaves it to the GEMM (lines of 8 or 4,
    /// two or four to an AVX-512 vector) still agrees with it, in every version this CPU runs.
    /// The weight gradient with lanes over output channels (AVX-512): one block of 16
    /// channels, a partial second and third block, paddings 0–2 (2: an input gradient's
    /// geometry), lines of 8–10 on the grid, and stride 2 off it; against im2col + GEMM and
    /// the definition.
    #[test]
    fn the_channel_vector_weight_gradient_matches_the_gemm() {
        if !Isa::Avx512.available() {
            eprintln!("no AVX-512 here: the channel-vector weight gradient is not run");
            return;
        }
        let g = |batch, channels_in, channels_out, size, stride, padding| ConvGeometry {
            batch,
            channels_in,
            channels_out,
            size,
            kernel: 3,
            stride,
            padding,
        };
        let avx512 = Kernels {
            direct: Some(Isa::Avx512),
            dense: true,
            batched: true,
        };
        for (i, g) in [
            g(2, 3, 16, [3, 4, 8], 1, 1),
            g(2, 2, 17, [8, 8, 8], 1, 1),
            g(1, 2, 33, [6, 5, 10], 1, 0),
            g(1, 1, 16, [3, 3, 10], 1, 2),
            g(2, 3, 16, [7, 8, 9], 2, 1),
            g(1, 2, 17, [9, 10, 16], 2, 0),
        ]
        .into_iter()
        .enumerate()
        {
            assert!(super::super::channel_gradient::pays(&g), "{g:?}");
            assert!(!batched::pays(&g) && !dense::pays(&g), "{g:?}");
            let x = values(g.input_len(), 1700 + i as u64);
            let w = values(g.weight_len(), 1800 + i as u64);
            let dy = values(g.output_len(), 1900 + i as u64);
            let (_, want) = backward_by(&g, &x, &w, &dy, (false, true), Kernels::GEMM);
            let (_, got) = backward_by(&g, &x, &w, &dy, (false, true), avx512);
            let (want, got) = (want.unwrap(), got.unwrap());
            for (j, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                    "{g:?} dw[{j}]: {a} vs {b}"
                );
            }
            let v = values(g.weight_len(), 2000 + i as u64);
            let want_v: f64 = direct(&g, &x, &v)
                .iter()
                .zip(&dy)
                .map(|(a, b)| a * *b as f64)
                .sum();
            let got_v: f64 = got.iter().zip(&v).map(|(a, b)| *a as f64 * *b as f64).sum();
            assert!(
                (got_v - want_v).abs() < 1e-4 * (1.0 + want_v.abs()),
                "{g:?}: {got_v} vs {want_v}"
            );
        }
    }

    /// The weight gradient over groups of samples: runs of several groups with a partial
    /// last one (batch 11 at 4³: groups of 4 on 2 threads, 4 + 1 and 4 + 2), stride 2, and
    /// a pool of 1 and of 3 threads; against the per-sample GEMM and the definition.
    #[test]
    fn the_grouped_weight_gradient_matches_the_per_sample_one() {
        let g = |batch, size, stride| ConvGeometry {
            batch,
            channels_in: 3,
            channels_out: 5,
            size,
            kernel: 3,
            stride,
            padding: 1,
        };
        for (i, g) in [g(11, [4, 4, 4], 1), g(7, [8, 8, 7], 2), g(3, [3, 4, 2], 1)]
            .into_iter()
            .enumerate()
        {
            assert!(batched::pays(&g) && !dense::pays(&g), "{g:?}");
            let x = values(g.input_len(), 1300 + i as u64);
            let w = values(g.weight_len(), 1400 + i as u64);
            let dy = values(g.output_len(), 1500 + i as u64);
            let (_, want) = backward_by(&g, &x, &w, &dy, (false, true), Kernels::GEMM);
            let want = want.unwrap();
            // ⟨dy, conv(x, V)⟩ = ⟨∂W, V⟩ for a random V, by the definition in f64.
            let v = values(g.weight_len(), 1600 + i as u64);
            let want_v: f64 = direct(&g, &x, &v)
                .iter()
                .zip(&dy)
                .map(|(a, b)| a * *b as f64)
                .sum();
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let got = pool.install(|| batched::weight_gradient(&g, &x, &dy));
                for (j, (a, b)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() < 1e-4 * (1.0 + b.abs()),
                        "{g:?} {threads} threads dw[{j}]: {a} vs {b}"
                    );
                }
                let got_v: f64 = got.iter().zip(&v).map(|(a, b)| *a as f64 * *b as f64).sum();
                assert!(
                    (got_v - want_v).abs() < 1e-4 * (1.0 + want_v.abs()),
                    "{g:?} {threads} threads: {got_v} vs {want_v}"
                );
            }
        }
    }

    #[test]
    fn the_direct_weight_gradient_agrees_on_short_lines() {
        for size in [[3, 5, 8], [3, 3, 4]] {
            short_lines_weight_gradient(size);
        }
    }

    fn short_lines_weight_gradient(size: [usize; 3]) {
        let g = ConvGeometry {
            batch: 1,
            channels_in: 3,
            channels_out: 6,
            size,
            kernel: 3,
            stride: 1,
            padding: 1,
        };
        let (x, w, dy) = (
            values(g.input_len(), 41),
            values(g.weight_len(), 42),
            values(g.output_len(), 43),
        );
        let (_, want) = backward_by(&g, &x, &w, &dy, (false, true), Kernels::GEMM);
        let want = want.unwrap();
        let rows = g.weight_len() / g.channels_out;
        for isa in [Isa::Avx512, Isa::Avx2, Isa::Portable] {
            if !isa.available() {
                continue;
            }
            let mut dw_t = vec![0.0f32; g.weight_len()];
            let mut scratch = grid::Scratch::default();
            let plan = direct::Plan::new(&g, isa);
            let kernel = (isa, &plan);
            grid::weight_gradient_sample_direct(kernel, &g, &x, &dy, &mut dw_t, &mut scratch);
            for o in 0..g.channels_out {
                for r in 0..rows {
                    let (got, want) = (dw_t[r * g.channels_out + o], want[o * rows + r]);
                    assert!(
                        (got - want).abs() < 1e-4 * (1.0 + want.abs()),
                        "{isa:?} dw[{o}, {r}]: {got} vs {want}"
                    );
                }
            }
        }
    }

    /// Geometries with many input channels and wide lines, on the grid and off it (stride 2):
    /// forward against the definition, the gradients by the adjoint identities in random
    /// directions, ⟨dy, conv(u, W)⟩ = ⟨∂x, u⟩ and ⟨dy, conv(x, V)⟩ = ⟨∂W, V⟩.
    #[test]
    fn wide_geometries_agree_with_the_definition() {
        let geometries = [
            ConvGeometry {
                batch: 3,
                channels_in: 64,
                channels_out: 3,
                size: [4, 5, 16],
                kernel: 3,
                stride: 1,
                padding: 1,
            },
            ConvGeometry {
                batch: 2,
                channels_in: 48,
                channels_out: 2,
                size: [6, 7, 20],
                kernel: 3,
                stride: 2,
                padding: 1,
            },
        ];
        for (i, g) in geometries.into_iter().enumerate() {
            let seed = 300 + 10 * i as u64;
            let x = values(g.input_len(), seed);
            let w = values(g.weight_len(), seed + 1);
            let y = forward(&g, &x, &w);
            for (a, b) in y.iter().zip(&direct(&g, &x, &w)) {
                assert!(
                    (*a as f64 - b).abs() < 1e-3 * (1.0 + b.abs()),
                    "{g:?}: {a} vs {b}"
                );
            }
            let dy = values(g.output_len(), seed + 2);
            let (dx, dw) = backward(&g, &x, &w, &dy, true, true);
            let dot32 = |a: &[f32], b: &[f32]| {
                a.iter()
                    .zip(b)
                    .map(|(a, b)| *a as f64 * *b as f64)
                    .sum::<f64>()
            };
            let dot64 = |a: &[f64]| a.iter().zip(&dy).map(|(a, b)| a * *b as f64).sum::<f64>();
            let u = values(g.input_len(), seed + 3);
            let (lhs, rhs) = (dot64(&direct(&g, &u, &w)), dot32(&dx.unwrap(), &u));
            assert!(
                (lhs - rhs).abs() < 1e-3 * (1.0 + lhs.abs()),
                "{g:?} dx: {lhs} vs {rhs}"
            );
            let v = values(g.weight_len(), seed + 4);
            let (lhs, rhs) = (dot64(&direct(&g, &x, &v)), dot32(&dw.unwrap(), &v));
            assert!(
                (lhs - rhs).abs() < 1e-3 * (1.0 + lhs.abs()),
                "{g:?} dw: {lhs} vs {rhs}"
            );
        }
    }

    #[test]
    fn bad_geometries_are_named() {
        let g = ConvGeometry {
            batch: 1,
            channels_in: 1,
            channels_out: 1,
            size: [2, 2, 2],
            kernel: 5,
            stride: 1,
            padding: 1,
        };
        assert!(g.check().unwrap_err().contains("smaller than the kernel"));
        let g = ConvGeometry { stride: 0, ..g };
        assert!(g.check().unwrap_err().contains("must be positive"));
    }

    #[test]
    fn samples_split_into_contiguous_runs() {
        assert_eq!(sample_runs(5, 2), vec![0..2, 2..5]);
        assert_eq!(sample_runs(1, 4), vec![0..1]);
        assert_eq!(sample_runs(0, 2), Vec::<std::ops::Range<usize>>::new());
        assert_eq!(sample_runs(64, 2), vec![0..32, 32..64]);
    }
}
