//! The state of a solve: one tensor, or a fixed tuple/vector of tensors for augmented systems
//! (a CNF integrates (z, ℓ); OT-Flow (x, ℓ, c_L, c_H); a continuous adjoint (y, a, ∂θ)).
//! Solvers only ever see a state's leaves, so one trait covers every structure.

use crate::error::{Result, SolverError};
use candle_core::{DType, Tensor};

/// A fixed structure of tensors (the "leaves") that solvers combine linearly.
pub trait State: Clone {
    /// The leaves, in a fixed order.
    fn leaves(&self) -> Vec<Tensor>;
    /// A state of the same structure holding `leaves`.
    fn with_leaves(&self, leaves: Vec<Tensor>) -> Result<Self>;
}

impl State for Tensor {
    fn leaves(&self) -> Vec<Tensor> {
        vec![self.clone()]
    }
    fn with_leaves(&self, mut leaves: Vec<Tensor>) -> Result<Self> {
        match leaves.len() {
            1 => Ok(leaves.pop().expect("one leaf")),
            n => Err(SolverError::Shape(format!("a tensor state has 1 leaf, got {n}"))),
        }
    }
}

impl State for Vec<Tensor> {
    fn leaves(&self) -> Vec<Tensor> {
        self.clone()
    }
    fn with_leaves(&self, leaves: Vec<Tensor>) -> Result<Self> {
        if leaves.len() != self.len() {
            return Err(SolverError::Shape(format!("a state of {} tensors, got {}", self.len(), leaves.len())));
        }
        Ok(leaves)
    }
}

macro_rules! tuple_state {
    ($n:literal; $($name:ident),+) => {
        impl State for ($(tuple_state!(@ty $name),)+) {
            fn leaves(&self) -> Vec<Tensor> {
                let ($($name,)+) = self;
                vec![$($name.clone()),+]
            }
            fn with_leaves(&self, leaves: Vec<Tensor>) -> Result<Self> {
                let got = leaves.len();
                let mut it = leaves.into_iter();
                match ($(tuple_state!(@next it $name),)+) {
                    ($(Some($name),)+) if got == $n => Ok(($($name,)+)),
                    _ => Err(SolverError::Shape(format!("a {}-tuple state, got {got} tensors", $n))),
                }
            }
        }
    };
    (@ty $name:ident) => { Tensor };
    (@next $it:ident $name:ident) => { $it.next() };
}
tuple_state!(2; a, b);
tuple_state!(3; a, b, c);
tuple_state!(4; a, b, c, d);
tuple_state!(5; a, b, c, d, e);
tuple_state!(6; a, b, c, d, e, f);

/// base + Σ cᵢ·termsᵢ, leaf by leaf; zero coefficients are skipped.
pub fn lincomb<S: State>(base: &S, terms: &[(f64, &S)]) -> Result<S> {
    let mut out = base.leaves();
    for (c, s) in terms {
        if *c == 0.0 {
            continue;
        }
        for (o, l) in out.iter_mut().zip(s.leaves()) {
            *o = (&*o + (l * *c)?)?;
        }
    }
    base.with_leaves(out)
}

/// c·s.
pub fn scale<S: State>(s: &S, c: f64) -> Result<S> {
    s.with_leaves(s.leaves().into_iter().map(|l| Ok((l * c)?)).collect::<Result<_>>()?)
}

/// a + b.
pub fn add<S: State>(a: &S, b: &S) -> Result<S> {
    a.with_leaves(a.leaves().iter().zip(b.leaves()).map(|(x, y)| Ok((x + y)?)).collect::<Result<_>>()?)
}

/// a ⊙ b leafwise, broadcasting b's leaves (scalar noise has shape (B, 1)).
pub fn mul<S: State>(a: &S, b: &S) -> Result<S> {
    a.with_leaves(a.leaves().iter().zip(b.leaves()).map(|(x, y)| Ok(x.broadcast_mul(&y)?)).collect::<Result<_>>()?)
}

