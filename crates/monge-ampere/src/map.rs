//! The Brenier map ∇ψ as the gradient of an input-convex network (`tensor_core::nets::ConvexPotential`):
//! its Jacobian ∇²ψ is symmetric and positive semi-definite for every parameter value (what
//! Algorithm 2 of Deb & Liang asks of ∇n_k, and what Brenier's theorem says the iterates are), and
//! exact by Hessian-vector products. Each projected step is thus a projection onto convex ψ: an
//! update that would fold the map (∇²ψ with a negative eigenvalue) is not representable.

use crate::error::{MaError, Result};
use crate::gaussian::symmetric_sqrt;
use crate::target::rows_of;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use tensor_core::nets::ConvexPotential;
use tensor_core::params::ParamBuilder;
use tensor_core::SeededRng;

/// ∇ψ: ℝ^d → ℝ^d with ψ a [`ConvexPotential`].
pub struct BrenierMap {
    varmap: VarMap,
    potential: ConvexPotential,
}

/// Curvature of ψ over a set of points: the quantities the regret bounds assume and the change
/// of variables needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Curvature {
    /// min over the points of λ_min(∇²ψ): m_k of the theorems (convexity when > 0).
    pub min_eigenvalue: f64,
    /// max over the points of λ_max(∇²ψ): M_k.
    pub max_eigenvalue: f64,
    /// log det ∇²ψ at each point (NaN where the determinant is not positive).
    pub log_det: Vec<f64>,
}

impl BrenierMap {
    /// ψ₀(y) ≈ ½|y|², the identity map up to the ridge part's small initial weights (u² ≈ 10⁻³
    /// each: zero would leave their gradients zero too); the ridges' directions are drawn from `rng`.
    pub fn identity(dim: usize, width: usize, rng: &mut SeededRng) -> Result<Self> {
        let eye: Vec<f64> = (0..dim * dim).map(|i| if i % (dim + 1) == 0 { 1.0 } else { 0.0 }).collect();
        Self::affine(&eye, &vec![0.0; dim], width, rng)
    }

    /// ψ₀(y) ≈ ½ yᵀS y + mᵀy, the affine map y ↦ S y + m (up to the small ridge part, as in
    /// [`BrenierMap::identity`]) for a symmetric positive semi-definite S (d×d, row-major). With
    /// S = Σ^{1/2} and m the data's covariance root and mean, ρ₀ matches the data's first two
    /// moments (Brenier's map between Gaussians), and the flow only has to correct the rest.
    pub fn affine(s: &[f64], m: &[f64], width: usize, rng: &mut SeededRng) -> Result<Self> {
        let dim = m.len();
        if dim == 0 || s.len() != dim * dim {
            return Err(MaError::Config(format!("an affine map in dimension {dim} needs a {dim}×{dim} matrix, got {} entries", s.len())));
        }
        let mat = nalgebra::DMatrix::from_row_slice(dim, dim, s);
        let eig = ((&mat + mat.transpose()) * 0.5).symmetric_eigen();
        if eig.eigenvalues.min() < 0.0 || s.iter().chain(m).any(|v| !v.is_finite()) {
            return Err(MaError::Config("an affine Brenier map needs a finite positive semi-definite matrix".into()));
        }
        // A = S^{1/2} (symmetric), so AᵀA = S; b = m
        let root = symmetric_sqrt(&mat);
        let varmap = VarMap::new();
        {
            let mut data = varmap.data().lock().map_err(|_| MaError::Config("VarMap mutex poisoned".into()))?;
            let a: Vec<f64> = (0..dim * dim).map(|i| root[(i / dim, i % dim)]).collect();
            data.insert("A".into(), Var::from_tensor(&Tensor::from_vec(a, (dim, dim), &Device::Cpu)?)?);
            data.insert("b".into(), Var::from_tensor(&Tensor::from_vec(m.to_vec(), (1, dim), &Device::Cpu)?)?);
        }
        let potential = ConvexPotential::new(&mut ParamBuilder::new(&varmap, rng, DType::F64, &Device::Cpu), dim, width)?;
        Ok(Self { varmap, potential })
    }

    /// A deep copy: later training of either leaves the other as it was.
    pub fn snapshot(&self) -> Result<Self> {
        let varmap = VarMap::new();
        {
            let src = self.varmap.data().lock().map_err(|_| MaError::Config("VarMap mutex poisoned".into()))?;
            let mut dst = varmap.data().lock().map_err(|_| MaError::Config("VarMap mutex poisoned".into()))?;
            for (name, var) in src.iter() {
                dst.insert(name.clone(), Var::from_tensor(&var.as_tensor().copy()?)?);
            }
        }
        let potential = ConvexPotential::new(
            &mut ParamBuilder::new(&varmap, &mut SeededRng::new(0), DType::F64, &Device::Cpu),
            self.dim(),
            self.potential.width(),
        )?;
        Ok(Self { varmap, potential })
    }

    /// d.
    pub fn dim(&self) -> usize {
        self.potential.dim()
    }

    /// The trainable parameters.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// ψ's network.
    pub fn potential(&self) -> &ConvexPotential {
        &self.potential
    }

