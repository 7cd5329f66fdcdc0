//! The Jacobian part of OT-Flow's exact Laplacian (Onken, Wu Fung, Li, Ruthotto, "OT-Flow: Fast
//! and Accurate Continuous Normalizing Flows via Optimal Transport", §3) as one custom op with a
//! hand-written backward.
//!
//! For a ResNet u_i = u_{i−1} + h σ(K_i u_{i−1} + b_i) the trace recursion carries, per sample,
//! the Jacobian J_i = ∂u_{i−1}/∂x (m × d):
//!
//! J₁ = diag(σ'₀) K₀ᴱ,  P_i = K_i J_i,  T = h Σ_{i≥1} Σ_j c_{i,j} ‖(P_i)_j‖²,
//! J_{i+1} = J_i + h diag(σ'_i) P_i,
//!
//! with c_i = σ''(pre_i) ⊙ z_{i+1} the per-sample coefficients. Done as candle ops, each step is
//! a matmul plus half a dozen passes over (m, B, d) tensors, and as many gradient buffers in the
//! backward; here it is one matmul per layer and one pass. The reverse sweep, with G = ∂T:
//!
//! P̂_i = 2hG c_i ⊙ P_i + h σ'_i ⊙ Ĵ_{i+1},  ĉ_i = hG ‖(P_i)_j‖²,  σ̂'_i = h Σ_k Ĵ_{i+1} ⊙ P_i,
//! K̂_i = Σ_b P̂_i J_iᵀ,  Ĵ_i = Ĵ_{i+1} + K_iᵀ P̂_i,  then σ̂'₀ and K̂₀ᴱ from Ĵ₁.
//!
//! Storage in bf16 or f16 is computed in f32 from its exact values, rounded where the 16-bit
//! composite rounds a tensor it keeps — J₁, each P_i, each J_{i+1}, and T, and in the reverse
//! sweep each P̂_i — while the squares, the sums over k and j and Ĵ accumulate in f32 (the high
//! precision of the mixed-precision rule). With bf16 every matrix product's operands are then
//! bf16 values, and they run on AVX512-BF16 where the CPU has it (`dot_bf16`).

use super::dense::{f32_to_tensor, from_f32, product, product_new, sample_chunks, tensor_to_f32, to_f32, with_cpu_slice, Float, Mat, Rhs};
use super::fused;
use crate::error::Result;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::any::Any;
use std::ops::Range;
use std::sync::Mutex;

/// h Σ_{i≥1} t_i of the module docs, shape (B, 1), for K₀ᴱ (`k0x`, (m, d)), K₁ … K_{M−1}
/// (`k`, each (m, m)), σ'₀ … σ'_{M−2} (`d1`, each (B, m)) and c₁ … c_{M−1} (`coef`, each (B, m)).
/// `None` where the kernel does not apply (kernels switched off, CUDA, mixed dtypes, shapes
/// outside the form) and the caller takes the composite path.
pub fn resnet_trace(k0x: &Tensor, k: &[Tensor], d1: &[Tensor], coef: &[Tensor], h: f64) -> Result<Option<Tensor>> {
    let dtype = k0x.dtype();
    let all = std::iter::once(k0x).chain(k).chain(d1).chain(coef);
    let applies = fused()
        && matches!(dtype, DType::F32 | DType::F64 | DType::BF16 | DType::F16)
        && all.clone().all(|t| t.device().is_cpu() && t.dtype() == dtype);
    let (Ok((m, d)), Some(first)) = (k0x.dims2(), coef.first()) else { return Ok(None) };
    let Ok((batch, _)) = first.dims2() else { return Ok(None) };
    let shapes_fit = !k.is_empty()
        && d1.len() == k.len()
        && coef.len() == k.len()
        && k.iter().all(|t| t.dims() == [m, m])
        && d1.iter().chain(coef).all(|t| t.dims() == [batch, m]);
    if !applies || !shapes_fit || batch == 0 || m == 0 || d == 0 {
        return Ok(None);
    }
    let mut theta = vec![k0x.flatten_all()?];
    theta.extend(k.iter().map(|t| t.flatten_all()).collect::<candle_core::Result<Vec<_>>>()?);
    let theta = Tensor::cat(&theta, 0)?;
    let rows = Tensor::cat(&d1.iter().chain(coef).collect::<Vec<_>>(), 1)?;
    let save = rows.track_op() || theta.track_op();
    let op = TraceOp { m, d, layers: k.len(), batch, h, save, saved: Mutex::new(None) };
    Ok(Some(rows.apply_op2(&theta, op)?))
}

