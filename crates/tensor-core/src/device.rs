//! Device selection from a user string: `cpu`, `cuda`, `cuda:N`.

use crate::error::{Error, Result};
use candle_core::Device;

/// Parses `cpu`, `cuda` (= `cuda:0`) or `cuda:N` and opens that device.
///
/// Without the `cuda` feature a CUDA request is a clear [`Error::CudaNotCompiled`],
/// never a silent fallback to the CPU.
pub fn parse_device(spec: &str) -> Result<Device> {
    let spec = spec.trim().to_ascii_lowercase();
    if spec == "cpu" {
        return Ok(Device::Cpu);
    }
    let ordinal = match spec.as_str() {
        "cuda" | "gpu" => 0,
        s => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => n,
            _ => return Err(Error::UnknownDevice(spec)),
        },
    };
    open_cuda(&spec, ordinal)
}

#[cfg(feature = "cuda")]
fn open_cuda(_spec: &str, ordinal: usize) -> Result<Device> {
    Device::new_cuda(ordinal).map_err(|e| Error::NoCudaDevice { ordinal, reason: e.to_string() })
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(spec: &str, _ordinal: usize) -> Result<Device> {
    Err(Error::CudaNotCompiled(spec.to_string()))
}

/// A short human name for a device: `cpu` or `cuda:N`.
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_parses() {
        assert!(matches!(parse_device("cpu").unwrap(), Device::Cpu));
        assert!(matches!(parse_device(" CPU ").unwrap(), Device::Cpu));
    }

    #[test]
    fn garbage_is_a_clear_error() {
        let e = parse_device("tpu").unwrap_err();
        assert!(e.to_string().contains("unknown device 'tpu'"), "{e}");
        assert!(matches!(parse_device("cuda:x"), Err(Error::UnknownDevice(_))));
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_feature_says_so() {
        let e = parse_device("cuda:1").unwrap_err();
        assert!(matches!(e, Error::CudaNotCompiled(_)));
        assert!(e.to_string().contains("--features cuda"), "{e}");
    }
}
