//! The 3D view (WebGL2 through three-d): the input digit on the left, the mapped digit on
//! the right, as instanced shaded cubes seen by one shared orbit camera.

use crate::cubes::{Cube, blend, display_grid, occupied_cubes};
use ot3d_models::render::BACKGROUND;
use std::sync::Arc;
use three_d::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// Cube edge relative to the voxel pitch: a small gap keeps single voxels readable.
const CUBE_SIZE: f32 = 0.92;

type CubeMesh = Gm<InstancedMesh, PhysicalMaterial>;

fn instances(cubes: &[Cube]) -> Instances {
    Instances {
        transformations: cubes
            .iter()
            .map(|c| {
                let [x, y, z] = c.position();
                Mat4::from_translation(vec3(x, y, z)) * Mat4::from_scale(CUBE_SIZE / 2.0)
            })
            .collect(),
        colors: Some(
            cubes
                .iter()
                .map(|c| Srgba::new(c.rgb[0], c.rgb[1], c.rgb[2], 255))
                .collect(),
        ),
        ..Default::default()
    }
}

/// The page's canvas and what it shows.
#[wasm_bindgen]
pub struct VoxelView {
    context: Context,
    input: CubeMesh,
    output: CubeMesh,
    ambient: AmbientLight,
    key: DirectionalLight,
    fill: DirectionalLight,
    input_count: usize,
    output_count: usize,
}

#[wasm_bindgen]
impl VoxelView {
    /// Draws into `canvas` (WebGL2; the drawing buffer is kept so the page can save a PNG).
    #[wasm_bindgen(constructor)]
    pub fn new(canvas: web_sys::HtmlCanvasElement) -> Result<VoxelView, JsError> {
        let options = js_sys::Object::new();
        for (key, value) in [("preserveDrawingBuffer", true), ("antialias", true)] {
            js_sys::Reflect::set(&options, &key.into(), &value.into())
                .map_err(|_| JsError::new("cannot build WebGL options"))?;
        }
        let gl = canvas
            .get_context_with_context_options("webgl2", &options)
            .map_err(|_| JsError::new("the browser refused a WebGL2 context"))?
            .ok_or_else(|| JsError::new("this browser has no WebGL2: the 3D view needs it"))?
            .dyn_into::<web_sys::WebGl2RenderingContext>()
            .map_err(|_| JsError::new("the canvas did not give a WebGL2 context"))?;
        let gl = context::Context::from_webgl2_context(gl);
        // three-d's API takes an Arc; the page is single-threaded.
        #[allow(clippy::arc_with_non_send_sync)]
        let gl = Arc::new(gl);
        let context = Context::from_gl_context(gl)
            .map_err(|e| JsError::new(&format!("cannot start the renderer: {e}")))?;
        let mesh = || {
            Gm::new(
                InstancedMesh::new(&context, &Instances::default(), &CpuMesh::cube()),
                PhysicalMaterial::new_opaque(
                    &context,
                    &CpuMaterial {
                        albedo: Srgba::WHITE,
                        roughness: 0.8,
                        metallic: 0.0,
                        ..Default::default()
                    },
                ),
            )
        };
        Ok(Self {
            input: mesh(),
            output: mesh(),
            ambient: AmbientLight::new(&context, 0.45, Srgba::WHITE),
            key: DirectionalLight::new(&context, 1.6, Srgba::WHITE, vec3(-0.6, -1.0, -0.8)),
            fill: DirectionalLight::new(&context, 0.5, Srgba::WHITE, vec3(0.8, 0.3, 0.6)),
            context,
            input_count: 0,
            output_count: 0,
        })
    }

    /// Sets what is drawn: input x on the left, (1 − t)·x + t·T(x) on the right, voxels
    /// from `threshold` up.
    #[wasm_bindgen(js_name = setDigits)]
    pub fn set_digits(
        &mut self,
        input: &[f32],
        mapped: &[f32],
        threshold: f32,
        t: f32,
    ) -> Result<(), JsError> {
        let x = display_grid(input)
            .map_err(|e| JsError::new(&format!("the input is not a voxel grid: {e}")))?;
        let shown = blend(input, mapped, t)
            .map_err(|e| JsError::new(&format!("the mapped digit is not a voxel grid: {e}")))?;
        let left = occupied_cubes(&x, threshold);
        let right = occupied_cubes(&shown, threshold);
        self.input.geometry.set_instances(&instances(&left));
        self.output.geometry.set_instances(&instances(&right));
        self.input_count = left.len();
        self.output_count = right.len();
        Ok(())
    }

    /// Cubes drawn on the left and on the right (for the page's status line and tests).
    #[wasm_bindgen(js_name = cubeCounts)]
    pub fn cube_counts(&self) -> Vec<u32> {
        vec![self.input_count as u32, self.output_count as u32]
    }

    /// Draws both views into a `width`×`height` drawing buffer with the camera at `yaw`
    /// and `pitch` degrees, `distance` voxels from the digits' centers.
    pub fn draw(&self, width: u32, height: u32, yaw: f32, pitch: f32, distance: f32) {
        let [r, g, b] = BACKGROUND;
        let screen = RenderTarget::screen(&self.context, width, height);
        screen.clear(ClearState::color_and_depth(
            f32::from(r) / 255.0,
            f32::from(g) / 255.0,
            f32::from(b) / 255.0,
            1.0,
            1.0,
        ));
        let (yaw, pitch) = (yaw.to_radians(), pitch.to_radians());
        let eye = vec3(
            distance * pitch.cos() * yaw.sin(),
            distance * pitch.sin(),
            distance * pitch.cos() * yaw.cos(),
        );
        let half = width / 2;
        let lights: [&dyn Light; 3] = [&self.ambient, &self.key, &self.fill];
        for (viewport, mesh) in [
            (
                Viewport {
                    x: 0,
                    y: 0,
                    width: half,
                    height,
                },
                &self.input,
            ),
            (
                Viewport {
                    x: half as i32,
                    y: 0,
                    width: width - half,
                    height,
                },
                &self.output,
            ),
        ] {
            let camera = Camera::new_perspective(
                viewport,
                eye,
                vec3(0.0, 0.0, 0.0),
                vec3(0.0, 1.0, 0.0),
                degrees(38.0),
                0.5,
                500.0,
            );
            screen.render_partially(viewport.into(), &camera, mesh, &lights);
        }
    }
}
