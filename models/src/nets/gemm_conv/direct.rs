//! Stride-1 convolutions as a direct, register-blocked kernel on the zero-padded input: each
//! output line's W positions are SIMD lanes (short lines two or four to an AVX-512 vector),
//! 8 output channels × 3 vectors are held in registers while the reduction runs over every
//! (input channel, kernel tap), reading the input in place. No im2col copy and no GEMM
//! packing, and 8 output channels fill the kernel, where the `gemm` crate's AVX-512 tiles want
//! 48 rows. The weight gradient runs the same way with 4 channels × 6 taps of sums.

use super::kernels::ConvGeometry;
use std::mem::MaybeUninit;

/// Output channels per register block; the weights are packed in blocks of this many.
pub(super) const CHANNEL_BLOCK: usize = 8;

/// The instruction sets the kernel has a version for, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// 16 f32 lanes, 32 registers, masked loads and stores.
    Avx512,
    /// 8 f32 lanes, 16 registers.
    Avx2,
    /// Plain Rust, any CPU (what LLVM makes of it).
    Portable,
}

impl Isa {
    /// The best version this CPU runs.
    pub fn detected() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                return Isa::Avx2;
            }
        }
        Isa::Portable
    }

    /// Whether this CPU runs this version.
    pub fn available(self) -> bool {
        match self {
            Isa::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// `weight: [C_out, C_in·k³]` as `[⌈C_out/8⌉][C_in·k³][8]`, the missing channels of the last
/// block zero: one block's 8 weights of a tap are one contiguous read.
pub(super) fn pack_weights(g: &ConvGeometry, weight: &[f32]) -> Vec<f32> {
    let rows = g.channels_in * g.kernel.pow(3);
    let blocks = g.channels_out.div_ceil(CHANNEL_BLOCK);
    let mut packed = vec![0.0f32; blocks * rows * CHANNEL_BLOCK];
    for co in 0..g.channels_out {
        let (block, lane) = (co / CHANNEL_BLOCK, co % CHANNEL_BLOCK);
        for r in 0..rows {
            packed[(block * rows + r) * CHANNEL_BLOCK + lane] = weight[co * rows + r];
        }
    }
    packed
}

/// The padded input's layout and where each tap reads.
struct Layout {
    /// Padded H·W and W.
    slab: usize,
    row: usize,
    /// Offset in the padded sample of each (channel, kd, kh, kw), im2col row order.
    taps: Vec<usize>,
}

impl Layout {
    /// The zero-padded grid `[C_in, D+2p, H+2p, W+2p]`.
    fn new(g: &ConvGeometry) -> Self {
        let [dp, hp, wp] = g.size.map(|s| s + 2 * g.padding);
        Layout::strided(g, [dp * hp * wp, hp * wp, wp, 1])
    }

    /// An input whose tap (c, kd, kh, kw) reads at `c·channel + kd·slab + kh·row + kw·column`.
    fn strided(g: &ConvGeometry, [channel, slab, row, column]: [usize; 4]) -> Self {
        let k = g.kernel;
        let mut taps = Vec::with_capacity(g.channels_in * k.pow(3));
        for c in 0..g.channels_in {
            for kd in 0..k {
                for kh in 0..k {
                    for kw in 0..k {
                        taps.push(c * channel + kd * slab + kh * row + kw * column);
                    }
                }
            }
        }
        Layout { slab, row, taps }
    }
}

/// `lanes` output voxels of one line: where they read the padded input at tap
/// (0, 0, 0, 0) and where they sit in a channel of `y`.
#[derive(Debug, Clone, Copy)]
struct Segment {
    input: usize,
    output: usize,
    lanes: usize,
}

impl Segment {
    /// A vector's unused part.
    const EMPTY: Segment = Segment {
        input: 0,
        output: 0,
        lanes: 0,
    };
}

/// The most lines one vector holds.
const MAX_PARTS: usize = 4;

/// One SIMD vector of output voxels: one segment, or on AVX-512 with short lines several
/// (lines of ≤ 8 voxels two to a vector, lanes 0–7 and 8–15; of ≤ 4 four), so that 8³ and
/// 4³ volumes fill the register too. Parts past `count` are empty.
#[derive(Debug, Clone, Copy)]
struct Vector {
    parts: [Segment; MAX_PARTS],
    count: usize,
}

impl Vector {
    fn parts(&self) -> &[Segment] {
        &self.parts[..self.count]
    }
}

/// Lines per AVX-512 vector for lines of `ow` voxels.
fn parts_per_vector(ow: usize, lanes: usize) -> usize {
    match ow {
        _ if lanes < 16 => 1,
        0..=4 => 4,
        5..=8 => 2,
        _ => 1,
    }
}

/// Every output voxel of a sample as vectors of `lanes`, line by line; short lines several
/// to a vector where `lanes` is 16 ([`parts_per_vector`]).
fn vectors(g: &ConvGeometry, layout: &Layout, lanes: usize) -> Vec<Vector> {
    let [od, oh, ow] = g.output_size();
    let segment = |line: usize, w0: usize| Segment {
        input: (line / oh) * layout.slab + (line % oh) * layout.row + w0,
        output: line * ow + w0,
        lanes: (ow - w0).min(lanes),
    };
    let lines = od * oh;
    let per = parts_per_vector(ow, lanes);
    if per > 1 {
        return (0..lines)
            .step_by(per)
            .map(|first| {
                let count = per.min(lines - first);
                let mut parts = [Segment::EMPTY; MAX_PARTS];
                for (i, part) in parts.iter_mut().enumerate().take(count) {
                    *part = segment(first + i, 0);
                }
                Vector { parts, count }
            })
            .collect();
    }
    (0..lines)
        .flat_map(|line| (0..ow).step_by(lanes).map(move |w0| (line, w0)))
        .map(|(line, w0)| {
            let mut parts = [Segment::EMPTY; MAX_PARTS];
            parts[0] = segment(line, w0);
            Vector { parts, count: 1 }
        })
        .collect()
}

/// The largest padded-input index any tap of any vector reads, checked against `padded`.
fn check_reads(g: &ConvGeometry, layout: &Layout, padded: &[f32]) {
    let [od, oh, ow] = g.output_size();
    let last_tap = layout.taps.last().copied().unwrap_or(0);
    let last_input = ((od - 1) * layout.slab + (oh - 1) * layout.row + ow - 1) + last_tap;
    assert!(
        last_input < padded.len(),
        "padded input too small for {g:?}"
    );
}

/// SIMD lanes of each version.
fn lanes(isa: Isa) -> usize {
    match isa {
        Isa::Avx512 => 16,
        Isa::Avx2 | Isa::Portable => 8,
    }
}

/// What every sample of a stride-1 conv shares: the taps' layout, the output vectors, output
/// voxels per channel and im2col rows (taps). Built once per call, not once per sample.
pub(super) struct Plan {
    layout: Layout,
    vectors: Vec<Vector>,
    n: usize,
    rows: usize,
    /// The input is read from [`shifted_copies`], not from the zero-padded grid.
    shifted: bool,
}

impl Plan {
    /// The plan on the zero-padded grid (the weight gradient's, and the forward's where
    /// [`Plan::forward`] finds no shifted layout).
    pub(super) fn new(g: &ConvGeometry, isa: Isa) -> Self {
        assert_eq!(g.stride, 1, "the direct kernel is stride 1");
        let layout = Layout::new(g);
        let vectors = if g.output_size().contains(&0) {
            Vec::new()
        } else {
            vectors(g, &layout, lanes(isa))
        };
        Plan {
            rows: layout.taps.len(),
            n: g.output_size().iter().product(),
            layout,
            vectors,
            shifted: false,
        }
    }

    /// The forward's plan: where lines of 4 share a vector and whole groups of them lie in
    /// one plane ([`shifts_pay`]), every vector reads one run of 16 values of the input's
    /// W-shifted copies ([`shifted_copies`]), where on the padded grid it took one masked
    /// load per line (four per vector) for every tap.
    pub(super) fn forward(g: &ConvGeometry, isa: Isa) -> Self {
        if !shifts_pay(g, isa) {
            return Plan::new(g, isa);
        }
        let [dp, hp, _] = g.size.map(|s| s + 2 * g.padding);
        let [_, oh, ow] = g.output_size();
        let lanes = lanes(isa);
        // Copy kw of the input is kw whole copies on: a tap's column step.
        let layout = Layout::strided(g, [dp * hp * ow, hp * ow, ow, shifted_copy_len(g)]);
        let per = lanes / ow;
        let lines = g.output_voxels() / ow;
        let vectors = (0..lines)
            .step_by(per)
            .map(|first| {
                let mut parts = [Segment::EMPTY; MAX_PARTS];
                parts[0] = Segment {
                    input: (first / oh) * layout.slab + (first % oh) * ow,
                    output: first * ow,
                    lanes,
                };
                Vector { parts, count: 1 }
            })
            .collect();
        Plan {
            rows: layout.taps.len(),
            n: g.output_voxels(),
            layout,
            vectors,
            shifted: true,
        }
    }

    /// Whether the input is read from [`shifted_copies`] (else the zero-padded grid).
    pub(super) fn reads_shifted(&self) -> bool {
        self.shifted
    }
}

/// Whether [`Plan::forward`] reads shifted copies: AVX-512, lines of 4 voxels four to a
/// vector, and a whole number of vectors per plane, so each vector's lines are consecutive
/// rows of one plane, 16 consecutive values of a copy and of the output. Lines of 8 (two
/// masked loads per vector, not four) measured no gain from them (interleaved steps, AMD
/// EPYC 2-core: 16 × 16 −1.5% / −2%, 32 × 8 +0.3% / +3.3%), so they stay on the grid.
pub(super) fn shifts_pay(g: &ConvGeometry, isa: Isa) -> bool {
    let [od, oh, ow] = g.output_size();
    let lanes = lanes(isa);
    let per = parts_per_vector(ow, lanes);
    g.stride == 1 && od > 0 && per > 2 && ow * per == lanes && oh % per == 0
}

/// The input `x: [C_in, D, H, W]` as k copies of its zero-padded grid without the W padding,
/// copy `kw` shifted by `kw`: `copies[kw][c, zp, yp, j] = padded[c, zp, yp, j + kw]` for
/// `j < OW`, so a tap reads consecutive rows of a plane as one run; `copies` holds
/// `k · C_in · (D+2p) · (H+2p) · OW` values.
pub(super) fn shifted_copies(g: &ConvGeometry, x: &[f32], copies: &mut [f32]) {
    let [d, h, w] = g.size;
    let p = g.padding;
    let (dp, hp, ow) = (d + 2 * p, h + 2 * p, g.output_size()[2]);
    let copy = shifted_copy_len(g);
    assert_eq!(copies.len(), shifted_len(g), "shifted copies' length");
    assert_eq!(x.len(), g.channels_in * d * h * w, "input length");
    if copy == 0 {
        return;
    }
    for (kw, copy_kw) in copies.chunks_exact_mut(copy).enumerate() {
        // Output column j reads input column j + kw − p: valid for j in lo..hi.
        let lo = p.saturating_sub(kw).min(ow);
        let hi = (w + p).saturating_sub(kw).clamp(lo, ow);
        for (c, channel) in copy_kw.chunks_exact_mut(dp * hp * ow).enumerate() {
            for (zp, plane) in channel.chunks_exact_mut(hp * ow).enumerate() {
                for (yp, line) in plane.chunks_exact_mut(ow).enumerate() {
                    let inside = (p..p + d).contains(&zp) && (p..p + h).contains(&yp);
                    if !inside {
                        line.fill(0.0);
                        continue;
                    }
                    let src = &x[((c * d + zp - p) * h + yp - p) * w..][..w];
                    line[..lo].fill(0.0);
                    line[lo..hi].copy_from_slice(&src[lo + kw - p..hi + kw - p]);
                    line[hi..].fill(0.0);
                }
            }
        }
    }
}

/// The length of [`shifted_copies`]' buffer for `g`: k copies.
pub(super) fn shifted_len(g: &ConvGeometry) -> usize {
    g.kernel * shifted_copy_len(g)
}

/// The length of one shifted copy, `C_in · (D+2p) · (H+2p) · OW`.
fn shifted_copy_len(g: &ConvGeometry) -> usize {
    let [dp, hp, _] = g.size.map(|s| s + 2 * g.padding);
    g.channels_in * dp * hp * g.output_size()[2]
}

/// One register block's work: `NV` vectors × up to 8 output channels.
struct Block<'a, const NV: usize> {
    vectors: &'a [Vector; NV],
    /// The block's packed weights, `[C_in·k³][8]`.
    weights: &'a [f32],
    channels: usize,
}

/// One sample's `y: [C_out, OD, OH, OW]` from its zero-padded input
/// `padded: [C_in, D+2p, H+2p, W+2p]` and [`pack_weights`]' `packed`, stride 1.
pub(super) fn forward_sample(
    isa: Isa,
    g: &ConvGeometry,
    plan: &Plan,
    padded: &[f32],
    packed: &[f32],
    y: &mut [MaybeUninit<f32>],
) {
    let (layout, n, rows) = (&plan.layout, plan.n, plan.rows);
    assert_eq!(y.len(), g.channels_out * n, "output length");
    assert_eq!(
        packed.len(),
        g.channels_out.div_ceil(CHANNEL_BLOCK) * rows * CHANNEL_BLOCK,
        "packed weight length"
    );
    if n == 0 || rows == 0 {
        y.fill(MaybeUninit::new(0.0));
        return;
    }
    check_reads(g, layout, padded);
    let vectors = &plan.vectors;
    // Three vectors at a time where the registers hold them (AVX-512: 24 accumulators).
    let per_block = if isa == Isa::Avx512 { 3 } else { 1 };
    for block in 0..g.channels_out.div_ceil(CHANNEL_BLOCK) {
        let channels = (g.channels_out - block * CHANNEL_BLOCK).min(CHANNEL_BLOCK);
        let weights = &packed[block * rows * CHANNEL_BLOCK..(block + 1) * rows * CHANNEL_BLOCK];
        let y_block = &mut y[block * CHANNEL_BLOCK * n..];
        let mut chunks = vectors.chunks_exact(per_block);
        for chunk in &mut chunks {
            if let Ok(three) = <&[Vector; 3]>::try_from(chunk) {
                let block = Block {
                    vectors: three,
                    weights,
                    channels,
                };
                run_block(isa, &block, layout, padded, y_block, n);
            } else {
                let block = Block {
                    vectors: std::array::from_ref(&chunk[0]),
                    weights,
                    channels,
                };
                run_block(isa, &block, layout, padded, y_block, n);
            }
        }
        for vector in chunks.remainder() {
            let block = Block {
                vectors: std::array::from_ref(vector),
                weights,
                channels,
            };
            run_block(isa, &block, layout, padded, y_block, n);
        }
    }
}

fn run_block<const NV: usize>(
    isa: Isa,
    block: &Block<NV>,
    layout: &Layout,
    padded: &[f32],
    y: &mut [MaybeUninit<f32>],
    n: usize,
) {
    // Writes stay inside `y`: the last channel's furthest segment end.
    let furthest = block
        .vectors
        .iter()
        .flat_map(|v| v.parts().iter())
        .map(|s| s.output + s.lanes)
        .max()
        .unwrap_or(0);
    assert!(
        (block.channels - 1) * n + furthest <= y.len(),
        "output block outside y"
    );
    let parts = block.vectors.iter().map(|v| v.count).max().unwrap_or(1);
    match isa {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: the caller checked that every tap of every segment reads inside `padded`
        // (the largest offset is the last line's at the last tap), and the assert above
        // that every write is inside `y`; `isa` is only Avx512 on CPUs that have it.
        Isa::Avx512 if parts > 2 => unsafe {
            x86::block_avx512::<NV, 4>(block, layout, padded, y, n)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx512 if parts == 2 => unsafe {
            x86::block_avx512::<NV, 2>(block, layout, padded, y, n)
        },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above.
        Isa::Avx512 => unsafe { x86::block_avx512::<NV, 1>(block, layout, padded, y, n) },
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as above, for AVX2 + FMA (whose vectors have one segment).
        Isa::Avx2 => unsafe { x86::block_avx2(block, layout, padded, y, n) },
        _ => block_portable(block, layout, padded, y, n),
    }
}

/// The block in plain Rust: the reference the SIMD versions are tested against.
fn block_portable<const NV: usize>(
    block: &Block<NV>,
    layout: &Layout,
    padded: &[f32],
    y: &mut [MaybeUninit<f32>],
    n: usize,
) {
    for vector in block.vectors {
        for segment in vector.parts() {
            let mut acc = [[0.0f32; 16]; CHANNEL_BLOCK];
            for (r, &tap) in layout.taps.iter().enumerate() {
                let w = &block.weights[r * CHANNEL_BLOCK..(r + 1) * CHANNEL_BLOCK];
                let x = &padded[segment.input + tap..][..segment.lanes];
                for (acc_c, w_c) in acc.iter_mut().zip(w) {
                    for (a, x) in acc_c.iter_mut().zip(x) {
                        *a += x * w_c;
                    }
                }
            }
            for (c, acc_c) in acc.iter().enumerate().take(block.channels) {
                let start = c * n + segment.output;
                let dst = &mut y[start..start + segment.lanes];
                for (d, &v) in dst.iter_mut().zip(&acc_c[..segment.lanes]) {
                    d.write(v);
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
// Register blocks read clearest as loops over their indices (the compiler unrolls them).
#[allow(clippy::needless_range_loop)]
mod x86 {
    use super::{
        Block, CHANNEL_BLOCK, GRADIENT_CHANNELS, GRADIENT_TAPS, GradientJob, GroupSums, Layout,
        MAX_PARTS, MaybeUninit, Segment, Vector,
    };
    use std::arch::x86_64::*;

    /// The lane masks of a vector's parts: part s in lanes s·16/S.. (S parts per vector).
    #[inline(always)]
    fn masks<const S: usize>(vector: &Vector) -> [__mmask16; MAX_PARTS] {
        let mut masks = [0; MAX_PARTS];
        for (s, mask) in masks.iter_mut().enumerate().take(S) {
            let lanes = vector.parts[s].lanes as u32;
            *mask = (((1u32 << lanes) - 1) << (s * 16 / S)) as __mmask16;
        }
        masks
    }

    /// Loads a vector's 16 lanes: part s's lanes from `base + offsets[s]`, its pointer moved
    /// back by its first lane (masked lanes are not read).
    ///
    /// # Safety
    /// Every unmasked lane's address is in bounds.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load<const S: usize>(
        base: *const f32,
        offsets: [usize; MAX_PARTS],
        masks: [__mmask16; MAX_PARTS],
    ) -> __m512 {
        // SAFETY: by the contract.
        let mut v = unsafe { _mm512_maskz_loadu_ps(masks[0], base.wrapping_add(offsets[0])) };
        for s in 1..S {
            let at = base.wrapping_add(offsets[s]).wrapping_sub(s * 16 / S);
            // SAFETY: by the contract.
            v = unsafe { _mm512_mask_loadu_ps(v, masks[s], at) };
        }
        v
    }

    /// # Safety
    /// The CPU has AVX-512F; every `padded[segment.input + tap + lane]` for the segments'
    /// lanes is in bounds, and so is every `y[c·n + segment.output + lane]` for channels
    /// below `block.channels`; the vectors have at most `S` parts.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn block_avx512<const NV: usize, const S: usize>(
        block: &Block<NV>,
        layout: &Layout,
        padded: &[f32],
        y: &mut [MaybeUninit<f32>],
        n: usize,
    ) {
        let masks: [_; NV] = std::array::from_fn(|v| masks::<S>(&block.vectors[v]));
        let inputs: [_; NV] = std::array::from_fn(|v| block.vectors[v].parts.map(|p| p.input));
        let x = padded.as_ptr();
        let mut acc = [[_mm512_setzero_ps(); CHANNEL_BLOCK]; NV];
        let mut w = block.weights.as_ptr();
        for &tap in &layout.taps {
            let mut xv = [_mm512_setzero_ps(); NV];
            for v in 0..NV {
                // SAFETY: in bounds by the contract.
                xv[v] = unsafe { load::<S>(x.wrapping_add(tap), inputs[v], masks[v]) };
            }
            for c in 0..CHANNEL_BLOCK {
                // SAFETY: `weights` holds 8 per tap.
                let wc = _mm512_set1_ps(unsafe { *w.add(c) });
                for v in 0..NV {
                    acc[v][c] = _mm512_fmadd_ps(xv[v], wc, acc[v][c]);
                }
            }
            // SAFETY: one tap's 8 weights on, still inside (or one past) `weights`.
            w = unsafe { w.add(CHANNEL_BLOCK) };
        }
        let out = y.as_mut_ptr().cast::<f32>();
        for (v, vector) in block.vectors.iter().enumerate() {
            for (c, acc_c) in acc[v].iter().enumerate().take(block.channels) {
                let channel = out.wrapping_add(c * n);
                for s in 0..S {
                    let dst = channel
                        .wrapping_add(vector.parts[s].output)
                        .wrapping_sub(s * 16 / S);
                    // SAFETY: in bounds by the contract; masked-off lanes are not written.
                    unsafe { _mm512_mask_storeu_ps(dst, masks[v][s], *acc_c) };
                }
            }
        }
    }

    /// # Safety
    /// As [`block_avx512`], for a CPU with AVX2 and FMA; the vectors have one segment of
    /// at most 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block_avx2<const NV: usize>(
        block: &Block<NV>,
        layout: &Layout,
        padded: &[f32],
        y: &mut [MaybeUninit<f32>],
        n: usize,
    ) {
        let lane_ids = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        // Lane i is loaded and stored where its mask lane has the sign bit set.
        let masks = block.vectors.each_ref().map(|v| {
            _mm256_cmpgt_epi32(_mm256_set1_epi32(v.parts[0].lanes.min(8) as i32), lane_ids)
        });
        let x = padded.as_ptr();
        let mut acc = [[_mm256_setzero_ps(); CHANNEL_BLOCK]; NV];
        let mut w = block.weights.as_ptr();
        for &tap in &layout.taps {
            let mut xv = [_mm256_setzero_ps(); NV];
            for v in 0..NV {
                let src = x.wrapping_add(block.vectors[v].parts[0].input + tap);
                // SAFETY: in bounds by the contract; masked-off lanes are not read.
                xv[v] = unsafe { _mm256_maskload_ps(src, masks[v]) };
            }
            for c in 0..CHANNEL_BLOCK {
                // SAFETY: `weights` holds 8 per tap.
                let wc = _mm256_set1_ps(unsafe { *w.add(c) });
                for v in 0..NV {
                    acc[v][c] = _mm256_fmadd_ps(xv[v], wc, acc[v][c]);
                }
            }
            // SAFETY: one tap's 8 weights on, still inside (or one past) `weights`.
            w = unsafe { w.add(CHANNEL_BLOCK) };
        }
        let out = y.as_mut_ptr().cast::<f32>();
        for v in 0..NV {
            for (c, acc_c) in acc[v].iter().enumerate().take(block.channels) {
                let dst = out.wrapping_add(c * n + block.vectors[v].parts[0].output);
                // SAFETY: in bounds by the contract; masked-off lanes are not written.
                unsafe { _mm256_maskstore_ps(dst, masks[v], *acc_c) };
            }
        }
    }

    /// # Safety
    /// The CPU has AVX-512F; every `padded[segment.input + tap + lane]` and every
    /// `dy[c·n + segment.output + lane]` (the segments' lanes, channels below
    /// `job.channels`, at least one) is in bounds; the vectors have at most `S` parts.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gradient_avx512<const S: usize>(
        job: &GradientJob,
        padded: &[f32],
        dy: &[f32],
        sums: &mut GroupSums,
    ) {
        let (x, d) = (padded.as_ptr(), dy.as_ptr());
        // Channels past `job.channels` read the last one's dy (no branch in the loop); their
        // sums are not used.
        let mut channels = [d; GRADIENT_CHANNELS];
        for (c, channel) in channels.iter_mut().enumerate() {
            *channel = d.wrapping_add(c.min(job.channels - 1) * job.n);
        }
        let mut acc = [_mm512_setzero_ps(); 32];
        for vector in job.vectors {
            let masks = masks::<S>(vector);
            let (inputs, outputs) = (
                vector.parts.map(|p| p.input),
                vector.parts.map(|p| p.output),
            );
            let mut dyv = [_mm512_setzero_ps(); GRADIENT_CHANNELS];
            for c in 0..GRADIENT_CHANNELS {
                // SAFETY: in bounds by the contract.
                dyv[c] = unsafe { load::<S>(channels[c], outputs, masks) };
            }
            for t in 0..GRADIENT_TAPS {
                let base = x.wrapping_add(job.taps[t]);
                // SAFETY: as above.
                let xv = unsafe { load::<S>(base, inputs, masks) };
                for c in 0..GRADIENT_CHANNELS {
                    let i = t * GRADIENT_CHANNELS + c;
                    acc[i] = _mm512_fmadd_ps(xv, dyv[c], acc[i]);
                }
            }
        }
        let mut first = [_mm512_setzero_ps(); 16];
        let mut second = [_mm512_setzero_ps(); 16];
        first.copy_from_slice(&acc[..16]);
        second.copy_from_slice(&acc[16..]);
        let dst = sums.0.as_mut_ptr();
        // SAFETY: `sums` is 32 contiguous f32.
        unsafe {
            _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_loadu_ps(dst), sum_each(first)));
            let dst = dst.add(16);
            _mm512_storeu_ps(dst, _mm512_add_ps(_mm512_loadu_ps(dst), sum_each(second)));
        }
    }

    /// # Safety
    /// As [`gradient_avx512`], for a CPU with AVX2 and FMA; the vectors have one segment
    /// of at most 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn gradient_avx2(
        job: &GradientJob,
        padded: &[f32],
        dy: &[f32],
        sums: &mut GroupSums,
    ) {
        let (x, d) = (padded.as_ptr(), dy.as_ptr());
        let mut channels = [d; GRADIENT_CHANNELS];
        for (c, channel) in channels.iter_mut().enumerate() {
            *channel = d.wrapping_add(c.min(job.channels - 1) * job.n);
        }
        let lane_ids = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        // Two taps per pass over the vectors (the last pass one, for an odd count): 8
        // accumulators, 4 dy and 1 input register.
        for t0 in (0..GRADIENT_TAPS).step_by(2) {
            let pair = (GRADIENT_TAPS - t0).min(2);
            let mut acc = [_mm256_setzero_ps(); 8];
            for vector in job.vectors {
                let Segment {
                    input,
                    output,
                    lanes,
                } = vector.parts[0];
                let mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes.min(8) as i32), lane_ids);
                let mut dyv = [_mm256_setzero_ps(); GRADIENT_CHANNELS];
                for c in 0..GRADIENT_CHANNELS {
                    // SAFETY: in bounds by the contract; masked-off lanes are not read.
                    dyv[c] = unsafe { _mm256_maskload_ps(channels[c].wrapping_add(output), mask) };
                }
                for t in 0..pair {
                    let src = x.wrapping_add(input + job.taps[t0 + t]);
                    // SAFETY: as above.
                    let xv = unsafe { _mm256_maskload_ps(src, mask) };
                    for c in 0..GRADIENT_CHANNELS {
                        acc[t * 4 + c] = _mm256_fmadd_ps(xv, dyv[c], acc[t * 4 + c]);
                    }
                }
            }
            for (i, a) in acc.iter().enumerate().take(pair * GRADIENT_CHANNELS) {
                let mut lanes = [0.0f32; 8];
                // SAFETY: `lanes` holds 8 floats.
                unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *a) };
                sums.0[t0 * GRADIENT_CHANNELS + i] += lanes.iter().sum::<f32>();
            }
        }
    }

    /// The permutation indices of one level of [`sum_each`]: lanes come in groups of `2s`
    /// (one sum's partials) in each of two vectors `a`, `b` (`b`'s lanes are 16–31); the
    /// result's groups of `s` lanes are `a`'s groups then `b`'s, taking each group's first
    /// half (`second = false`) or its second half.
    const fn level_indices(s: usize, second: bool) -> [i32; 16] {
        let groups = 16 / (2 * s);
        let mut indices = [0i32; 16];
        let mut lane = 0;
        while lane < 16 {
            let (q, o) = (lane / s, lane % s);
            let from_b = if q >= groups { 16 } else { 0 };
            let start = (q % groups) * 2 * s + if second { s } else { 0 };
            indices[lane] = (from_b + start + o) as i32;
            lane += 1;
        }
        indices
    }

    const LEVELS: [[[i32; 16]; 2]; 4] = [
        [level_indices(8, false), level_indices(8, true)],
        [level_indices(4, false), level_indices(4, true)],
        [level_indices(2, false), level_indices(2, true)],
        [level_indices(1, false), level_indices(1, true)],
    ];

    /// Lane i of the result is the sum of the 16 lanes of `v[i]`: four levels of pairwise
    /// permute-and-add (45 instructions, where 16 separate reductions take ~130).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn sum_each(v: [__m512; 16]) -> __m512 {
        let level = |l: usize| {
            // SAFETY: 16 i32 each.
            unsafe {
                (
                    _mm512_loadu_si512(LEVELS[l][0].as_ptr() as *const _),
                    _mm512_loadu_si512(LEVELS[l][1].as_ptr() as *const _),
                )
            }
        };
        let combine = |a: __m512, b: __m512, (first, second): (__m512i, __m512i)| {
            _mm512_add_ps(
                _mm512_permutex2var_ps(a, first, b),
                _mm512_permutex2var_ps(a, second, b),
            )
        };
        let mut eight = [_mm512_setzero_ps(); 8];
        let indices = level(0);
        for i in 0..8 {
            eight[i] = combine(v[2 * i], v[2 * i + 1], indices);
        }
        let mut four = [_mm512_setzero_ps(); 4];
        let indices = level(1);
        for i in 0..4 {
            four[i] = combine(eight[2 * i], eight[2 * i + 1], indices);
        }
        let indices = level(2);
        let two = [
            combine(four[0], four[1], indices),
            combine(four[2], four[3], indices),
        ];
        combine(two[0], two[1], level(3))
    }
}

