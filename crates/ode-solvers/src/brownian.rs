//! A virtual Brownian tree (Li, Wong, Chen, Duvenaud 2020; diffrax's `VirtualBrownianTree`):
//! W(t) on [t₀, t₁] evaluated anywhere by bisecting with Brownian bridges whose normal draws
//! come from seeds fixed by (seed, node). No path is stored, every query is exactly replayable
//! (a backward pass sees the forward's noise), and a coarse grid sees the sums of a fine grid's
//! increments — what strong-convergence tests need.

use crate::error::{Result, SolverError};
use crate::state::State;
use crate::term::Noise;
use candle_core::{DType, Device, Tensor};
use std::cell::RefCell;
use tensor_core::SeededRng;

/// W(t) for t ∈ [t₀, t₁], one leaf per state leaf.
pub struct VirtualBrownianTree {
    lo: f64,
    hi: f64,
    seed: u64,
    tol: f64,
    shapes: Vec<Vec<usize>>,
    dtype: DType,
    device: Device,
    last: RefCell<Option<(f64, Vec<Tensor>)>>,
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl VirtualBrownianTree {
    /// A Brownian motion on [t₀, t₁] (either order) with the noise shape of `like`: one entry
    /// per state entry (diagonal) or one per sample (scalar). Queries resolve to `tol` in time.
    pub fn new<S: State>(t0: f64, t1: f64, seed: u64, like: &S, noise: Noise, tol: f64) -> Result<Self> {
        if !(t0.is_finite() && t1.is_finite() && t0 != t1 && tol > 0.0) {
            return Err(SolverError::Config(format!("Brownian tree needs t0 ≠ t1 finite and tol > 0, got [{t0}, {t1}], tol {tol}")));
        }
        let leaves = like.leaves();
        let first = leaves.first().ok_or_else(|| SolverError::Shape("a state with no leaves".into()))?;
        let shapes = leaves
            .iter()
            .map(|l| match noise {
                Noise::Diagonal => l.dims().to_vec(),
                Noise::Scalar => std::iter::once(l.dims().first().copied().unwrap_or(1))
                    .chain(std::iter::repeat_n(1, l.rank().saturating_sub(1)))
                    .collect(),
            })
            .collect();
        Ok(Self {
            lo: t0.min(t1),
            hi: t0.max(t1),
            seed,
            tol,
            shapes,
            dtype: first.dtype(),
            device: first.device().clone(),
            last: RefCell::new(None),
        })
    }

    fn normals(&self, node: u64) -> Result<Vec<Tensor>> {
        let mut rng = SeededRng::new(splitmix64(self.seed ^ splitmix64(node)));
        // draw in f64 on the host so every dtype/device sees the same path, then cast
        self.shapes
            .iter()
            .map(|s| Ok(rng.normal(s.as_slice(), DType::F64, &Device::Cpu)?.to_dtype(self.dtype)?.to_device(&self.device)?))
            .collect()
    }

    fn combine(a: &[Tensor], ca: f64, b: &[Tensor], cb: f64) -> Result<Vec<Tensor>> {
        a.iter().zip(b).map(|(x, y)| Ok(((x * ca)? + (y * cb)?)?)).collect()
    }

    /// W(t), W(t₀) = 0.
    pub fn value(&self, t: f64) -> Result<Vec<Tensor>> {
        let eps = 1e-12 * (self.hi - self.lo);
        if t < self.lo - eps || t > self.hi + eps {
            return Err(SolverError::BadSaveAt(format!("Brownian motion queried at t = {t} outside [{}, {}]", self.lo, self.hi)));
        }
        if let Some((tc, w)) = self.last.borrow().as_ref() {
            if (tc - t).abs() <= eps {
                return Ok(w.clone());
            }
        }
        let zeros: Vec<Tensor> =
            self.shapes.iter().map(|s| Tensor::zeros(s.as_slice(), self.dtype, &self.device)).collect::<candle_core::Result<_>>()?;
        let (mut a, mut b) = (self.lo, self.hi);
        let mut wa = zeros.clone();
        let mut wb = Self::combine(&zeros, 0.0, &self.normals(1)?, (b - a).sqrt())?;
        let mut node: u64 = 1;
        let w = loop {
            if (t - a).abs() <= eps {
                break wa;
            }
            if (t - b).abs() <= eps {
                break wb;
            }
            if b - a <= self.tol || node >= 1 << 62 {
                // Brownian-bridge mean between the resolved ends
                let s = (t - a) / (b - a);
                break Self::combine(&wa, 1.0 - s, &wb, s)?;
            }
            let m = 0.5 * (a + b);
            let mid_mean = Self::combine(&wa, 0.5, &wb, 0.5)?;
            let wm = Self::combine(&mid_mean, 1.0, &self.normals(2 * node)?, (0.25 * (b - a)).sqrt())?;
            if t < m {
                (b, wb, node) = (m, wm, 2 * node);
            } else {
                (a, wa, node) = (m, wm, 2 * node + 1);
            }
        };
        *self.last.borrow_mut() = Some((t, w.clone()));
        Ok(w)
    }

    /// W(t_b) − W(t_a) as a state shaped like `like` (scalar noise broadcasts).
    pub fn increment<S: State>(&self, like: &S, ta: f64, tb: f64) -> Result<S> {
        let (wa, wb) = (self.value(ta)?, self.value(tb)?);
        like.with_leaves(wb.iter().zip(&wa).map(|(b, a)| Ok((b - a)?)).collect::<Result<_>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn increments_are_gaussian_consistent_and_replayable() -> Result<()> {
        let like = Tensor::zeros((4000, 1), DType::F64, &Device::Cpu)?;
        let bm = VirtualBrownianTree::new(0.0, 1.0, 7, &like, Noise::Diagonal, 1e-9)?;
        let d1: Tensor = bm.increment(&like, 0.25, 0.75)?;
        // variance of W(0.75) − W(0.25) is 0.5
        let var = d1.sqr()?.mean_all()?.to_scalar::<f64>()?;
        assert!((var - 0.5).abs() < 0.05, "variance {var}");
        // the same query from a fresh tree with the same seed gives the same numbers
        let again = VirtualBrownianTree::new(0.0, 1.0, 7, &like, Noise::Diagonal, 1e-9)?;
        assert_eq!(again.increment::<Tensor>(&like, 0.25, 0.75)?.to_vec2::<f64>()?, d1.to_vec2::<f64>()?);
        // additivity over a finer split
        let a: Tensor = bm.increment(&like, 0.25, 0.5)?;
        let b: Tensor = bm.increment(&like, 0.5, 0.75)?;
        let diff = ((a + b)? - &d1)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(diff < 1e-12, "{diff}");
        // independent halves: covariance of disjoint increments ≈ 0
        let left: Tensor = bm.increment(&like, 0.0, 0.5)?;
        let right: Tensor = bm.increment(&like, 0.5, 1.0)?;
        let cov = (left * right)?.mean_all()?.to_scalar::<f64>()?;
        assert!(cov.abs() < 0.05, "covariance {cov}");
        assert!(bm.value(1.5).is_err());
        Ok(())
    }
}
