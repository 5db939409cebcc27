//! Stride-1 convolutions on the zero-padded grid: with the input padded once, each im2col row
//! of a run of output positions is one contiguous slice of the padded input (shifted by the
//! kernel offset), so im2col and col2im are long copies and adds instead of one short,
//! bounds-checked segment per output line. The GEMMs also cover the padding's positions
//! (~27% more columns at 16³), whose results are dropped.

use super::channel_gradient;
use super::direct::{self, Isa};
use super::kernels::{ConvGeometry, Operand, gemm_into};

/// The padded input `[C_in, D+2p, H+2p, W+2p]` and the output positions on it: output
/// (d, h, w) sits at `j = d·Hp·Wp + h·Wp + w`, and reads input `j + offset(kd, kh, kw)`.
struct Grid {
    /// Padded D, H, W.
    padded: [usize; 3],
    output: [usize; 3],
    /// Grid positions from the first output to the last, inclusive.
    positions: usize,
}

impl Grid {
    fn new(g: &ConvGeometry) -> Self {
        let padded = g.size.map(|s| s + 2 * g.padding);
        let output = g.output_size();
        let [_, hp, wp] = padded;
        let positions = if output.contains(&0) {
            0
        } else {
            (output[0] - 1) * hp * wp + (output[1] - 1) * wp + output[2]
        };
        Grid {
            padded,
            output,
            positions,
        }
    }

    fn volume(&self) -> usize {
        self.padded.iter().product()
    }

    /// The grid shift of im2col row `row` = (channel, kd, kh, kw).
    fn row_offset(&self, kernel: usize, row: usize) -> usize {
        let [_, hp, wp] = self.padded;
        let (c, k3) = (row / kernel.pow(3), row % kernel.pow(3));
        let (kd, kh, kw) = (k3 / (kernel * kernel), k3 / kernel % kernel, k3 % kernel);
        c * self.volume() + kd * hp * wp + kh * wp + kw
    }

    /// Calls `visit(grid_position, output_index, count)` for each run of `count` outputs
    /// that lie at consecutive grid positions, within grid positions `range`.
    fn for_each_output_run(
        &self,
        range: std::ops::Range<usize>,
        mut visit: impl FnMut(usize, usize, usize),
    ) {
        let [_, hp, wp] = self.padded;
        let [_, oh, ow] = self.output;
        let slab = hp * wp;
        let mut j = range.start;
        while j < range.end {
            let (d, rest) = (j / slab, j % slab);
            let (h, w) = (rest / wp, rest % wp);
            if h >= oh {
                j = (d + 1) * slab; // the rest of this slab is padding
                continue;
            }
            if w >= ow {
                j = d * slab + (h + 1) * wp;
                continue;
            }
            let count = (ow - w).min(range.end - j);
            visit(j, (d * oh + h) * ow + w, count);
            j += count;
        }
    }
}

/// Grid positions per tile: the im2col tile `[C_in·k³, width]` stays near 512 KiB (measured
/// against 128 KiB–1 MiB on this CPU: within noise, 512 KiB slightly ahead).
fn tile_width(g: &ConvGeometry) -> usize {
    // A multiple of 16 (one AVX-512 register of f32): gemm then reads the tile in place
    // instead of packing a copy of it first (gemm-common's `do_pack_lhs`).
    (128 * 1024 / g.channels_in.max(1) / g.kernel.pow(3)).max(64) / 16 * 16
}

/// Scratch buffers of one thread, grown on first use.
#[derive(Default)]
pub struct Scratch {
    padded: Vec<f32>,
    padded_grad: Vec<f32>,
    tile: Vec<f32>,
    out_tile: Vec<f32>,
}

