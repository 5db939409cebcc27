//! Pictures of voxel digits: an oblique (cabinet) projection of shaded cubes, so a person
//! sees shape, depth and color at once, tiled into sheets and encoded as PNG.

use crate::voxel::{GRID, VoxelGrid};

/// Background of every picture: dark, so yellow and blue both stand out.
pub const BACKGROUND: [u8; 3] = [24, 26, 32];
/// Voxels dimmer than this are not drawn.
pub const DRAW_THRESHOLD: f32 = 0.1;

/// An 8-bit RGB raster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    /// Row-major RGB bytes, `width * height * 3`.
    pub data: Vec<u8>,
}

impl RgbImage {
    pub fn filled(width: usize, height: usize, color: [u8; 3]) -> Self {
        Self {
            width,
            height,
            data: color.repeat(width * height),
        }
    }

    pub fn pixel(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.width + x) * 3;
        [self.data[i], self.data[i + 1], self.data[i + 2]]
    }

    /// Sets one pixel; coordinates outside the image are ignored.
    pub fn fill_pixel(&mut self, x: i64, y: i64, color: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            let i = (y as usize * self.width + x as usize) * 3;
            self.data[i..i + 3].copy_from_slice(&color);
        }
    }

    /// Copies `other` with its top-left corner at (x, y).
    pub fn blit(&mut self, other: &RgbImage, x: usize, y: usize) {
        for row in 0..other.height.min(self.height.saturating_sub(y)) {
            let n = other.width.min(self.width.saturating_sub(x)) * 3;
            let src = row * other.width * 3;
            let dst = ((y + row) * self.width + x) * 3;
            self.data[dst..dst + n].copy_from_slice(&other.data[src..src + n]);
        }
    }

    /// Encodes as PNG bytes.
    pub fn to_png(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut encoder = png::Encoder::new(&mut out, self.width as u32, self.height as u32);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        // Writing into a Vec cannot fail for a well-formed image, whose size we control.
        let mut writer = encoder.write_header().expect("PNG header into memory");
        writer
            .write_image_data(&self.data)
            .expect("PNG data into memory");
        writer.finish().expect("PNG end into memory");
        out
    }
}

fn shade(rgb: [f32; 3], factor: f32) -> [u8; 3] {
    rgb.map(|v| (v * factor * 255.0).round().clamp(0.0, 255.0) as u8)
}

/// Renders one grid: each voxel brighter than [`DRAW_THRESHOLD`] becomes a cube of `cell`
/// pixels, front face facing the viewer (depth slice 0 nearest), depth receding up and to
/// the right at half scale. Front faces carry the voxel's color (normalized to full
/// brightness, then dimmed by intensity), tops are lighter and right sides darker.
pub fn render_voxels(grid: &VoxelGrid, cell: usize) -> RgbImage {
    let cell = cell.max(2) as i64;
    let step = (cell / 2).max(1); // depth offset per slice, in pixels, both x and y
    let margin = cell / 2;
    let n = GRID as i64;
    let size = (n * cell + n * step + 2 * margin) as usize;
    let mut image = RgbImage::filled(size, size, BACKGROUND);
    // Painter's order: far slices first; within a slice, bottom rows first and left columns
    // first, so nearer, higher and more-right cubes cover the faces they hide.
    for d in (0..GRID).rev() {
        for h in (0..GRID).rev() {
            for w in 0..GRID {
                let intensity = grid.intensity(d, h, w);
                if intensity <= DRAW_THRESHOLD {
                    continue;
                }
                let rgb = grid
                    .rgb(d, h, w)
                    .map(|v| v / intensity * (0.35 + 0.65 * intensity));
                let top_color = rgb.map(|v| v * 0.8 + 0.2);
                let (front, top, side) = (shade(rgb, 1.0), shade(top_color, 1.0), shade(rgb, 0.6));
                // Front face top-left corner.
                let x0 = margin + w as i64 * cell + d as i64 * step;
                let y0 = margin + n * step + h as i64 * cell - d as i64 * step;
                for k in 0..step {
                    // Top face: rows above the front face, shifted right as they recede.
                    for x in 0..cell {
                        image.fill_pixel(x0 + x + k + 1, y0 - k - 1, top);
                    }
                    // Right face: columns right of the front face, shifted up as they recede.
                    for y in 0..cell {
                        image.fill_pixel(x0 + cell + k, y0 + y - k - 1, side);
                    }
                }
                for y in 0..cell {
                    for x in 0..cell {
                        image.fill_pixel(x0 + x, y0 + y, front);
                    }
                }
            }
        }
    }
    image
}

