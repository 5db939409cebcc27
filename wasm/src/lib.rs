//! ot3d-wasm: the browser's entry points, built on `ot3d-models` so the page computes
//! exactly what the native tools compute (same seed, same voxels, bit for bit).

use ot3d_models::render::render_voxels;
use ot3d_models::voxel::{VoxelConfig, VoxelGrid, voxelize_slice};
use wasm_bindgen::prelude::*;

/// Parses a voxel config from JSON (`{}` gives the defaults: plain, random palette color,
/// slices 6..12).
pub fn parse_config(json: &str) -> Result<VoxelConfig, String> {
    let config: VoxelConfig =
        serde_json::from_str(json).map_err(|e| format!("invalid voxel config JSON: {e}"))?;
    config
        .validate()
        .map_err(|e| format!("invalid voxel config: {e}"))?;
    Ok(config)
}

/// Voxelizes one 28×28 digit; the error says what was wrong.
pub fn voxelize_digit_checked(
    pixels: &[u8],
    config_json: &str,
    seed: u64,
) -> Result<Vec<f32>, String> {
    let config = parse_config(config_json)?;
    voxelize_slice(pixels, &config, seed)
        .map(VoxelGrid::into_vec)
        .map_err(|e| format!("cannot voxelize digit: {e}"))
}

/// Renders a flat `[3,16,16,16]` grid as PNG bytes.
pub fn render_png_checked(grid: &[f32], cell: u32) -> Result<Vec<u8>, String> {
    if !(2..=32).contains(&cell) {
        return Err(format!("cell size {cell} px is out of range 2..=32"));
    }
    let grid = VoxelGrid::from_vec(grid.to_vec()).map_err(|e| format!("not a voxel grid: {e}"))?;
    Ok(render_voxels(&grid, cell as usize).to_png())
}

/// Voxelizes one 28×28 MNIST-style digit (784 bytes, row-major, 0 = background) with a
/// voxel config given as JSON, drawing all randomness from `seed`. Returns the
/// `[3,16,16,16]` (C, D, H, W) grid as a flat Float32Array.
#[wasm_bindgen(js_name = voxelizeDigit)]
pub fn voxelize_digit(pixels: &[u8], config_json: &str, seed: u64) -> Result<Vec<f32>, JsError> {
    voxelize_digit_checked(pixels, config_json, seed).map_err(|e| JsError::new(&e))
}

/// Renders a grid (from `voxelizeDigit`) as a PNG picture of shaded cubes.
#[wasm_bindgen(js_name = renderPng)]
pub fn render_png(grid: &[f32], cell: u32) -> Result<Vec<u8>, JsError> {
    render_png_checked(grid, cell).map_err(|e| JsError::new(&e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let grid = voxelize_digit_checked(&[255; 784], "{}", 1).unwrap();
        assert_eq!(grid.len(), 3 * 16 * 16 * 16);
        assert!(
            voxelize_digit_checked(&[0; 10], "{}", 1)
                .unwrap_err()
                .contains("784")
        );
        assert!(
            voxelize_digit_checked(&[0; 784], "{", 1)
                .unwrap_err()
                .contains("JSON")
        );
        let bad_band = r#"{"depth_band":[9,3]}"#;
        assert!(
            voxelize_digit_checked(&[0; 784], bad_band, 1)
                .unwrap_err()
                .contains("depth band")
        );
        let png = render_png_checked(&grid, 4).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        assert!(render_png_checked(&grid, 1).is_err());
        assert!(
            render_png_checked(&grid[1..], 4)
                .unwrap_err()
                .contains("not a voxel grid")
        );
    }
}
