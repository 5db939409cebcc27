//! ot3d-wasm: the browser's entry points, built on `ot3d-models` so the page computes
//! exactly what the native tools compute (same voxels, same network, same weight checks).

pub mod cubes;
pub mod drawing;
pub mod mapper;
#[cfg(target_arch = "wasm32")]
pub mod render;
pub mod state;
pub mod vox;

use mapper::Mapper;
use ot3d_models::digit_pack::DigitPack;
use ot3d_models::render::render_voxels;
use ot3d_models::voxel::{Coloring, DigitColor, VoxelConfig, VoxelGrid, voxelize_slice};
use wasm_bindgen::prelude::*;

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

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

fn color_named(name: &str) -> Result<DigitColor, String> {
    DigitColor::ALL
        .into_iter()
        .find(|c| c.name() == name)
        .ok_or_else(|| format!("unknown color {name:?}: use red, yellow, green or blue"))
}

fn grid_of(values: &[f32], what: &str) -> Result<VoxelGrid, String> {
    cubes::display_grid(values).map_err(|e| format!("{what} is not a voxel grid: {e}"))
}

fn js(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// Voxelizes one 28×28 MNIST-style digit (784 bytes, row-major, 0 = background) with a
/// voxel config given as JSON, drawing all randomness from `seed`. Returns the
/// `[3,16,16,16]` (C, D, H, W) grid as a flat Float32Array.
#[wasm_bindgen(js_name = voxelizeDigit)]
pub fn voxelize_digit(pixels: &[u8], config_json: &str, seed: u64) -> Result<Vec<f32>, JsError> {
    voxelize_digit_checked(pixels, config_json, seed).map_err(js)
}

/// Renders a grid (from `voxelizeDigit`) as a PNG picture of shaded cubes.
#[wasm_bindgen(js_name = renderPng)]
pub fn render_png(grid: &[f32], cell: u32) -> Result<Vec<u8>, JsError> {
    render_png_checked(grid, cell).map_err(js)
}

/// Reads a URL hash into `{state, problems}` (JSON): never fails, bad fields fall back.
#[wasm_bindgen(js_name = parseHash)]
pub fn parse_hash(hash: &str) -> String {
    serde_json::to_string(&state::parse_hash(hash)).expect("a parsed state serializes")
}

/// Writes a state (JSON, as `parseHash` gives it) as a URL hash, refusing invalid states.
#[wasm_bindgen(js_name = formatHash)]
pub fn format_hash(state_json: &str) -> Result<String, JsError> {
    let state: state::ViewState =
        serde_json::from_str(state_json).map_err(|e| js(format!("invalid view state: {e}")))?;
    state::format_hash(&state).map_err(js)
}

/// A drawing (JSON `[[[x, y], ...], ...]`, coordinates 0..=63) → 28×28 MNIST-style pixels.
#[wasm_bindgen(js_name = rasterizeStrokes)]
pub fn rasterize_strokes(strokes_json: &str) -> Result<Vec<u8>, JsError> {
    let strokes: Vec<drawing::Stroke> =
        serde_json::from_str(strokes_json).map_err(|e| js(format!("invalid drawing: {e}")))?;
    drawing::rasterize(&strokes).map(|p| p.to_vec()).map_err(js)
}

/// `(1 − t)·x + t·y` for two grids.
#[wasm_bindgen(js_name = blendGrids)]
pub fn blend_grids(x: &[f32], y: &[f32], t: f32) -> Result<Vec<f32>, JsError> {
    cubes::blend(x, y, t).map(VoxelGrid::into_vec).map_err(js)
}

/// A MagicaVoxel file of the input (left) and the mapped digit (right).
#[wasm_bindgen(js_name = voxFile)]
pub fn vox_file(input: &[f32], output: &[f32], threshold: f32) -> Result<Vec<u8>, JsError> {
    let input = grid_of(input, "the input").map_err(js)?;
    let output = grid_of(output, "the output").map_err(js)?;
    Ok(vox::encode_pair(&input, &output, threshold))
}

/// The gallery: held-out test digits of one class, from `ot3d export-digits`.
#[wasm_bindgen]
pub struct DigitGallery {
    pack: DigitPack,
}

#[wasm_bindgen]
impl DigitGallery {
    #[wasm_bindgen(constructor)]
    pub fn new(bytes: &[u8]) -> Result<DigitGallery, JsError> {
        let pack = DigitPack::decode(bytes).map_err(js)?;
        if pack.is_empty() {
            return Err(js(
                "the digit gallery is empty; rebuild it with `cargo xtask web`",
            ));
        }
        Ok(Self { pack })
    }

    pub fn len(&self) -> usize {
        self.pack.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pack.is_empty()
    }

    /// The class of the digits.
    pub fn digit(&self) -> u8 {
        self.pack.digit
    }

    /// Index of gallery digit `i` in MNIST's test files.
    #[wasm_bindgen(js_name = mnistIndex)]
    pub fn mnist_index(&self, i: usize) -> Result<u32, JsError> {
        self.pack.indices.get(i).copied().ok_or_else(|| {
            js(format!(
                "no gallery digit {i}; there are {}",
                self.pack.len()
            ))
        })
    }

    /// The 784 pixels of gallery digit `i`.
    pub fn pixels(&self, i: usize) -> Result<Vec<u8>, JsError> {
        self.pack.images.get(i).map(|p| p.to_vec()).ok_or_else(|| {
            js(format!(
                "no gallery digit {i}; there are {}",
                self.pack.len()
            ))
        })
    }
}

/// A shipped transport map, loaded and checked, on WebGPU or the CPU.
#[wasm_bindgen]
pub struct TransportModel {
    mapper: Mapper,
}

#[wasm_bindgen]
impl TransportModel {
    /// Checks and loads a model (manifest text + weight bytes). Tries WebGPU unless
    /// `force_cpu`; without an adapter it runs on the CPU and says why.
    pub async fn load(
        manifest_json: String,
        weights: Vec<u8>,
        force_cpu: bool,
    ) -> Result<TransportModel, JsError> {
        let (device, backend, reason) = mapper::pick_device(force_cpu).await;
        let mapper = Mapper::load(&manifest_json, &weights, device, backend, reason).map_err(js)?;
        Ok(Self { mapper })
    }

    /// "WebGPU" or "CPU (wasm)".
    pub fn backend(&self) -> String {
        self.mapper.backend().label().to_string()
    }

    #[wasm_bindgen(js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> String {
        self.mapper.fallback_reason().to_string()
    }

    #[wasm_bindgen(js_name = manifestJson)]
    pub fn manifest_json(&self) -> String {
        serde_json::to_string(self.mapper.manifest()).expect("a manifest serializes")
    }

    #[wasm_bindgen(js_name = sourceDigit)]
    pub fn source_digit(&self) -> u8 {
        self.mapper.manifest().source_digit
    }

    #[wasm_bindgen(js_name = targetDigit)]
    pub fn target_digit(&self) -> u8 {
        self.mapper.manifest().target_digit
    }

    /// Voxelizes 784 pixels the way this model's training data was made, in `color`;
    /// `seed` decides the random parts of rotated flavors (the page uses the MNIST index).
    pub fn voxelize(&self, pixels: &[u8], color: &str, seed: u64) -> Result<Vec<f32>, JsError> {
        let config = VoxelConfig {
            coloring: Coloring::Fixed(color_named(color).map_err(js)?),
            ..self.mapper.manifest().voxel.clone()
        };
        voxelize_slice(pixels, &config, seed)
            .map(VoxelGrid::into_vec)
            .map_err(|e| js(format!("cannot voxelize the digit: {e}")))
    }

    /// T(x) for one grid.
    pub async fn map(&self, grid: Vec<f32>) -> Result<Vec<f32>, JsError> {
        self.mapper.map(&grid).await.map_err(js)
    }
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
        assert!(color_named("pink").unwrap_err().contains("red, yellow"));
    }

    #[test]
    fn hash_round_trip_through_the_js_entry_points() {
        let parsed: serde_json::Value = serde_json::from_str(&parse_hash("#d=4&c=green")).unwrap();
        assert_eq!(parsed["problems"].as_array().unwrap().len(), 0);
        let hash = format_hash(&parsed["state"].to_string()).unwrap();
        assert_eq!(hash, "#d=4&c=green&th=0.30&t=1.00&cam=25,20,38.0");
    }
}
