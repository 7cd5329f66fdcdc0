//! What the fused kernels share: strided matrix views, matrix products that need not zero-fill
//! their output — by the `gemm` crate (the one candle's matmul uses), or by [`super::dot_bf16`]
//! when the right operand was prepared from bf16 values on a CPU with AVX512-BF16 — in-place
//! reads of a CPU tensor's elements, and the f32 working copies of 16-bit storage.
//!
//! bf16 and f16 tensors are computed in f32 from their exact values, and a result is rounded
//! back once where the 16-bit composite path would keep it (what candle's own 16-bit ops do
//! element by element, and PyTorch's CPU kernels and autocast do), so reductions accumulate in
//! f32. bf16 is rounded and widened on the bits ([`bf16_bits`], compiled for AVX-512/AVX2 at run
//! time); f16 by `half`'s slice routines (F16C where the CPU has it).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout, Tensor, WithDType};
use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};
use rayon::prelude::*;

use super::dot_bf16;

/// A strided view of a matrix: element (i, j) at `data[i·rs + j·cs]`.
#[derive(Clone, Copy)]
pub(super) struct Mat<'a, T> {
    pub(super) data: &'a [T],
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) rs: usize,
    pub(super) cs: usize,
}

impl<'a, T> Mat<'a, T> {
    pub(super) fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self { data, rows, cols, rs: cols, cs: 1 }
    }
    pub(super) fn t(self) -> Self {
        Self { rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, ..self }
    }
    /// Whether every element the view names lies inside `data`.
    fn in_bounds(&self) -> bool {
        self.rows == 0 || self.cols == 0 || (self.rows - 1) * self.rs + (self.cols - 1) * self.cs < self.data.len()
    }
}

/// The right-hand operand of [`product`]: a view, and where its values are bf16 (`exact_in`)
/// and the CPU multiplies bf16 (`dot_bf16`), the same values packed for that product — prepared
/// once, it serves every product with it (each chunk of a batch, each thread).
pub(super) struct Rhs<'a, T> {
    view: Mat<'a, T>,
    packed: Option<dot_bf16::PackedColumns>,
}

impl<'a, T: Float> Rhs<'a, T> {
    /// `view` as an operand whose values are exact in `exact_in`.
    pub(super) fn new(view: Mat<'a, T>, exact_in: DType) -> Self {
        let packed = if exact_in == DType::BF16 { T::bf16_pack(view) } else { None };
        Self { view, packed }
    }
}

/// dst = lhs · rhs (or dst += lhs · rhs when `accumulate`), dst row-major (lhs.rows × rhs.cols);
/// single-threaded: the kernels parallelise over samples. A packed bf16 `rhs` multiplies on the
/// bf16 hardware (the same numbers up to summation order, lhs being bf16 too), else `gemm`.
pub(super) fn product<T: Float>(dst: &mut [T], lhs: Mat<T>, rhs: &Rhs<T>, accumulate: bool) {
    assert_eq!(dst.len(), lhs.rows * rhs.view.cols, "network kernel: matmul output size");
    // SAFETY: dst is a distinct &mut of the size the product writes
    unsafe { product_raw(dst.as_mut_ptr(), lhs, rhs, accumulate, 1) }
}

/// lhs · rhs as a new row-major vector, without first zero-filling it.
pub(super) fn product_new<T: Float>(lhs: Mat<T>, rhs: &Rhs<T>) -> Vec<T> {
    product_new_with(lhs, rhs, 1)
}

/// [`product_new`] on all of rayon's threads.
pub(super) fn product_new_parallel<T: Float>(lhs: Mat<T>, rhs: &Rhs<T>) -> Vec<T> {
    product_new_with(lhs, rhs, rayon::current_num_threads())
}

fn product_new_with<T: Float>(lhs: Mat<T>, rhs: &Rhs<T>, threads: usize) -> Vec<T> {
    let len = lhs.rows * rhs.view.cols;
    let mut dst = Vec::with_capacity(len);
    // SAFETY: with `accumulate` false the product writes every element of the rows × cols
    // output and reads none (k = 0 zero-fills), so all `len` elements are initialised before
    // `set_len`
    unsafe {
        product_raw(dst.as_mut_ptr(), lhs, rhs, false, threads);
        dst.set_len(len);
    }
    dst
}