/// Lays pictures out in rows of `columns`, with a gap of `gap` pixels.
pub fn tile(images: &[RgbImage], columns: usize, gap: usize) -> RgbImage {
    let columns = columns.clamp(1, images.len().max(1));
    let rows = images.len().div_ceil(columns).max(1);
    let cell_w = images.iter().map(|i| i.width).max().unwrap_or(1);
    let cell_h = images.iter().map(|i| i.height).max().unwrap_or(1);
    let mut sheet = RgbImage::filled(
        columns * cell_w + (columns + 1) * gap,
        rows * cell_h + (rows + 1) * gap,
        [12, 13, 16],
    );
    for (i, image) in images.iter().enumerate() {
        let (r, c) = (i / columns, i % columns);
        sheet.blit(image, gap + c * (cell_w + gap), gap + r * (cell_h + gap));
    }
    sheet
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::voxel::GRID_LEN;

    fn single_voxel(d: usize, h: usize, w: usize, rgb: [f32; 3]) -> VoxelGrid {
        let mut data = vec![0.0; GRID_LEN];
        for (c, v) in rgb.into_iter().enumerate() {
            data[VoxelGrid::index(c, d, h, w)] = v;
        }
        VoxelGrid::from_vec(data).unwrap()
    }

    fn colored_pixels(image: &RgbImage) -> Vec<[u8; 3]> {
        image
            .data
            .chunks(3)
            .map(|p| [p[0], p[1], p[2]])
            .filter(|p| *p != BACKGROUND)
            .collect()
    }

    #[test]
    fn empty_grid_is_all_background() {
        assert!(colored_pixels(&render_voxels(&VoxelGrid::zeros(), 6)).is_empty());
    }

    #[test]
    fn a_red_voxel_draws_a_red_cube_with_three_shades() {
        let image = render_voxels(&single_voxel(0, 8, 8, [1.0, 0.0, 0.0]), 6);
        let pixels = colored_pixels(&image);
        assert_eq!(
            pixels.iter().filter(|p| **p == [255, 0, 0]).count(),
            36,
            "6x6 front face"
        );
        let shades: std::collections::HashSet<_> = pixels.iter().collect();
        assert_eq!(shades.len(), 3, "front, top and side: {shades:?}");
        assert!(
            pixels.iter().all(|p| p[0] >= p[1] && p[0] >= p[2]),
            "cube is reddish"
        );
    }

    #[test]
    fn nearer_voxels_hide_farther_ones_and_faint_ones_are_skipped() {
        let mut data = single_voxel(0, 8, 8, [0.0, 0.0, 1.0]).into_vec();
        data[VoxelGrid::index(0, 1, 8, 8)] = 1.0; // red, one slice back, partly hidden
        let image = render_voxels(&VoxelGrid::from_vec(data).unwrap(), 6);
        let pixels = colored_pixels(&image);
        assert_eq!(
            pixels.iter().filter(|p| **p == [0, 0, 255]).count(),
            36,
            "near cube whole"
        );
        // The cube right behind shows only the rims of its top and right faces.
        assert!(
            !pixels.contains(&[255, 0, 0]),
            "far front face must be hidden"
        );
        let red_rims = pixels.iter().filter(|p| p[0] > p[2]).count();
        assert!((1..36).contains(&red_rims), "far cube rims: {red_rims} px");
        let faint = single_voxel(0, 2, 2, [0.0, DRAW_THRESHOLD * 0.5, 0.0]);
        assert!(colored_pixels(&render_voxels(&faint, 6)).is_empty());
    }

    #[test]
    fn tiles_and_png_round_trip() {
        let a = render_voxels(&single_voxel(0, 0, 0, [0.0, 1.0, 0.0]), 4);
        let sheet = tile(&[a.clone(), a.clone(), a.clone()], 2, 3);
        assert_eq!(sheet.width, 2 * a.width + 3 * 3);
        assert_eq!(sheet.height, 2 * a.height + 3 * 3);
        assert_eq!(sheet.pixel(3, 3), a.pixel(0, 0));
        let png = sheet.to_png();
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut buf).unwrap();
        assert_eq!(
            (info.width as usize, info.height as usize),
            (sheet.width, sheet.height)
        );
        assert_eq!(&buf[..info.buffer_size()], &sheet.data[..]);
    }
}
