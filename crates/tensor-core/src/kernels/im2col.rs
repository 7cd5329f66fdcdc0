//! im2col for a 3×3 kernel with zero padding 1 on channels-last images, and its adjoint col2im:
//! the copy that turns a convolution into one matrix product. Composed from candle ops
//! (two pads, nine strided narrows, a concatenation) it costs more than the product itself — a
//! strided copy element by element; here it is one pass of C-element block copies per image,
//! images in parallel. Any float dtype (it only copies and, for col2im, adds).

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Work below this many output elements stays on the calling thread.
const PARALLEL_ELEMENTS: usize = 1 << 16;

/// The offset (δy, δx) ∈ {−1, 0, 1}² of kernel entry o = 3(δy + 1) + (δx + 1), negated when
/// `mirrored` (the adjoint reads the neighbourhood point-reflected).
fn offset(o: usize, mirrored: bool) -> (isize, isize) {
    let (dy, dx) = ((o / 3) as isize - 1, (o % 3) as isize - 1);
    if mirrored {
        (-dy, -dx)
    } else {
        (dy, dx)
    }
}

/// Columns of one image: row (i, j), block o holds x[i + δy, j + δx, :] or zeros.
fn image_columns<T: Copy>(x: &[T], out: &mut [T], (h, w, c): (usize, usize, usize), mirrored: bool) {
    for i in 0..h {
        for j in 0..w {
            let row = &mut out[(i * w + j) * 9 * c..(i * w + j + 1) * 9 * c];
            for o in 0..9 {
                let (dy, dx) = offset(o, mirrored);
                let (si, sj) = (i as isize + dy, j as isize + dx);
                if si >= 0 && sj >= 0 && (si as usize) < h && (sj as usize) < w {
                    let from = (si as usize * w + sj as usize) * c;
                    row[o * c..(o + 1) * c].copy_from_slice(&x[from..from + c]);
                }
            }
        }
    }
}

/// The adjoint for one image: x̄[i + δy, j + δx, :] += g[(i, j), block o].
fn image_accumulate<T: Copy + std::ops::AddAssign>(g: &[T], out: &mut [T], (h, w, c): (usize, usize, usize), mirrored: bool) {
    for i in 0..h {
        for j in 0..w {
            let row = &g[(i * w + j) * 9 * c..(i * w + j + 1) * 9 * c];
            for o in 0..9 {
                let (dy, dx) = offset(o, mirrored);
                let (si, sj) = (i as isize + dy, j as isize + dx);
                if si >= 0 && sj >= 0 && (si as usize) < h && (sj as usize) < w {
                    let to = (si as usize * w + sj as usize) * c;
                    for (t, v) in out[to..to + c].iter_mut().zip(&row[o * c..(o + 1) * c]) {
                        *t += *v;
                    }
                }
            }
        }
    }
}

fn im2col<T: Copy + Default + Send + Sync>(x: &[T], dims: (usize, usize, usize), mirrored: bool) -> Vec<T> {
    let (h, w, c) = dims;
    let (image_in, image_out) = (h * w * c, h * w * 9 * c);
    let mut out = vec![T::default(); x.len() * 9];
    if out.len() >= PARALLEL_ELEMENTS {
        out.par_chunks_mut(image_out).zip(x.par_chunks(image_in)).for_each(|(o, x)| image_columns(x, o, dims, mirrored));
    } else {
        out.chunks_mut(image_out).zip(x.chunks(image_in)).for_each(|(o, x)| image_columns(x, o, dims, mirrored));
    }
    out
}

fn col2im<T: Copy + Default + Send + Sync + std::ops::AddAssign>(g: &[T], dims: (usize, usize, usize), mirrored: bool) -> Vec<T> {
    let (h, w, c) = dims;
    let (image_in, image_out) = (h * w * 9 * c, h * w * c);
    let mut out = vec![T::default(); g.len() / 9];
    if g.len() >= PARALLEL_ELEMENTS {
        out.par_chunks_mut(image_out).zip(g.par_chunks(image_in)).for_each(|(o, g)| image_accumulate(g, o, dims, mirrored));
    } else {
        out.chunks_mut(image_out).zip(g.chunks(image_in)).for_each(|(o, g)| image_accumulate(g, o, dims, mirrored));
    }
    out
}

/// Applies `$f` to the contiguous slice of any float storage.
macro_rules! on_floats {
    ($name:expr, $storage:expr, $layout:expr, $f:ident, $($arg:expr),*) => {
        match $storage {
            CpuStorage::F32(x) => CpuStorage::F32($f(super::contiguous_slice(x, $layout, $name)?, $($arg),*)),
            CpuStorage::F64(x) => CpuStorage::F64($f(super::contiguous_slice(x, $layout, $name)?, $($arg),*)),
            CpuStorage::BF16(x) => CpuStorage::BF16($f(super::contiguous_slice(x, $layout, $name)?, $($arg),*)),
            CpuStorage::F16(x) => CpuStorage::F16($f(super::contiguous_slice(x, $layout, $name)?, $($arg),*)),
            _ => return Err(candle_core::Error::Msg(format!("{}: float tensors only", $name))),
        }
    };
}

/// (B, H, W, C) → (B·H·W, 9·C) columns of a 3×3 kernel (see [`crate::nets::conv`]).
pub(super) struct Im2Col {
    pub mirrored: bool,
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "continuum-im2col-3x3"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, h, w, c) = layout.shape().dims4()?;
        let out = on_floats!(self.name(), storage, layout, im2col, (h, w, c), self.mirrored);
        Ok((out, Shape::from((b * h * w, 9 * c))))
    }

    /// ∂x = col2im(∂columns): each copied entry sends its gradient back to its source.
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let (_, h, w, c) = arg.dims4()?;
        Ok(Some(grad.contiguous()?.apply_op1(Col2Im { mirrored: self.mirrored, dims: (h, w, c) })?.reshape(arg.shape())?))
    }
}

/// The adjoint of [`Im2Col`]: (B·H·W, 9·C) → (B, H, W, C), summing every block into its source.
pub(super) struct Col2Im {
    pub mirrored: bool,
    /// (H, W, C) of the images.
    pub dims: (usize, usize, usize),
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "continuum-col2im-3x3"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (h, w, c) = self.dims;
        let (rows, cols) = layout.shape().dims2()?;
        if cols != 9 * c || rows % (h * w) != 0 {
            return Err(candle_core::Error::Msg(format!("{}: a ({rows}, {cols}) gradient for {h}×{w}×{c} images", self.name())));
        }
        let out = on_floats!(self.name(), storage, layout, col2im, self.dims, self.mirrored);
        Ok((out, Shape::from((rows / (h * w), h, w, c))))
    }

    /// The adjoint of the adjoint: im2col of the incoming gradient.
    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1(Im2Col { mirrored: self.mirrored })?))
    }
}
