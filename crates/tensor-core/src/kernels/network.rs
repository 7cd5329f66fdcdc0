//! A whole network's value and K tangents in one custom op, with a hand-written backward.
//!
//! Every layer of the time networks can be written z = (a Wᵀ) ⊙ s + c, where W is a matrix and
//! the rows s (a scale) and c (a shift) hold everything that depends on t (FFJORD's concat-squash
//! gate and hyper-bias, the MLP's time column and bias, the hypernetwork's W(t) and b(t)); they
//! have one row for a time shared by the batch, or one per sample. The forward pass of a stack
//! of such layers with σ between them, carrying K tangents ȧ along (ż = (ȧ Wᵀ) ⊙ s, ȧ' = σ'(z) ⊙ ż),
//! is then one matmul per layer on the rows [a; ȧ] and a few elementwise passes. Its reverse is
//!
//! - ∂W = ∂uᵀ [a; ȧ] and ∂[a; ȧ] = ∂u W, with ∂u = ∂[z; ż] ⊙ s (one matmul each),
//! - ∂s = Σ ∂[z; ż] ⊙ [a; ȧ] Wᵀ and ∂c = Σ ∂z (over the rows that share them),
//! - ∂z = ∂a' ⊙ σ'(z) + σ''(z) ⊙ Σₖ ∂ȧ'ₖ ⊙ żₖ and ∂żₖ = ∂ȧ'ₖ ⊙ σ'(z) through the activation.
//!
//! Done as candle ops, the same pass is about 15 graph nodes per layer, and candle's backward
//! zero-fills and adds a gradient buffer for every one of them (on a CNF's exact trace that
//! accumulation was a third of the step). Here the graph holds one node for the network; its
//! forward keeps [a; ȧ], aWᵀ, σ' and σ'' for the backward. The batch is split into one chunk of
//! samples per thread, each chunk running the whole network (matmuls single-threaded, by the
//! `gemm` crate that candle's matmul uses); the backward goes layer by layer, the chunks in
//! parallel, and each ∂W is accumulated over the chunks straight into the one θ-gradient, split
//! over blocks of W's rows. Buffers the matmuls overwrite are not zero-filled first, and ∂input
//! is skipped when the input is a constant.
//!
//! bf16 and f16 networks run the same code in f32 on the exact values of their weights and
//! inputs, rounding to the storage precision wherever the 16-bit layer-by-layer path keeps a
//! tensor (each matmul's output, z after its scale and after its shift, σ(z), σ'(z), σ''(z), the
//! tangents, and in the reverse pass ∂u, ∂[a; ȧ] and each parameter gradient once summed): the
//! matmuls accumulate in f32 as autocast's do, and the batch sums of ∂s and ∂W stay in f32 until
//! the end, where candle's 16-bit ops would round every partial sum.

use super::dense::{f32_to_tensor, from_f32, product, product_new, sample_chunks, tensor_to_f32, to_f32, with_cpu_slice, Float, Mat, Rhs};
use super::{fused, Elementwise};
use crate::activation::Activation;
use crate::error::Result;
use crate::kernels::selu::{SELU_ALPHA, SELU_LAMBDA};
use candle_core::{CpuStorage, CustomOp2, DType, Device, Layout, Shape, Tensor};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::Mutex;

/// One layer in the form the fused network runs: z = (a Wᵀ) ⊙ s + c.
#[derive(Clone, Debug)]
pub struct AffineForm {
    /// W, shape (out, in).
    pub weight: Tensor,
    /// s, shape (1, out) for a time shared by the batch or (B, out); `None` for s = 1.
    pub scale: Option<Tensor>,
    /// c, shape (1, out) or (B, out); `None` for c = 0.
    pub shift: Option<Tensor>,
}

