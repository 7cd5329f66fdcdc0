//! The mixed-precision adjoint: equal to `ode-solvers`' checkpointed DTO when L = H (f64 and
//! f32), a Taylor test at f64, and Ruthotto's "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs" stiff problem at f16 with and without scaling.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use mixed_precision_adjoint::stiff::{StiffMethod, StiffProblem};
use mixed_precision_adjoint::{solve_mixed, DynamicScaler, MpConfig, Result};
use ode_solvers::{solve, time_net_field, Adjoint, Method, SaveAt, SolveConfig, Steps};
use tensor_core::nets::Mlp;
use tensor_core::params::ParamBuilder;
use tensor_core::{Activation, Precision, PrecisionPolicy, SeededRng};

const DEV: Device = Device::Cpu;

struct Net {
    varmap: VarMap,
    mlp: Mlp,
    x: Tensor,
    /// y₀ = x·W with W tracked, so ∂L/∂y₀ must flow on into W.
    w: Var,
}

fn net(dtype: DType) -> Result<Net> {
    let varmap = VarMap::new();
    let mut rng = SeededRng::new(4);
    let mlp = Mlp::new(&mut ParamBuilder::new(&varmap, &mut rng, dtype, &DEV), 3, &[12, 12], 3, Activation::Tanh)?;
    let x = rng.normal((5, 3), dtype, &DEV)?;
    let w = Var::from_tensor(&(Tensor::eye(3, dtype, &DEV)? + rng.normal((3, 3), dtype, &DEV)?.affine(0.1, 0.0)?)?)?;
    Ok(Net { varmap, mlp, x, w })
}

impl Net {
    fn params(&self) -> Vec<Tensor> {
        self.varmap.all_vars().iter().map(|v| v.as_tensor().clone()).chain(std::iter::once(self.w.as_tensor().clone())).collect()
    }
    fn ode_params(&self) -> Vec<Tensor> {
        self.varmap.all_vars().iter().map(|v| v.as_tensor().clone()).collect()
    }
    fn y0(&self) -> Result<Tensor> {
        Ok(self.x.matmul(self.w.as_tensor())?)
    }
    /// L = Σ y(T)² + Σ cos(y(T/2)).
    fn loss(ys: &[Tensor]) -> Result<Tensor> {
        Ok((ys[1].sqr()?.sum_all()? + ys[0].cos()?.sum_all()?)?)
    }
    fn flat(&self, grads: &GradStore) -> Result<Vec<f64>> {
        let mut v = Vec::new();
        for p in self.params() {
            v.extend(grads.get(&p).expect("gradient").to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?);
        }
        Ok(v)
    }
    fn mixed(&self, policy: PrecisionPolicy, method: Method, n: usize) -> Result<(Vec<f64>, f64)> {
        let low = self.mlp.to_dtype(policy.low.dtype())?;
        let field = time_net_field(low.clone());
        let grid: Vec<f64> = (0..=n).map(|i| i as f64 / n as f64).collect();
        let config = MpConfig { policy, method, grid, save_at: SaveAt::Times(vec![0.5, 1.0]) };
        let sol = solve_mixed(&field, &self.y0()?, &config)?;
        let loss = Net::loss(&sol.ys)?;
        let mut grads = loss.backward()?;
        sol.backward(&field, &self.ode_params(), &mut DynamicScaler::new(policy.low), &mut grads)?;
        Ok((self.flat(&grads)?, loss.to_dtype(DType::F64)?.to_scalar::<f64>()?))
    }
    fn checkpointed(&self, method: Method, n: usize) -> Result<(Vec<f64>, f64)> {
        let field = time_net_field(self.mlp.clone());
        let cfg = SolveConfig::new(Steps::uniform(0.0, 1.0, n)?).save_at(SaveAt::Times(vec![0.5, 1.0])).adjoint(Adjoint::Checkpointed);
        let sol = solve(&field, method, &self.y0()?, &cfg)?;
        let loss = Net::loss(&sol.ys)?;
        let mut grads = loss.backward()?;
        sol.backward(&field, method, &self.ode_params(), &mut grads)?;
        Ok((self.flat(&grads)?, loss.to_dtype(DType::F64)?.to_scalar::<f64>()?))
    }
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt() / b.iter().map(|y| y * y).sum::<f64>().sqrt()
}