/// Adds one sample's weight gradient into `dw_t: [C_in·k³, C_out]` (∂W transposed, the
/// layout the GEMM path accumulates in): `dw_t[r][co] += Σ_p dy[co, p] · x[p + tap(r)]`
/// over the output voxels p, from the zero-padded input `padded: [C_in, D+2p, H+2p, W+2p]`
/// and `dy: [C_out, OD, OH, OW]`, stride 1. Per block of 4 output channels and 6 taps,
/// the sums run in 24 registers of lanes, reading dy's lines and the input's in place.
pub(super) fn weight_gradient_sample(
    isa: Isa,
    g: &ConvGeometry,
    plan: &Plan,
    padded: &[f32],
    dy: &[f32],
    dw_t: &mut [f32],
) {
    let (layout, n, rows) = (&plan.layout, plan.n, plan.rows);
    assert_eq!(dy.len(), g.channels_out * n, "output gradient length");
    assert_eq!(dw_t.len(), rows * g.channels_out, "weight gradient length");
    if n == 0 || rows == 0 {
        return;
    }
    check_reads(g, layout, padded);
    let vectors = &plan.vectors;
    let parts = vectors.iter().map(|v| v.count).max().unwrap_or(1);
    // Per group of taps, its sums so far.
    let mut group_sums = vec![GroupSums::default(); rows.div_ceil(GRADIENT_TAPS)];
    for co0 in (0..g.channels_out).step_by(GRADIENT_CHANNELS) {
        let channels = (g.channels_out - co0).min(GRADIENT_CHANNELS);
        let dy_block = &dy[co0 * n..];
        group_sums.fill(GroupSums::default());
        // A chunk of vectors at a time through every tap, so that its dy and the input lines
        // one channel's taps read stay in L1 instead of streaming from L2 once per group.
        for chunk in vectors.chunks(GRADIENT_CHUNK) {
            for (group, sums) in group_sums.iter_mut().enumerate() {
                let r = group * GRADIENT_TAPS;
                // The last group repeats its last tap where rows run out (sums unused).
                let taps = std::array::from_fn(|t| layout.taps[(r + t).min(rows - 1)]);
                let job = GradientJob {
                    vectors: chunk,
                    taps,
                    channels,
                    n,
                };
                match isa {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: every input read is inside `padded` (`check_reads`); dy's
                    // reads are its first `channels` channels' voxels, inside `dy_block`
                    // (the `channels`-th channel ends at `dy`'s end at most); `isa` is only
                    // Avx512 on CPUs that have it.
                    Isa::Avx512 if parts > 2 => unsafe {
                        x86::gradient_avx512::<4>(&job, padded, dy_block, sums)
                    },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: as above.
                    Isa::Avx512 if parts == 2 => unsafe {
                        x86::gradient_avx512::<2>(&job, padded, dy_block, sums)
                    },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: as above.
                    Isa::Avx512 => unsafe {
                        x86::gradient_avx512::<1>(&job, padded, dy_block, sums)
                    },
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: as above, for AVX2 + FMA.
                    Isa::Avx2 => unsafe { x86::gradient_avx2(&job, padded, dy_block, sums) },
                    _ => gradient_portable(&job, padded, dy_block, sums),
                }
            }
        }
        for (group, sums) in group_sums.iter().enumerate() {
            let r = group * GRADIENT_TAPS;
            for t in 0..GRADIENT_TAPS.min(rows - r) {
                let dst = &mut dw_t[(r + t) * g.channels_out + co0..][..channels];
                for (c, d) in dst.iter_mut().enumerate() {
                    *d += sums.0[t * GRADIENT_CHANNELS + c];
                }
            }
        }
    }
}

