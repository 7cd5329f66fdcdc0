//! Gradients through ODE solves: full-graph DTO and the checkpointed discrete adjoint agree to
//! round-off (f64) and match central differences of the discrete solution; the continuous
//! adjoint converges to them as the step shrinks. A loss on intermediate outputs and on y₀'s
//! upstream computation is carried through.

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use ode_solvers::{solve, Adjoint, Method, PiController, Result, SaveAt, SolveConfig, Steps};
use tensor_core::nets::Mlp;
use tensor_core::params::ParamBuilder;
use tensor_core::{Activation, SeededRng};

const DEV: Device = Device::Cpu;

struct Setup {
    varmap: VarMap,
    net: Mlp,
    /// y₀ = tanh(W z): computed from a tracked parameter, so ∂L/∂y₀ must flow on into W.
    w: Var,
    z: Tensor,
}

fn setup() -> Result<Setup> {
    let varmap = VarMap::new();
    let mut rng = SeededRng::new(21);
    let net = Mlp::new(&mut ParamBuilder::new(&varmap, &mut rng, DType::F64, &DEV), 2, &[8, 8], 2, Activation::Tanh)?;
    let w = Var::from_tensor(&rng.normal((2, 2), DType::F64, &DEV)?)?;
    let z = rng.normal((4, 2), DType::F64, &DEV)?;
    Ok(Setup { varmap, net, w, z })
}

impl Setup {
    fn params(&self) -> Vec<Tensor> {
        self.varmap.all_vars().iter().map(|v| v.as_tensor().clone()).collect()
    }
    fn y0(&self) -> Result<Tensor> {
        Ok(self.z.matmul(self.w.as_tensor())?.tanh()?)
    }
    fn field(&self) -> impl Fn(f64, &Tensor) -> ode_solvers::Result<Tensor> + '_ {
        move |t, y| Ok(self.net.forward(y, &Tensor::new(t, &DEV)?)?)
    }
    /// L = Σ y(T)² + Σ sin(y(T/2)): cotangents at an intermediate output and the end.
    fn loss(ys: &[Tensor]) -> Result<Tensor> {
        Ok((ys[1].sqr()?.sum_all()? + ys[0].sin()?.sum_all()?)?)
    }
    fn run(&self, adjoint: Adjoint, steps: Steps, method: Method) -> Result<GradStore> {
        self.run_saving(adjoint, steps, method, SaveAt::Times(vec![0.5, 1.0]))
    }
    fn run_saving(&self, adjoint: Adjoint, steps: Steps, method: Method, save_at: SaveAt) -> Result<GradStore> {
        let field = self.field();
        let cfg = SolveConfig::new(steps).save_at(save_at).adjoint(adjoint);
        let sol = solve(&field, method, &self.y0()?, &cfg)?;
        let loss = match sol.ys.len() {
            1 => sol.ys[0].sqr()?.sum_all()?,
            _ => Setup::loss(&sol.ys)?,
        };
        let mut grads = loss.backward()?;
        if adjoint != Adjoint::FullGraph {
            sol.backward(&field, method, &self.params(), &mut grads)?;
        }
        Ok(grads)
    }
    /// Every gradient the loss has: network parameters and W, flattened.
    fn flat(&self, grads: &GradStore) -> Result<Vec<f64>> {
        let mut out = Vec::new();
        for p in self.params().iter().chain(std::iter::once(self.w.as_tensor())) {
            out.extend(grads.get(p).expect("gradient present").flatten_all()?.to_vec1::<f64>()?);
        }
        Ok(out)
    }
}

fn rel(a: &[f64], b: &[f64]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum::<f64>().sqrt();
    num / b.iter().map(|y| y * y).sum::<f64>().sqrt()
}

