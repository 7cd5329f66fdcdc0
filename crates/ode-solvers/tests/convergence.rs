//! Measured orders of every Runge–Kutta method on problems with known solutions, adaptive
//! stepping against a fine reference, dense output, and the step statistics.

use candle_core::{DType, Device, Tensor};
use ode_solvers::{solve, Method, PiController, Result, SaveAt, SolveConfig, Steps};

mod common;
use common::observed_order;

const DEV: Device = Device::Cpu;

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    Ok((a - b)?.abs()?.max_all()?.to_scalar::<f64>()?)
}

/// y' = A y with A = [[−0.5, 2], [−2, −0.5]] (a damped rotation), several initial states.
struct Linear {
    y0: Tensor,
    a_t: Tensor,
}

impl Linear {
    fn new() -> Result<Self> {
        let a = Tensor::new(&[[-0.5f64, 2.0], [-2.0, -0.5]], &DEV)?;
        Ok(Self { y0: Tensor::new(&[[1.0f64, 0.0], [0.3, -2.0], [-1.0, 0.5]], &DEV)?, a_t: a.t()?.contiguous()? })
    }
    /// e^{At} = e^{−t/2} [[cos 2t, sin 2t], [−sin 2t, cos 2t]]; rows are states, so y₀ e^{Aᵀt}.
    fn exact(&self, t: f64) -> Result<Tensor> {
        let (c, s, d) = ((2.0 * t).cos(), (2.0 * t).sin(), (-0.5 * t).exp());
        Ok(self.y0.matmul(&Tensor::new(&[[c * d, -s * d], [s * d, c * d]], &DEV)?)?)
    }
    fn field(&self) -> impl Fn(f64, &Tensor) -> ode_solvers::Result<Tensor> + '_ {
        |_t, y| Ok(y.matmul(&self.a_t)?)
    }
}

