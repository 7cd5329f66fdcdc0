//! Exact assignment against brute force, Sinkhorn's marginals and its limit as ε → 0, 1-D OT in
//! closed form (monotone matching), and CFM / OT-CFM on 8gaussians.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use flow_matching::assignment::exact_assignment;
use flow_matching::sample::{kinetic_energy, log_prob, sample, w2_exact};
use flow_matching::sinkhorn::{sinkhorn, SinkhornConfig, SinkhornDomain};
use flow_matching::{train_cfm, train_on_pairs, CfmConfig, Coupling, Path, Result};
use flow_matching::{transport, OtSolver, Plan};
use ode_solvers::{Method, Steps};
use tensor_core::nets::Mlp;
use tensor_core::params::ParamBuilder;
use tensor_core::stats::sq_distances;
use tensor_core::{Activation, SeededRng};

const DEV: Device = Device::Cpu;

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![vec![]];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for k in 0..=p.len() {
            let mut q = p.clone();
            q.insert(k, n - 1);
            out.push(q);
        }
    }
    out
}

fn assignment_cost(c: &[f64], n: usize, s: &[usize]) -> f64 {
    s.iter().enumerate().map(|(i, &j)| c[i * n + j]).sum()
}

#[test]
fn exact_assignment_matches_brute_force() -> Result<()> {
    let mut rng = SeededRng::new(1);
    for n in 1..=7 {
        for trial in 0..6 {
            let c = rng.uniform(n * n, 0.0, 10.0, DType::F64, &DEV)?.to_vec1::<f64>()?;
            // every other trial on integer costs 0..3: many ties, many optimal permutations
            let c: Vec<f64> = if trial % 2 == 1 { c.iter().map(|x| (x * 0.3).floor()).collect() } else { c };
            let s = exact_assignment(&c, n)?;
            let mut sorted = s.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..n).collect::<Vec<_>>(), "a permutation");
            let best = permutations(n).iter().map(|p| assignment_cost(&c, n, p)).fold(f64::INFINITY, f64::min);
            assert!((assignment_cost(&c, n, &s) - best).abs() < 1e-9, "n = {n}");
        }
    }
    assert!(exact_assignment(&[1.0, 2.0, 3.0], 2).is_err());
    assert!(exact_assignment(&[1.0, f64::NAN, 3.0, 4.0], 2).is_err());
    Ok(())
}

#[test]
fn one_dimensional_ot_is_the_monotone_matching() -> Result<()> {
    let mut rng = SeededRng::new(2);
    let x = rng.normal((50, 1), DType::F64, &DEV)?;
    let y = rng.normal((50, 1), DType::F64, &DEV)?.affine(2.0, 1.0)?;
    let mut xs = x.flatten_all()?.to_vec1::<f64>()?;
    let mut ys = y.flatten_all()?.to_vec1::<f64>()?;
    xs.sort_by(f64::total_cmp);
    ys.sort_by(f64::total_cmp);
    let closed_form = (xs.iter().zip(&ys).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / 50.0).sqrt();
    assert!((w2_exact(&x, &y)? - closed_form).abs() < 1e-12);
    // Sinkhorn on the same cost: within [OT, OT + ε ln n] of the sorted matching, ε → 0
    let c = sq_distances(&x, &y)?;
    let scale = c.max_all()?.to_scalar::<f64>()?;
    let w = Tensor::full(1.0 / 50.0, 50, &DEV)?;
    let ot = closed_form.powi(2) / scale;
    for eps in [0.05, 0.01, 0.002] {
        let r = sinkhorn(&(&c / scale)?, &w, &w, SinkhornConfig::new(eps))?;
        println!("1-D, ε = {eps}: entropic {:.6} vs closed form {ot:.6} ({} iterations)", r.cost, r.iterations);
        assert!(r.cost >= ot - 1e-9 && r.cost - ot <= eps * 50f64.ln(), "ε = {eps}: {} vs {ot}", r.cost);
    }
    Ok(())
}

