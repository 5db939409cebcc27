//! MagicaVoxel `.vox` export: the input and the mapped digit side by side in one model.

use crate::cubes::{Cube, occupied_cubes};
use ot3d_models::voxel::{GRID, VoxelGrid};

/// Empty columns between the two digits.
const GAP: usize = 4;
/// Levels per channel of the palette (6³ = 216 colors; .vox allows 255).
const LEVELS: u32 = 6;

fn chunk(id: &[u8; 4], content: &[u8], children: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + content.len() + children.len());
    out.extend_from_slice(id);
    out.extend_from_slice(&(content.len() as u32).to_le_bytes());
    out.extend_from_slice(&(children.len() as u32).to_le_bytes());
    out.extend_from_slice(content);
    out.extend_from_slice(children);
    out
}

fn level(v: u8) -> u32 {
    (u32::from(v) * (LEVELS - 1) + 127) / 255
}

/// Palette index (1-based, as .vox counts) of a color.
fn palette_index(rgb: [u8; 3]) -> u8 {
    (1 + level(rgb[0]) * LEVELS * LEVELS + level(rgb[1]) * LEVELS + level(rgb[2])) as u8
}

fn palette() -> Vec<u8> {
    let mut rgba = Vec::with_capacity(256 * 4);
    for i in 0..256u32 {
        let (r, g, b) = if i < LEVELS.pow(3) {
            (i / (LEVELS * LEVELS), (i / LEVELS) % LEVELS, i % LEVELS)
        } else {
            (0, 0, 0)
        };
        let scale = |l: u32| (l * 255 / (LEVELS - 1)) as u8;
        rgba.extend_from_slice(&[scale(r), scale(g), scale(b), 255]);
    }
    rgba
}

/// Encodes `input` (left) and `output` (right) as one .vox model. In .vox, z is up: the
/// grid's rows become z (top row highest), its depth becomes y.
pub fn encode_pair(input: &VoxelGrid, output: &VoxelGrid, threshold: f32) -> Vec<u8> {
    let width = 2 * GRID + GAP;
    let mut voxels: Vec<[u8; 4]> = Vec::new();
    for (offset, grid) in [(0, input), (GRID + GAP, output)] {
        for Cube { d, h, w, rgb } in occupied_cubes(grid, threshold) {
            voxels.push([
                (w + offset) as u8,
                d as u8,
                (GRID - 1 - h) as u8,
                palette_index(rgb),
            ]);
        }
    }
    let mut size = Vec::new();
    for side in [width, GRID, GRID] {
        size.extend_from_slice(&(side as u32).to_le_bytes());
    }
    let mut xyzi = (voxels.len() as u32).to_le_bytes().to_vec();
    xyzi.extend(voxels.iter().flatten());
    let children = [
        chunk(b"SIZE", &size, &[]),
        chunk(b"XYZI", &xyzi, &[]),
        chunk(b"RGBA", &palette(), &[]),
    ]
    .concat();
    let mut out = b"VOX ".to_vec();
    out.extend_from_slice(&150u32.to_le_bytes());
    out.extend(chunk(b"MAIN", &[], &children));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ot3d_models::voxel::GRID_LEN;

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    #[test]
    fn encodes_a_readable_vox_file() {
        let mut data = vec![0.0; GRID_LEN];
        data[VoxelGrid::index(1, 2, 0, 5)] = 1.0; // green at depth 2, top row, column 5
        let input = VoxelGrid::from_vec(data).unwrap();
        let output = VoxelGrid::zeros();
        let bytes = encode_pair(&input, &output, 0.3);
        assert_eq!(&bytes[..4], b"VOX ");
        assert_eq!(u32_at(&bytes, 4), 150);
        assert_eq!(&bytes[8..12], b"MAIN");
        assert_eq!(u32_at(&bytes, 16) as usize, bytes.len() - 20);
        // SIZE chunk right after MAIN's header.
        assert_eq!(&bytes[20..24], b"SIZE");
        assert_eq!(
            [u32_at(&bytes, 32), u32_at(&bytes, 36), u32_at(&bytes, 40)],
            [36, 16, 16]
        );
        assert_eq!(&bytes[44..48], b"XYZI");
        assert_eq!(u32_at(&bytes, 56), 1, "one voxel");
        let voxel = &bytes[60..64];
        assert_eq!(&voxel[..3], &[5, 2, 15]);
        let color = voxel[3] as usize;
        let rgba_at = 64 + 12 + (color - 1) * 4;
        assert_eq!(&bytes[64..68], b"RGBA");
        assert_eq!(&bytes[rgba_at..rgba_at + 4], &[0, 255, 0, 255]);
        assert_eq!(bytes.len(), 64 + 12 + 1024);
    }
}
