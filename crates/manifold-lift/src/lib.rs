//! `manifold-lift`: generative models for data on a constraint manifold M = {x : h(x) = 0} by
//! lifting into the normal bundle, training any workspace model on the lifted density, and
//! projecting samples back (Keegan & Ruthotto, "Manifold-Aware Perturbations for Constrained
//! Generative Modeling", 2026; Ruthotto, "Understanding Generative AI Through Optimal Transport
//! and PDEs").
//!
//! - [`manifold`]: the `Manifold` trait (h, its Jacobian, the reach) and the normal projector
//!   P_N = Jᵀ(JJᵀ)⁻¹J; [`shapes`]: hyperplanes, spheres, the torus, products, a user's h and J.
//! - [`lift`]: x = z + n with n ~ N(0, σ²P_N(z)).
//! - [`project`]: the nearest point on M by Gauss–Newton, with flags and a violation report.
//! - [`mesh`], [`mesh_io`], [`bvh`]: triangle meshes (made by code, or read from OBJ / PLY),
//!   closest points through a bounding-volume hierarchy; [`surface`]: `Surface`, what the lift
//!   and the projection need, for constraint manifolds and meshes alike (`MeshSurface`).
//! - [`sample`]: sample any `train::ContinuousFlow` and project, or project after every step.
//!
//! ```
//! use datasets::Matrix;
//! use manifold_lift::{lift, project_all, Manifold, ProjectionConfig, Sphere};
//!
//! let sphere = Sphere { center: vec![0.0; 3], radius: 1.0 };
//! // points on the unit sphere, lifted off it by normal noise of scale 0.1
//! let on: Vec<f32> = (0..100).flat_map(|i| { let a = i as f32 * 0.1; [a.cos(), a.sin(), 0.0] }).collect();
//! let points = Matrix::new(on, 100, 3)?;
//! let lifted = lift(&sphere, &points, 0.1, 7)?;
//! let (back, report) = project_all(&sphere, &lifted, &ProjectionConfig::default())?;
//! assert!(report.max_violation_before > 0.05 && report.max_violation_after < 1e-6 && report.flagged == 0);
//! // normal noise only: projecting undoes the lift
//! assert!(back.data.iter().zip(&points.data).all(|(a, b)| (a - b).abs() < 1e-5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod bvh;
pub mod error;
pub mod lift;
pub mod manifold;
pub mod mesh;
pub mod mesh_io;
pub mod project;
pub mod sample;
pub mod shapes;
pub mod surface;

pub use bvh::{ClosestPoint, MeshBvh};
pub use error::{LiftError, Result};
pub use lift::lift;
pub use manifold::{normal_projector, Manifold};
pub use mesh::TriangleMesh;
pub use mesh_io::read_mesh;
pub use project::{project, project_all, Projection, ProjectionConfig, ProjectionReport};
pub use sample::{sample_and_project, sample_projecting_every_step};
pub use shapes::{Hyperplane, Implicit, Product, Sphere, Torus};
pub use surface::{MeshSurface, Surface};
