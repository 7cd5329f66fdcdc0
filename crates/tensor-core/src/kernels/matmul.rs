//! Matrix products of 16-bit CPU tensors with f32 accumulation, rounded once — the numbers
//! candle's 16-bit matmul gives (it widens, multiplies and rounds too) up to summation order,
//! and autocast's 16-bit matmul: bf16 on AVX512-BF16 where the CPU has it (`dot_bf16`), else (and
//! for f16) the f32 product of the exact values by `gemm` over rayon's pool, with vectorised
//! conversions — candle converts element by element, which takes longer than the f32 product
//! itself for a 1024 × 1024 bf16 matmul on this project's CPUs.

use super::dense::{from_f32, product_new_parallel, to_f32, Mat, Rhs};
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor};

/// a · b for a (m, k) and b (k, n), as a candle op: forward as in the module docs, backward
/// ∂a = g bᵀ and ∂b = aᵀ g by the same op.
pub(super) struct Matmul16;

/// The f32 values of the elements a strided 2-D layout covers, with the view's row and column
/// strides into them.
fn widened(s: &CpuStorage, l: &Layout) -> candle_core::Result<(Vec<f32>, usize, usize, usize, usize)> {
    let (rows, cols) = l.shape().dims2()?;
    let (rs, cs) = (l.stride()[0], l.stride()[1]);
    let start = l.start_offset();
    let span = if rows == 0 || cols == 0 { 0 } else { (rows - 1) * rs + (cols - 1) * cs + 1 };
    let values = to_f32(s, &Layout::contiguous_with_offset(span, start))?;
    Ok((values, rows, cols, rs, cs))
}

impl CustomOp2 for Matmul16 {
    fn name(&self) -> &'static str {
        "continuum-matmul-16bit"
    }

    fn cpu_fwd(&self, a: &CpuStorage, al: &Layout, b: &CpuStorage, bl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (av, m, k, ars, acs) = widened(a, al)?;
        let (bv, k2, n, brs, bcs) = widened(b, bl)?;
        if k != k2 || a.dtype() != b.dtype() {
            return Err(candle_core::Error::Msg(format!("{}: ({m}, {k}) {:?} times ({k2}, {n}) {:?}", self.name(), a.dtype(), b.dtype())));
        }
        let lhs = Mat { data: &av, rows: m, cols: k, rs: ars, cs: acs };
        let rhs = Mat { data: &bv, rows: k, cols: n, rs: brs, cs: bcs };
        Ok((from_f32(&product_new_parallel(lhs, &Rhs::new(rhs, a.dtype())), a.dtype())?, Shape::from((m, n))))
    }

    fn bwd(&self, a: &Tensor, b: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_a = grad.apply_op2(&b.t()?, Matmul16)?;
        let grad_b = a.t()?.apply_op2(grad, Matmul16)?;
        Ok((Some(grad_a), Some(grad_b)))
    }
}