/// The product into `dst`, which must be valid for lhs.rows × rhs.cols writes (and reads when
/// `accumulate`) and alias neither operand; on `threads` threads (split over blocks of rows on
/// the bf16 path, by `gemm` over rayon's pool otherwise).
unsafe fn product_raw<T: Float>(dst: *mut T, lhs: Mat<T>, rhs: &Rhs<T>, accumulate: bool, threads: usize) {
    let (rhs, packed) = (rhs.view, rhs.packed.as_ref());
    let (m, n, k) = (lhs.rows, rhs.cols, lhs.cols);
    assert!(rhs.rows == k && lhs.in_bounds() && rhs.in_bounds(), "network kernel: matmul shapes");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            std::ptr::write_bytes(dst, 0, m * n);
        }
        return;
    }
    if let Some(packed) = packed {
        let block = m.div_ceil(threads.max(1)).next_multiple_of(16);
        let dst = SendPtr(dst);
        let run = |i0: usize| {
            let rows = block.min(m - i0);
            let part = Mat { data: &lhs.data[i0 * lhs.rs..], rows, ..lhs };
            // SAFETY: the rows i0.. of dst are this task's alone; the caller vouches for dst
            unsafe { T::bf16_product(dst.at(i0 * n), part, packed, accumulate) };
        };
        if block >= m {
            run(0);
        } else {
            (0..m).step_by(block).collect::<Vec<_>>().into_par_iter().for_each(run);
        }
        return;
    }
    let parallelism = if threads > 1 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    // SAFETY: the assert keeps every index gemm forms inside lhs and rhs; the caller vouches
    // for dst
    gemm::gemm(
        m,
        n,
        k,
        dst,
        1,
        n as isize,
        accumulate,
        lhs.data.as_ptr(),
        lhs.cs as isize,
        lhs.rs as isize,
        rhs.data.as_ptr(),
        rhs.cs as isize,
        rhs.rs as isize,
        T::one(),
        T::one(),
        false,
        false,
        false,
        parallelism,
    )
}

/// `f` on the elements of a contiguous CPU tensor, read in place (no copy).
pub(super) fn with_cpu_slice<T: WithDType, R>(t: &Tensor, f: impl FnOnce(&[T]) -> candle_core::Result<R>) -> candle_core::Result<R> {
    let (storage, layout) = t.storage_and_layout();
    let (candle_core::Storage::Cpu(cpu), Some((start, end))) = (&*storage, layout.contiguous_offsets()) else {
        return Err(candle_core::Error::Msg("a fused kernel's backward needs contiguous CPU tensors".into()));
    };
    f(&T::cpu_storage_as_slice(cpu)?[start..end])
}

/// The f32 values of a contiguous f32, bf16 or f16 storage.
pub(super) fn to_f32(s: &CpuStorage, l: &Layout) -> candle_core::Result<Vec<f32>> {
    let (start, end) = l.contiguous_offsets().ok_or_else(|| candle_core::Error::Msg("a fused kernel needs contiguous inputs".into()))?;
    let mut out = vec![0f32; end - start];
    match s {
        // exact: a bf16 is the top half of its f32
        CpuStorage::BF16(x) => {
            vectorised(|| out.iter_mut().zip(&x[start..end]).for_each(|(o, v)| *o = f32::from_bits(u32::from(v.to_bits()) << 16)))
        }
        CpuStorage::F16(x) => x[start..end].convert_to_f32_slice(&mut out),
        CpuStorage::F32(x) => out.copy_from_slice(&x[start..end]),
        other => return Err(candle_core::Error::Msg(format!("a fused kernel takes f32, bf16 or f16 here, not {:?}", other.dtype()))),
    }
    Ok(out)
}

/// The f32 values of a CPU tensor of one of those dtypes (copied, widened).
pub(super) fn tensor_to_f32(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => to_f32(cpu, layout),
        _ => Err(candle_core::Error::Msg("a fused kernel's backward needs CPU tensors".into())),
    }
}

/// f32 values as storage of `dtype` (f32, bf16 or f16), each rounded to nearest.
pub(super) fn from_f32(x: &[f32], dtype: DType) -> candle_core::Result<CpuStorage> {
    Ok(match dtype {
        DType::F32 => CpuStorage::F32(x.to_vec()),
        // round to nearest even on the bits, NaN kept quiet: a loop that vectorises
        DType::BF16 => CpuStorage::BF16(vectorised(|| x.iter().map(|&v| bf16::from_bits(bf16_bits(v))).collect())),
        DType::F16 => {
            let mut out = vec![f16::ZERO; x.len()];
            out.convert_from_f32_slice(x);
            CpuStorage::F16(out)
        }
        other => return Err(candle_core::Error::Msg(format!("a fused kernel returns f32, bf16 or f16, not {other:?}"))),
    })
}

/// The ranges of samples a batch's work is split into: one per rayon thread, or a single one
/// when the work (`macs` multiply-adds) is too small to pay for the split.
pub(super) fn sample_chunks(batch: usize, macs: usize) -> Vec<std::ops::Range<usize>> {
    let n = if macs < 1 << 20 { 1 } else { rayon::current_num_threads().clamp(1, batch.max(1)) };
    let size = batch.div_ceil(n).max(1);
    (0..batch).step_by(size).map(|s| s..(s + size).min(batch)).collect()
}

/// A pointer that crosses threads: each task writes its own rows.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: the tasks that share one write disjoint elements
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    fn at(self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
}

