//! Manifolds with analytic constraints: hyperplanes, spheres, the torus in ℝ³, products, and a
//! user's own h and J.

use crate::error::{LiftError, Result};
use crate::manifold::Manifold;
use datasets::Matrix;
use nalgebra::{DMatrix, DVector};

/// The hyperplane {x : nᵀx = c} with unit normal n (codimension 1, infinite reach).
#[derive(Clone, Debug, PartialEq)]
pub struct Hyperplane {
    normal: Vec<f64>,
    offset: f64,
}

impl Hyperplane {
    /// {x : nᵀx = c}; n is normalised (and must not be zero).
    pub fn new(normal: Vec<f64>, offset: f64) -> Result<Self> {
        let norm = normal.iter().map(|v| v * v).sum::<f64>().sqrt();
        if !(norm > 0.0 && norm.is_finite() && offset.is_finite()) {
            return Err(LiftError::Input(format!(
                "a hyperplane needs a finite non-zero normal and a finite offset, got {normal:?}, {offset}"
            )));
        }
        Ok(Self { normal: normal.iter().map(|v| v / norm).collect(), offset: offset / norm })
    }
}

impl Hyperplane {
    /// An orthonormal basis of the plane's directions, d × (d − 1) (Gram–Schmidt on the
    /// coordinate axes projected onto the plane).
    pub fn tangent_basis(&self) -> DMatrix<f64> {
        let d = self.normal.len();
        let n = DVector::from_column_slice(&self.normal);
        let mut basis: Vec<DVector<f64>> = vec![n.clone()];
        for i in 0..d {
            let mut v = DVector::from_fn(d, |k, _| if k == i { 1.0 } else { 0.0 });
            for b in &basis {
                v -= b * b.dot(&v);
            }
            if v.norm() > 1e-6 && basis.len() < d {
                basis.push(v.normalize());
            }
        }
        DMatrix::from_columns(&basis[1..])
    }

    /// Points given by plane coordinates (rows of `uv`, d − 1 columns) as points of ℝᵈ:
    /// x = c·n + B·u with B = [`Hyperplane::tangent_basis`].
    pub fn embed(&self, uv: &Matrix) -> Result<Matrix> {
        let d = self.normal.len();
        if uv.cols + 1 != d {
            return Err(LiftError::Input(format!("plane coordinates have {} columns, the plane in ℝ^{d} needs {}", uv.cols, d - 1)));
        }
        let b = self.tangent_basis();
        let data = (0..uv.rows)
            .flat_map(|i| {
                let u = DVector::from_iterator(d - 1, uv.row(i).iter().map(|&v| v as f64));
                let x = &b * u + DVector::from_column_slice(&self.normal) * self.offset;
                x.iter().map(|&v| v as f32).collect::<Vec<_>>()
            })
            .collect();
        Ok(Matrix { data, rows: uv.rows, cols: d })
    }

    /// Plane coordinates Bᵀx of points of ℝᵈ (the inverse of [`Hyperplane::embed`] on the plane).
    pub fn coordinates(&self, x: &Matrix) -> Result<Matrix> {
        let d = self.normal.len();
        if x.cols != d {
            return Err(LiftError::Input(format!("points have {} columns, the plane lives in ℝ^{d}", x.cols)));
        }
        let bt = self.tangent_basis().transpose();
        let data = (0..x.rows)
            .flat_map(|i| {
                (&bt * DVector::from_iterator(d, x.row(i).iter().map(|&v| v as f64))).iter().map(|&v| v as f32).collect::<Vec<_>>()
            })
            .collect();
        Ok(Matrix { data, rows: x.rows, cols: d - 1 })
    }
}

impl Manifold for Hyperplane {
    fn ambient_dim(&self) -> usize {
        self.normal.len()
    }
    fn codim(&self) -> usize {
        1
    }
    fn constraint(&self, x: &[f64]) -> DVector<f64> {
        DVector::from_element(1, x.iter().zip(&self.normal).map(|(a, b)| a * b).sum::<f64>() - self.offset)
    }
    fn jacobian(&self, _x: &[f64]) -> DMatrix<f64> {
        DMatrix::from_row_slice(1, self.normal.len(), &self.normal)
    }
    fn reach(&self) -> Option<f64> {
        Some(f64::INFINITY)
    }
}

/// The sphere {x : ‖x − c‖ = r} in ℝᵈ (reach r), with h(x) = ‖x − c‖ − r.
#[derive(Clone, Debug, PartialEq)]
pub struct Sphere {
    pub center: Vec<f64>,
    pub radius: f64,
}