/// Whether a direct weight gradient beats im2col + GEMM on `g`: where lines fill whole
/// vectors (on 8³ volumes, two lines to an AVX-512 vector, it ran at half the GEMM's rate,
/// `ot3d bench conv --channels-in 32 --channels-out 32 --size 8`: 50 vs 95 GFLOP/s), or
/// with AVX-512 where the lanes run over output channels instead.
pub(super) fn weight_gradient_pays(g: &ConvGeometry, isa: Isa) -> bool {
    g.output_size()[2] >= lanes(isa) || (isa == Isa::Avx512 && super::channel_gradient::pays(g))
}

/// Output vectors per pass of the weight gradient's kernel through the taps.
const GRADIENT_CHUNK: usize = 32;
/// Output channels and taps per register block of the weight gradient: 20 accumulators,
/// and per vector 4 dy and 5 input loads for 20 FMAs. With 6 taps (24 accumulators) the
/// compiler spilled registers in the AVX-512 loop: 5 taps ran that kernel 5% faster
/// (`ot3d bench conv --batch 64`, 16→16 at 16³: 155 → 164 GFLOP/s, Intel Xeon).
const GRADIENT_CHANNELS: usize = 4;
const GRADIENT_TAPS: usize = 5;

/// One block's sums, `[tap][channel]`, padded to two AVX-512 registers.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct GroupSums([f32; 32]);