#[test]
fn sinkhorn_meets_marginals_and_tends_to_exact_ot() -> Result<()> {
    let mut rng = SeededRng::new(3);
    let n = 8;
    let (x, y) = (rng.normal((n, 2), DType::F64, &DEV)?, rng.normal((n, 2), DType::F64, &DEV)?);
    // normalised by the largest entry, as the coupling does: ε is then relative to the cost scale
    let c = sq_distances(&x, &y)?;
    let c = (&c / c.max_all()?.to_scalar::<f64>()?)?;
    let w = Tensor::full(1.0 / n as f64, n, &DEV)?;
    let exact =
        assignment_cost(&c.flatten_all()?.to_vec1::<f64>()?, n, &exact_assignment(&c.flatten_all()?.to_vec1::<f64>()?, n)?) / n as f64;
    let mut gaps = Vec::new();
    for eps in [0.3, 0.1, 0.03] {
        let r = sinkhorn(&c, &w, &w, SinkhornConfig::new(eps))?;
        assert!(r.marginal_error <= 1e-6, "eps {eps}: marginal error {}", r.marginal_error);
        let rows = r.plan.sum(1)?.to_vec1::<f64>()?;
        assert!(rows.iter().all(|v| (v - 1.0 / n as f64).abs() < 1e-6));
        assert!(r.cost >= exact - 1e-9, "entropic cost {} below the exact {exact}", r.cost);
        // 0 ≤ ⟨C, P_ε⟩ − OT ≤ ε ln n for uniform weights (the plan's entropy lies in [ln n, 2 ln n])
        assert!(r.cost - exact <= eps * (n as f64).ln(), "eps {eps}: gap {} above ε ln n", r.cost - exact);
        gaps.push(r.cost - exact);
    }
    assert!(gaps[2] < gaps[1] && gaps[1] < gaps[0], "the gap to exact OT shrinks with ε: {gaps:?}");
    // non-uniform weights and a clear error for mismatched shapes
    let a = Tensor::new(&[0.5f64, 0.25, 0.125, 0.125, 0.0625, 0.0625, 0.0625, 0.0625], &DEV)?;
    let a = (&a / a.sum_all()?.to_scalar::<f64>()?)?;
    assert!(sinkhorn(&c, &a, &w, SinkhornConfig::new(0.05))?.marginal_error <= 1e-6);
    assert!(sinkhorn(&c, &Tensor::full(0.5f64, 2, &DEV)?, &w, SinkhornConfig::new(0.05)).is_err());
    Ok(())
}

/// `transport` gives both solvers one result: the exact permutation's cost equals the assignment
/// routine's, its dense plan has uniform marginals, Sinkhorn's cost approaches it as ε → 0 from
/// above, and bad shapes are refused by name.
#[test]
fn transport_is_one_call_for_both_solvers() -> Result<()> {
    let mut rng = SeededRng::new(11);
    let n = 40;
    let c = sq_distances(&rng.normal((n, 2), DType::F64, &DEV)?, &rng.normal((n, 2), DType::F64, &DEV)?)?;
    let flat = c.flatten_all()?.to_vec1::<f64>()?;
    let exact = transport(&c, OtSolver::Exact)?;
    let Plan::Permutation(sigma) = &exact.plan else { panic!("the exact solver returns a permutation") };
    assert_eq!(sigma, &exact_assignment(&flat, n)?);
    assert!((exact.cost - assignment_cost(&flat, n, sigma) / n as f64).abs() < 1e-12);
    let dense = exact.dense()?;
    assert!(dense.sum(0)?.to_vec1::<f64>()?.iter().chain(&dense.sum(1)?.to_vec1::<f64>()?).all(|v| (v - 1.0 / n as f64).abs() < 1e-15));
    assert!(((&dense * &c)?.sum_all()?.to_scalar::<f64>()? - exact.cost).abs() < 1e-12);
    let scale = c.max_all()?.to_scalar::<f64>()?;
    let mut previous = f64::INFINITY;
    for eps in [0.1, 0.03, 0.01] {
        let entropic = transport(&c, OtSolver::Sinkhorn(SinkhornConfig { tol: 1e-8, ..SinkhornConfig::new(eps * scale) }))?;
        assert!(entropic.marginal_error < 1e-8 && entropic.iterations > 0);
        assert!(entropic.cost >= exact.cost - 1e-9 && entropic.cost < previous, "eps {eps}: {} after {previous}", entropic.cost);
        // ⟨C, P_ε⟩ − OT ≤ ε ln n for uniform weights
        assert!(entropic.cost - exact.cost <= eps * scale * (n as f64).ln(), "eps {eps}: gap {}", entropic.cost - exact.cost);
        previous = entropic.cost;
    }
    assert!(transport(&c.narrow(1, 0, n - 1)?, OtSolver::Exact).is_err());
    assert!(transport(&c.flatten_all()?, OtSolver::Exact).is_err());
    Ok(())
}