/// (f(x), J·V) of the network whose layers are `forms`, with `activation` after every layer but
/// the last, for x of shape (B, d) and K tangent directions V of shape (B, K, d) (`None`: K = 0,
/// the value alone; J·V is then `None` too), as one graph node. `None` where the kernel does not
/// apply — fused kernels off, a tensor not f32/f64 on the CPU, or shapes outside the form — and
/// the caller takes the composite path.
pub fn network_tangents(
    forms: &[AffineForm],
    activation: Activation,
    x: &Tensor,
    v: Option<&Tensor>,
) -> Result<Option<(Tensor, Option<Tensor>)>> {
    let dtype = x.dtype();
    let mut tensors = vec![x];
    tensors.extend(v);
    for f in forms {
        tensors.push(&f.weight);
        tensors.extend(f.scale.as_ref());
        tensors.extend(f.shift.as_ref());
    }
    let applies = fused()
        && matches!(dtype, DType::F32 | DType::F64 | DType::BF16 | DType::F16)
        && tensors.iter().all(|t| t.device().is_cpu() && t.dtype() == dtype);
    let Ok((batch, d)) = x.dims2() else { return Ok(None) };
    let k = match v.map(|v| v.dims3()) {
        None => 0,
        Some(Ok((vb, k, vd))) if vb == batch && vd == d && k > 0 => k,
        Some(_) => return Ok(None),
    };
    if !applies || forms.is_empty() || batch == 0 {
        return Ok(None);
    }
    let mut pieces = Vec::new();
    let mut layers = Vec::new();
    let (mut offset, mut n_in) = (0, d);
    for f in forms {
        let Ok((n_out, w_in)) = f.weight.dims2() else { return Ok(None) };
        if w_in != n_in || n_out == 0 {
            return Ok(None);
        }
        let w = offset;
        pieces.push(f.weight.flatten_all()?);
        offset += n_out * n_in;
        let mut rows = [None, None];
        for (slot, t) in rows.iter_mut().zip([&f.scale, &f.shift]) {
            let Some(t) = t else { continue };
            let per_sample = match t.dims() {
                [1, m] if *m == n_out => false,
                [b, m] if *b == batch && *m == n_out => true,
                _ => return Ok(None),
            };
            *slot = Some(Rows { offset, per_sample });
            offset += t.elem_count();
            pieces.push(t.flatten_all()?);
        }
        let [scale, shift] = rows;
        layers.push(LayerSpec { n_in, n_out, w, scale, shift });
        n_in = n_out;
    }
    let theta = Tensor::cat(&pieces, 0)?;
    let input = match v {
        Some(v) => Tensor::cat(&[x, &v.reshape((batch * k, d))?], 0)?,
        None => x.contiguous()?,
    };
    let save = input.track_op() || theta.track_op();
    let op = NetworkOp { layers, activation, batch, k, theta_len: offset, storage: dtype, save, saved: Mutex::new(None) };
    let out = input.apply_op2(&theta, op)?;
    let f = out.narrow(0, 0, batch)?;
    let jv = match v {
        Some(_) => Some(out.narrow(0, batch, batch * k)?.reshape((batch, k, n_in))?),
        None => None,
    };
    Ok(Some((f, jv)))
}

/// Where a scale or shift lies in the flat parameter vector θ, and whether it has one row per
/// sample (else one row shared by the batch).
#[derive(Clone, Copy, Debug)]
struct Rows {
    offset: usize,
    per_sample: bool,
}

impl Rows {
    /// The row of sample `b` (global index), `m` wide.
    fn row<'a, T>(&self, theta: &'a [T], b: usize, m: usize) -> &'a [T] {
        let start = self.offset + if self.per_sample { b * m } else { 0 };
        &theta[start..start + m]
    }
}

/// One layer's place in θ: W (n_out × n_in, row-major) at `w`, then its scale and shift.
#[derive(Clone, Copy, Debug)]
struct LayerSpec {
    n_in: usize,
    n_out: usize,
    w: usize,
    scale: Option<Rows>,
    shift: Option<Rows>,
}

/// What one layer's forward keeps for the backward, for one chunk of samples: its input rows
/// [a; ȧ], u = [a; ȧ] Wᵀ, and σ'(z), σ''(z) of its value rows (hidden layers only).
struct LayerSaved<T> {
    input: Vec<T>,
    u: Vec<T>,
    d1: Vec<T>,
    d2: Vec<T>,
}

/// The forward's record of one chunk (a range of samples), layer by layer.
struct ChunkSaved<T> {
    samples: Range<usize>,
    layers: Vec<LayerSaved<T>>,
}