/// Every leaf detached from the autograd graph (shares storage, records nothing).
pub fn detach<S: State>(s: &S) -> Result<S> {
    s.with_leaves(s.leaves().iter().map(Tensor::detach).collect())
}

/// A zero state of the same structure.
pub fn zeros_like<S: State>(s: &S) -> Result<S> {
    s.with_leaves(s.leaves().iter().map(|l| Ok(l.zeros_like()?)).collect::<Result<_>>()?)
}

/// Σ over leaves of Σ(a ⊙ b) as a scalar tensor: the surrogate whose backward is a VJP with
/// cotangent b. Computed in the leaves' dtype.
pub fn dot<S: State>(a: &S, b: &S) -> Result<Tensor> {
    let mut total: Option<Tensor> = None;
    for (x, y) in a.leaves().iter().zip(b.leaves()) {
        let s = x.broadcast_mul(&y)?.sum_all()?;
        total = Some(match total {
            None => s,
            Some(t) => (t + s)?,
        });
    }
    total.ok_or_else(|| SolverError::Shape("a state with no leaves".into()))
}

/// True when every entry of every leaf is finite.
pub fn all_finite<S: State>(s: &S) -> Result<bool> {
    for l in s.leaves() {
        // 0·x is 0 for finite x and NaN for ±inf and NaN: one reduction finds either, and
        // large finite values cannot overflow the sum.
        let probe = (&l * 0.0)?.sum_all()?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !probe.is_finite() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Checks that `got` has the structure and shapes of `like`; `what` names the producer.
pub fn check_like<S: State>(got: &S, like: &S, what: &str) -> Result<()> {
    let (g, l) = (got.leaves(), like.leaves());
    if g.len() != l.len() {
        return Err(SolverError::Shape(format!("{what} returned {} tensors for a state of {}", g.len(), l.len())));
    }
    for (i, (a, b)) in g.iter().zip(&l).enumerate() {
        if a.dims() != b.dims() {
            return Err(SolverError::Shape(format!("{what} returned shape {:?} for state leaf {i} of shape {:?}", a.dims(), b.dims())));
        }
    }
    Ok(())
}

/// Root-mean-square over all entries of err / (atol + rtol·max(|y0|, |y1|)): the scaled error
/// norm of Hairer, Nørsett & Wanner (II.4), computed in f64.
pub fn scaled_rms<S: State>(err: &S, y0: &S, y1: &S, rtol: f64, atol: f64) -> Result<f64> {
    let (mut sum, mut n) = (0f64, 0usize);
    for ((e, a), b) in err.leaves().iter().zip(y0.leaves()).zip(y1.leaves()) {
        let scale = ((a.abs()?.maximum(&b.abs()?)? * rtol)? + atol)?;
        let r = (e / scale)?.to_dtype(DType::F64)?;
        sum += r.sqr()?.sum_all()?.to_scalar::<f64>()?;
        n += r.elem_count();
    }
    Ok((sum / n.max(1) as f64).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn tuples_round_trip_and_combine() -> Result<()> {
        let a = Tensor::new(&[1.0f64, 2.0], &Device::Cpu)?;
        let b = Tensor::new(&[10.0f64], &Device::Cpu)?;
        let s = (a.clone(), b.clone());
        let t = lincomb(&s, &[(2.0, &s), (0.0, &s)])?;
        assert_eq!(t.0.to_vec1::<f64>()?, vec![3.0, 6.0]);
        assert_eq!(t.1.to_vec1::<f64>()?, vec![30.0]);
        assert_eq!(dot(&s, &s)?.to_scalar::<f64>()?, 105.0);
        assert!(s.with_leaves(vec![a.clone()]).is_err());
        assert!(check_like(&(a.clone(), a.clone()), &s, "f").unwrap_err().to_string().contains("shape [2]"));
        let bad = Tensor::new(&[1.0f64, f64::NAN], &Device::Cpu)?;
        assert!(!all_finite(&bad)?);
        assert!(!all_finite(&Tensor::new(&[f64::INFINITY], &Device::Cpu)?)?);
        assert!(all_finite(&s)?);
        Ok(())
    }
}