/// f32 or f64 as the kernels compute in, with the rounding a storage dtype asks for.
pub(super) trait Float: WithDType + std::ops::AddAssign + std::ops::MulAssign {
    /// Rounds every element to `storage`'s precision (a no-op when storage is this type).
    fn round(x: &mut [Self], storage: DType);
    /// `rhs` packed for the bf16 hardware product (`None` for f64, or without the hardware).
    fn bf16_pack(rhs: Mat<Self>) -> Option<dot_bf16::PackedColumns>;
    /// [`dot_bf16::product`] for an operand [`Self::bf16_pack`] packed.
    ///
    /// # Safety
    /// As [`dot_bf16::product`]'s.
    unsafe fn bf16_product(dst: *mut Self, lhs: Mat<Self>, rhs: &dot_bf16::PackedColumns, accumulate: bool);
}

impl Float for f32 {
    fn round(x: &mut [f32], storage: DType) {
        round_to(x, storage)
    }
    fn bf16_pack(rhs: Mat<f32>) -> Option<dot_bf16::PackedColumns> {
        dot_bf16::PackedColumns::new(rhs)
    }
    unsafe fn bf16_product(dst: *mut f32, lhs: Mat<f32>, rhs: &dot_bf16::PackedColumns, accumulate: bool) {
        dot_bf16::product(dst, lhs, rhs, accumulate)
    }
}

impl Float for f64 {
    fn round(_: &mut [f64], _: DType) {}
    fn bf16_pack(_: Mat<f64>) -> Option<dot_bf16::PackedColumns> {
        None
    }
    unsafe fn bf16_product(_: *mut f64, _: Mat<f64>, _: &dot_bf16::PackedColumns, _: bool) {
        unreachable!("f64 operands are never packed for the bf16 product")
    }
}

/// f32 values as a CPU tensor of `dtype` (f32, bf16 or f16), narrowed by [`from_f32`].
pub(super) fn f32_to_tensor(x: &[f32], shape: &candle_core::Shape, dtype: DType) -> candle_core::Result<Tensor> {
    let device = candle_core::Device::Cpu;
    match from_f32(x, dtype)? {
        CpuStorage::F32(v) => Tensor::from_vec(v, shape, &device),
        CpuStorage::BF16(v) => Tensor::from_vec(v, shape, &device),
        CpuStorage::F16(v) => Tensor::from_vec(v, shape, &device),
        other => Err(candle_core::Error::Msg(format!("a fused kernel returns f32, bf16 or f16, not {:?}", other.dtype()))),
    }
}

/// f32 → bf16 bits, rounded to nearest even (NaN kept, made quiet), by integer steps that
/// vectorise.
#[inline(always)]
pub(super) fn bf16_bits(v: f32) -> u16 {
    let b = v.to_bits();
    let rounded = (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16;
    if v.is_nan() {
        ((b >> 16) as u16) | 0x40
    } else {
        rounded
    }
}

/// Runs `f` compiled for the widest vector unit the CPU has (AVX-512, AVX2 or the baseline), for
/// plain loops the compiler vectorises: the crate is built for baseline x86-64, whose SSE2 loops
/// are a quarter as wide.
#[inline(always)]
fn vectorised<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512bw")]
        unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        use std::arch::is_x86_feature_detected as has;
        if has!("avx512f") && has!("avx512bw") {
            // SAFETY: the features the function is compiled for were detected
            return unsafe { avx512(f) };
        }
        if has!("avx2") {
            // SAFETY: as above
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// Rounds f32 values in place to `storage`'s precision (a no-op for f32): bf16 by round to
/// nearest even on the bits (NaN kept; [`vectorised`]), f16 through `half`'s slice conversions a
/// block at a time.
pub(super) fn round_to(x: &mut [f32], storage: DType) {
    match storage {
        DType::BF16 => vectorised(|| x.iter_mut().for_each(|v| *v = f32::from_bits(u32::from(bf16_bits(*v)) << 16))),
        DType::F16 => {
            let mut block = [f16::ZERO; 256];
            for chunk in x.chunks_mut(256) {
                let b = &mut block[..chunk.len()];
                b.convert_from_f32_slice(chunk);
                b.convert_to_f32_slice(chunk);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use candle_core::DType;

    /// [`super::round_to`] equals `half`'s conversion there and back, on every 251st f32 bit
    /// pattern (ties, subnormals, overflow to ∞ and NaN included).
    #[test]
    fn rounding_to_16_bits_matches_half() {
        let xs: Vec<f32> =
            (0..=u32::MAX).step_by(251).map(f32::from_bits).chain([f32::MAX, 65519.0, 65520.0, 1.0 + 2f32.powi(-8)]).collect();
        for dtype in [DType::BF16, DType::F16] {
            let mut ours = xs.clone();
            super::round_to(&mut ours, dtype);
            for (&x, &r) in xs.iter().zip(&ours) {
                let want = if dtype == DType::BF16 { half::bf16::from_f32(x).to_f32() } else { half::f16::from_f32(x).to_f32() };
                assert!(r.to_bits() == want.to_bits() || (r.is_nan() && want.is_nan()), "{dtype:?}: {x:e} → {r:e}, half {want:e}");
            }
        }
    }
}