impl Manifold for Sphere {
    fn ambient_dim(&self) -> usize {
        self.center.len()
    }
    fn codim(&self) -> usize {
        1
    }
    fn constraint(&self, x: &[f64]) -> DVector<f64> {
        DVector::from_element(1, distance(x, &self.center) - self.radius)
    }
    /// (x − c)ᵀ/‖x − c‖ (zero at the centre, where the normal is undefined).
    fn jacobian(&self, x: &[f64]) -> DMatrix<f64> {
        let r = distance(x, &self.center);
        DMatrix::from_iterator(1, x.len(), x.iter().zip(&self.center).map(|(a, c)| if r > 0.0 { (a - c) / r } else { 0.0 }))
    }
    fn reach(&self) -> Option<f64> {
        Some(self.radius)
    }
}

/// The torus in ℝ³ around the z-axis with major radius R and tube radius r < R (reach r):
/// h(x) = √((√(x² + y²) − R)² + z²) − r.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Torus {
    pub major: f64,
    pub minor: f64,
}

impl Torus {
    /// (ρ − R, z) and its length: the offset from the tube's centre circle.
    fn tube_offset(&self, x: &[f64]) -> (f64, f64, f64, f64) {
        let rho = (x[0] * x[0] + x[1] * x[1]).sqrt();
        let (u, w) = (rho - self.major, x[2]);
        (rho, u, w, (u * u + w * w).sqrt())
    }
}

impl Manifold for Torus {
    fn ambient_dim(&self) -> usize {
        3
    }
    fn codim(&self) -> usize {
        1
    }
    fn constraint(&self, x: &[f64]) -> DVector<f64> {
        DVector::from_element(1, self.tube_offset(x).3 - self.minor)
    }
    fn jacobian(&self, x: &[f64]) -> DMatrix<f64> {
        let (rho, u, w, s) = self.tube_offset(x);
        if rho == 0.0 || s == 0.0 {
            return DMatrix::zeros(1, 3);
        }
        DMatrix::from_row_slice(1, 3, &[u / s * x[0] / rho, u / s * x[1] / rho, w / s])
    }
    fn reach(&self) -> Option<f64> {
        Some(self.minor.min(self.major - self.minor))
    }
}

/// M₁ × M₂ in ℝ^{d₁ + d₂}: the constraints of both on their own coordinates.
pub struct Product<A: Manifold, B: Manifold>(pub A, pub B);

impl<A: Manifold, B: Manifold> Manifold for Product<A, B> {
    fn ambient_dim(&self) -> usize {
        self.0.ambient_dim() + self.1.ambient_dim()
    }
    fn codim(&self) -> usize {
        self.0.codim() + self.1.codim()
    }
    fn constraint(&self, x: &[f64]) -> DVector<f64> {
        let (a, b) = x.split_at(self.0.ambient_dim());
        let (ha, hb) = (self.0.constraint(a), self.1.constraint(b));
        DVector::from_iterator(ha.len() + hb.len(), ha.iter().chain(hb.iter()).copied())
    }
    fn jacobian(&self, x: &[f64]) -> DMatrix<f64> {
        let (a, b) = x.split_at(self.0.ambient_dim());
        let (ja, jb) = (self.0.jacobian(a), self.1.jacobian(b));
        let mut j = DMatrix::zeros(ja.nrows() + jb.nrows(), ja.ncols() + jb.ncols());
        j.view_mut((0, 0), ja.shape()).copy_from(&ja);
        j.view_mut((ja.nrows(), ja.ncols()), jb.shape()).copy_from(&jb);
        j
    }
    fn reach(&self) -> Option<f64> {
        Some(self.0.reach()?.min(self.1.reach()?))
    }
}

/// A user's manifold: h and J as closures.
pub struct Implicit<H, J> {
    pub ambient_dim: usize,
    pub codim: usize,
    pub h: H,
    pub jacobian: J,
}

impl<H: Fn(&[f64]) -> DVector<f64>, J: Fn(&[f64]) -> DMatrix<f64>> Manifold for Implicit<H, J> {
    fn ambient_dim(&self) -> usize {
        self.ambient_dim
    }
    fn codim(&self) -> usize {
        self.codim
    }
    fn constraint(&self, x: &[f64]) -> DVector<f64> {
        (self.h)(x)
    }
    fn jacobian(&self, x: &[f64]) -> DMatrix<f64> {
        (self.jacobian)(x)
    }
}

fn distance(x: &[f64], c: &[f64]) -> f64 {
    x.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum::<f64>().sqrt()
}