#[test]
fn checkpointed_equals_full_graph_and_both_match_finite_differences() -> Result<()> {
    let s = setup()?;
    for method in [Method::Euler, Method::Rk4, Method::Dopri5] {
        let steps = Steps::uniform(0.0, 1.0, 20)?;
        let full = s.flat(&s.run(Adjoint::FullGraph, steps.clone(), method)?)?;
        let ckpt = s.flat(&s.run(Adjoint::Checkpointed, steps.clone(), method)?)?;
        assert!(rel(&ckpt, &full) < 1e-10, "{}: checkpointed vs full graph {:.2e}", method.name(), rel(&ckpt, &full));

        // central differences of the discrete solution in a few parameter entries
        let field = s.field();
        let loss_value = || -> Result<f64> {
            let sol = solve(&field, method, &s.y0()?, &SolveConfig::new(steps.clone()).save_at(SaveAt::Times(vec![0.5, 1.0])))?;
            Ok(Setup::loss(&sol.ys)?.to_scalar::<f64>()?)
        };
        let mut offset = 0;
        for p in s.params().iter().chain(std::iter::once(s.w.as_tensor())) {
            let var = s.varmap.all_vars().into_iter().find(|v| v.as_tensor().id() == p.id()).unwrap_or_else(|| s.w.clone());
            let n = p.elem_count();
            let orig = var.as_tensor().copy()?;
            let idx = n / 2;
            let mut bump = vec![0f64; n];
            bump[idx] = 1e-6;
            let bump = Tensor::from_vec(bump, p.dims(), &DEV)?;
            var.set(&(&orig + &bump)?)?;
            let lp = loss_value()?;
            var.set(&(&orig - &bump)?)?;
            let lm = loss_value()?;
            var.set(&orig)?;
            let fd = (lp - lm) / 2e-6;
            let g = full[offset + idx];
            assert!(
                (g - fd).abs() <= 1e-6 * (1.0 + fd.abs()),
                "{}: entry {} of a {:?} parameter: backprop {g} vs FD {fd}",
                method.name(),
                idx,
                p.dims()
            );
            offset += n;
        }
    }
    Ok(())
}

#[test]
fn checkpointed_replays_adaptive_steps_exactly() -> Result<()> {
    let s = setup()?;
    // a final-time loss, so both runs take the same accepted steps
    let steps = Steps::Adaptive { t0: 0.0, t1: 1.0, controller: PiController::new(1e-6, 1e-6) };
    let full = s.flat(&s.run_saving(Adjoint::FullGraph, steps.clone(), Method::Tsit5, SaveAt::Final)?)?;
    let ckpt = s.flat(&s.run_saving(Adjoint::Checkpointed, steps, Method::Tsit5, SaveAt::Final)?)?;
    assert!(rel(&ckpt, &full) < 1e-10, "{:.2e}", rel(&ckpt, &full));
    Ok(())
}

#[test]
fn continuous_adjoint_converges_to_the_discrete_gradient() -> Result<()> {
    let s = setup()?;
    let mut errs = Vec::new();
    for n in [4, 8, 16, 32] {
        let steps = Steps::uniform(0.0, 1.0, n)?;
        let dto = s.flat(&s.run(Adjoint::Checkpointed, steps.clone(), Method::Rk4)?)?;
        let otd = s.flat(&s.run(Adjoint::Continuous, steps, Method::Rk4)?)?;
        errs.push(rel(&otd, &dto));
    }
    assert!(errs.windows(2).all(|w| w[1] < w[0] / 8.0), "OTD − DTO should fall like h⁴: {errs:?}");
    assert!(errs[3] < 1e-6, "{errs:?}");
    // adaptive forward, adaptive backward: close to the discrete gradient at tight tolerance
    let tight = Steps::Adaptive { t0: 0.0, t1: 1.0, controller: PiController::new(1e-10, 1e-10) };
    let dto = s.flat(&s.run(Adjoint::Checkpointed, tight.clone(), Method::Dopri5)?)?;
    let otd = s.flat(&s.run(Adjoint::Continuous, tight, Method::Dopri5)?)?;
    assert!(rel(&otd, &dto) < 1e-7, "{:.2e}", rel(&otd, &dto));
    Ok(())
}
