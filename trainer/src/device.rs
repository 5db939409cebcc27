//! Picking the device a run computes on: burn's CPU backend always, GPUs where the binary
//! was built with their feature.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use ot3d_models::nets::init_guard;

/// A compute backend by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Cpu,
    Wgpu,
    Vulkan,
    Cuda,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Cpu => "cpu",
            Backend::Wgpu => "wgpu",
            Backend::Vulkan => "vulkan",
            Backend::Cuda => "cuda",
        }
    }
}

fn not_built(backend: Backend) -> String {
    format!(
        "this ot3d was built without the {0} backend: rebuild with `cargo build --release -p ot3d-trainer --features {0}`, or use --backend cpu",
        backend.name()
    )
}

/// The device for `backend`, or why it is not available in this build.
pub fn device(backend: Backend) -> Result<Device, String> {
    match backend {
        Backend::Cpu => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        Backend::Wgpu => wgpu_device(backend, None),
        #[cfg(feature = "vulkan")]
        Backend::Vulkan => wgpu_device(backend, None),
        #[cfg(feature = "cuda")]
        Backend::Cuda => Ok(Device::cuda(0)),
        #[allow(unreachable_patterns)]
        other => Err(not_built(other)),
    }
}

/// The devices of `backend` at `indices`, for data-parallel training: GPUs by index (wgpu
/// and vulkan: the discrete GPUs in the order the driver lists them), or, on the CPU, the
/// one processor once per index. Each GPU index at most once.
pub fn indexed_devices(backend: Backend, indices: &[usize]) -> Result<Vec<Device>, String> {
    if indices.is_empty() {
        return Err("--devices needs at least one device index, e.g. --devices 0,1".into());
    }
    if backend != Backend::Cpu {
        for (k, index) in indices.iter().enumerate() {
            if indices[..k].contains(index) {
                return Err(format!(
                    "--devices names {} device {index} twice: give each GPU once, e.g. --devices 0,1",
                    backend.name()
                ));
            }
        }
    }
    indices
        .iter()
        .map(|&index| indexed_device(backend, index))
        .collect()
}

#[cfg_attr(
    not(any(feature = "wgpu", feature = "vulkan", feature = "cuda")),
    allow(unused_variables)
)]
fn indexed_device(backend: Backend, index: usize) -> Result<Device, String> {
    match backend {
        Backend::Cpu => Ok(Device::flex()),
        #[cfg(any(feature = "wgpu", feature = "vulkan"))]
        Backend::Wgpu | Backend::Vulkan => wgpu_device(backend, Some(index)),
        #[cfg(feature = "cuda")]
        Backend::Cuda => Ok(Device::cuda(index)),
        #[allow(unreachable_patterns)]
        other => Err(not_built(other)),
    }
}

/// The wgpu runtime's device for `backend` (wgpu: the API wgpu settles on; vulkan: pinned to
/// Vulkan): the default adapter, or with `index` that discrete GPU. Each is brought up once
/// per process. burn's lazy `Device::wgpu` panics on another thread at the first tensor
/// when the machine has no adapter; this asks first and says what to do.
#[cfg(any(feature = "wgpu", feature = "vulkan"))]
fn wgpu_device(backend: Backend, index: Option<usize>) -> Result<Device, String> {
    use burn::tensor::DeviceKind;
    use burn::tensor::wgpu::WgpuBackend;
    use std::sync::Mutex;
    type Made = ((&'static str, Option<usize>), Result<Device, String>);
    static DEVICES: Mutex<Vec<Made>> = Mutex::new(Vec::new());
    let key = (backend.name(), index);
    let mut devices = DEVICES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, found)) = devices.iter().find(|(k, _)| *k == key) {
        return found.clone();
    }
    let api = match backend {
        Backend::Vulkan => WgpuBackend::Vulkan,
        _ => WgpuBackend::Auto,
    };
    let options = Device::wgpu_options().graphics_api(api);
    let made = match index {
        None => options.init().map_err(|e| no_gpu(backend, &e.to_string())),
        Some(index) => options
            .device_kind(DeviceKind::DiscreteGpu(index))
            .init()
            .map_err(|e| no_gpu(backend, &format!("discrete GPU {index}: {e}"))),
    };
    devices.push((key, made.clone()));
    made
}

/// Why `backend` has no device here, and how to get one.
pub fn no_gpu(backend: Backend, why: &str) -> String {
    format!(
        "no GPU device for --backend {0}: {why}. The machine needs a Vulkan driver and the Vulkan \
         loader: on Debian/Ubuntu `apt-get install libvulkan1` plus the GPU vendor's driver (NVIDIA's \
         ships nvidia_icd.json; point VK_DRIVER_FILES at it if the loader does not find it), or \
         mesa-vulkan-drivers for a CPU one; `vulkaninfo --summary` lists what the loader sees. \
         Or train on the CPU with --backend cpu",
        backend.name()
    )
}

/// Runs `init` (which draws initial weights on `device`) right after seeding it with
/// `seed`, with no other init in between (see [`init_guard`]). burn draws a parameter's
/// initial value lazily, on its first use, so every parameter is read here, inside the
/// guard: otherwise the draws would happen later, from whatever state the device's RNG is
/// in then (another thread's seed or draws), and the weights would not follow from `seed`.
pub fn with_seed<M: Module>(device: &Device, seed: u64, init: impl FnOnce() -> M) -> M {
    let _guard = init_guard();
    device.seed(seed);
    let module = init();
    module.visit(&mut Materialize);
    module
}

/// Reads every float parameter, which makes burn draw the lazily initialized ones now.
struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Runs `init` (networks whose weights are about to be overwritten) under [`init_guard`],
/// so it cannot draw from the RNG between another thread's seed and its init.
pub fn unseeded<T>(init: impl FnOnce() -> T) -> T {
    let _guard = init_guard();
    init()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_always_works_and_missing_backends_say_how_to_get_them() {
        assert!(device(Backend::Cpu).is_ok());
        #[cfg(not(feature = "cuda"))]
        {
            let err = device(Backend::Cuda).unwrap_err();
            assert!(
                err.contains("--features cuda") && err.contains("--backend cpu"),
                "{err}"
            );
        }
    }
}
