//! Loading a shipped transport map from its manifest and weight bytes, and running it on
//! one digit: on WebGPU in the browser when an adapter is there, else on the CPU.

use burn::tensor::{Device, Tensor};
use ot3d_models::nets::TransportMap;
use ot3d_models::nets::weights::{Manifest, load_transport_map};
use ot3d_models::voxel::{GRID, GRID_LEN};

/// Where T runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    WebGpu,
    Cpu,
}

impl Backend {
    pub fn label(self) -> &'static str {
        match self {
            Backend::WebGpu => "WebGPU",
            Backend::Cpu => "CPU (wasm)",
        }
    }
}

/// A loaded, checked map on its device.
pub struct Mapper {
    t: TransportMap,
    manifest: Manifest,
    device: Device,
    backend: Backend,
    /// Why the CPU runs T although WebGPU was asked for (empty otherwise).
    fallback_reason: String,
}

impl Mapper {
    /// Checks the manifest (format, kind, config, sha256 and size of the weights) and loads
    /// the weights; every failure is a message naming the problem and the fix.
    pub fn load(
        manifest_json: &str,
        weights: &[u8],
        device: Device,
        backend: Backend,
        fallback_reason: String,
    ) -> Result<Self, String> {
        let (t, manifest) =
            load_transport_map(manifest_json, weights, &device).map_err(|e| {
                format!("the model files are not usable: {e}. Rebuild the site with `cargo xtask web` (it copies models/pretrained), or re-export the model with `ot3d export`")
            })?;
        if let Some(stack) = &manifest.stacked_on {
            return Err(format!(
                "this map is stacked on {} (it maps that map's outputs, not digits) and the page runs single maps; ship a map trained without --stack-on",
                stack.dir
            ));
        }
        Ok(Self {
            t,
            manifest,
            device,
            backend,
            fallback_reason,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn fallback_reason(&self) -> &str {
        &self.fallback_reason
    }

    /// T(x) for one flat `[3,16,16,16]` grid (a stochastic map sees z = 0). Reads the
    /// result asynchronously: blocking reads are not allowed on WebGPU.
    pub async fn map(&self, grid: &[f32]) -> Result<Vec<f32>, String> {
        if grid.len() != GRID_LEN {
            return Err(format!(
                "a digit must have {GRID_LEN} values (3×16×16×16), got {}",
                grid.len()
            ));
        }
        if let Some(bad) = grid.iter().find(|v| !v.is_finite()) {
            return Err(format!("the input digit holds a non-finite value ({bad})"));
        }
        let x = Tensor::<1>::from_floats(grid, &self.device).reshape([1, 3, GRID, GRID, GRID]);
        let data = self
            .t
            .forward(x, None)
            .into_data_async()
            .await
            .map_err(|e| {
                format!(
                    "reading T(x) back from {} failed: {e:?}",
                    self.backend.label()
                )
            })?;
        let values: Vec<f32> = data
            .try_to_vec::<f32>()
            .map_err(|e| format!("T(x) is not f32 data: {e:?}"))?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(
                "T(x) holds NaN or infinite values: these weights are broken; re-export the model"
                    .into(),
            );
        }
        Ok(values)
    }
}

/// The device for `force_cpu` (or when WebGPU is missing), with the reason for a fallback.
pub async fn pick_device(force_cpu: bool) -> (Device, Backend, String) {
    if force_cpu {
        return (
            Device::flex(),
            Backend::Cpu,
            "CPU chosen on the page".into(),
        );
    }
    match webgpu_device().await {
        Ok(device) => (device, Backend::WebGpu, String::new()),
        Err(reason) => (Device::flex(), Backend::Cpu, reason),
    }
}

#[cfg(target_arch = "wasm32")]
thread_local! {
    /// burn initializes its wgpu runtime once per page: keep the device it gave.
    static WEBGPU: std::cell::RefCell<Option<Device>> = const { std::cell::RefCell::new(None) };
}

#[cfg(target_arch = "wasm32")]
async fn webgpu_device() -> Result<Device, String> {
    if let Some(device) = WEBGPU.with(|d| d.borrow().clone()) {
        return Ok(device);
    }
    let device = Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| format!("WebGPU is not available here ({e})"))?;
    WEBGPU.with(|d| *d.borrow_mut() = Some(device.clone()));
    Ok(device)
}

#[cfg(not(target_arch = "wasm32"))]
async fn webgpu_device() -> Result<Device, String> {
    Err("WebGPU exists only in the browser build".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ot3d_models::nets::TransportMapConfig;
    use ot3d_models::nets::burnpack::Precision;
    use ot3d_models::nets::weights::{
        FORMAT_VERSION, TRANSPORT_MAP_KIND, TransportShape, WEIGHTS_FILE, encode_transport_map,
    };
    use ot3d_models::voxel::VoxelConfig;

    /// Polls a future that never waits (the CPU backend's reads are ready at once).
    fn ready<F: std::future::Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(v) => v,
            std::task::Poll::Pending => panic!("a CPU read should be ready at once"),
        }
    }