    fn check(&self, y: &Tensor, context: &str) -> Result<()> {
        match y.dims() {
            [_, c] if *c == self.dim() && y.dtype() == DType::F64 => Ok(()),
            dims => {
                Err(MaError::Data(format!("{context}: expected f64 points of shape (B, {}), got {:?} {dims:?}", self.dim(), y.dtype())))
            }
        }
    }

    /// ∇ψ(y) for y of shape (B, d), f64.
    pub fn apply(&self, y: &Tensor) -> Result<Tensor> {
        self.check(y, "BrenierMap::apply")?;
        Ok(self.potential.gradient(y)?)
    }

    /// ∇²ψ(y) v, row by row.
    pub fn jacobian_vector(&self, y: &Tensor, v: &Tensor) -> Result<Tensor> {
        self.check(y, "BrenierMap::jacobian_vector")?;
        Ok(self.potential.hessian_vector_product(y, v)?)
    }

    /// ∇²ψ(y) for each row, flat row-major (B·d·d), by d Hessian-vector products.
    pub fn jacobians(&self, y: &Tensor) -> Result<Vec<f64>> {
        let (b, d) = (y.dim(0)?, self.dim());
        let mut out = vec![0.0; b * d * d];
        for j in 0..d {
            let mut e = vec![0.0; b * d];
            (0..b).for_each(|i| e[i * d + j] = 1.0);
            let col = rows_of(&self.jacobian_vector(y, &Tensor::from_vec(e, (b, d), &Device::Cpu)?)?, d, "jacobians")?;
            for i in 0..b {
                for r in 0..d {
                    out[i * d * d + r * d + j] = col[i * d + r];
                }
            }
        }
        Ok(out)
    }

    /// λ_min, λ_max and log det of ∇²ψ over the rows of `y`.
    pub fn curvature(&self, y: &Tensor) -> Result<Curvature> {
        let d = self.dim();
        let jac = self.jacobians(y)?;
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut log_det = Vec::with_capacity(jac.len() / (d * d));
        for m in jac.chunks(d * d) {
            // symmetrise against round-off; ∇²ψ is symmetric in exact arithmetic
            let mat = nalgebra::DMatrix::from_row_slice(d, d, m);
            let eig = ((&mat + mat.transpose()) * 0.5).symmetric_eigen().eigenvalues;
            lo = lo.min(eig.min());
            hi = hi.max(eig.max());
            let det: f64 = eig.iter().product();
            log_det.push(if det > 0.0 { det.ln() } else { f64::NAN });
        }
        Ok(Curvature { min_eigenvalue: lo, max_eigenvalue: hi, log_det })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_map_is_near_the_identity_and_snapshots_are_independent() -> Result<()> {
        let mut rng = SeededRng::new(1);
        let map = BrenierMap::identity(2, 8, &mut rng)?;
        let y = rng.normal((5, 2), DType::F64, &Device::Cpu)?;
        let before = map.apply(&y)?;
        assert!((&before - &y)?.abs()?.max_all()?.to_scalar::<f64>()? < 0.1);
        let c = map.curvature(&y)?;
        assert!(c.min_eigenvalue >= 1.0 - 1e-12 && c.max_eigenvalue < 1.1, "{c:?}");
        let copy = map.snapshot()?;
        for var in map.varmap().all_vars() {
            var.set(&(var.as_tensor() + 0.5)?)?;
        }
        assert!((copy.apply(&y)? - &before)?.abs()?.max_all()?.to_scalar::<f64>()? < 1e-14, "the snapshot moved with the original");
        assert!((map.apply(&y)? - &before)?.abs()?.max_all()?.to_scalar::<f64>()? > 0.1);
        Ok(())
    }

    #[test]
    fn jacobians_match_finite_differences_of_the_map() -> Result<()> {
        let mut rng = SeededRng::new(2);
        let map = BrenierMap::identity(2, 8, &mut rng)?;
        for var in map.varmap().all_vars() {
            let noise = rng.normal(var.shape(), DType::F64, &Device::Cpu)?;
            var.set(&(var.as_tensor() + (noise * 0.3)?)?)?;
        }
        let y = rng.normal((4, 2), DType::F64, &Device::Cpu)?;
        let jac = map.jacobians(&y)?;
        let h = 1e-6;
        for j in 0..2 {
            let e = Tensor::from_vec(vec![if j == 0 { h } else { 0.0 }, if j == 1 { h } else { 0.0 }], (1, 2), &Device::Cpu)?;
            let fd = ((map.apply(&y.broadcast_add(&e)?)? - map.apply(&y.broadcast_sub(&e)?)?)? / (2.0 * h))?.to_vec2::<f64>()?;
            for (i, row) in fd.iter().enumerate() {
                for r in 0..2 {
                    let got = jac[i * 4 + r * 2 + j];
                    assert!((row[r] - got).abs() < 1e-6 * (1.0 + got.abs()), "∂{r}/∂{j} at row {i}: FD {} vs {got}", row[r]);
                }
            }
        }
        // and symmetric, as a Hessian is
        assert!(jac.chunks(4).all(|m| (m[1] - m[2]).abs() < 1e-10));
        Ok(())
    }
}