impl Default for GroupSums {
    fn default() -> Self {
        GroupSums([0.0; 32])
    }
}

/// A block's taps' sums over some output vectors, for up to 4 output channels, added to
/// `sums`.
struct GradientJob<'a> {
    vectors: &'a [Vector],
    taps: [usize; GRADIENT_TAPS],
    channels: usize,
    n: usize,
}

fn gradient_portable(job: &GradientJob, padded: &[f32], dy: &[f32], sums: &mut GroupSums) {
    for vector in job.vectors {
        for segment in vector.parts() {
            for (t, tap) in job.taps.iter().enumerate() {
                let x = &padded[segment.input + tap..][..segment.lanes];
                for c in 0..job.channels {
                    let dy = &dy[c * job.n + segment.output..][..segment.lanes];
                    sums.0[t * GRADIENT_CHANNELS + c] +=
                        x.iter().zip(dy).map(|(a, b)| a * b).sum::<f32>();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_copies_are_the_padded_grid_read_from_each_tap_column() {
        let g = ConvGeometry {
            batch: 1,
            channels_in: 2,
            channels_out: 1,
            size: [2, 3, 4],
            kernel: 3,
            stride: 1,
            padding: 1,
        };
        let x: Vec<f32> = (1..=g.input_len()).map(|v| v as f32).collect();
        let mut copies = vec![f32::NAN; shifted_len(&g)];
        shifted_copies(&g, &x, &mut copies);
        let ([d, h, w], [dp, hp], ow) = (g.size, [4, 5], 4);
        assert_eq!(copies.len(), 3 * 2 * dp * hp * ow);
        for kw in 0..3 {
            for c in 0..2 {
                for zp in 0..dp {
                    for yp in 0..hp {
                        for j in 0..ow {
                            let got = copies[(((kw * 2 + c) * dp + zp) * hp + yp) * ow + j];
                            // padded[c, zp, yp, j + kw] with one zero voxel on every side.
                            let (z, y, x_) =
                                (zp as isize - 1, yp as isize - 1, (j + kw) as isize - 1);
                            let inside = (0..d as isize).contains(&z)
                                && (0..h as isize).contains(&y)
                                && (0..w as isize).contains(&x_);
                            let want = if inside {
                                x[((c * d + z as usize) * h + y as usize) * w + x_ as usize]
                            } else {
                                0.0
                            };
                            assert_eq!(got, want, "copy {kw}, c {c}, ({zp}, {yp}, {j})");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_forward_reads_shifted_copies_only_where_whole_vectors_fill_a_plane() {
        let g = |size| ConvGeometry {
            batch: 1,
            channels_in: 1,
            channels_out: 1,
            size,
            kernel: 3,
            stride: 1,
            padding: 1,
        };
        assert!(shifts_pay(&g([4, 4, 4]), Isa::Avx512));
        assert!(shifts_pay(&g([2, 8, 4]), Isa::Avx512));
        // 6 lines of 4 per plane, lines of 8, 16 and 3, and 8-lane CPUs.
        assert!(!shifts_pay(&g([4, 6, 4]), Isa::Avx512));
        assert!(!shifts_pay(&g([8, 8, 8]), Isa::Avx512));
        assert!(!shifts_pay(&g([16, 16, 16]), Isa::Avx512));
        assert!(!shifts_pay(&g([3, 3, 3]), Isa::Avx512));
        assert!(!shifts_pay(&g([4, 4, 4]), Isa::Avx2));
        assert!(Plan::forward(&g([4, 4, 4]), Isa::Avx512).reads_shifted());
        assert!(!Plan::forward(&g([4, 4, 4]), Isa::Avx2).reads_shifted());
        assert!(!Plan::new(&g([4, 4, 4]), Isa::Avx512).reads_shifted());
    }
}