#[test]
fn equal_precisions_reproduce_the_checkpointed_discrete_adjoint() -> Result<()> {
    for (p, tol) in [(Precision::F64, 1e-12), (Precision::F32, 1e-5)] {
        let n = net(p.dtype())?;
        for method in [Method::Euler, Method::Rk4] {
            let (g_mp, l_mp) = n.mixed(PrecisionPolicy::uniform(p), method, 16)?;
            let (g_ck, l_ck) = n.checkpointed(method, 16)?;
            assert!(((l_mp - l_ck) / l_ck).abs() < tol, "{p} {}: loss {l_mp} vs {l_ck}", method.name());
            assert!(rel(&g_mp, &g_ck) < tol, "{p} {}: gradients differ by {:.2e}", method.name(), rel(&g_mp, &g_ck));
        }
    }
    Ok(())
}

/// Taylor test at f64: |L(θ + εv) − L(θ) − ε∇L·v| = O(ε²) (slope 2); a wrong gradient gives slope 1.
#[test]
fn taylor_remainder_is_second_order() -> Result<()> {
    let n = net(DType::F64)?;
    let policy = PrecisionPolicy::uniform(Precision::F64);
    let (g, l0) = n.mixed(policy, Method::Rk4, 12)?;
    let mut rng = SeededRng::new(9);
    let vars: Vec<Var> = n.varmap.all_vars().into_iter().chain(std::iter::once(n.w.clone())).collect();
    // directions drawn in the order of the variables' names: a VarMap iterates in a random order
    // per process, and the test must be the same in every run
    let mut names: Vec<(String, Var)> = n.varmap.data().lock().expect("varmap lock").iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    let mut by_id = std::collections::HashMap::new();
    for (_, v) in &names {
        by_id.insert(v.as_tensor().id(), rng.normal(v.dims(), DType::F64, &DEV)?);
    }
    let w_dir = rng.normal(n.w.dims(), DType::F64, &DEV)?;
    let dirs: Vec<Tensor> = vars.iter().map(|v| by_id.get(&v.as_tensor().id()).cloned().unwrap_or_else(|| w_dir.clone())).collect();
    let orig: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().copy()).collect::<candle_core::Result<_>>()?;
    let mut dir_flat = Vec::new();
    for d in &dirs {
        dir_flat.extend(d.flatten_all()?.to_vec1::<f64>()?);
    }
    let gv: f64 = g.iter().zip(&dir_flat).map(|(a, b)| a * b).sum();
    let mut rems = Vec::new();
    let eps = [4e-3, 2e-3, 1e-3, 5e-4];
    for e in eps {
        for ((v, o), d) in vars.iter().zip(&orig).zip(&dirs) {
            v.set(&(o + (d * e)?)?)?;
        }
        let (_, l) = n.mixed(policy, Method::Rk4, 12)?;
        rems.push((l - l0 - e * gv).abs());
    }
    for (v, o) in vars.iter().zip(&orig) {
        v.set(o)?;
    }
    for w in rems.windows(2) {
        let slope = (w[0] / w[1]).log2();
        assert!((slope - 2.0).abs() < 0.15, "Taylor remainder slope {slope:.3} ({rems:?})");
    }
    Ok(())
}

#[test]
fn stiff_problem_at_f16_needs_and_gets_scaling() -> Result<()> {
    let problem = StiffProblem::seed();
    let exact = problem.exact();
    let (scaled, report) = problem.run(StiffMethod::MixedPrecision { scaled: true }, Precision::F16, Precision::F32, &DEV)?;
    let errs = scaled.relative_errors(&exact);
    println!("f16 dynamic: {errs:?}, report {report:?}");
    // y(T) carries f16 evaluation error; every gradient within 1e-2
    assert!(errs[0] < 1e-2 && errs[1..].iter().all(|e| *e < 1e-2), "f16 + dynamic scaling: {errs:?}");
    assert!(!report.expect("report").degraded());

    let (unscaled, report) = problem.run(StiffMethod::MixedPrecision { scaled: false }, Precision::F16, Precision::F32, &DEV)?;
    let errs = unscaled.relative_errors(&exact);
    println!("f16 none: {errs:?}, report {report:?}");
    // without scaling the adjoint underflows: the result is flagged (or an error), never silent
    match report {
        Some(r) => assert!(r.degraded() && r.underflow_steps > 10, "{r:?}"),
        None => assert!(unscaled.dl_dy0.is_nan()),
    }
    assert!(errs[1..].iter().any(|e| e.is_nan() || *e >= 1e-2), "unscaled f16 should be visibly wrong: {errs:?}");

    let (f32_run, _) = problem.run(StiffMethod::MixedPrecision { scaled: true }, Precision::F32, Precision::F32, &DEV)?;
    let errs = f32_run.relative_errors(&exact);
    println!("f32: {errs:?}");
    assert!(errs.iter().all(|e| *e < 1e-3), "f32: {errs:?}");
    Ok(())
}
