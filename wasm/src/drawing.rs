//! A digit drawn with the mouse or a finger → a 28×28 MNIST-style image, prepared the way
//! MNIST's digits were: fitted into a 20×20 box and centered by center of mass.

use ot3d_models::mnist::{MNIST_PIXELS, MNIST_SIDE};

/// Stroke coordinates are integers in `0..=MAX_COORD` on a square pad (so a drawing fits
/// in a URL: one character per coordinate).
pub const MAX_COORD: u8 = 63;
/// Limits that keep a drawing (and a link carrying it) small.
pub const MAX_STROKES: usize = 64;
pub const MAX_POINTS: usize = 2048;

/// Half the pen width, in pixels of the 28×28 image (MNIST strokes are 2-3 px wide).
const PEN_RADIUS: f32 = 1.3;
/// The drawing's longer side is scaled to this many pixels, as in MNIST.
const BOX: f32 = 20.0;
/// Samples per pixel side for anti-aliasing.
const SUPERSAMPLE: usize = 4;

pub type Stroke = Vec<(u8, u8)>;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DrawingError {
    #[error("nothing is drawn yet: draw a digit on the pad first")]
    Empty,
    #[error(
        "the drawing has {0} strokes; at most {MAX_STROKES} are kept. Clear the pad and draw again"
    )]
    TooManyStrokes(usize),
    #[error(
        "the drawing has {0} points; at most {MAX_POINTS} are kept. Clear the pad and draw again"
    )]
    TooManyPoints(usize),
    #[error("a stroke point ({0}, {1}) is outside the pad (0..={MAX_COORD})")]
    OutOfRange(u8, u8),
}

/// Checks the limits of a drawing.
pub fn validate(strokes: &[Stroke]) -> Result<(), DrawingError> {
    if strokes.len() > MAX_STROKES {
        return Err(DrawingError::TooManyStrokes(strokes.len()));
    }
    let points: usize = strokes.iter().map(Vec::len).sum();
    if points == 0 {
        return Err(DrawingError::Empty);
    }
    if points > MAX_POINTS {
        return Err(DrawingError::TooManyPoints(points));
    }
    if let Some(&(x, y)) = strokes
        .iter()
        .flatten()
        .find(|(x, y)| *x > MAX_COORD || *y > MAX_COORD)
    {
        return Err(DrawingError::OutOfRange(x, y));
    }
    Ok(())
}

fn distance_to_segment(p: (f32, f32), a: (f32, f32), b: (f32, f32)) -> f32 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let length2 = dx * dx + dy * dy;
    let t = if length2 > 0.0 {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / length2).clamp(0.0, 1.0)
    } else {
        0.0
    };
    let (cx, cy) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - cx).powi(2) + (p.1 - cy).powi(2)).sqrt()
}

/// Rasterizes the strokes into a 28×28 image (0 = background, 255 = ink).
pub fn rasterize(strokes: &[Stroke]) -> Result<[u8; MNIST_PIXELS], DrawingError> {
    validate(strokes)?;
    let points = strokes.iter().flatten();
    let (mut min_x, mut min_y, mut max_x, mut max_y) = (u8::MAX, u8::MAX, 0u8, 0u8);
    for &(x, y) in points {
        (min_x, min_y) = (min_x.min(x), min_y.min(y));
        (max_x, max_y) = (max_x.max(x), max_y.max(y));
    }
    let extent = f32::from((max_x - min_x).max(max_y - min_y)).max(1.0);
    // Pen radius is part of the box, so thick strokes do not overflow it.
    let scale = (BOX - 2.0 * PEN_RADIUS) / extent;
    let center = (
        (f32::from(min_x) + f32::from(max_x)) / 2.0,
        (f32::from(min_y) + f32::from(max_y)) / 2.0,
    );
    let half = MNIST_SIDE as f32 / 2.0;
    let to_image = |(x, y): (u8, u8)| {
        (
            (f32::from(x) - center.0) * scale + half,
            (f32::from(y) - center.1) * scale + half,
        )
    };
    let segments: Vec<((f32, f32), (f32, f32))> = strokes
        .iter()
        .filter(|s| !s.is_empty())
        .flat_map(|s| {
            let pts: Vec<(f32, f32)> = s.iter().map(|&p| to_image(p)).collect();
            if pts.len() == 1 {
                vec![(pts[0], pts[0])]
            } else {
                pts.windows(2).map(|w| (w[0], w[1])).collect()
            }
        })
        .collect();
    let mut coverage = [0f32; MNIST_PIXELS];
    let step = 1.0 / SUPERSAMPLE as f32;
    for row in 0..MNIST_SIDE {
        for col in 0..MNIST_SIDE {
            let mut hits = 0;
            for sy in 0..SUPERSAMPLE {
                for sx in 0..SUPERSAMPLE {
                    let p = (
                        col as f32 + (sx as f32 + 0.5) * step,
                        row as f32 + (sy as f32 + 0.5) * step,
                    );
                    if segments
                        .iter()
                        .any(|&(a, b)| distance_to_segment(p, a, b) <= PEN_RADIUS)
                    {
                        hits += 1;
                    }
                }
            }
            coverage[row * MNIST_SIDE + col] = hits as f32 / (SUPERSAMPLE * SUPERSAMPLE) as f32;
        }
    }
    Ok(center_of_mass_shift(&coverage))
}

