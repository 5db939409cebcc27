//! Area (box-filter) resampling of a square gray image, e.g. MNIST 28×28 → 16×16.
//!
//! Each output pixel is the mean of the input area it covers, partial input pixels
//! weighted by their overlap. Unlike bilinear sampling at 1.75× reduction, no input pixel
//! is skipped, so thin strokes survive and the mean intensity is preserved exactly (up to
//! rounding).

/// For each output index, the (input index, weight) pairs; weights of one output sum to 1.
fn area_weights(src: usize, dst: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|i| {
            let (start, end) = (i as f64 * scale, (i + 1) as f64 * scale);
            (start.floor() as usize..(end.ceil() as usize).min(src))
                .filter_map(|j| {
                    let overlap = end.min(j as f64 + 1.0) - start.max(j as f64);
                    (overlap > 0.0).then(|| (j, (overlap / scale) as f32))
                })
                .collect()
        })
        .collect()
}

/// Resamples a row-major `src_side`² image to `dst_side`² by area averaging.
pub fn resize_area(src: &[f32], src_side: usize, dst_side: usize) -> Vec<f32> {
    assert_eq!(
        src.len(),
        src_side * src_side,
        "resize_area: image is not {src_side}²"
    );
    let weights = area_weights(src_side, dst_side);
    // Rows first (src_side × dst_side), then columns.
    let mut rows = vec![0.0f32; src_side * dst_side];
    for y in 0..src_side {
        for (x, taps) in weights.iter().enumerate() {
            rows[y * dst_side + x] = taps.iter().map(|&(j, w)| w * src[y * src_side + j]).sum();
        }
    }
    let mut out = vec![0.0f32; dst_side * dst_side];
    for (y, taps) in weights.iter().enumerate() {
        for x in 0..dst_side {
            out[y * dst_side + x] = taps.iter().map(|&(j, w)| w * rows[j * dst_side + x]).sum();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one() {
        for taps in area_weights(28, 16) {
            let sum: f32 = taps.iter().map(|t| t.1).sum();
            assert!((sum - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn constant_stays_constant_and_mean_is_preserved() {
        let out = resize_area(&[0.5; 28 * 28], 28, 16);
        assert!(out.iter().all(|v| (v - 0.5).abs() < 1e-6));
        let ramp: Vec<f32> = (0..28 * 28).map(|i| (i % 28) as f32 / 27.0).collect();
        let mean_in = ramp.iter().sum::<f32>() / ramp.len() as f32;
        let out = resize_area(&ramp, 28, 16);
        let mean_out = out.iter().sum::<f32>() / out.len() as f32;
        assert!((mean_in - mean_out).abs() < 1e-5);
    }

    #[test]
    fn a_single_bright_pixel_is_not_lost() {
        let mut img = vec![0.0; 28 * 28];
        img[13 * 28 + 13] = 1.0;
        let out = resize_area(&img, 28, 16);
        let total: f32 = out.iter().sum();
        // Mass scales with area: (16/28)².
        assert!((total - (16.0f32 / 28.0).powi(2)).abs() < 1e-5);
        assert!(out.iter().all(|&v| (0.0..=1.0).contains(&v)));
    }
}
