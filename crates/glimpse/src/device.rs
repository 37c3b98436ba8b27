//! Backend selection at run time.
//!
//! burn 0.22 tensors are backend-erased (`Tensor<D>` lives on a runtime [`Device`]), so one
//! binary picks CPU or GPU by name. `flex` (CPU) is always built; `wgpu` and `cuda` exist when
//! the crate is built with the cargo features of the same name.

use anyhow::{Result, bail};
use burn::tensor::Device;

/// The backends this build knows by name.
pub fn available() -> Vec<&'static str> {
    let mut names = vec!["cpu"];
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    names
}

/// Device by name: `cpu` (burn flex), `wgpu` (Vulkan, feature `wgpu`), `cuda` (feature `cuda`).
///
/// The device returned does not track gradients; call [`Device::autodiff`] to train.
pub fn by_name(name: &str) -> Result<Device> {
    match name {
        "cpu" | "flex" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0usize)),
        other => bail!(
            "unknown or unavailable device `{other}`: this build has {:?} (rebuild with `--features wgpu` or `--features cuda` for GPUs)",
            available()
        ),
    }
}

/// The CPU device, with autodiff when `device` has it: where a fresh run draws its weights
/// before they move to `device`, so that a seed gives the same weights on every device.
pub fn host(device: &Device) -> Device {
    if device.is_autodiff() { Device::flex().autodiff() } else { Device::flex() }
}

/// Seeds `device`'s generator and runs `init` (which draws initial weights) while holding a
/// process-wide lock: burn's generator is global, so two runs initialising at once (parallel
/// tests, or a library user's threads) would otherwise interleave their draws.
pub fn seeded<T>(device: &Device, seed: u64, init: impl FnOnce() -> T) -> T {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    device.seed(seed);
    init()
}
