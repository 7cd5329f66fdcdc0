//! An input-convex potential in its one-hidden-layer form (Amos, Xu & Kolter, "Input Convex
//! Neural Networks", ICML 2017):
//!
//! ψ(x) = ½‖Ax‖² + bᵀx + Σ_j u_j² σ(k_jᵀx + c_j),   σ = log cosh,
//!
//! convex in x for every parameter value (a PSD quadratic plus non-negative multiples of convex
//! ridge functions), so ∇ψ is a monotone map — a Brenier map by construction:
//!
//! ∇ψ(x) = AᵀAx + b + Kᵀ(u² ⊙ tanh(Kx + c)),   ∇²ψ(x) = AᵀA + Kᵀ diag(u² ⊙ sech²(Kx + c)) K ⪰ 0.
//!
//! All of it is candle ops, so first-order backprop through ∇ψ trains ψ.

use crate::error::{expect_matrix, Error, Result};
use crate::kernels;
use crate::params::{Init, ParamBuilder};
use candle_core::Tensor;

/// ψ with parameters `A` (d, d), `b` (1, d), `K` (m, d), `c` (1, m), `u` (1, m).
#[derive(Clone, Debug)]
pub struct ConvexPotential {
    a: Tensor,
    b: Tensor,
    k: Tensor,
    c: Tensor,
    u: Tensor,
}

impl ConvexPotential {
    /// Dimension `dim`, `width` ridge functions: A Xavier-uniform, b = 0, K and c PyTorch-default
    /// with fan-in d, u = 0.03 (weights u² ≈ 10⁻³: ψ starts near its quadratic part, and u's
    /// gradient 2u·(…) is not zero). A parameter already in `pb`'s map is used as it is.
    pub fn new(pb: &mut ParamBuilder, dim: usize, width: usize) -> Result<Self> {
        if dim == 0 || width == 0 {
            return Err(Error::Config(format!("ConvexPotential needs d ≥ 1 and width ≥ 1, got d = {dim}, width = {width}")));
        }
        let ridge = Init::LinearDefault { fan_in: dim };
        Ok(Self {
            a: pb.get("A", (dim, dim), Init::XavierUniform)?,
            b: pb.get("b", (1, dim), Init::Const(0.0))?,
            k: pb.get("K", (width, dim), ridge)?,
            c: pb.get("c", (1, width), ridge)?,
            u: pb.get("u", (1, width), Init::Const(0.03))?,
        })
    }

    /// d.
    pub fn dim(&self) -> usize {
        self.a.dims()[1]
    }

    /// m, the number of ridge functions.
    pub fn width(&self) -> usize {
        self.k.dims()[0]
    }

    /// Every parameter tensor.
    pub fn params(&self) -> Vec<Tensor> {
        vec![self.a.clone(), self.b.clone(), self.k.clone(), self.c.clone(), self.u.clone()]
    }

    fn pre_activation(&self, x: &Tensor, context: &'static str) -> Result<Tensor> {
        expect_matrix(x, self.dim(), context)?;
        kernels::bias_add(&x.matmul(&self.k.t()?)?, &self.c)
    }

    fn weights(&self) -> Result<Tensor> {
        Ok(self.u.sqr()?)
    }

    /// ψ(x), shape (B, 1).
    pub fn value(&self, x: &Tensor) -> Result<Tensor> {
        let z = self.pre_activation(x, "ConvexPotential::value")?;
        let ridge = crate::Activation::LogCosh.value(&z)?.broadcast_mul(&self.weights()?)?.sum_keepdim(1)?;
        let quad = (x.matmul(&self.a.t()?)?.sqr()?.sum_keepdim(1)? * 0.5)?;
        Ok(((quad + x.matmul(&self.b.t()?)?)? + ridge)?)
    }

    /// ∇ψ(x), shape (B, d).
    pub fn gradient(&self, x: &Tensor) -> Result<Tensor> {
        let z = self.pre_activation(x, "ConvexPotential::gradient")?;
        let ridge = kernels::tanh(&z)?.broadcast_mul(&self.weights()?)?.matmul(&self.k)?;
        kernels::bias_add(&(x.matmul(&self.a.t()?.matmul(&self.a)?)? + ridge)?, &self.b)
    }

