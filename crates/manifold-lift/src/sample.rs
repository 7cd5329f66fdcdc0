//! Sampling on M with any workspace model that implements `train::ContinuousFlow` (CNF,
//! OT-Flow, flow matching, the PF-ODE of a score): draw from the model trained on lifted data,
//! then project ("lift, train, project"); or project after every solver step as well, the
//! projected-sampling baseline ("Constrained Synthesis with Projected Diffusion Models",
//! Christopher et al. 2024). Nothing here knows which model it samples.

use crate::error::{LiftError, Result};
use crate::project::{project_all, ProjectionConfig, ProjectionReport};
use crate::surface::Surface;
use candle_core::{DType, Tensor};
use datasets::Matrix;
use ode_solvers::{solve, Method, SolveConfig, Steps};
use train::ContinuousFlow;

fn model_error<E: std::error::Error + Send + Sync + 'static>(e: E) -> LiftError {
    LiftError::Model(Box::new(e))
}

fn to_matrix(t: &Tensor) -> Result<Matrix> {
    let (rows, cols) = t.dims2()?;
    Ok(Matrix { data: t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?, rows, cols })
}

fn check_dims<F: ContinuousFlow>(flow: &F, m: &dyn Surface, z: &Tensor) -> Result<()> {
    let d = z.dims2().map(|(_, d)| d).unwrap_or(0);
    if flow.dim() != m.ambient_dim() || d != m.ambient_dim() {
        return Err(LiftError::Input(format!(
            "model of dimension {}, latent batch {:?}, manifold in ℝ^{}",
            flow.dim(),
            z.dims(),
            m.ambient_dim()
        )));
    }
    Ok(())
}

/// Samples x = T⁻¹(z) with `steps` RK4 steps, then Π(x).
pub fn sample_and_project<F: ContinuousFlow>(
    flow: &F,
    m: &dyn Surface,
    z: &Tensor,
    steps: usize,
    cfg: &ProjectionConfig,
) -> Result<(Matrix, ProjectionReport)> {
    check_dims(flow, m, z)?;
    let x = flow.sample(z, steps).map_err(model_error)?;
    project_all(m, &to_matrix(&x)?, cfg)
}

/// Samples with a projection after every one of `steps` RK4 steps (the projected-sampling
/// baseline); the report is the last projection's.
pub fn sample_projecting_every_step<F: ContinuousFlow>(
    flow: &F,
    m: &dyn Surface,
    z: &Tensor,
    steps: usize,
    cfg: &ProjectionConfig,
) -> Result<(Matrix, ProjectionReport)> {
    check_dims(flow, m, z)?;
    if steps == 0 {
        return Err(LiftError::Input("sampling needs at least one step".into()));
    }
    let v = flow.velocity(z.dtype()).map_err(model_error)?;
    let (device, dtype) = (z.device().clone(), z.dtype());
    let mut x = z.detach();
    let mut last = None;
    for k in 0..steps {
        let (t0, t1) = (1.0 - k as f64 / steps as f64, 1.0 - (k + 1) as f64 / steps as f64);
        let stepped = solve(v.as_ref(), Method::Rk4, &x, &SolveConfig::new(Steps::Grid(vec![t0, t1]))).map_err(model_error)?.last().clone();
        let (projected, report) = project_all(m, &to_matrix(&stepped)?, cfg)?;
        x = projected.to_tensor(&device)?.to_dtype(dtype)?;
        last = Some((projected, report));
    }
    Ok(last.expect("at least one step"))
}
