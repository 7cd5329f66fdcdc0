//! Bad input gives typed errors with a readable message, never a panic or a silent NaN.

use candle_core::{DType, Device, Tensor};
use ode_solvers::{
    solve, solve_sde, Adjoint, Calculus, Method, Noise, PiController, SaveAt, SdeConfig, SdeMethod, SdeTerm, SolveConfig, SolverError,
    Steps, VirtualBrownianTree,
};

const DEV: Device = Device::Cpu;

fn decay(_t: f64, y: &Tensor) -> ode_solvers::Result<Tensor> {
    Ok(y.neg()?)
}

fn y0() -> Tensor {
    Tensor::ones((2, 3), DType::F64, &DEV).unwrap()
}

#[test]
fn bad_grids_and_initial_states() {
    let cfg = |g: Vec<f64>| SolveConfig::new(Steps::Grid(g));
    let err = |g: Vec<f64>| solve(&decay, Method::Rk4, &y0(), &cfg(g)).err().expect("an error");
    assert!(matches!(err(vec![0.0]), SolverError::BadGrid(_)));
    assert!(matches!(err(vec![0.0, 0.0, 1.0]), SolverError::BadGrid(_)));
    let e = err(vec![0.0, 0.5, 0.4, 1.0]);
    assert!(e.to_string().contains("not strictly monotone at 0.5 → 0.4"), "{e}");
    assert!(matches!(err(vec![0.0, f64::NAN]), SolverError::BadGrid(_)));
    assert!(matches!(Steps::uniform(0.0, 1.0, 0), Err(SolverError::BadGrid(_))));
    let nan = Tensor::new(&[1.0f64, f64::NAN], &DEV).unwrap();
    assert!(matches!(solve(&decay, Method::Rk4, &nan, &cfg(vec![0.0, 1.0])), Err(SolverError::NonFiniteInitial)));
}

#[test]
fn blow_up_is_reported_with_its_time() {
    // y' = y², y(0) = 1 blows up at t = 1
    let f = |_t: f64, y: &Tensor| Ok(y.sqr()?);
    let e = solve(&f, Method::Euler, &y0(), &SolveConfig::new(Steps::uniform(0.0, 3.0, 30).unwrap())).err().expect("blow-up");
    match e {
        SolverError::NonFinite { t, .. } => assert!(t > 1.0 && t <= 3.0, "t = {t}"),
        other => panic!("expected NonFinite, got {other}"),
    }
}

#[test]
fn wrong_shapes_and_mismatched_methods() {
    let bad = |_t: f64, y: &Tensor| Ok(y.sum_keepdim(1)?);
    let e = solve(&bad, Method::Rk4, &y0(), &SolveConfig::new(Steps::uniform(0.0, 1.0, 4).unwrap())).err().expect("shape");
    assert!(e.to_string().contains("returned shape [2, 1] for state leaf 0 of shape [2, 3]"), "{e}");
    let adaptive = SolveConfig::new(Steps::Adaptive { t0: 0.0, t1: 1.0, controller: PiController::new(1e-6, 1e-6) });
    assert!(matches!(solve(&decay, Method::Rk4, &y0(), &adaptive), Err(SolverError::Mismatch(_))));
    let bad_tol = SolveConfig::new(Steps::Adaptive { t0: 0.0, t1: 1.0, controller: PiController::new(-1.0, 0.0) });
    assert!(matches!(solve(&decay, Method::Dopri5, &y0(), &bad_tol), Err(SolverError::Config(_))));
}

#[test]
fn step_budget_and_output_times() {
    let tight = SolveConfig::new(Steps::Adaptive { t0: 0.0, t1: 100.0, controller: PiController::new(1e-12, 1e-12) }).max_steps(10);
    let e = solve(&decay, Method::Dopri5, &y0(), &tight).err().expect("budget");
    assert!(matches!(e, SolverError::MaxSteps { max_steps: 10, .. }), "{e}");
    let grid = Steps::uniform(0.0, 1.0, 4).unwrap();
    let outside = SolveConfig::new(grid.clone()).save_at(SaveAt::Times(vec![0.5, 2.0]));
    assert!(matches!(solve(&decay, Method::Rk4, &y0(), &outside), Err(SolverError::BadSaveAt(_))));
    let unordered = SolveConfig::new(grid.clone()).save_at(SaveAt::Times(vec![0.5, 0.25]));
    assert!(matches!(solve(&decay, Method::Rk4, &y0(), &unordered), Err(SolverError::BadSaveAt(_))));
    // off-grid output: fine with dense output, an error without it or under the checkpointed adjoint
    let off = |adjoint| SolveConfig::new(grid.clone()).save_at(SaveAt::Times(vec![0.3])).adjoint(adjoint);
    assert!(solve(&decay, Method::Dopri5, &y0(), &off(Adjoint::FullGraph)).is_ok());
    assert!(matches!(solve(&decay, Method::Rk4, &y0(), &off(Adjoint::FullGraph)), Err(SolverError::BadSaveAt(_))));
    assert!(matches!(solve(&decay, Method::Dopri5, &y0(), &off(Adjoint::Checkpointed)), Err(SolverError::BadSaveAt(_))));
    // backward() on a full-graph solution says what to do instead
    let sol = solve(&decay, Method::Rk4, &y0(), &SolveConfig::new(grid)).unwrap();
    let mut grads = candle_core::backprop::GradStore::default();
    let e = sol.backward(&decay, Method::Rk4, &[], &mut grads).expect_err("no tape");
    assert!(e.to_string().contains("call backward() on the loss"), "{e}");
}