/// `buffer`'s first `len` values, the buffer grown to hold them if needed (contents kept).
pub(super) fn sized(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

/// Calls `visit(dense, padded, W)` for every input line: its start in the dense sample
/// `[C_in, D, H, W]` and in the padded grid.
fn for_each_interior_line(
    g: &ConvGeometry,
    grid: &Grid,
    mut visit: impl FnMut(usize, usize, usize),
) {
    let [d, h, w] = g.size;
    let [_, hp, wp] = grid.padded;
    let p = g.padding;
    for c in 0..g.channels_in {
        for z in 0..d {
            for y in 0..h {
                let dense = ((c * d + z) * h + y) * w;
                visit(
                    dense,
                    c * grid.volume() + ((z + p) * hp + y + p) * wp + p,
                    w,
                );
            }
        }
    }
}

/// Copies one sample `x: [C_in, D, H, W]` into the padded grid, zeroing its border: every
/// value written once (a fill of the whole grid first, then the copies, wrote the interior
/// twice), lines of the networks' widths copied as fixed-size arrays instead of by a call to
/// `memcpy` each.
fn pad_into(g: &ConvGeometry, grid: &Grid, x: &[f32], padded: &mut [f32]) {
    let [d, h, w] = g.size;
    let [_, hp, wp] = grid.padded;
    let p = g.padding;
    let slab = hp * wp;
    let volume = grid.volume();
    if volume == 0 {
        return;
    }
    for (channel, x_c) in padded
        .chunks_exact_mut(volume)
        .zip(x.chunks_exact((d * h * w).max(1)))
    {
        let (front, rest) = channel.split_at_mut(p * slab);
        front.fill(0.0);
        let (interior, back) = rest.split_at_mut(d * slab);
        back.fill(0.0);
        for (plane, x_z) in interior
            .chunks_exact_mut(slab)
            .zip(x_c.chunks_exact((h * w).max(1)))
        {
            plane[..p * wp].fill(0.0);
            plane[(p + h) * wp..].fill(0.0);
            for (row, line) in plane[p * wp..(p + h) * wp]
                .chunks_exact_mut(wp)
                .zip(x_z.chunks_exact(w.max(1)))
            {
                let (left, rest) = row.split_at_mut(p);
                let (interior, right) = rest.split_at_mut(w);
                zero_short(left);
                copy_line(interior, line);
                zero_short(right);
            }
        }
    }
}

/// `s.fill(0.0)` for the padding either side of a line (1 or 2 values: a `memset` call each
/// otherwise).
#[inline(always)]
fn zero_short(s: &mut [f32]) {
    match s {
        [] => {}
        [a] => *a = 0.0,
        [a, b] => (*a, *b) = (0.0, 0.0),
        _ => s.fill(0.0),
    }
}

/// `dst.copy_from_slice(src)` for one short line, as inline vector moves where the line has
/// 4, 8 or 16 voxels: `copy_from_slice`, and any loop of copies (LLVM recognizes the idiom),
/// becomes a call to `memcpy` per line, ~5% of a step at width 16 when every conv pads its
/// 16-voxel lines one by one.
#[inline(always)]
fn copy_line(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "line lengths");
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_loadu_ps, _mm_storeu_ps};
        let quads = dst.len() / 4;
        if dst.len().is_multiple_of(4) && (quads == 1 || quads == 2 || quads == 4) {
            let (d, s) = (dst.as_mut_ptr(), src.as_ptr());
            // SAFETY: SSE is part of x86-64; both slices hold `4 · quads` floats, and every
            // load and store is an unaligned one inside them. Straight-line code (no loop)
            // so that it stays vector moves.
            unsafe {
                _mm_storeu_ps(d, _mm_loadu_ps(s));
                if quads >= 2 {
                    _mm_storeu_ps(d.add(4), _mm_loadu_ps(s.add(4)));
                }
                if quads == 4 {
                    _mm_storeu_ps(d.add(8), _mm_loadu_ps(s.add(8)));
                    _mm_storeu_ps(d.add(12), _mm_loadu_ps(s.add(12)));
                }
            }
            return;
        }
    }
    dst.copy_from_slice(src);
}

/// The im2col tile of grid positions `j0..j0 + width`: row r is the padded input from
/// `offset(r) + j0`.
fn im2col(
    g: &ConvGeometry,
    grid: &Grid,
    padded: &[f32],
    j0: usize,
    width: usize,
    tile: &mut [f32],
) {
    for row in 0..g.channels_in * g.kernel.pow(3) {
        let src = grid.row_offset(g.kernel, row) + j0;
        tile[row * width..(row + 1) * width].copy_from_slice(&padded[src..src + width]);
    }
}

/// Where [`padded_by_phase`] puts things: the length of one W phase, of a padded W line (all
/// `s` phases), of a padded (H, W) plane and of a padded channel.
fn phase_layout(g: &ConvGeometry) -> [usize; 4] {
    let s = g.stride;
    let [dp, hp, wp] = g.size.map(|n| n + 2 * g.padding);
    let phase = wp.div_ceil(s);
    let line = s * phase;
    [phase, line, hp * line, dp * hp * line]
}

/// The input W positions of a line in runs by phase: `(i0, j0, count)` pairs input
/// `i0 + k·s` with phase-layout position `j0 + k` ([`padded_by_phase`]) for `k < count`.
fn phase_runs(g: &ConvGeometry, phase: usize) -> impl Iterator<Item = (usize, usize, usize)> {
    let (s, p, w) = (g.stride, g.padding, g.size[2]);
    (0..s).filter_map(move |r| {
        // The first input i with (i + p) mod s = r.
        let i0 = (r + s - p % s) % s;
        (i0 < w).then(|| (i0, r * phase + (i0 + p) / s, (w - i0).div_ceil(s)))
    })
}

