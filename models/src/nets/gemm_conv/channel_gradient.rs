//! The weight gradient of 3×3×3 convolutions (stride 1 or 2) with SIMD lanes over output channels
//! (AVX-512): `∂Wᵀ[(ci, tap), co] = Σ_p x[ci, p + tap] · dy[co, p]` with 16 output channels
//! in a vector and the 27 taps of one input channel in 27 registers, each input value
//! broadcast from memory into its FMA. dy is transposed to `[p, C_out]` once per sample.
//! The sums end up in the layout the gradient accumulates in, with no reduction across
//! lanes, and the line length does not matter (8³ lines fill the vectors as well as 16³).
//! The kernel over output positions ([`super::direct`]) instead loads shifted input lines,
//! split across cache lines, and reduces its lanes at the end of every chunk.

use super::kernels::ConvGeometry;

/// Output channels per vector.
const LANES: usize = 16;
/// Taps of a 3×3×3 kernel.
const TAPS: usize = 27;

/// Whether `g`'s weight gradient runs here on a CPU with AVX-512: stride 1 or 2, a 3×3×3
/// kernel and at least 16 output channels (fewer would leave lanes empty).
pub(super) fn pays(g: &ConvGeometry) -> bool {
    (g.stride == 1 || g.stride == 2)
        && g.kernel == 3
        && g.channels_out >= LANES
        && !g.output_size().contains(&0)
}

/// `dy: [C_out, n]` → `dy_t: [n, C_out rounded up to 16]`. The extra channels keep whatever
/// the buffer held: lanes do not mix, and their sums are dropped.
fn transpose_padded(dy: &[f32], channels: usize, n: usize, dy_t: &mut Vec<f32>) -> usize {
    let stride = channels.next_multiple_of(LANES);
    if dy_t.len() < n * stride {
        dy_t.resize(n * stride, 0.0);
    }
    const BLOCK: usize = 64;
    for p0 in (0..n).step_by(BLOCK) {
        for (c, dy_c) in dy.chunks_exact(n).enumerate() {
            for (p, v) in dy_c[p0..(p0 + BLOCK).min(n)].iter().enumerate() {
                dy_t[(p0 + p) * stride + c] = *v;
            }
        }
    }
    stride
}

/// Adds one sample's weight gradient into `dw_t: [C_in·27, C_out]` from its zero-padded
/// input `padded: [C_in, D+2, H+2, W+2]` and `dy: [C_out, OD·OH·OW]`; `dy_t` is scratch.
///
/// # Panics
/// Where [`pays`] is false, the CPU lacks AVX-512F, or a length is wrong.
pub(super) fn weight_gradient_sample(
    g: &ConvGeometry,
    padded: &[f32],
    dy: &[f32],
    dw_t: &mut [f32],
    dy_t: &mut Vec<f32>,
) {
    assert!(pays(g), "channel-vector weight gradient on {g:?}");
    #[cfg(target_arch = "x86_64")]
    assert!(
        std::arch::is_x86_feature_detected!("avx512f"),
        "channel-vector weight gradient without AVX-512"
    );
    let [od, oh, ow] = g.output_size();
    let [dp, hp, wp] = g.size.map(|s| s + 2 * g.padding);
    let (n, c_out) = (od * oh * ow, g.channels_out);
    let volume = dp * hp * wp;
    assert_eq!(padded.len(), g.channels_in * volume, "padded input length");
    assert_eq!(dy.len(), c_out * n, "output gradient length");
    assert_eq!(
        dw_t.len(),
        g.channels_in * TAPS * c_out,
        "weight gradient length"
    );
    // The last output's reach, (o − 1)·s + 3, fits the padded grid on every axis.
    let reach = |o: usize| (o - 1) * g.stride + 3;
    assert!(
        reach(od) <= dp && reach(oh) <= hp && reach(ow) <= wp,
        "{g:?}"
    );
    let stride = transpose_padded(dy, c_out, n, dy_t);
    let mut sums = [0.0f32; TAPS * LANES];
    for (ci, x_c) in padded.chunks_exact(volume).enumerate() {
        for c0 in (0..c_out).step_by(LANES) {
            let lines = Lines {
                x: x_c,
                slab: hp * wp,
                row: wp,
                output: [od, oh, ow],
                stride: g.stride,
            };
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AVX-512F is present (asserted above); the reads are inside `x_c` (every
            // output's reach fits the padded grid, asserted above) and
            // `dy_t[p·stride + c0..][..16]` for p < n (c0 + 16 ≤ stride).
            unsafe {
                if g.stride == 1 {
                    x86::channel_sums::<1>(&lines, &dy_t[c0..], stride, &mut sums)
                } else {
                    x86::channel_sums::<2>(&lines, &dy_t[c0..], stride, &mut sums)
                }
            };
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!("AVX-512 only");
            for (t, tap) in sums.chunks_exact(LANES).enumerate() {
                let dst = &mut dw_t[(ci * TAPS + t) * c_out + c0..];
                for (d, s) in dst.iter_mut().zip(&tap[..(c_out - c0).min(LANES)]) {
                    *d += s;
                }
            }
        }
    }
}

/// One padded input channel and the output grid it is read on, at `stride`.
struct Lines<'a> {
    x: &'a [f32],
    slab: usize,
    row: usize,
    output: [usize; 3],
    stride: usize,
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{LANES, Lines, TAPS};
    use std::arch::x86_64::*;

    /// `sums[tap][lane] = Σ_p x[S·p + tap] · dy_t[p·stride + lane]` over the output
    /// positions p of `lines` (`S`: the conv's stride, `lines.stride`).
    ///
    /// # Safety
    /// The CPU has AVX-512F; `lines.x` holds every output's reach, `(o − 1)·S + 3` on every
    /// axis, and `dy_t` holds 16 floats from every `p·stride`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn channel_sums<const S: usize>(
        lines: &Lines,
        dy_t: &[f32],
        stride: usize,
        sums: &mut [f32; TAPS * LANES],
    ) {
        let [od, oh, ow] = lines.output;
        let (x, dy) = (lines.x.as_ptr(), dy_t.as_ptr());
        let mut acc = [_mm512_setzero_ps(); TAPS];
        for d in 0..od {
            for h in 0..oh {
                debug_assert_eq!(lines.stride, S);
                let base = x.wrapping_add(S * (d * lines.slab + h * lines.row));
                // The nine input lines (kd, kh) this output line reads.
                let rows: [*const f32; 9] = std::array::from_fn(|j| {
                    base.wrapping_add((j / 3) * lines.slab + (j % 3) * lines.row)
                });
                let dy_line = dy.wrapping_add((d * oh + h) * ow * stride);
                for w in 0..ow {
                    // SAFETY: by the contract.
                    let dyv = unsafe { _mm512_loadu_ps(dy_line.add(w * stride)) };
                    for (j, row) in rows.iter().enumerate() {
                        for kw in 0..3 {
                            // SAFETY: by the contract (S·w + kw < (OW − 1)·S + 3).
                            let xv = unsafe { _mm512_set1_ps(*row.add(S * w + kw)) };
                            acc[j * 3 + kw] = _mm512_fmadd_ps(xv, dyv, acc[j * 3 + kw]);
                        }
                    }
                }
            }
        }
        for (t, a) in acc.iter().enumerate() {
            // SAFETY: `sums` holds 16 floats at every t·16.
            unsafe { _mm512_storeu_ps(sums.as_mut_ptr().add(t * LANES), *a) };
        }
    }
}