struct Additive;
impl SdeTerm<Tensor> for Additive {
    fn drift(&self, _t: f64, y: &Tensor) -> ode_solvers::Result<Tensor> {
        Ok(y.neg()?)
    }
    fn diffusion(&self, _t: f64, y: &Tensor) -> ode_solvers::Result<Tensor> {
        Ok(y.ones_like()?)
    }
    fn calculus(&self) -> Calculus {
        Calculus::Ito
    }
    fn noise(&self) -> Noise {
        Noise::Scalar
    }
}

#[test]
fn sde_calculus_and_noise_must_match_the_scheme() {
    let bm = VirtualBrownianTree::new(0.0, 1.0, 0, &y0(), Noise::Scalar, 1e-6).unwrap();
    let grid: Vec<f64> = (0..=8).map(|i| i as f64 / 8.0).collect();
    let e = solve_sde(&Additive, SdeMethod::StochasticHeun, &y0(), &SdeConfig::new(&grid, &bm)).err().expect("calculus");
    assert!(e.to_string().contains("Stratonovich") && e.to_string().contains("Ito"), "{e}");
    assert!(matches!(solve_sde(&Additive, SdeMethod::Milstein, &y0(), &SdeConfig::new(&grid, &bm)), Err(SolverError::Mismatch(_))));
    // scalar noise: one Brownian motion per sample, shared across its entries
    let sol = solve_sde(&Additive, SdeMethod::EulerMaruyama, &y0(), &SdeConfig::new(&grid, &bm)).unwrap();
    let rows = sol.last().to_vec2::<f64>().unwrap();
    assert!(rows.iter().all(|r| r.iter().all(|v| (v - r[0]).abs() < 1e-12)), "{rows:?}");
    assert!((rows[0][0] - rows[1][0]).abs() > 1e-6);
    // a grid outside the Brownian tree's interval
    let long: Vec<f64> = (0..=8).map(|i| i as f64 / 4.0).collect();
    assert!(matches!(solve_sde(&Additive, SdeMethod::EulerMaruyama, &y0(), &SdeConfig::new(&long, &bm)), Err(SolverError::BadSaveAt(_))));
}

/// A checkpointed or continuous backward pass replays the forward solve's method: replaying
/// another one would differentiate a different discretisation without a word.
#[test]
fn backward_with_another_method_is_a_typed_error() {
    let w = candle_core::Var::new(&[[0.3f64, -0.2], [0.1, 0.4]], &DEV).unwrap();
    let f = |_t: f64, y: &Tensor| Ok(y.matmul(w.as_tensor())?.tanh()?);
    let params = [w.as_tensor().clone()];
    for adjoint in [Adjoint::Checkpointed, Adjoint::Continuous] {
        let y = Tensor::ones((2, 2), DType::F64, &DEV).unwrap();
        let sol = solve(&f, Method::Rk4, &y, &SolveConfig::new(Steps::uniform(0.0, 1.0, 4).unwrap()).adjoint(adjoint)).unwrap();
        let mut grads = sol.last().sqr().unwrap().sum_all().unwrap().backward().unwrap();
        let e = sol.backward(&f, Method::Euler, &params, &mut grads).expect_err("method mismatch");
        assert!(matches!(e, SolverError::Mismatch(_)) && e.to_string().contains("Rk4"), "{e}");
        assert!(sol.backward(&f, Method::Rk4, &params, &mut grads).is_ok());
    }
    // an SDE tape replayed with an ODE method, and the reverse
    let bm = VirtualBrownianTree::new(0.0, 1.0, 0, &y0(), Noise::Scalar, 1e-6).unwrap();
    let grid: Vec<f64> = (0..=4).map(|i| i as f64 / 4.0).collect();
    let sol = solve_sde(&Additive, SdeMethod::EulerMaruyama, &y0(), &SdeConfig::new(&grid, &bm).adjoint(Adjoint::Checkpointed)).unwrap();
    let mut grads = sol.last().sum_all().unwrap().backward().unwrap();
    assert!(matches!(sol.backward(&|_t: f64, y: &Tensor| Ok(y.clone()), Method::Euler, &[], &mut grads), Err(SolverError::Mismatch(_))));
}

/// Empty and one-row batches: an empty state integrates to an empty state, one row to one row.
#[test]
fn empty_and_single_row_batches() {
    let f = |_t: f64, y: &Tensor| Ok(y.neg()?);
    for rows in [0usize, 1] {
        let y = Tensor::ones((rows, 3), DType::F64, &DEV).unwrap();
        for method in [Method::Rk4, Method::Dopri5] {
            let steps = if method == Method::Rk4 {
                Steps::uniform(0.0, 1.0, 4).unwrap()
            } else {
                Steps::Adaptive { t0: 0.0, t1: 1.0, controller: PiController::new(1e-6, 1e-6) }
            };
            let sol = solve(&f, method, &y, &SolveConfig::new(steps)).unwrap();
            assert_eq!(sol.last().dims(), &[rows, 3]);
        }
    }
}