enum Saved {
    F32(Vec<ChunkSaved<f32>>),
    F64(Vec<ChunkSaved<f64>>),
}

/// The network as a candle op on (input rows [x; V], θ): output rows [f; J·V].
struct NetworkOp {
    layers: Vec<LayerSpec>,
    activation: Activation,
    batch: usize,
    k: usize,
    theta_len: usize,
    /// The tensors' dtype: bf16 and f16 are computed in f32 and rounded where the composite
    /// path keeps a tensor (the record itself is kept in f32).
    storage: DType,
    save: bool,
    saved: Mutex<Option<Saved>>,
}

/// f32 and f64 (with their rounding to the storage's precision), and their slice kernels.
trait Real: Float {
    fn kernel(op: Elementwise) -> fn(&[Self], &mut [Self]);
    fn wrap(chunks: Vec<ChunkSaved<Self>>) -> Saved;
    fn unwrap(saved: &Saved) -> Option<&[ChunkSaved<Self>]>;
}

/// The two impls differ only in which slice kernel and which record variant they name.
macro_rules! real {
    ($t:ty, $variant:ident, $kernel:tt) => {
        impl Real for $t {
            fn kernel(op: Elementwise) -> fn(&[$t], &mut [$t]) {
                op.kernels().$kernel
            }
            fn wrap(chunks: Vec<ChunkSaved<$t>>) -> Saved {
                Saved::$variant(chunks)
            }
            fn unwrap(saved: &Saved) -> Option<&[ChunkSaved<$t>]> {
                match saved {
                    Saved::$variant(c) => Some(c),
                    _ => None,
                }
            }
        }
    };
}

real!(f32, F32, 0);
real!(f64, F64, 1);

/// Elements per block of [`activate`]: its scratch lives on the stack and in L1.
const ACTIVATION_BLOCK: usize = 256;

/// σ(z) in place of z, with σ'(z) and σ''(z) written into `d1` and `d2` where they are asked
/// for (each as long as z), block by block.
fn activate<T: Real>(act: Activation, z: &mut [T], mut d1: Option<&mut [T]>, mut d2: Option<&mut [T]>) {
    let mut scratch = [[T::zero(); ACTIVATION_BLOCK]; 3];
    for (i, value) in z.chunks_mut(ACTIVATION_BLOCK).enumerate() {
        let (n, at) = (value.len(), i * ACTIVATION_BLOCK);
        let [z, g1, g2] = &mut scratch;
        z[..n].copy_from_slice(value);
        activate_block(act, &z[..n], value, &mut g1[..n], &mut g2[..n]);
        if let Some(d) = d1.as_deref_mut() {
            d[at..at + n].copy_from_slice(&g1[..n]);
        }
        if let Some(d) = d2.as_deref_mut() {
            d[at..at + n].copy_from_slice(&g2[..n]);
        }
    }
}