/// The interior lines of a sample `[C_in, D, H, W]`: each line's start in the sample and in
/// the phase layout ([`phase_layout`]).
fn for_each_phase_line(g: &ConvGeometry, mut visit: impl FnMut(usize, usize)) {
    let p = g.padding;
    let [d, h, w] = g.size;
    let [_, line, plane, volume] = phase_layout(g);
    for c in 0..g.channels_in {
        for z in 0..d {
            for y in 0..h {
                visit(
                    ((c * d + z) * h + y) * w,
                    c * volume + (z + p) * plane + (y + p) * line,
                );
            }
        }
    }
}

/// One sample `x: [C_in, D, H, W]` zero-padded with each padded W line stored by phase,
/// `[C_in, Dp, Hp, s, ⌈Wp/s⌉]`: padded voxel w at `(w mod s)·⌈Wp/s⌉ + w div s` (stride 1: the
/// plain padded grid). The W positions a stride-s conv reads for one output line and tap are
/// then one contiguous run.
fn padded_by_phase<'a>(g: &ConvGeometry, x: &[f32], scratch: &'a mut Scratch) -> &'a [f32] {
    let [phase, _, _, volume] = phase_layout(g);
    let padded = sized(&mut scratch.padded, g.channels_in * volume);
    if g.stride == 1 {
        // One phase: the plain padded grid, which pad_into writes once per value.
        pad_into(g, &Grid::new(g), x, padded);
        return padded;
    }
    padded.fill(0.0);
    let (s, w) = (g.stride, g.size[2]);
    let runs: Vec<_> = phase_runs(g, phase).collect();
    for_each_phase_line(g, |src, dst| {
        for &(i0, j0, count) in &runs {
            let to = &mut padded[dst + j0..dst + j0 + count];
            for (k, v) in to.iter_mut().enumerate() {
                *v = x[src + i0 + k * s];
            }
        }
        debug_assert!(runs.iter().map(|r| r.2).sum::<usize>() == w);
    });
    padded
}

/// The adjoint of [`padded_by_phase`]: adds the interior of `padded` onto `dx: [C_in, D, H, W]`.
fn add_unpadded(g: &ConvGeometry, padded: &[f32], dx: &mut [f32]) {
    let [phase, ..] = phase_layout(g);
    let s = g.stride;
    let runs: Vec<_> = phase_runs(g, phase).collect();
    for_each_phase_line(g, |dst, src| {
        for &(i0, j0, count) in &runs {
            for (k, v) in padded[src + j0..src + j0 + count].iter().enumerate() {
                dx[dst + i0 + k * s] += v;
            }
        }
    });
}

/// Calls `visit(row, tile_line, phase_start)` for every im2col line of a sample: row `row`,
/// output line `tile_line` (`OW` entries from `row·row_stride + tile_line·OW`), which reads
/// the phase layout's `OW` values from `phase_start`.
fn for_each_im2col_line(g: &ConvGeometry, mut visit: impl FnMut(usize, usize, usize)) {
    let [od, oh, _] = g.output_size();
    let (k, s) = (g.kernel, g.stride);
    let [phase, line, plane, volume] = phase_layout(g);
    for row in 0..g.channels_in * k.pow(3) {
        let (c, tap) = (row / k.pow(3), row % k.pow(3));
        let (kd, kh, kw) = (tap / (k * k), tap / k % k, tap % k);
        // Where output (0, 0, 0) reads for this row.
        let origin = c * volume + kd * plane + kh * line + (kw % s) * phase + kw / s;
        for d in 0..od {
            for h in 0..oh {
                visit(row, d * oh + h, origin + (d * plane + h * line) * s);
            }
        }
    }
}

/// The im2col matrix of one sample `x: [C_in, D, H, W]` of any stride, for all its output
/// lines: `tile: [C_in·k³, ≥ V_out]` with rows `row_stride` apart. The input is padded once
/// first, by W phase ([`padded_by_phase`]), so every tile line is a plain copy of `OW`
/// values, where an im2col on the unpadded input works out which outputs read padding,
/// line by line (~5 ns a line: most of a stride-2 conv's forward at batch 16).
pub fn im2col_sample(
    g: &ConvGeometry,
    x: &[f32],
    row_stride: usize,
    tile: &mut [f32],
    scratch: &mut Scratch,
) {
    let ow = g.output_size()[2];
    let padded = padded_by_phase(g, x, scratch);
    for_each_im2col_line(g, |row, tile_line, start| {
        let dst = &mut tile[row * row_stride + tile_line * ow..][..ow];
        copy_line(dst, &padded[start..start + ow]);
    });
}