/// The kernel domain (scalings, matrix–vector products, absorption) and the log domain give the
/// same plan and cost to 1e-9, with non-uniform weights; `Auto` picks the kernel domain at
/// ε = 0.05·max C and the log domain at ε = 0.002·max C; the kernel domain forced where every
/// entry of exp(−C/ε) underflows to 0 (C ≥ 1, ε = 0.001) says so instead of returning NaN.
#[test]
fn sinkhorn_kernel_and_log_domains_agree() -> Result<()> {
    let mut rng = SeededRng::new(4);
    let (n, m) = (60, 45);
    let (x, y) = (rng.normal((n, 2), DType::F64, &DEV)?, rng.normal((m, 2), DType::F64, &DEV)?);
    let c = sq_distances(&x, &y)?;
    let c = (&c / c.max_all()?.to_scalar::<f64>()?)?;
    let a = rng.uniform(n, 0.5, 1.5, DType::F64, &DEV)?;
    let a = (&a / a.sum_all()?.to_scalar::<f64>()?)?;
    let b = Tensor::full(1.0 / m as f64, m, &DEV)?;
    for eps in [0.2, 0.05, 0.02] {
        let cfg = |domain| SinkhornConfig { tol: 1e-12, domain, ..SinkhornConfig::new(eps) };
        let kernel = sinkhorn(&c, &a, &b, cfg(SinkhornDomain::Kernel))?;
        let log = sinkhorn(&c, &a, &b, cfg(SinkhornDomain::Log))?;
        let auto = sinkhorn(&c, &a, &b, cfg(SinkhornDomain::Auto))?;
        assert_eq!((kernel.domain, log.domain, auto.domain), (SinkhornDomain::Kernel, SinkhornDomain::Log, SinkhornDomain::Kernel));
        let diff = (&kernel.plan - &log.plan)?.abs()?.max_all()?.to_scalar::<f64>()?;
        assert!(diff < 1e-9, "ε = {eps}: plans differ by {diff}");
        assert!((kernel.cost - log.cost).abs() < 1e-9, "ε = {eps}: costs {} vs {}", kernel.cost, log.cost);
        assert!(kernel.marginal_error < 1e-12 && log.marginal_error < 1e-12);
    }
    let small = SinkhornConfig { tol: 1e-9, ..SinkhornConfig::new(0.002) };
    assert_eq!(sinkhorn(&c, &a, &b, small)?.domain, SinkhornDomain::Log);
    let tiny = SinkhornConfig { domain: SinkhornDomain::Kernel, ..SinkhornConfig::new(0.001) };
    let forced = sinkhorn(&(&c + 1.0)?, &a, &b, tiny);
    assert!(matches!(forced, Err(flow_matching::FmError::Config(ref e)) if e.contains("underflow")), "{:?}", forced.err());
    Ok(())
}

#[test]
fn cfm_learns_8gaussians_and_ot_pairs_straighten_paths() -> Result<()> {
    let to_tensor = |d: datasets::Matrix| Tensor::from_vec(d.data, (d.rows, d.cols), &DEV);
    let data = to_tensor(datasets::toy2d::Toy2d::EightGaussians.sample(8192, 1))?;
    let test = to_tensor(datasets::toy2d::Toy2d::EightGaussians.sample(500, 2))?;
    let source = SeededRng::new(4).normal((8192, 2), DType::F32, &DEV)?;
    let z = SeededRng::new(5).normal((500, 2), DType::F32, &DEV)?;
    let baseline = w2_exact(&z, &test)?;
    let mut energies = Vec::new();
    // I-CFM, OT-CFM, and Schrödinger-bridge CFM (exact coupling, torchcfm's default, with bridge noise)
    for (coupling, path) in [
        (Coupling::Independent, Path::Straight { sigma: 0.0 }),
        (Coupling::ExactOt, Path::Straight { sigma: 0.0 }),
        (Coupling::ExactOt, Path::BrownianBridge { sigma: 0.2 }),
    ] {
        let vm = VarMap::new();
        let mut rng = SeededRng::new(6);
        let net = Mlp::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, &DEV), 2, &[64, 64, 64], 2, Activation::Swish)?;
        let cfg = CfmConfig { coupling, path, iters: 400, batch: 256, lr: 1e-3, seed: 7 };
        train_cfm(&net, &vm, &source, &data, &cfg)?;
        let (x, stats) = sample(&net, &z, Method::Euler, Steps::uniform(0.0, 1.0, 100)?)?;
        let w2 = w2_exact(&x, &test)?;
        let ke = kinetic_energy(&net, &z, 20)?;
        println!(
            "{} {}: W2 {w2:.3} (noise vs data {baseline:.3}), kinetic energy {ke:.3}, NFE {}",
            coupling.name(),
            path.name(),
            stats.nfe
        );
        assert!(w2 < 0.35 * baseline, "{} {}: W2 {w2} vs {baseline} before training", coupling.name(), path.name());
        energies.push(ke);
        if coupling == Coupling::Independent {
            // rectified flow: one reflow round on (z, ODE(z)) pairs straightens the independent flow
            let z_pairs = SeededRng::new(8).normal((4096, 2), DType::F32, &DEV)?;
            let (x_pairs, _) = sample(&net, &z_pairs, Method::Rk4, Steps::uniform(0.0, 1.0, 20)?)?;
            let vm2 = VarMap::new();
            let net2 =
                Mlp::new(&mut ParamBuilder::new(&vm2, &mut SeededRng::new(6), DType::F32, &DEV), 2, &[64, 64, 64], 2, Activation::Swish)?;
            train_on_pairs(&net2, &vm2, &z_pairs, &x_pairs, &cfg)?;
            let ke2 = kinetic_energy(&net2, &z, 20)?;
            let (x2, _) = sample(&net2, &z, Method::Euler, Steps::uniform(0.0, 1.0, 100)?)?;
            let w2_2 = w2_exact(&x2, &test)?;
            println!("reflow: W2 {w2_2:.3}, kinetic energy {ke2:.3}");
            assert!(ke2 < ke && w2_2 < 0.4 * baseline, "reflow: kinetic energy {ke2} vs {ke}, W2 {w2_2}");
        }
    }
    assert!(energies[1] < energies[0], "OT-CFM paths should be straighter: kinetic energy {energies:?}");
    Ok(())
}

