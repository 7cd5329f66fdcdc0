//! `mixed-precision-adjoint`: 16-bit neural-ODE training that does not NaN — the Rust
//! counterpart of rampde (Celledoni, Ruthotto et al.; Ruthotto, "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs", "Mixed Precision for Neural ODEs").
//!
//! - [`forward`]: evaluate the RK increment in the low precision L, accumulate the state in the
//!   high precision H, store only the 16-bit trajectory.
//! - [`backward`]: rebuild one step at a time from the stored states, VJP with a dynamically
//!   scaled cotangent in L, accumulate adjoint and parameter gradients in H.
//! - [`stiff`]: Ruthotto's "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs" stiff test problem with its analytic gradients and the baselines.
//! - [`scaler`]: the dynamic adjoint scale S (power of two, halved on overflow, doubled with
//!   headroom), persisting across iterations.
//!
//! With L = H it is exactly `ode-solvers`' checkpointed discrete adjoint. The gradients land in
//! one candle `GradStore` together with the rest of the loss's, ready for a candle-nn optimizer:
//!
//! ```
//! use candle_core::{DType, Device, Tensor};
//! use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
//! use mixed_precision_adjoint::{solve_mixed, DynamicScaler, MpConfig};
//! use ode_solvers::{time_net_field, Method, SaveAt};
//! use tensor_core::{nets::Mlp, params::ParamBuilder, Activation, Precision, PrecisionPolicy, SeededRng};
//!
//! let dev = Device::Cpu;
//! let varmap = VarMap::new();
//! let mut rng = SeededRng::new(0);
//! let net = Mlp::new(&mut ParamBuilder::new(&varmap, &mut rng, DType::F32, &dev), 2, &[16], 2, Activation::Tanh)?;
//! let params: Vec<Tensor> = varmap.all_vars().iter().map(|v| v.as_tensor().clone()).collect();
//! let x = rng.normal((64, 2), DType::F32, &dev)?;
//! let target = (&x * 0.5)?; // learn the flow that halves every point
//!
//! let config = MpConfig {
//!     policy: PrecisionPolicy::new(Precision::F16, Precision::F32)?,
//!     method: Method::Rk4,
//!     grid: (0..=8).map(|i| i as f64 / 8.0).collect(),
//!     save_at: SaveAt::Final,
//! };
//! let mut scaler = DynamicScaler::new(Precision::F16); // one per ODE block, kept across iterations
//! let mut opt = AdamW::new(varmap.all_vars(), ParamsAdamW { lr: 2e-2, ..Default::default() })?;
//! let mut losses = Vec::new();
//! for _ in 0..40 {
//!     // the vector field sees f16 states and an f16 view of the weights (a differentiable cast)
//!     let low = net.to_dtype(DType::F16)?;
//!     let field = time_net_field(low.clone());
//!     let sol = solve_mixed(&field, &x, &config)?;
//!     let loss = (sol.last() - &target)?.sqr()?.mean_all()?;
//!     let mut grads = loss.backward()?; // ∂L/∂y(1), plus any other part of the loss
//!     let (_, report) = sol.backward(&field, &params, &mut scaler, &mut grads)?; // + ∂L/∂θ
//!     opt.step(&grads)?;
//!     losses.push(loss.to_scalar::<f32>()?);
//!     assert!(!report.degraded());
//! }
//! assert!(losses[39] < 0.2 * losses[0], "{losses:?}");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod autocast;
pub mod backward;
pub mod error;
pub mod forward;
pub mod scaler;
pub mod stiff;

pub use autocast::Autocast;
pub use backward::BackwardReport;
pub use error::{MpError, Result};
pub use forward::{solve_mixed, MpConfig, MpSolution};
pub use scaler::DynamicScaler;