/// The adjoint of [`im2col_sample`]: adds every entry of `tile` (rows `row_stride` apart)
/// back onto the input voxel it reads, `dx: [C_in, D, H, W]` (accumulated): plain adds of
/// lines into a padded buffer, then its interior onto `dx`.
pub fn col2im_sample(
    g: &ConvGeometry,
    tile: &[f32],
    row_stride: usize,
    dx: &mut [f32],
    scratch: &mut Scratch,
) {
    let ow = g.output_size()[2];
    let [.., volume] = phase_layout(g);
    let mut padded = std::mem::take(&mut scratch.padded_grad);
    let acc = sized(&mut padded, g.channels_in * volume);
    acc.fill(0.0);
    for_each_im2col_line(g, |row, tile_line, start| {
        let src = &tile[row * row_stride + tile_line * ow..][..ow];
        for (a, v) in acc[start..start + ow].iter_mut().zip(src) {
            *a += v;
        }
    });
    add_unpadded(g, acc, dx);
    scratch.padded_grad = padded;
}

/// One sample's output `y: [C_out, OD·OH·OW]` from `weight: [C_out, C_in·k³]`, any stride:
/// [`im2col_sample`] and one GEMM.
pub fn forward_sample_strided(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    y: &mut [f32],
    scratch: &mut Scratch,
) {
    let (rows, n) = (g.channels_in * g.kernel.pow(3), g.output_voxels());
    let mut tile = std::mem::take(&mut scratch.tile);
    let patches = sized(&mut tile, rows * n);
    im2col_sample(g, x, n, patches, scratch);
    let (w, patches) = (Operand::new(weight, rows, 1), Operand::new(patches, n, 1));
    gemm_into((g.channels_out, n, rows), y, n, false, w, patches);
    scratch.tile = tile;
}

/// One sample's output `y: [C_out, OD·OH·OW]` by the direct kernel, from
/// [`direct::pack_weights`]' `packed`: the input padded once (or copied shifted, where the
/// plan reads so), then read in place. Every value
/// of `y` is written (it may start uninitialized).
pub fn forward_sample_direct(
    (isa, plan): (Isa, &direct::Plan),
    g: &ConvGeometry,
    x: &[f32],
    packed: &[f32],
    y: &mut [std::mem::MaybeUninit<f32>],
    scratch: &mut Scratch,
) {
    let input = if plan.reads_shifted() {
        let copies = sized(&mut scratch.padded, direct::shifted_len(g));
        direct::shifted_copies(g, x, copies);
        copies
    } else {
        padded_sample(g, x, scratch)
    };
    direct::forward_sample(isa, g, plan, input, packed, y);
}

/// Adds one sample's weight gradient into `dw_t` (∂W transposed, `[C_in·k³ × C_out]`) by
/// a direct kernel: the input padded once, then read in place. With AVX-512 and 16 output
/// channels or more, lanes over output channels ([`channel_gradient`]), else over output
/// positions ([`direct`]).
pub fn weight_gradient_sample_direct(
    (isa, plan): (Isa, &direct::Plan),
    g: &ConvGeometry,
    x: &[f32],
    dy: &[f32],
    dw_t: &mut [f32],
    scratch: &mut Scratch,
) {
    if isa == Isa::Avx512 && channel_gradient::pays(g) {
        weight_gradient_sample_channels(g, x, dy, dw_t, scratch);
        return;
    }
    direct::weight_gradient_sample(isa, g, plan, padded_sample(g, x, scratch), dy, dw_t);
}

/// Adds one sample's weight gradient into `dw_t` by [`channel_gradient`] (AVX-512; where it
/// [`pays`](channel_gradient::pays)), from the input padded once.
pub fn weight_gradient_sample_channels(
    g: &ConvGeometry,
    x: &[f32],
    dy: &[f32],
    dw_t: &mut [f32],
    scratch: &mut Scratch,
) {
    let mut dy_t = std::mem::take(&mut scratch.out_tile);
    channel_gradient::weight_gradient_sample(g, padded_sample(g, x, scratch), dy, dw_t, &mut dy_t);
    scratch.out_tile = dy_t;
}

/// One sample `x: [C_in, D, H, W]` zero-padded into the scratch's padded buffer.
fn padded_sample<'a>(g: &ConvGeometry, x: &[f32], scratch: &'a mut Scratch) -> &'a [f32] {
    let grid = Grid::new(g);
    let padded = sized(&mut scratch.padded, g.channels_in * grid.volume());
    pad_into(g, &grid, x, padded);
    padded
}