/// The flow's log-density integrates to one (quadrature on a box that holds the mass): a sign or
/// scale error in the change of variables would break it.
#[test]
fn flow_log_likelihood_is_normalised() -> Result<()> {
    let vm = VarMap::new();
    let net = Mlp::new(&mut ParamBuilder::new(&vm, &mut SeededRng::new(10), DType::F64, &DEV), 2, &[32, 32], 2, Activation::Tanh)?;
    let (n, half) = (120usize, 7.0);
    let h = 2.0 * half / n as f64;
    let pts: Vec<f64> = (0..n * n).flat_map(|k| [-half + h * ((k / n) as f64 + 0.5), -half + h * ((k % n) as f64 + 0.5)]).collect();
    let x = Tensor::from_vec(pts, (n * n, 2), &DEV)?;
    let lp = log_prob(&net, &x, 40)?;
    let mass = lp.exp()?.sum_all()?.to_scalar::<f64>()? * h * h;
    println!("∫ p₁ over [−{half}, {half}]²: {mass:.5}");
    assert!((mass - 1.0).abs() < 5e-3, "mass {mass}");
    // and the flow is far from the identity, so the divergence term matters
    let moved = (lp - tensor_core::stats::standard_normal_log_prob(&x)?)?.abs()?.max_all()?.to_scalar::<f64>()?;
    assert!(moved > 0.1, "log p₁ differs from log N by at most {moved}");
    Ok(())
}

/// Mean squared length of the pairs each coupling produces: exact OT is the minimum, Sinkhorn
/// with a small ε comes close, independent pairing is far off.
#[test]
fn couplings_pair_as_their_plans_say() -> Result<()> {
    let mut rng = SeededRng::new(9);
    let x0 = rng.normal((64, 2), DType::F64, &DEV)?;
    let x1 = rng.normal((64, 2), DType::F64, &DEV)?.affine(1.0, 3.0)?;
    let mut cost = |c: Coupling| -> Result<f64> {
        let (a, b) = c.pair(&x0, &x1, &mut rng)?;
        assert_eq!(a.dims(), b.dims());
        Ok((a - b)?.sqr()?.sum_keepdim(1)?.mean_all()?.to_scalar::<f64>()?)
    };
    let (exact, indep) = (cost(Coupling::ExactOt)?, cost(Coupling::Independent)?);
    let (sink, sink_raw) =
        (cost(Coupling::Sinkhorn { eps: 0.01, normalize: true })?, cost(Coupling::Sinkhorn { eps: 0.5, normalize: false })?);
    assert!((exact - w2_exact(&x0, &x1)?.powi(2)).abs() < 1e-9);
    assert!(sink < exact + 0.3 * (indep - exact), "sinkhorn {sink}, exact {exact}, independent {indep}");
    assert!(sink_raw < exact + 0.3 * (indep - exact), "sinkhorn on the raw cost {sink_raw}, exact {exact}, independent {indep}");
    assert!(indep > exact);
    Ok(())
}

