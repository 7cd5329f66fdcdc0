//! Fused CPU kernels for the hot paths of the derivative networks (issue 3), as candle custom
//! ops whose backward is written in candle ops (so it is differentiable in turn). Each kernel
//! has a composite reference — the same formula in plain candle ops — one switch away:
//! [`set_fused`]`(false)` (or `CONTINUUM_KERNELS=composite` in the environment) routes every
//! model back through it. Kernels run for contiguous f32/f64 tensors on the CPU; other dtypes
//! (f16/bf16 follow the precision policy's composite ops), strided inputs and CUDA tensors take
//! the composite path.
//!
//! - [`tanh`]: a vectorised tanh (see [`tanh`](mod@tanh)'s accuracy notes).

pub mod tanh;

use crate::error::Result;
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use std::sync::atomic::{AtomicU8, Ordering};

/// 0: not read yet, 1: fused, 2: composite.
static MODE: AtomicU8 = AtomicU8::new(0);

/// Whether the fused kernels are used (default: yes, unless `CONTINUUM_KERNELS=composite`).
pub fn fused() -> bool {
    match MODE.load(Ordering::Relaxed) {
        1 => true,
        2 => false,
        _ => {
            let on = std::env::var("CONTINUUM_KERNELS").map_or(true, |v| v != "composite");
            MODE.store(if on { 1 } else { 2 }, Ordering::Relaxed);
            on
        }
    }
}

/// Switches every model between the fused kernels (`true`) and the composite candle ops.
pub fn set_fused(on: bool) {
    MODE.store(if on { 1 } else { 2 }, Ordering::Relaxed);
}

struct Tanh;

impl CustomOp1 for Tanh {
    fn name(&self) -> &'static str {
        "continuum-tanh"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (start, end) = layout.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("continuum-tanh: needs a contiguous input".into()))?;
        let out = match storage {
            CpuStorage::F32(x) => {
                let mut out = vec![0f32; end - start];
                tanh::tanh_f32(&x[start..end], &mut out);
                CpuStorage::F32(out)
            }
            CpuStorage::F64(x) => {
                let mut out = vec![0f64; end - start];
                tanh::tanh_f64(&x[start..end], &mut out);
                CpuStorage::F64(out)
            }
            _ => return Err(candle_core::Error::Msg("continuum-tanh: f32 or f64 only".into())),
        };
        Ok((out, layout.shape().clone()))
    }

    /// d tanh = (1 − tanh²) · grad.
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad_res.mul(&(1.0 - res.sqr()?)?)?))
    }
}

fn kernel_applies(z: &Tensor) -> bool {
    fused() && z.device().is_cpu() && z.is_contiguous() && matches!(z.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
}

/// tanh z elementwise: the vectorised kernel where it applies, else candle's `tanh`.
pub fn tanh(z: &Tensor) -> Result<Tensor> {
    Ok(if kernel_applies(z) { z.apply_op1(Tanh)? } else { z.tanh()? })
}