/// σ(z), σ'(z) and σ''(z) for a slice z (formulas as in [`Activation`]).
fn activate_block<T: Real>(act: Activation, z: &[T], value: &mut [T], d1: &mut [T], d2: &mut [T]) {
    let (one, two) = (T::one(), T::from_f64(2.0));
    match act {
        Activation::Tanh => {
            T::kernel(Elementwise::Tanh)(z, value);
            for ((&s, d1), d2) in value.iter().zip(d1.iter_mut()).zip(d2.iter_mut()) {
                *d1 = one - s * s;
                *d2 = T::zero() - two * s * *d1;
            }
        }
        Activation::Softplus | Activation::LogCosh => {
            // σ' is another kernel's output: sigmoid (σ'' = σ'(1 − σ')) or tanh (σ'' = 1 − σ'²)
            let (sigma, derivative) = if act == Activation::Softplus {
                (Elementwise::Softplus, Elementwise::Sigmoid)
            } else {
                (Elementwise::LogCosh, Elementwise::Tanh)
            };
            T::kernel(sigma)(z, value);
            T::kernel(derivative)(z, d1);
            let tanh_like = act == Activation::LogCosh;
            for (&g, d2) in d1.iter().zip(d2.iter_mut()) {
                *d2 = if tanh_like { one - g * g } else { g * (one - g) };
            }
        }
        Activation::Swish => {
            // with g = sigmoid z: σ = z g, σ' = g + z g(1 − g), σ'' = g(1 − g)(2 + z(1 − 2g))
            T::kernel(Elementwise::Sigmoid)(z, d1);
            for (((&z, v), d1), d2) in z.iter().zip(value.iter_mut()).zip(d1.iter_mut()).zip(d2.iter_mut()) {
                let g = *d1;
                let dg = g * (one - g);
                *v = z * g;
                *d1 = g + z * dg;
                *d2 = dg * (two + z * (one - two * g));
            }
        }
        Activation::Selu => {
            // z ≤ 0: σ = λα(eᶻ − 1), so σ' = σ'' = λαeᶻ = σ + λα; z > 0: σ' = λ, σ'' = 0
            T::kernel(Elementwise::Selu)(z, value);
            let (lambda, la) = (T::from_f64(SELU_LAMBDA), T::from_f64(SELU_LAMBDA * SELU_ALPHA));
            for (((&z, &v), d1), d2) in z.iter().zip(value.iter()).zip(d1.iter_mut()).zip(d2.iter_mut()) {
                (*d1, *d2) = if z > T::zero() { (lambda, T::zero()) } else { (v + la, v + la) };
            }
        }
    }
}