/// The op on (rows [σ'₀ … σ'_{M−2}, c₁ … c_{M−1}] of shape (B, 2(M−1)m), θ = [K₀ᴱ, K₁ … K_{M−1}]).
struct TraceOp {
    m: usize,
    d: usize,
    /// M − 1: the layers after the opening one.
    layers: usize,
    batch: usize,
    h: f64,
    save: bool,
    saved: Mutex<Option<Box<dyn Any + Send>>>,
}

/// One chunk of samples' record: J_i and P_i for i = 1 … M−1, each (m, n·d) with column b·d + k
/// for sample b of the chunk.
struct ChunkSaved<T> {
    samples: Range<usize>,
    jac: Vec<Vec<T>>,
    p: Vec<Vec<T>>,
}

impl TraceOp {
    fn theta_len(&self) -> usize {
        self.m * self.d + self.layers * self.m * self.m
    }

    fn chunks(&self) -> Vec<Range<usize>> {
        sample_chunks(self.batch, self.batch * self.d * self.m * self.m * self.layers)
    }

    /// Row `b` (global) of block `q` of the rows input: σ'_q for q < M−1, c_{q−M+2} after.
    fn row<'a, T>(&self, rows: &'a [T], q: usize, b: usize) -> &'a [T] {
        let width = 2 * self.layers * self.m;
        &rows[b * width + q * self.m..b * width + (q + 1) * self.m]
    }

    /// Σ_k P[j, b·d + k]² for every j, b of the chunk, as [j][b].
    fn row_squares<T: Float>(&self, p: &[T], nb: usize) -> Vec<T> {
        debug_assert_eq!(p.len(), self.m * nb * self.d);
        p.chunks_exact(self.d).map(|r| r.iter().fold(T::zero(), |acc, &v| acc + v * v)).collect()
    }

    fn chunk_forward<T: Float>(&self, rows: &[T], theta: &[T], samples: Range<usize>, storage: DType) -> (Vec<T>, Option<ChunkSaved<T>>) {
        let (m, d, nb) = (self.m, self.d, samples.len());
        let (n, h) = (nb * d, T::from_f64(self.h));
        let k0x = &theta[..m * d];
        // J₁[j, b·d + k] = σ'₀[b, j] K₀ᴱ[j, k]
        let mut jac = vec![T::zero(); m * n];
        for (j, (jr, kr)) in jac.chunks_exact_mut(n).zip(k0x.chunks_exact(d)).enumerate() {
            for (bl, out) in jr.chunks_exact_mut(d).enumerate() {
                let s = self.row(rows, 0, samples.start + bl)[j];
                out.iter_mut().zip(kr).for_each(|(o, &kv)| *o = s * kv);
            }
        }
        T::round(&mut jac, storage);
        let mut t = vec![T::zero(); nb];
        let (mut saved_j, mut saved_p) = (Vec::new(), Vec::new());
        for i in 1..=self.layers {
            let ki = &theta[m * d + (i - 1) * m * m..m * d + i * m * m];
            let mut p = product_new(Mat::row_major(ki, m, m), &Rhs::new(Mat::row_major(&jac, m, n), storage));
            T::round(&mut p, storage);
            let squares = self.row_squares(&p, nb);
            let mut ti = vec![T::zero(); nb];
            for (j, sq) in squares.chunks_exact(nb).enumerate() {
                for (bl, &s) in sq.iter().enumerate() {
                    ti[bl] += self.row(rows, self.layers - 1 + i, samples.start + bl)[j] * s;
                }
            }
            t.iter_mut().zip(&ti).for_each(|(t, &v)| *t += h * v);
            let next = (i < self.layers).then(|| {
                // J_{i+1} = J_i + h diag(σ'_i) P_i
                let mut nj = jac.clone();
                for (j, (nr, pr)) in nj.chunks_exact_mut(n).zip(p.chunks_exact(n)).enumerate() {
                    for (bl, (o, pv)) in nr.chunks_exact_mut(d).zip(pr.chunks_exact(d)).enumerate() {
                        let s = h * self.row(rows, i, samples.start + bl)[j];
                        o.iter_mut().zip(pv).for_each(|(o, &pv)| *o += s * pv);
                    }
                }
                T::round(&mut nj, storage);
                nj
            });
            if self.save {
                saved_p.push(p);
            }
            // J_i is kept for the backward (moved, not copied) and J_{i+1} takes its place
            match (next, self.save) {
                (Some(nj), true) => saved_j.push(std::mem::replace(&mut jac, nj)),
                (None, true) => saved_j.push(std::mem::take(&mut jac)),
                (Some(nj), false) => jac = nj,
                (None, false) => {}
            }
        }
        T::round(&mut t, storage);
        (t, self.save.then_some(ChunkSaved { samples, jac: saved_j, p: saved_p }))
    }

    fn forward<T: Float>(&self, rows: &[T], theta: &[T], storage: DType) -> Vec<T> {
        let results: Vec<_> = self.chunks().into_par_iter().map(|s| self.chunk_forward(rows, theta, s, storage)).collect();
        let mut out = Vec::with_capacity(self.batch);
        let mut saved = Vec::new();
        for (t, record) in results {
            out.extend(t);
            saved.extend(record);
        }
        if self.save {
            *self.saved.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(saved));
        }
        out
    }

    /// One chunk's reverse sweep: (its rows' gradient, (B_chunk, 2(M−1)m); its θ-gradient).
    fn chunk_backward<T: Float>(&self, rows: &[T], theta: &[T], grad: &[T], rec: &ChunkSaved<T>, storage: DType) -> (Vec<T>, Vec<T>) {
        let (m, d, nb, samples) = (self.m, self.d, rec.samples.len(), &rec.samples);
        let (n, h, two) = (nb * d, T::from_f64(self.h), T::from_f64(2.0));
        let width = 2 * self.layers * m;
        let mut grad_rows = vec![T::zero(); nb * width];
        let mut grad_theta = vec![T::zero(); self.theta_len()];
        let mut jac_bar: Option<Vec<T>> = None;
        for i in (1..=self.layers).rev() {
            let (p, jac) = (&rec.p[i - 1], &rec.jac[i - 1]);
            let squares = self.row_squares(p, nb);
            let coef_q = self.layers - 1 + i;
            // P̂ = 2hG c ⊙ P (+ h σ'_i ⊙ Ĵ_{i+1}); ĉ = hG‖P_j‖²; σ̂'_i = h Σ_k Ĵ_{i+1} ⊙ P
            let mut p_bar = vec![T::zero(); m * n];
            for j in 0..m {
                for bl in 0..nb {
                    let b = samples.start + bl;
                    let g = grad[b];
                    let cols = j * n + bl * d..j * n + (bl + 1) * d;
                    let c = self.row(rows, coef_q, b)[j];
                    grad_rows[bl * width + coef_q * m + j] = h * g * squares[j * nb + bl];
                    let f = two * h * g * c;
                    p_bar[cols.clone()].iter_mut().zip(&p[cols.clone()]).for_each(|(o, &pv)| *o = f * pv);
                    if let Some(jb) = &jac_bar {
                        let s = h * self.row(rows, i, b)[j];
                        let mut acc = T::zero();
                        for ((o, &jv), &pv) in p_bar[cols.clone()].iter_mut().zip(&jb[cols.clone()]).zip(&p[cols]) {
                            *o += s * jv;
                            acc += jv * pv;
                        }
                        grad_rows[bl * width + i * m + j] = h * acc;
                    }
                }
            }
            // K̂_i = P̂ Jᵀ; Ĵ_i = Ĵ_{i+1} + K_iᵀ P̂, with P̂ rounded to the storage precision as
            // the 16-bit composite path keeps it (Ĵ accumulates in f32)
            T::round(&mut p_bar, storage);
            let at = m * d + (i - 1) * m * m;
            let pb = Mat::row_major(&p_bar, m, n);
            product(&mut grad_theta[at..at + m * m], pb, &Rhs::new(Mat::row_major(jac, m, n).t(), storage), false);
            let ki = Mat::row_major(&theta[at..at + m * m], m, m);
            jac_bar = Some(match jac_bar {
                Some(mut jb) => {
                    product(&mut jb, ki.t(), &Rhs::new(pb, storage), true);
                    jb
                }
                None => product_new(ki.t(), &Rhs::new(pb, storage)),
            });
        }
        // J₁ = diag(σ'₀) K₀ᴱ: σ̂'₀[b, j] = Σ_k Ĵ₁[j, b, k] K₀ᴱ[j, k], K̂₀ᴱ[j, k] = Σ_b Ĵ₁[j, b, k] σ'₀[b, j]
        let jb = jac_bar.expect("at least one layer");
        let k0x = &theta[..m * d];
        for j in 0..m {
            let kr = &k0x[j * d..(j + 1) * d];
            for bl in 0..nb {
                let cols = &jb[j * n + bl * d..j * n + (bl + 1) * d];
                grad_rows[bl * width + j] = cols.iter().zip(kr).fold(T::zero(), |acc, (&a, &b)| acc + a * b);
                let s = self.row(rows, 0, samples.start + bl)[j];
                grad_theta[j * d..(j + 1) * d].iter_mut().zip(cols).for_each(|(o, &a)| *o += s * a);
            }
        }
        T::round(&mut grad_rows, storage);
        (grad_rows, grad_theta)
    }

    fn backward<T: Float>(&self, rows: &[T], theta: &[T], grad: &[T], storage: DType) -> candle_core::Result<(Vec<T>, Vec<T>)> {
        let guard = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        let chunks = guard
            .as_ref()
            .and_then(|b| b.downcast_ref::<Vec<ChunkSaved<T>>>())
            .ok_or_else(|| candle_core::Error::Msg(format!("{}: backward without a forward record", self.name())))?;
        let parts: Vec<_> = chunks.par_iter().map(|c| self.chunk_backward(rows, theta, grad, c, storage)).collect();
        let mut grad_rows = Vec::with_capacity(rows.len());
        let mut grad_theta: Option<Vec<T>> = None;
        for (gr, gt) in parts {
            grad_rows.extend(gr);
            match grad_theta.as_mut() {
                Some(sum) => sum.iter_mut().zip(gt).for_each(|(o, g)| *o += g),
                None => grad_theta = Some(gt),
            }
        }
        let mut grad_theta = grad_theta.unwrap_or_else(|| vec![T::zero(); theta.len()]);
        T::round(&mut grad_theta, storage);
        Ok((grad_rows, grad_theta))
    }

    fn check(&self, rl: &Layout, tl: &Layout) -> candle_core::Result<()> {
        let want = (self.batch, 2 * self.layers * self.m);
        if rl.shape().dims2()? != want || tl.shape().elem_count() != self.theta_len() || !rl.is_contiguous() || !tl.is_contiguous() {
            return Err(candle_core::Error::Msg(format!(
                "{}: rows {:?} / θ {:?}, expected {want:?} / {} contiguous",
                self.name(),
                rl.shape().dims(),
                tl.shape().dims(),
                self.theta_len()
            )));
        }
        Ok(())
    }
}