/// Moves the image by whole pixels so its center of mass is at the image center (MNIST's
/// last preparation step), and converts to bytes.
fn center_of_mass_shift(coverage: &[f32; MNIST_PIXELS]) -> [u8; MNIST_PIXELS] {
    let (mut mass, mut mx, mut my) = (0f32, 0f32, 0f32);
    for (i, &v) in coverage.iter().enumerate() {
        mass += v;
        mx += v * (i % MNIST_SIDE) as f32;
        my += v * (i / MNIST_SIDE) as f32;
    }
    let middle = (MNIST_SIDE as f32 - 1.0) / 2.0;
    let (shift_x, shift_y) = if mass > 0.0 {
        (
            (middle - mx / mass).round() as i64,
            (middle - my / mass).round() as i64,
        )
    } else {
        (0, 0)
    };
    let side = MNIST_SIDE as i64;
    let mut out = [0u8; MNIST_PIXELS];
    for (i, &v) in coverage.iter().enumerate() {
        let (x, y) = ((i as i64 % side) + shift_x, (i as i64 / side) + shift_y);
        if (0..side).contains(&x) && (0..side).contains(&y) {
            out[(y * side + x) as usize] = (v * 255.0).round() as u8;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ink_box(image: &[u8; MNIST_PIXELS]) -> (usize, usize, usize, usize) {
        let inked: Vec<(usize, usize)> = (0..MNIST_PIXELS)
            .filter(|&i| image[i] > 0)
            .map(|i| (i % MNIST_SIDE, i / MNIST_SIDE))
            .collect();
        let min_x = inked.iter().map(|p| p.0).min().unwrap();
        let max_x = inked.iter().map(|p| p.0).max().unwrap();
        let min_y = inked.iter().map(|p| p.1).min().unwrap();
        let max_y = inked.iter().map(|p| p.1).max().unwrap();
        (min_x, max_x, min_y, max_y)
    }

    #[test]
    fn a_vertical_bar_becomes_a_centered_twenty_pixel_one() {
        let image = rasterize(&[vec![(10, 5), (10, 60)]]).unwrap();
        let (min_x, max_x, min_y, max_y) = ink_box(&image);
        assert_eq!(
            max_y - min_y + 1,
            20,
            "the long side fills MNIST's 20 px box"
        );
        assert!(max_x - min_x < 4, "a pen 2-3 px wide");
        assert!((12..=14).contains(&min_x) && (13..=15).contains(&max_x));
        assert_eq!(
            image[14 * MNIST_SIDE + 13].max(image[14 * MNIST_SIDE + 14]),
            255
        );
    }

    #[test]
    fn the_same_shape_anywhere_on_the_pad_gives_the_same_image() {
        let small = vec![vec![(1, 1), (9, 1), (9, 9)], vec![(1, 9)]];
        let moved: Vec<Stroke> = small
            .iter()
            .map(|s| s.iter().map(|&(x, y)| (x + 40, y + 50)).collect())
            .collect();
        let big: Vec<Stroke> = small
            .iter()
            .map(|s| s.iter().map(|&(x, y)| (x * 6, y * 6)).collect())
            .collect();
        let a = rasterize(&small).unwrap();
        assert_eq!(a, rasterize(&moved).unwrap());
        assert_eq!(a, rasterize(&big).unwrap(), "scale does not matter");
    }

    #[test]
    fn a_single_tap_is_a_dot_and_limits_are_enforced() {
        let dot = rasterize(&[vec![(30, 30)]]).unwrap();
        assert!(dot.iter().filter(|&&v| v > 0).count() < 16);
        assert_eq!(rasterize(&[]), Err(DrawingError::Empty));
        assert_eq!(rasterize(&[vec![], vec![]]), Err(DrawingError::Empty));
        assert_eq!(
            rasterize(&[vec![(64, 0)]]),
            Err(DrawingError::OutOfRange(64, 0))
        );
        let many = vec![vec![(1, 1)]; MAX_STROKES + 1];
        assert_eq!(
            rasterize(&many),
            Err(DrawingError::TooManyStrokes(MAX_STROKES + 1))
        );
        let long = vec![vec![(1, 1); MAX_POINTS + 1]];
        assert_eq!(
            rasterize(&long),
            Err(DrawingError::TooManyPoints(MAX_POINTS + 1))
        );
    }

    #[test]
    fn random_drawings_of_any_size_are_accepted_or_refused_cleanly() {
        // 400 drawings: up to MAX_STROKES + 2 strokes, up to 40 points each, coordinates
        // up to 70 (some off the pad). Each gives an MNIST-sized image with ink, or a typed
        // error, never a panic.
        let mut rng = ot3d_models::rng::SeedRng::new(5);
        let (mut ok, mut refused) = (0, 0);
        for _ in 0..400 {
            // One drawing in ten may leave the pad.
            let limit = if rng.below(10) == 0 {
                71
            } else {
                u64::from(MAX_COORD) + 1
            };
            let strokes: Vec<Stroke> = (0..rng.below(MAX_STROKES as u64 + 3))
                .map(|_| {
                    (0..rng.below(40))
                        .map(|_| (rng.below(limit) as u8, rng.below(limit) as u8))
                        .collect()
                })
                .collect();
            match std::panic::catch_unwind(|| rasterize(&strokes)) {
                Err(_) => panic!("rasterize panicked on {strokes:?}"),
                Ok(Ok(pixels)) => {
                    assert!(pixels.iter().any(|&v| v > 0), "no ink from {strokes:?}");
                    assert_eq!(validate(&strokes), Ok(()));
                    ok += 1;
                }
                Ok(Err(e)) => {
                    assert_eq!(validate(&strokes), Err(e.clone()));
                    assert!(!e.to_string().is_empty());
                    refused += 1;
                }
            }
        }
        assert!(ok > 200 && refused > 20, "{ok} accepted, {refused} refused");
    }
}
