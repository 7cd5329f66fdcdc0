//! Memory accounting for benchmarks: the process's peak resident set (Linux `VmHWM`), which can
//! be reset between measurements, and, behind `cuda`, the device memory in use.

use crate::error::{Error, Result};
use std::path::PathBuf;

fn status_field_kib(field: &str) -> Result<u64> {
    let path = PathBuf::from("/proc/self/status");
    let text = std::fs::read_to_string(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
    text.lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.trim_start_matches(':').trim().strip_suffix("kB")))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| Error::Config(format!("no {field} line in /proc/self/status (not Linux?)")))
}

/// Peak resident memory of this process since start or since the last [`reset_peak_rss`], in bytes.
pub fn peak_rss_bytes() -> Result<u64> {
    Ok(status_field_kib("VmHWM")? * 1024)
}

/// Current resident memory of this process, in bytes.
pub fn current_rss_bytes() -> Result<u64> {
    Ok(status_field_kib("VmRSS")? * 1024)
}

/// Resets the peak (`VmHWM`) to the current resident size by writing `5` to
/// `/proc/self/clear_refs`. Where the kernel refuses, measure in a child process instead.
pub fn reset_peak_rss() -> Result<()> {
    let path = PathBuf::from("/proc/self/clear_refs");
    std::fs::write(&path, "5").map_err(|source| Error::Io { path, source })
}

/// Device memory in use on a CUDA device (total − free), in bytes; `None` on the CPU.
pub fn device_memory_used_bytes(device: &candle_core::Device) -> Result<Option<u64>> {
    match device {
        #[cfg(feature = "cuda")]
        candle_core::Device::Cuda(dev) => {
            use candle_core::cuda::cudarc::driver::result::mem_get_info;
            dev.cuda_stream().context().bind_to_thread().map_err(|e| Error::Config(format!("cuda: {e:?}")))?;
            let (free, total) = mem_get_info().map_err(|e| Error::Config(format!("cuda mem_get_info: {e:?}")))?;
            Ok(Some((total - free) as u64))
        }
        _ => Ok(None),
    }
}

/// The peak of [`device_memory_used_bytes`] while it lives, sampled from the driver every
/// `period` on a thread of its own (CUDA frees and allocates inside candle's pool, so only
/// sampling sees the high-water mark a row reached); `None` on the CPU.
pub struct DevicePeak {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: Option<std::thread::JoinHandle<Result<u64>>>,
}

impl DevicePeak {
    /// Starts sampling `device` (nothing to sample on the CPU).
    pub fn start(device: &candle_core::Device, period: std::time::Duration) -> Result<Self> {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if device_memory_used_bytes(device)?.is_none() {
            return Ok(Self { stop, handle: None });
        }
        let (device, flag) = (device.clone(), stop.clone());
        let handle = std::thread::spawn(move || -> Result<u64> {
            let mut peak = 0u64;
            loop {
                peak = peak.max(device_memory_used_bytes(&device)?.unwrap_or(0));
                if flag.load(std::sync::atomic::Ordering::Relaxed) {
                    return Ok(peak);
                }
                std::thread::sleep(period);
            }
        });
        Ok(Self { stop, handle: Some(handle) })
    }

    /// Stops sampling; the peak in bytes, or `None` on the CPU.
    pub fn finish(mut self) -> Result<Option<u64>> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => Ok(Some(h.join().map_err(|_| Error::Config("the device-memory sampler panicked".into()))??)),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Other tests of this binary allocate in parallel, so the checks only use what this test
    /// holds: 64 MiB of touched pages are resident, and the peak is at least the current size.
    #[test]
    fn peak_tracks_a_large_allocation() -> Result<()> {
        let v = vec![1u8; 64 << 20];
        std::hint::black_box(&v);
        let now = current_rss_bytes()?;
        assert!(now >= 60 << 20, "resident {now} while holding 64 MiB");
        assert!(peak_rss_bytes()? >= now, "peak below the current resident size");
        drop(v);
        Ok(())
    }

    /// On the CPU there is no device memory to sample: the sampler says so instead of a number.
    #[test]
    fn device_peak_is_none_on_the_cpu() -> Result<()> {
        let sampler = DevicePeak::start(&candle_core::Device::Cpu, std::time::Duration::from_millis(5))?;
        assert_eq!(sampler.finish()?, None);
        Ok(())
    }
}