impl CustomOp2 for TraceOp {
    fn name(&self) -> &'static str {
        "continuum-resnet-trace"
    }

    fn cpu_fwd(&self, rs: &CpuStorage, rl: &Layout, ts: &CpuStorage, tl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.check(rl, tl)?;
        let shape = Shape::from((self.batch, 1));
        let out = match (rs, ts) {
            (CpuStorage::F64(r), CpuStorage::F64(t)) => {
                let (r, t) = (&r[rl.start_offset()..], &t[tl.start_offset()..]);
                CpuStorage::F64(self.forward(&r[..rl.shape().elem_count()], &t[..tl.shape().elem_count()], DType::F64))
            }
            (r, t) if r.dtype() == t.dtype() => {
                let storage = r.dtype();
                from_f32(&self.forward(&to_f32(r, rl)?, &to_f32(t, tl)?, storage), storage)?
            }
            _ => return Err(candle_core::Error::Msg(format!("{}: rows and θ of one dtype", self.name()))),
        };
        Ok((out, shape))
    }

    /// The reverse sweep of the module docs (first-order: the gradients are plain tensors).
    fn bwd(&self, rows: &Tensor, theta: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let storage = rows.dtype();
        let grad = grad.contiguous()?;
        let (gr, gt) = if storage == DType::F64 {
            let (gr, gt) = with_cpu_slice(rows, |r: &[f64]| {
                with_cpu_slice(theta, |t: &[f64]| with_cpu_slice(&grad, |g: &[f64]| self.backward(r, t, g, storage)))
            })?;
            (Tensor::from_vec(gr, rows.shape(), rows.device())?, Tensor::from_vec(gt, theta.shape(), theta.device())?)
        } else {
            let (gr, gt) = self.backward(&tensor_to_f32(rows)?, &tensor_to_f32(theta)?, &tensor_to_f32(&grad)?, storage)?;
            (f32_to_tensor(&gr, rows.shape(), storage)?, f32_to_tensor(&gt, theta.shape(), storage)?)
        };
        Ok((Some(gr), Some(gt)))
    }
}
