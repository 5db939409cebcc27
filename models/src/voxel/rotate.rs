//! In-plane rotation of a square gray image about its center, with bilinear sampling.

/// Rotates a row-major `side`² image by `degrees` (positive = counter-clockwise as the image
/// is viewed, rows going down), sampling bilinearly; what comes from outside is 0.
pub fn rotate_bilinear(src: &[f32], side: usize, degrees: f64) -> Vec<f32> {
    assert_eq!(
        src.len(),
        side * side,
        "rotate_bilinear: image is not {side}²"
    );
    let theta = degrees.to_radians();
    let (sin, cos) = (libm::sin(theta), libm::cos(theta));
    let center = side as f64 / 2.0;
    let at = |x: i64, y: i64| -> f64 {
        if x < 0 || y < 0 || x >= side as i64 || y >= side as i64 {
            0.0
        } else {
            src[y as usize * side + x as usize] as f64
        }
    };
    let mut out = vec![0.0f32; side * side];
    for y in 0..side {
        for x in 0..side {
            // Output pixel center relative to the image center, with y pointing up.
            let (dx, dy) = (x as f64 + 0.5 - center, center - (y as f64 + 0.5));
            // Inverse rotation gives the source point.
            let (sx, sy) = (cos * dx + sin * dy, -sin * dx + cos * dy);
            // Back to pixel-index coordinates (pixel centers at integers).
            let (px, py) = (sx + center - 0.5, center - sy - 0.5);
            let (x0, y0) = (px.floor(), py.floor());
            let (fx, fy) = (px - x0, py - y0);
            let (x0, y0) = (x0 as i64, y0 as i64);
            let value = (1.0 - fy) * ((1.0 - fx) * at(x0, y0) + fx * at(x0 + 1, y0))
                + fy * ((1.0 - fx) * at(x0, y0 + 1) + fx * at(x0 + 1, y0 + 1));
            out[y * side + x] = value as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_degrees_is_identity() {
        let img: Vec<f32> = (0..64).map(|i| i as f32 / 63.0).collect();
        let out = rotate_bilinear(&img, 8, 0.0);
        for (a, b) in img.iter().zip(&out) {
            assert!((a - b).abs() < 1e-6);
        }
    }

    #[test]
    fn ninety_degrees_moves_right_to_top() {
        // A pixel right of center ends up above center after +90° (counter-clockwise).
        let side = 9;
        let mut img = vec![0.0; side * side];
        img[4 * side + 7] = 1.0;
        let out = rotate_bilinear(&img, side, 90.0);
        let argmax = out
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        assert_eq!((argmax / side, argmax % side), (1, 4));
        assert!((out[argmax] - 1.0).abs() < 1e-6);
    }
}
