//! Choosing a device from the command line: `auto`, `cpu`, `cuda`, `emu` or `emu-deferred`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::backend::gpu::cuda::CudaRuntime;
use crate::backend::gpu::GpuError;
use crate::tensor::Device;

/// A failure of the device that work runs on (opening it, a launch, a copy, a graph), as code
/// outside the backends sees it; the message names the call, and for a launch the kernel and
/// the launches before it.
#[derive(Debug)]
pub struct DeviceError(GpuError);

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for DeviceError {}

impl From<GpuError> for DeviceError {
    fn from(e: GpuError) -> Self {
        DeviceError(e)
    }
}

/// What the user asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// CUDA when a driver and GPU are present, else the CPU.
    Auto,
    /// The CPU engine.
    Cpu,
    /// A CUDA GPU (device 0); an error if there is none.
    Cuda,
    /// The CUDA emulator (a test instrument: slow, never picked by `auto`).
    Emu,
    /// The emulator in deferred mode: work queued per stream and run at synchronisations, with
    /// the lifetime checks of asynchronous execution (see `EmuRuntime::deferred`).
    EmuDeferred,
}

impl DeviceChoice {
    /// Either emulator mode.
    pub fn is_emu(self) -> bool {
        matches!(self, DeviceChoice::Emu | DeviceChoice::EmuDeferred)
    }
}

impl FromStr for DeviceChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(DeviceChoice::Auto),
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" | "gpu" => Ok(DeviceChoice::Cuda),
            "emu" => Ok(DeviceChoice::Emu),
            "emu-deferred" => Ok(DeviceChoice::EmuDeferred),
            _ => Err(format!("unknown device {s:?}: expected auto, cpu, cuda, emu or emu-deferred")),
        }
    }
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceChoice::Auto => "auto",
            DeviceChoice::Cpu => "cpu",
            DeviceChoice::Cuda => "cuda",
            DeviceChoice::Emu => "emu",
            DeviceChoice::EmuDeferred => "emu-deferred",
        })
    }
}

/// Opens the chosen device. `debug_sync` makes CUDA wait for and check every launch (`darts
/// verify`, `--debug-sync`); the emulator checks every launch anyway. For `auto`, also returns
/// why CUDA was not taken (to tell the user).
pub fn open(choice: DeviceChoice, debug_sync: bool) -> Result<(Device, Option<String>), DeviceError> {
    match choice {
        DeviceChoice::Cpu => Ok((Device::Cpu, None)),
        DeviceChoice::Cuda => Ok((Device::Gpu(Arc::new(CudaRuntime::new(0, debug_sync)?)), None)),
        DeviceChoice::Emu => Ok(emu(false)?),
        DeviceChoice::EmuDeferred => Ok(emu(true)?),
        DeviceChoice::Auto => match CudaRuntime::new(0, debug_sync) {
            Ok(rt) => Ok((Device::Gpu(Arc::new(rt)), None)),
            Err(e) => Ok((Device::Cpu, Some(e.to_string()))),
        },
    }
}

#[cfg(feature = "emu")]
fn emu(deferred: bool) -> Result<(Device, Option<String>), GpuError> {
    use crate::backend::gpu::emu::EmuRuntime;
    let rt = if deferred { EmuRuntime::deferred(0, 0) } else { EmuRuntime::new(0, 0) };
    Ok((Device::Gpu(Arc::new(rt)), None))
}

#[cfg(not(feature = "emu"))]
fn emu(_deferred: bool) -> Result<(Device, Option<String>), GpuError> {
    Err(GpuError::NoEmulator)
}