impl NetworkOp {
    /// Layer `spec`'s W (n_out × n_in) in θ.
    fn weight<'a, T>(&self, theta: &'a [T], spec: &LayerSpec) -> Mat<'a, T> {
        Mat::row_major(&theta[spec.w..spec.w + spec.n_out * spec.n_in], spec.n_out, spec.n_in)
    }

    fn n_out(&self) -> usize {
        self.layers.last().map_or(0, |l| l.n_out)
    }

    /// The chunks of samples the work is split into: one per thread, or one for small work.
    fn chunks(&self) -> Vec<Range<usize>> {
        let macs: usize = self.layers.iter().map(|l| l.n_in * l.n_out).sum::<usize>() * self.batch * (self.k + 1);
        sample_chunks(self.batch, macs)
    }

    /// The rows of `samples` from a block-layout matrix [values (B rows); tangents (B·K rows)]
    /// of width m, gathered as [values; tangents] of the chunk.
    fn gather<T: Real>(&self, full: &[T], samples: &Range<usize>, m: usize) -> Vec<T> {
        let (b, k) = (self.batch, self.k);
        let mut rows = Vec::with_capacity(samples.len() * (k + 1) * m);
        rows.extend_from_slice(&full[samples.start * m..samples.end * m]);
        rows.extend_from_slice(&full[(b + samples.start * k) * m..(b + samples.end * k) * m]);
        rows
    }

    /// The inverse of [`Self::gather`]: writes a chunk's rows into the block-layout matrix.
    fn scatter<T: Real>(&self, full: &mut [T], samples: &Range<usize>, m: usize, rows: &[T]) {
        let (b, k, nb) = (self.batch, self.k, samples.len());
        full[samples.start * m..samples.end * m].copy_from_slice(&rows[..nb * m]);
        full[(b + samples.start * k) * m..(b + samples.end * k) * m].copy_from_slice(&rows[nb * m..]);
    }

    /// The network on one chunk of samples: its output rows, and the record for the backward.
    /// The network on one chunk of samples, with `weights` the layers' Wᵀ as product operands.
    fn chunk_forward<T: Real>(
        &self,
        theta: &[T],
        weights: &[Rhs<T>],
        input: &[T],
        samples: Range<usize>,
    ) -> (Vec<T>, Option<ChunkSaved<T>>) {
        let (k, nb) = (self.k, samples.len());
        let rows = nb * (k + 1);
        let mut a = self.gather(input, &samples, self.layers[0].n_in);
        let mut saved = Vec::new();
        let last = self.layers.len() - 1;
        for (l, spec) in self.layers.iter().enumerate() {
            let (n_in, m) = (spec.n_in, spec.n_out);
            let mut u = product_new(Mat::row_major(&a, rows, n_in), &weights[l]);
            T::round(&mut u, self.storage);
            let hidden = l < last;
            // u is read back for ∂s, and for the tangents ż = u̇ ⊙ s of a hidden layer
            let keep_u = self.save && (spec.scale.is_some() || (k > 0 && hidden));
            let (mut out, u) = if keep_u { (u.clone(), u) } else { (u, Vec::new()) };
            let (vals, tans) = out.split_at_mut(nb * m);
            // value rows z = u ⊙ s + c, tangent rows ż = u̇ ⊙ s
            for b in 0..nb {
                let g = samples.start + b;
                let z = &mut vals[b * m..(b + 1) * m];
                if let Some(s) = spec.scale {
                    let s = s.row(theta, g, m);
                    z.iter_mut().zip(s).for_each(|(z, &s)| *z *= s);
                    T::round(z, self.storage);
                    let zt = &mut tans[b * k * m..(b + 1) * k * m];
                    zt.chunks_exact_mut(m).for_each(|r| r.iter_mut().zip(s).for_each(|(z, &s)| *z *= s));
                    T::round(zt, self.storage);
                }
                if let Some(c) = spec.shift {
                    z.iter_mut().zip(c.row(theta, g, m)).for_each(|(z, &c)| *z += c);
                    T::round(z, self.storage);
                }
            }
            // σ' carries the tangents and is read back by the backward; σ'' only meets tangents
            let (mut d1, mut d2) = (Vec::new(), Vec::new());
            if hidden {
                // a' = σ(z), ȧ' = σ'(z) ⊙ ż
                if k > 0 || self.save {
                    d1 = vec![T::zero(); nb * m];
                }
                if k > 0 && self.save {
                    d2 = vec![T::zero(); nb * m];
                }
                let d1_out = (!d1.is_empty()).then_some(d1.as_mut_slice());
                let d2_out = (!d2.is_empty()).then_some(d2.as_mut_slice());
                activate(self.activation, vals, d1_out, d2_out);
                for kept in [&mut *vals, &mut d1, &mut d2] {
                    T::round(kept, self.storage);
                }
                if k > 0 {
                    for (zt, d) in tans.chunks_exact_mut(k * m).zip(d1.chunks_exact(m)) {
                        zt.chunks_exact_mut(m).for_each(|r| r.iter_mut().zip(d).for_each(|(z, &d)| *z *= d));
                    }
                    T::round(tans, self.storage);
                }
            }
            if self.save {
                saved.push(LayerSaved { input: std::mem::replace(&mut a, out), u, d1, d2 });
            } else {
                a = out;
            }
        }
        (a, self.save.then_some(ChunkSaved { samples, layers: saved }))
    }

    fn forward<T: Real>(&self, theta: &[T], input: &[T]) -> (Vec<T>, Option<Vec<ChunkSaved<T>>>) {
        let m = self.n_out();
        // each Wᵀ prepared once for every chunk (packed, on the bf16 hardware path)
        let weights: Vec<_> = self.layers.par_iter().map(|spec| Rhs::new(self.weight(theta, spec).t(), self.storage)).collect();
        let results: Vec<_> = self.chunks().into_par_iter().map(|s| (s.clone(), self.chunk_forward(theta, &weights, input, s))).collect();
        let mut out = vec![T::zero(); self.batch * (self.k + 1) * m];
        let mut saved = Vec::new();
        for (samples, (rows, record)) in results {
            self.scatter(&mut out, &samples, m, &rows);
            saved.extend(record);
        }
        (out, self.save.then_some(saved))
    }

    /// Layer `l`'s scale and shift gradients from one chunk's ∂[z; ż] (`dz`), which is then
    /// turned into ∂u = ∂[z; ż] ⊙ s in place: ∂s = Σ ∂z ⊙ u over each sample's rows, ∂c = Σ ∂z
    /// over its value row. Returned as (∂s, ∂c) rows: one per sample of the chunk where the
    /// parameter has one per sample, else a single row summed over the chunk.
    fn rows_backward<T: Real>(&self, theta: &[T], l: usize, chunk: &ChunkSaved<T>, dz: &mut [T]) -> [Vec<T>; 2] {
        let (spec, k, samples) = (&self.layers[l], self.k, &chunk.samples);
        let (nb, m) = (samples.len(), spec.n_out);
        let rows_of = |r: Option<Rows>| r.map_or(0, |r| if r.per_sample { nb } else { 1 });
        let (mut ds, mut dc) = (vec![T::zero(); rows_of(spec.scale) * m], vec![T::zero(); rows_of(spec.shift) * m]);
        let u = &chunk.layers[l].u;
        for b in 0..nb {
            let row_ranges = std::iter::once(b * m..(b + 1) * m).chain((0..k).map(|j| (nb + b * k + j) * m..(nb + b * k + j + 1) * m));
            if let Some(s) = spec.scale {
                let at = if s.per_sample { b * m } else { 0 };
                for r in row_ranges.clone() {
                    ds[at..at + m].iter_mut().zip(&dz[r.clone()]).zip(&u[r]).for_each(|((o, &d), &u)| *o += d * u);
                }
            }
            if let Some(c) = spec.shift {
                let at = if c.per_sample { b * m } else { 0 };
                dc[at..at + m].iter_mut().zip(&dz[b * m..(b + 1) * m]).for_each(|(o, &d)| *o += d);
            }
            if let Some(s) = spec.scale {
                let s = s.row(theta, samples.start + b, m);
                for r in row_ranges {
                    dz[r].iter_mut().zip(s).for_each(|(d, &s)| *d *= s);
                }
            }
        }
        [ds, dc]
    }

    /// ∂[a; ȧ] = ∂u W for one chunk at layer `l` ≥ 1, carried back through the previous layer's
    /// activation: ∂z = ∂a' ⊙ σ'(z) + σ''(z) ⊙ Σₖ ∂ȧ'ₖ ⊙ żₖ and ∂żₖ = ∂ȧ'ₖ ⊙ σ'(z).
    /// `weight` is the layer's W as a product operand.
    fn through_layer<T: Real>(&self, weight: &Rhs<T>, theta: &[T], l: usize, chunk: &ChunkSaved<T>, du: &[T]) -> Vec<T> {
        let (spec, k, samples) = (&self.layers[l], self.k, &chunk.samples);
        let (nb, n_in, m) = (samples.len(), spec.n_in, spec.n_out);
        let rows = nb * (k + 1);
        let mut da = product_new(Mat::row_major(du, rows, m), weight);
        T::round(&mut da, self.storage);
        if l == 0 {
            return da;
        }
        let prev = &chunk.layers[l - 1];
        let (da_vals, da_tans) = da.split_at_mut(nb * n_in);
        if k == 0 {
            // no tangents: ∂z = ∂a' ⊙ σ'(z) (σ'' was not kept)
            da_vals.iter_mut().zip(&prev.d1).for_each(|(d, &p)| *d *= p);
            T::round(&mut da, self.storage);
            return da;
        }
        let prev_scale = self.layers[l - 1].scale;
        let mut acc = vec![T::zero(); n_in];
        for b in 0..nb {
            let d1 = &prev.d1[b * n_in..(b + 1) * n_in];
            let d2 = &prev.d2[b * n_in..(b + 1) * n_in];
            let s = prev_scale.map(|s| s.row(theta, samples.start + b, n_in));
            let dv = &mut da_vals[b * n_in..(b + 1) * n_in];
            // Σₖ ∂ȧ'ₖ ⊙ żₖ with żₖ = u̇ₖ ⊙ s, then ∂żₖ = ∂ȧ'ₖ ⊙ σ'
            acc.fill(T::zero());
            for j in 0..k {
                let r = b * k + j;
                let dt = &mut da_tans[r * n_in..(r + 1) * n_in];
                let ut = &prev.u[(nb + r) * n_in..(nb + r + 1) * n_in];
                match s {
                    Some(s) => acc.iter_mut().zip(dt.iter()).zip(ut).zip(s).for_each(|(((a, &d), &u), &s)| *a += d * u * s),
                    None => acc.iter_mut().zip(dt.iter()).zip(ut).for_each(|((a, &d), &u)| *a += d * u),
                }
                dt.iter_mut().zip(d1).for_each(|(d, &p)| *d *= p);
            }
            dv.iter_mut().zip(d1).zip(d2).zip(&acc).for_each(|(((d, &p), &q), &a)| *d = *d * p + q * a);
        }
        T::round(&mut da, self.storage);
        da
    }

    /// The reverse pass, layer by layer: the elementwise parts and ∂[a; ȧ] chunk by chunk in
    /// parallel; ∂W = Σ_chunks ∂u_cᵀ [a; ȧ]_c straight into the one θ-gradient, split over
    /// blocks of W's rows (so no chunk holds a θ-sized buffer and nothing is summed at the end).
    /// ∂input is `None` when `input_grad` is false (the input is a constant).
    fn backward<T: Real>(&self, theta: &[T], grad_out: &[T], input_grad: bool) -> candle_core::Result<(Vec<T>, Option<Vec<T>>)> {
        let guard = self.saved.lock().unwrap_or_else(|e| e.into_inner());
        // the forward records whenever candle records the op (`save` = an input tracks its graph)
        let chunks = guard
            .as_ref()
            .and_then(T::unwrap)
            .ok_or_else(|| candle_core::Error::Msg(format!("{}: backward without a forward record", self.name())))?;
        let k = self.k;
        let mut grad_theta = vec![T::zero(); theta.len()];
        let mut dz: Vec<Vec<T>> = chunks.iter().map(|c| self.gather(grad_out, &c.samples, self.n_out())).collect();
        for (l, spec) in self.layers.iter().enumerate().rev() {
            let (n_in, m) = (spec.n_in, spec.n_out);
            let row_grads: Vec<_> = chunks
                .par_iter()
                .zip(dz.par_iter_mut())
                .map(|(c, dz)| {
                    let grads = self.rows_backward(theta, l, c, dz);
                    T::round(dz, self.storage);
                    grads
                })
                .collect();
            for (chunk, grads) in chunks.iter().zip(row_grads) {
                for (rows, g) in [spec.scale, spec.shift].into_iter().zip(grads) {
                    let Some(rows) = rows else { continue };
                    let at = rows.offset + if rows.per_sample { chunk.samples.start * m } else { 0 };
                    grad_theta[at..at + g.len()].iter_mut().zip(g).for_each(|(o, g)| *o += g);
                }
            }
            // now dz = ∂u: ∂W = Σ_c ∂u_cᵀ [a; ȧ]_c, one block of W's rows per task
            let inputs: Vec<_> = chunks
                .par_iter()
                .map(|c| Rhs::new(Mat::row_major(&c.layers[l].input, c.samples.len() * (k + 1), n_in), self.storage))
                .collect();
            let block = m.div_ceil(chunks.len());
            grad_theta[spec.w..spec.w + m * n_in].par_chunks_mut(block * n_in).enumerate().for_each(|(j, dst)| {
                let (j0, width) = (j * block, dst.len() / n_in);
                for ((chunk, du), input) in chunks.iter().zip(&dz).zip(&inputs) {
                    let rows = chunk.samples.len() * (k + 1);
                    let du_block = Mat { data: &du[j0..], rows, cols: width, rs: m, cs: 1 };
                    product(dst, du_block.t(), input, true);
                }
            });
            if l == 0 && !input_grad {
                T::round(&mut grad_theta, self.storage);
                return Ok((grad_theta, None));
            }
            let weight = Rhs::new(self.weight(theta, spec), self.storage);
            dz = chunks.par_iter().zip(&dz).map(|(c, du)| self.through_layer(&weight, theta, l, c, du)).collect();
        }
        let mut grad_input = vec![T::zero(); self.batch * (k + 1) * self.layers[0].n_in];
        for (chunk, da) in chunks.iter().zip(&dz) {
            self.scatter(&mut grad_input, &chunk.samples, self.layers[0].n_in, da);
        }
        T::round(&mut grad_theta, self.storage);
        Ok((grad_theta, Some(grad_input)))
    }

    fn check(&self, input: &Layout, theta: &Layout) -> candle_core::Result<()> {
        let n_theta = self.theta_len;
        let want_in = (self.batch * (self.k + 1), self.layers[0].n_in);
        if input.shape().dims2()? != want_in || theta.shape().elem_count() != n_theta || !input.is_contiguous() || !theta.is_contiguous() {
            return Err(candle_core::Error::Msg(format!(
                "{}: input {:?} / θ {:?}, expected {want_in:?} / {n_theta} contiguous",
                self.name(),
                input.shape().dims(),
                theta.shape().dims()
            )));
        }
        Ok(())
    }

    fn run_forward<T: Real>(&self, input: &CpuStorage, il: &Layout, theta: &CpuStorage, tl: &Layout) -> candle_core::Result<CpuStorage> {
        let input = &T::cpu_storage_as_slice(input)?[il.start_offset()..il.start_offset() + il.shape().elem_count()];
        let theta = &T::cpu_storage_as_slice(theta)?[tl.start_offset()..tl.start_offset() + tl.shape().elem_count()];
        Ok(T::to_cpu_storage_owned(self.forward_recorded(theta, input)))
    }

    /// The forward, keeping its record for the backward when one is wanted.
    fn forward_recorded<T: Real>(&self, theta: &[T], input: &[T]) -> Vec<T> {
        let (out, saved) = self.forward(theta, input);
        if let Some(saved) = saved {
            *self.saved.lock().unwrap_or_else(|e| e.into_inner()) = Some(T::wrap(saved));
        }
        out
    }

    fn run_backward<T: Real>(
        &self,
        input: &Tensor,
        theta: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (grad_theta, grad_input) =
            with_cpu_slice(theta, |theta: &[T]| with_cpu_slice(&grad, |grad: &[T]| self.backward(theta, grad, input.track_op())))?;
        Ok((
            grad_input.map(|g| Tensor::from_vec(g, input.shape(), &Device::Cpu)).transpose()?,
            Some(Tensor::from_vec(grad_theta, theta.shape(), &Device::Cpu)?),
        ))
    }
}