/// One sample's output `y: [C_out, OD·OH·OW]` from `weight: [C_out, C_in·k³]`.
pub fn forward_sample(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    y: &mut [f32],
    scratch: &mut Scratch,
) {
    let grid = Grid::new(g);
    let rows = g.channels_in * g.kernel.pow(3);
    let n: usize = grid.output.iter().product();
    let padded = sized(&mut scratch.padded, g.channels_in * grid.volume());
    pad_into(g, &grid, x, padded);
    let width = tile_width(g);
    let tile = sized(&mut scratch.tile, rows * width);
    let out_tile = sized(&mut scratch.out_tile, g.channels_out * width);
    let w = Operand::new(weight, rows, 1);
    for j0 in (0..grid.positions).step_by(width) {
        let cols = width.min(grid.positions - j0);
        im2col(g, &grid, padded, j0, cols, tile);
        let patches = Operand::new(&tile[..rows * cols], cols, 1);
        gemm_into(
            (g.channels_out, cols, rows),
            out_tile,
            cols,
            false,
            w,
            patches,
        );
        grid.for_each_output_run(j0..j0 + cols, |j, out, count| {
            for o in 0..g.channels_out {
                let src = o * cols + j - j0;
                y[o * n + out..o * n + out + count].copy_from_slice(&out_tile[src..src + count]);
            }
        });
    }
}

/// One sample's gradients: adds `im2col · dyᵀ` into `dw_t` (∂W transposed, `[C_in·k³ × C_out]`)
/// when given, writes `∂x` into `dx` when given.
pub fn backward_sample(
    g: &ConvGeometry,
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    dw_t: Option<&mut [f32]>,
    dx: Option<&mut [f32]>,
    scratch: &mut Scratch,
) {
    let grid = Grid::new(g);
    let rows = g.channels_in * g.kernel.pow(3);
    let n: usize = grid.output.iter().product();
    let width = tile_width(g);
    let volume = g.channels_in * grid.volume();
    let padded = sized(&mut scratch.padded, volume);
    if dw_t.is_some() {
        pad_into(g, &grid, x, padded);
    }
    let padded_grad = sized(
        &mut scratch.padded_grad,
        if dx.is_some() { volume } else { 0 },
    );
    padded_grad.fill(0.0);
    let tile = sized(&mut scratch.tile, rows * width);
    let dy_tile = sized(&mut scratch.out_tile, g.channels_out * width);
    let w_t = Operand::new(weight, 1, rows);
    let mut dw = dw_t;
    for j0 in (0..grid.positions).step_by(width) {
        let cols = width.min(grid.positions - j0);
        // dy on the grid: zero at the padding's positions, so they add nothing below.
        dy_tile[..g.channels_out * cols].fill(0.0);
        grid.for_each_output_run(j0..j0 + cols, |j, out, count| {
            for o in 0..g.channels_out {
                let dst = o * cols + j - j0;
                dy_tile[dst..dst + count].copy_from_slice(&dy[o * n + out..o * n + out + count]);
            }
        });
        let dy_op = Operand::new(&dy_tile[..g.channels_out * cols], cols, 1);
        if let Some(dw) = dw.as_deref_mut() {
            im2col(g, &grid, padded, j0, cols, tile);
            // dWᵀ[rows × C_out] += tile[rows × cols] · dy_tileᵀ[cols × C_out]
            let patches = Operand::new(&tile[..rows * cols], cols, 1);
            let dy_t = Operand::new(&dy_tile[..g.channels_out * cols], 1, cols);
            gemm_into(
                (rows, g.channels_out, cols),
                dw,
                g.channels_out,
                true,
                patches,
                dy_t,
            );
        }
        if dx.is_some() {
            // tile[rows × cols] = Wᵀ[rows × C_out] · dy_tile[C_out × cols], then col2im.
            gemm_into((rows, cols, g.channels_out), tile, cols, false, w_t, dy_op);
            for row in 0..rows {
                let dst = grid.row_offset(g.kernel, row) + j0;
                for (acc, v) in padded_grad[dst..dst + cols]
                    .iter_mut()
                    .zip(&tile[row * cols..(row + 1) * cols])
                {
                    *acc += v;
                }
            }
        }
    }
    if let Some(dx) = dx {
        for_each_interior_line(g, &grid, |dense, pad, w| {
            dx[dense..dense + w].copy_from_slice(&padded_grad[pad..pad + w]);
        });
    }
}