    fn exported() -> (String, Vec<u8>, TransportMap) {
        let device = Device::flex();
        let t = {
            let _guard = ot3d_models::nets::init_guard();
            device.seed(7);
            TransportMapConfig::new()
                .with_width(4)
                .with_depth(1)
                .init(&device)
        };
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            kind: TRANSPORT_MAP_KIND.into(),
            config: TransportShape {
                width: 4,
                depth: 1,
                noise_channels: 0,
            },
            source_digit: 3,
            target_digit: 5,
            data: "mnist".into(),
            voxel: VoxelConfig::default(),
            value_range: [0.0, 1.0],
            precision: Precision::F32,
            noise_std: 0.0,
            noise_layout: Default::default(),
            precision_max_abs_diff: 0.0,
            training_steps: 0,
            warm_start_steps: 0,
            metrics: Default::default(),
            weights_file: WEIGHTS_FILE.into(),
            weights_bytes: 0,
            sha256: String::new(),
            stacked_on: None,
            target_weight: 1.0,
            weak_gamma: None,
            weak_groups: None,
        };
        let (_, json, bytes) = encode_transport_map(&t, manifest).unwrap();
        (json, bytes, t)
    }

    #[test]
    fn maps_like_the_model_it_loaded() {
        let (json, bytes, t) = exported();
        let (device, backend, reason) = ready(pick_device(false));
        assert_eq!(backend, Backend::Cpu);
        assert!(reason.contains("only in the browser"));
        let mapper = Mapper::load(&json, &bytes, device.clone(), backend, reason).unwrap();
        let grid: Vec<f32> = (0..GRID_LEN).map(|i| (i % 7) as f32 / 7.0).collect();
        let out = ready(mapper.map(&grid)).unwrap();
        let x = Tensor::<1>::from_floats(&grid[..], &device).reshape([1, 3, GRID, GRID, GRID]);
        let want: Vec<f32> = t.forward(x, None).into_data().try_to_vec().unwrap();
        assert_eq!(out, want);
        assert!(ready(mapper.map(&grid[1..])).unwrap_err().contains("12288"));
        let mut nan = grid.clone();
        nan[3] = f32::NAN;
        assert!(ready(mapper.map(&nan)).unwrap_err().contains("non-finite"));
    }

    #[test]
    fn refuses_corrupt_weights_with_the_fix() {
        let (json, mut bytes, _) = exported();
        bytes[100] ^= 1;
        let err = Mapper::load(&json, &bytes, Device::flex(), Backend::Cpu, String::new())
            .err()
            .unwrap();
        assert!(err.contains("sha256"), "{err}");
        assert!(err.contains("cargo xtask web"), "{err}");
        let err = Mapper::load("{}", &bytes, Device::flex(), Backend::Cpu, String::new())
            .err()
            .unwrap();
        assert!(err.contains("format_version"), "{err}");
    }

    #[test]
    fn refuses_a_stacked_map() {
        let (json, bytes, _) = exported();
        let mut manifest: serde_json::Value = serde_json::from_str(&json).unwrap();
        manifest["stacked_on"] = serde_json::json!({"dir": "models/t1", "sha256": "ab"});
        let err = Mapper::load(
            &manifest.to_string(),
            &bytes,
            Device::flex(),
            Backend::Cpu,
            String::new(),
        )
        .err()
        .unwrap();
        assert!(
            err.contains("stacked on models/t1") && err.contains("single maps"),
            "{err}"
        );
    }
}
