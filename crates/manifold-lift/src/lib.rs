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
//! Lift a blob on the unit sphere, train a flow-matching model on the lifted points, sample and
//! project back (the model could be any `train::ContinuousFlow`):
//!
//! ```
//! use candle_core::{DType, Device};
//! use candle_nn::VarMap;
//! use datasets::Matrix;
//! use flow_matching::{train_cfm, CfmConfig, Coupling, LearnedFlow, Path};
//! use manifold_lift::{lift, sample_and_project, ProjectionConfig, Sphere};
//! use tensor_core::{nets::Mlp, params::ParamBuilder, Activation, SeededRng};
//!
//! let sphere = Sphere { center: vec![0.0; 3], radius: 1.0 };
//! let mut rng = SeededRng::new(0);
//! // data on M: directions around the north pole, normalised
//! let d = (rng.normal((1000, 3), DType::F32, &Device::Cpu)? * 0.3)?.broadcast_add(&candle_core::Tensor::new(&[[0f32, 0.0, 1.0]], &Device::Cpu)?)?;
//! let d = d.broadcast_div(&d.sqr()?.sum_keepdim(1)?.sqrt()?)?;
//! let data = Matrix::new(d.flatten_all()?.to_vec1::<f32>()?, 1000, 3)?;
//! let lifted = lift(&sphere, &data, 0.05, 1)?; // n ~ N(0, σ²P_N(z))
//!
//! let vm = VarMap::new();
//! let net = Mlp::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, &Device::Cpu), 3, &[64, 64], 3, Activation::Swish)?;
//! let source = rng.normal((1000, 3), DType::F32, &Device::Cpu)?;
//! let cfg = CfmConfig { coupling: Coupling::Independent, path: Path::Straight { sigma: 0.0 }, iters: 300, batch: 256, lr: 2e-3, seed: 2 };
//! train_cfm(&net, &vm, &source, &lifted.to_tensor(&Device::Cpu)?, &cfg)?;
//!
//! let z = rng.normal((200, 3), DType::F32, &Device::Cpu)?;
//! let (samples, report) = sample_and_project(&LearnedFlow { net }, &sphere, &z, 20, &ProjectionConfig::default())?;
//! assert!(report.max_violation_after < 1e-6 && report.flagged == 0, "{report:?}");
//! let mean_z = (0..samples.rows).map(|i| samples.row(i)[2] as f64).sum::<f64>() / samples.rows as f64;
//! assert!(mean_z > 0.7, "samples near the pole: mean z {mean_z}");
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
pub use surface::{MeshNormals, MeshSurface, Surface};
