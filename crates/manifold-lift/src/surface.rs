//! What lifting and projecting need from a surface, whether it is given by constraints
//! (`Manifold`) or by a triangle mesh (`MeshSurface`): the normal projector at a point on it,
//! the nearest point, and how far a point is from it.

use crate::bvh::MeshBvh;
use crate::error::{LiftError, Result};
use crate::manifold::{check_point, normal_projector, Manifold};
use crate::mesh::TriangleMesh;
use crate::project::{project, Projection, ProjectionConfig};
use nalgebra::{DMatrix, Vector3};

/// A surface in ℝᵈ for the lift and the projection.
pub trait Surface {
    /// Ambient dimension d.
    fn ambient_dim(&self) -> usize;
    /// P_N at a point on the surface.
    fn normal_projector(&self, z: &[f64]) -> Result<DMatrix<f64>>;
    /// The nearest point to `x`, flagged when it cannot be trusted.
    fn project(&self, x: &[f64], cfg: &ProjectionConfig) -> Result<Projection>;
    /// How far `x` is from the surface: ‖h(x)‖ for a constraint manifold, the distance for a mesh.
    fn violation(&self, x: &[f64]) -> Result<f64>;
}

impl<M: Manifold + ?Sized> Surface for M {
    fn ambient_dim(&self) -> usize {
        Manifold::ambient_dim(self)
    }
    fn normal_projector(&self, z: &[f64]) -> Result<DMatrix<f64>> {
        normal_projector(self, z)
    }
    fn project(&self, x: &[f64], cfg: &ProjectionConfig) -> Result<Projection> {
        project(self, x, cfg)
    }
    fn violation(&self, x: &[f64]) -> Result<f64> {
        check_point(Manifold::ambient_dim(self), x)?;
        Ok(self.constraint(x).norm())
    }
}

/// A triangle mesh in ℝ³ as a surface: the nearest point by the BVH, the normal space of the
/// nearest face (piecewise constant), and the reach the user vouches for, if any (points that
/// move farther are flagged).
pub struct MeshSurface {
    pub bvh: MeshBvh,
    pub reach: Option<f64>,
}

impl MeshSurface {
    /// The surface of `mesh`, with a reach if known.
    pub fn new(mesh: TriangleMesh, reach: Option<f64>) -> Self {
        Self { bvh: MeshBvh::new(mesh), reach }
    }

    fn point(x: &[f64]) -> Result<[f64; 3]> {
        check_point(3, x)?;
        Ok([x[0], x[1], x[2]])
    }
}

impl Surface for MeshSurface {
    fn ambient_dim(&self) -> usize {
        3
    }
    /// nnᵀ with n the unit normal of the face nearest to z.
    fn normal_projector(&self, z: &[f64]) -> Result<DMatrix<f64>> {
        let face = self.bvh.closest(Self::point(z)?).face;
        let n = Vector3::from(self.bvh.mesh.face_normal(face));
        Ok(DMatrix::from_iterator(3, 3, (n * n.transpose()).iter().copied()))
    }
    fn project(&self, x: &[f64], _cfg: &ProjectionConfig) -> Result<Projection> {
        let c = self.bvh.closest(Self::point(x)?);
        if !c.distance.is_finite() {
            return Err(LiftError::Input(format!("no closest point found for {x:?}")));
        }
        let flagged = self.reach.is_some_and(|r| c.distance > r);
        Ok(Projection { point: c.point.to_vec(), violation: 0.0, moved: c.distance, iterations: 1, flagged })
    }
    fn violation(&self, x: &[f64]) -> Result<f64> {
        Ok(self.bvh.closest(Self::point(x)?).distance)
    }
}