impl CustomOp2 for NetworkOp {
    fn name(&self) -> &'static str {
        "continuum-network"
    }

    fn cpu_fwd(&self, input: &CpuStorage, il: &Layout, theta: &CpuStorage, tl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.check(il, tl)?;
        let out = match (input, theta) {
            (CpuStorage::F32(_), CpuStorage::F32(_)) => self.run_forward::<f32>(input, il, theta, tl)?,
            (CpuStorage::F64(_), CpuStorage::F64(_)) => self.run_forward::<f64>(input, il, theta, tl)?,
            (CpuStorage::BF16(_), CpuStorage::BF16(_)) | (CpuStorage::F16(_), CpuStorage::F16(_)) => {
                let out = self.forward_recorded(&to_f32(theta, tl)?, &to_f32(input, il)?);
                from_f32(&out, self.storage)?
            }
            _ => return Err(candle_core::Error::Msg(format!("{}: f32, f64, bf16 or f16 only, input and θ alike", self.name()))),
        };
        Ok((out, Shape::from((self.batch * (self.k + 1), self.n_out()))))
    }

    /// The reverse pass of the module docs, from the forward's record.
    /// The gradients it returns are plain tensors: first-order backprop only, which is all the
    /// project's models need (their derivatives are analytic).
    fn bwd(&self, input: &Tensor, theta: &Tensor, _res: &Tensor, grad: &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        match input.dtype() {
            DType::F32 => self.run_backward::<f32>(input, theta, grad),
            DType::F64 => self.run_backward::<f64>(input, theta, grad),
            DType::BF16 | DType::F16 => {
                let (grad_theta, grad_input) = self.backward(&tensor_to_f32(theta)?, &tensor_to_f32(grad)?, input.track_op())?;
                let narrowed = |g: &[f32], t: &Tensor| f32_to_tensor(g, t.shape(), self.storage);
                Ok((grad_input.map(|g| narrowed(&g, input)).transpose()?, Some(narrowed(&grad_theta, theta)?)))
            }
            dtype => Err(candle_core::Error::Msg(format!("{}: backward for {dtype:?}", self.name()))),
        }
    }
}
