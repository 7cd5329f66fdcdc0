//! What lifting and projecting need from a surface, whether it is given by constraints
//! (`Manifold`) or by a triangle mesh (`MeshSurface`): the normal projector at a point on it,
//! the nearest point, and how far a point is from it.

use crate::bvh::MeshBvh;
use crate::error::{LiftError, Result};
use crate::manifold::{check_point, normal_projector, Manifold};
use crate::mesh::{cross, dot, sub, TriangleMesh};
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

/// How a mesh's normal is taken at a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MeshNormals {
    /// The nearest face's normal (piecewise constant).
    Face,
    /// Area-weighted vertex normals interpolated with the barycentric coordinates of the point in
    /// its nearest face (smooth across edges).
    Interpolated,
}

/// A triangle mesh in ℝ³ as a surface: the nearest point by the BVH, the normal space from the
/// nearest face, and the reach the user vouches for, if any (points that move farther are
/// flagged).
pub struct MeshSurface {
    pub bvh: MeshBvh,
    pub reach: Option<f64>,
    pub normals: MeshNormals,
    /// Area-weighted unit vertex normals (used by `MeshNormals::Interpolated`).
    vertex_normals: Vec<[f64; 3]>,
}

impl MeshSurface {
    /// The surface of `mesh` with face normals, with a reach if known.
    pub fn new(mesh: TriangleMesh, reach: Option<f64>) -> Self {
        let mut vertex_normals = vec![[0.0; 3]; mesh.vertices.len()];
        for (f, face) in mesh.faces.iter().enumerate() {
            // the unnormalised face normal has length twice the area: an area weighting
            let [a, b, c] = mesh.triangle(f);
            let n = cross(sub(b, a), sub(c, a));
            for &v in face {
                vertex_normals[v] = std::array::from_fn(|k| vertex_normals[v][k] + n[k]);
            }
        }
        let vertex_normals = vertex_normals
            .into_iter()
            .map(|n| {
                let l = dot(n, n).sqrt();
                if l > 0.0 {
                    n.map(|c| c / l)
                } else {
                    n
                }
            })
            .collect();
        Self { bvh: MeshBvh::new(mesh), reach, normals: MeshNormals::Face, vertex_normals }
    }

    /// The same surface with `normals`.
    pub fn with_normals(mut self, normals: MeshNormals) -> Self {
        self.normals = normals;
        self
    }

    /// The unit normal at a point `p` of face `f`.
    fn normal_at(&self, p: [f64; 3], f: usize) -> [f64; 3] {
        let mesh = &self.bvh.mesh;
        match self.normals {
            MeshNormals::Face => mesh.face_normal(f),
            MeshNormals::Interpolated => {
                let [a, b, c] = mesh.triangle(f);
                let w = barycentric(p, a, b, c);
                let n: [f64; 3] = std::array::from_fn(|k| (0..3).map(|i| w[i] * self.vertex_normals[mesh.faces[f][i]][k]).sum());
                let l = dot(n, n).sqrt();
                if l > 0.0 {
                    n.map(|v| v / l)
                } else {
                    mesh.face_normal(f)
                }
            }
        }
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
        let c = self.bvh.closest(Self::point(z)?);
        let n = Vector3::from(self.normal_at(c.point, c.face));
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

/// Barycentric coordinates of `p` (on or near the triangle a, b, c), clamped to be non-negative.
fn barycentric(p: [f64; 3], a: [f64; 3], b: [f64; 3], c: [f64; 3]) -> [f64; 3] {
    let (v0, v1, v2) = (sub(b, a), sub(c, a), sub(p, a));
    let (d00, d01, d11, d20, d21) = (dot(v0, v0), dot(v0, v1), dot(v1, v1), dot(v2, v0), dot(v2, v1));
    let denom = d00 * d11 - d01 * d01;
    let v = ((d11 * d20 - d01 * d21) / denom).max(0.0);
    let w = ((d00 * d21 - d01 * d20) / denom).max(0.0);
    let u = (1.0 - v - w).max(0.0);
    let sum = u + v + w;
    [u / sum, v / sum, w / sum]
}