#[test]
fn every_method_has_its_order_on_a_linear_system_and_a_nonlinear_scalar_ode() -> Result<()> {
    let lin = Linear::new()?;
    let (y0, f, exact) = (lin.y0.clone(), lin.field(), |t| lin.exact(t));
    // nonlinear and time-dependent, with large error constants near a blow-up:
    // y' = 2t·y², y = y₀ / (1 − y₀t²), up to t = 0.9 (y₀ = 1 reaches 5.3)
    let g = |t: f64, y: &Tensor| Ok((y.sqr()? * (2.0 * t))?);
    let z0 = Tensor::new(&[[1.0f64], [0.5], [-1.0]], &DEV)?;
    let z_exact = |t: f64| -> Result<Tensor> { Ok((&z0 / ((z0.clone() * (-t * t))? + 1.0)?)?) };
    let (t1, t_nl) = (2.0, 0.9);
    let mut failures = Vec::new();
    for method in Method::ALL {
        let p = method.tableau().order as f64;
        // step counts in each problem's asymptotic range, above round-off
        let (ns, ns_nl): (Vec<usize>, Vec<usize>) = match method.tableau().order {
            1 => (vec![64, 128, 256, 512], vec![128, 256, 512, 1024]),
            2 | 3 => (vec![32, 64, 128, 256], vec![128, 256, 512, 1024]),
            _ => (vec![16, 32, 64, 128], vec![64, 128, 256, 512]),
        };
        for (label, errs) in [
            (
                "linear",
                ns.iter()
                    .map(|&n| max_abs_diff(solve(&f, method, &y0, &SolveConfig::new(Steps::uniform(0.0, t1, n)?))?.last(), &exact(t1)?))
                    .collect::<Result<Vec<_>>>()?,
            ),
            (
                "nonlinear",
                ns_nl
                    .iter()
                    .map(|&n| {
                        max_abs_diff(solve(&g, method, &z0, &SolveConfig::new(Steps::uniform(0.0, t_nl, n)?))?.last(), &z_exact(t_nl)?)
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
        ] {
            let observed = observed_order(if label == "linear" { &ns } else { &ns_nl }, &errs);
            if (observed - p).abs() > 0.3 {
                failures
                    .push(format!("{} on the {label} problem: observed order {observed:.2}, nominal {p} (errors {errs:?})", method.name()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}

#[test]
fn adaptive_pairs_reach_the_tolerance_on_van_der_pol() -> Result<()> {
    // Van der Pol, μ = 1: x'' − μ(1 − x²)x' + x = 0
    let vdp = |_t: f64, y: &Tensor| -> ode_solvers::Result<Tensor> {
        let x = y.narrow(1, 0, 1)?;
        let v = y.narrow(1, 1, 1)?;
        let dv = (((1.0 - x.sqr()?)? * &v)? - &x)?;
        Ok(Tensor::cat(&[&v, &dv], 1)?)
    };
    let y0 = Tensor::new(&[[2.0f64, 0.0], [0.5, 1.0]], &DEV)?;
    let t1 = 6.0;
    let reference = solve(&vdp, Method::Rk4, &y0, &SolveConfig::new(Steps::uniform(0.0, t1, 40_000)?))?.last().clone();
    for method in [Method::Bosh3, Method::Dopri5, Method::Tsit5] {
        // global error stays within a small multiple of the tolerance once steps resolve the
        // solution (at 1e-4 Dopri5 takes 21 steps and lands at 66·tol: loose tolerances are not
        // proportional, as for every 5(4) pair)
        for tol in [1e-6, 1e-8] {
            let cfg = SolveConfig::new(Steps::Adaptive { t0: 0.0, t1, controller: PiController::new(tol, tol) });
            let sol = solve(&vdp, method, &y0, &cfg)?;
            let err = max_abs_diff(sol.last(), &reference)?;
            assert!(err < 10.0 * tol, "{} at tol {tol:e}: global error {err:e} ({} steps)", method.name(), sol.stats.accepted);
            assert!(sol.stats.accepted > 3 && sol.stats.nfe > sol.stats.accepted, "{:?}", sol.stats);
        }
    }
    // tighter tolerance, fewer errors, more steps
    let loose =
        solve(&vdp, Method::Dopri5, &y0, &SolveConfig::new(Steps::Adaptive { t0: 0.0, t1, controller: PiController::new(1e-3, 1e-3) }))?;
    let tight =
        solve(&vdp, Method::Dopri5, &y0, &SolveConfig::new(Steps::Adaptive { t0: 0.0, t1, controller: PiController::new(1e-8, 1e-8) }))?;
    assert!(tight.stats.accepted > 3 * loose.stats.accepted);
    Ok(())
}

#[test]
fn backward_in_time_returns_to_the_start() -> Result<()> {
    let lin = Linear::new()?;
    let (y0, f, exact) = (lin.y0.clone(), lin.field(), |t| lin.exact(t));
    let fwd =
        solve(&f, Method::Dopri5, &y0, &SolveConfig::new(Steps::Adaptive { t0: 0.0, t1: 1.5, controller: PiController::new(1e-9, 1e-9) }))?;
    assert!(max_abs_diff(fwd.last(), &exact(1.5)?)? < 1e-7);
    let back = solve(
        &f,
        Method::Tsit5,
        fwd.last(),
        &SolveConfig::new(Steps::Adaptive { t0: 1.5, t1: 0.0, controller: PiController::new(1e-9, 1e-9) }),
    )?;
    assert!(max_abs_diff(back.last(), &y0)? < 1e-7);
    let grid_back = solve(&f, Method::Rk4, &exact(1.0)?, &SolveConfig::new(Steps::uniform(1.0, 0.0, 200)?))?;
    assert!(max_abs_diff(grid_back.last(), &y0)? < 1e-8);
    Ok(())
}

#[test]
fn dense_output_has_its_order_between_steps() -> Result<()> {
    let lin = Linear::new()?;
    let (y0, f, exact) = (lin.y0.clone(), lin.field(), |t| lin.exact(t));
    for (method, order) in [(Method::Dopri5, 4.0), (Method::Tsit5, 4.0), (Method::Bosh3, 3.0)] {
        let ns = [8usize, 16, 32];
        let mut errs = Vec::new();
        for n in ns {
            // output at 0.3 of the way through every step
            let h = 2.0 / n as f64;
            let times: Vec<f64> = (0..n).map(|i| (i as f64 + 0.3) * h).collect();
            let sol = solve(&f, method, &y0, &SolveConfig::new(Steps::uniform(0.0, 2.0, n)?).save_at(SaveAt::Times(times.clone())))?;
            let mut e: f64 = 0.0;
            for (t, y) in sol.ts.iter().zip(&sol.ys) {
                e = e.max(max_abs_diff(y, &exact(*t)?)?);
            }
            errs.push(e);
        }
        let observed = observed_order(&ns, &errs);
        assert!(observed >= order - 0.3, "{} dense output: order {observed:.2} < {order} ({errs:?})", method.name());
    }
    // adaptive + dense output at requested times
    let times = vec![0.25, 0.5, 1.0, 1.75];
    let sol = solve(
        &f,
        Method::Dopri5,
        &y0,
        &SolveConfig::new(Steps::Adaptive { t0: 0.0, t1: 2.0, controller: PiController::new(1e-8, 1e-8) })
            .save_at(SaveAt::Times(times.clone())),
    )?;
    assert_eq!(sol.ts, times);
    for (t, y) in sol.ts.iter().zip(&sol.ys) {
        assert!(max_abs_diff(y, &exact(*t)?)? < 1e-6, "t = {t}");
    }
    Ok(())
}

#[test]
fn statistics_count_what_was_done() -> Result<()> {
    let lin = Linear::new()?;
    let (y0, f) = (lin.y0.clone(), lin.field());
    let rk4 = solve(&f, Method::Rk4, &y0, &SolveConfig::new(Steps::uniform(0.0, 1.0, 10)?))?;
    assert_eq!((rk4.stats.nfe, rk4.stats.accepted, rk4.stats.rejected), (40, 10, 0));
    // FSAL: 1 + 6 per step
    let dp = solve(&f, Method::Dopri5, &y0, &SolveConfig::new(Steps::uniform(0.0, 1.0, 10)?))?;
    assert_eq!(dp.stats.nfe, 61);
    let steps = solve(&f, Method::Euler, &y0, &SolveConfig::new(Steps::uniform(0.0, 1.0, 4)?).save_at(SaveAt::Steps))?;
    assert_eq!(steps.ts, vec![0.0, 0.25, 0.5, 0.75, 1.0]);
    assert_eq!(steps.ys.len(), 5);
    // a tuple state: (y, ∫|y|² dt) integrated together
    let aug = |_t: f64, s: &(Tensor, Tensor)| -> ode_solvers::Result<(Tensor, Tensor)> { Ok((s.0.neg()?, s.0.sqr()?.sum_keepdim(1)?)) };
    let s0 = (Tensor::ones((2, 3), DType::F64, &DEV)?, Tensor::zeros((2, 1), DType::F64, &DEV)?);
    let sol = solve(&aug, Method::Rk4, &s0, &SolveConfig::new(Steps::uniform(0.0, 1.0, 50)?))?;
    // ∫₀¹ 3 e^{−2t} dt = 1.5 (1 − e^{−2})
    let integral = sol.last().1.to_vec2::<f64>()?[0][0];
    assert!((integral - 1.5 * (1.0 - (-2f64).exp())).abs() < 1e-8, "{integral}");
    Ok(())
}