/// Both conditional paths: u_t is the time derivative of x_t = μ_t + σ_t ε at fixed ε (central
/// differences), and the bridge pins both ends (σ_t → 0 as t → 0 or 1).
#[test]
fn conditional_targets_are_time_derivatives_of_the_paths() -> Result<()> {
    let mut rng = SeededRng::new(11);
    let (x0, x1, noise) =
        (rng.normal((16, 3), DType::F64, &DEV)?, rng.normal((16, 3), DType::F64, &DEV)?, rng.normal((16, 3), DType::F64, &DEV)?);
    let t = rng.uniform((16, 1), 0.05, 0.95, DType::F64, &DEV)?;
    let h = 1e-5;
    for path in [Path::Straight { sigma: 0.3 }, Path::BrownianBridge { sigma: 0.3 }, Path::BrownianBridge { sigma: 1.5 }] {
        let (_, u) = path.point_and_target(&x0, &x1, &t, &noise)?;
        let (plus, _) = path.point_and_target(&x0, &x1, &(&t + h)?, &noise)?;
        let (minus, _) = path.point_and_target(&x0, &x1, &(&t - h)?, &noise)?;
        let fd = ((plus - minus)? / (2.0 * h))?;
        let err = (&fd - &u)?.abs()?.max_all()?.to_scalar::<f64>()? / u.abs()?.max_all()?.to_scalar::<f64>()?;
        println!("{}: max |FD − u_t| / max |u_t| = {err:.1e}", path.name());
        assert!(err < 1e-7, "{}: {err}", path.name());
    }
    let ends = Tensor::new(&[[1e-12f64], [1.0 - 1e-12]], &DEV)?;
    let (a, b) = (Tensor::new(&[[1f64, 2.0], [3.0, 4.0]], &DEV)?, Tensor::new(&[[-1f64, 0.0], [5.0, 6.0]], &DEV)?);
    let (xt, _) = Path::BrownianBridge { sigma: 1.0 }.point_and_target(&a, &b, &ends, &Tensor::ones((2, 2), DType::F64, &DEV)?)?;
    let want = Tensor::new(&[[1f64, 2.0], [5.0, 6.0]], &DEV)?;
    assert!((xt - want)?.abs()?.max_all()?.to_scalar::<f64>()? < 1e-5);
    Ok(())
}

/// Empty and one-row batches through sampling, likelihood and kinetic energy: empty results for 0
/// rows, one row for 1 (an empty batch's energy is a typed error or a number, never a panic).
#[test]
fn empty_and_single_row_batches() -> Result<()> {
    let vm = VarMap::new();
    let mut rng = SeededRng::new(3);
    let net = Mlp::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, &Device::Cpu), 2, &[16], 2, Activation::Selu)?;
    for rows in [0usize, 1] {
        let z = rng.normal((rows, 2), DType::F32, &Device::Cpu)?;
        assert_eq!(sample(&net, &z, Method::Rk4, Steps::uniform(0.0, 1.0, 4)?)?.0.dims(), &[rows, 2]);
        assert_eq!(log_prob(&net, &z, 4)?.dims(), &[rows, 1]);
        let _ = kinetic_energy(&net, &z, 4);
    }
    Ok(())
}

/// The flow-matching velocity as a `ContinuousFlow`: sampling runs the reversed field and gives
/// what `sample` gives forwards; encoding inverts it; the likelihood is `sample::log_prob`'s.
#[test]
fn learned_flow_is_a_continuous_flow() -> Result<()> {
    use train::ContinuousFlow;
    let vm = VarMap::new();
    let mut rng = SeededRng::new(9);
    let net = Mlp::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F64, &Device::Cpu), 2, &[16], 2, Activation::Tanh)?;
    let z = rng.normal((64, 2), DType::F64, &Device::Cpu)?;
    let forward = sample(&net, &z, Method::Rk4, Steps::uniform(0.0, 1.0, 16)?)?.0;
    let flow = flow_matching::LearnedFlow { net: net.clone() };
    let x = flow.sample(&z, 16)?;
    assert!((&x - &forward)?.abs()?.max_all()?.to_scalar::<f64>()? < 1e-12);
    assert!((flow.encode(&x, 64)? - &z)?.abs()?.max_all()?.to_scalar::<f64>()? < 1e-6);
    let (a, b) = (flow.log_prob(&x, 8)?, log_prob(&net, &x, 8)?);
    assert_eq!(a.to_vec2::<f64>()?, b.to_vec2::<f64>()?);
    Ok(())
}