    /// ∇²ψ(x) v for v of shape (B, d).
    pub fn hessian_vector_product(&self, x: &Tensor, v: &Tensor) -> Result<Tensor> {
        let z = self.pre_activation(x, "ConvexPotential::hessian_vector_product")?;
        let b = expect_matrix(v, self.dim(), "ConvexPotential::hessian_vector_product (direction)")?;
        if b != x.dim(0)? {
            return Err(Error::Shape {
                context: "ConvexPotential::hessian_vector_product (direction)",
                expected: format!("({}, {})", x.dim(0)?, self.dim()),
                got: v.dims().to_vec(),
            });
        }
        let sech2 = crate::Activation::LogCosh.second_derivative(&z)?;
        let ridge = (sech2.broadcast_mul(&self.weights()?)? * v.matmul(&self.k.t()?)?)?.matmul(&self.k)?;
        Ok((v.matmul(&self.a.t()?.matmul(&self.a)?)? + ridge)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    fn potential(seed: u64) -> Result<(ConvexPotential, SeededRng)> {
        let vm = VarMap::new();
        let mut rng = SeededRng::new(seed);
        let p = ConvexPotential::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F64, &Device::Cpu), 3, 7)?;
        // larger ridge weights than the initial 10⁻³, so the ridge part is tested
        let u = (rng.normal((1, 7), DType::F64, &Device::Cpu)? * 1.5)?;
        Ok((ConvexPotential { u, ..p }, rng))
    }

    #[test]
    fn gradient_and_hessian_match_finite_differences() -> Result<()> {
        let (p, mut rng) = potential(1)?;
        let x = rng.normal((4, 3), DType::F64, &Device::Cpu)?;
        let v = rng.normal((4, 3), DType::F64, &Device::Cpu)?;
        let h = 1e-5;
        let g = p.gradient(&x)?.to_vec2::<f64>()?;
        for j in 0..3 {
            let mut e = vec![0.0; 3];
            e[j] = h;
            let e = Tensor::new(e.as_slice(), &Device::Cpu)?.reshape((1, 3))?;
            let fd = ((p.value(&x.broadcast_add(&e)?)? - p.value(&x.broadcast_sub(&e)?)?)? / (2.0 * h))?.to_vec2::<f64>()?;
            for i in 0..4 {
                assert!((fd[i][0] - g[i][j]).abs() < 1e-6 * (1.0 + g[i][j].abs()), "∂ψ/∂x{j}: FD {} vs {}", fd[i][0], g[i][j]);
            }
        }
        let hv = p.hessian_vector_product(&x, &v)?;
        let fd = ((p.gradient(&(&x + (&v * h)?)?)? - p.gradient(&(&x - (&v * h)?)?)?)? / (2.0 * h))?;
        let err = (hv - &fd)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(err < 1e-6 * (1.0 + fd.abs()?.max_all()?.to_scalar::<f64>()?), "HVP vs FD of the gradient: {err}");
        Ok(())
    }

    #[test]
    fn the_potential_is_convex_for_any_parameters() -> Result<()> {
        // vᵀ∇²ψ v ≥ 0 at random points and directions, for several random parameter draws
        for seed in 0..5 {
            let (p, mut rng) = potential(seed)?;
            let x = (rng.normal((64, 3), DType::F64, &Device::Cpu)? * 3.0)?;
            let v = rng.normal((64, 3), DType::F64, &Device::Cpu)?;
            let q = (p.hessian_vector_product(&x, &v)? * &v)?.sum(1)?.min(0)?.to_scalar::<f64>()?;
            assert!(q >= -1e-12, "seed {seed}: vᵀ∇²ψv = {q}");
        }
        let (p, _) = potential(0)?;
        assert!(p.gradient(&Tensor::zeros((2, 4), DType::F64, &Device::Cpu)?).is_err());
        Ok(())
    }
}
