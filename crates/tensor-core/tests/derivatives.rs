//! Every analytic derivative of `tensor-core`'s networks against central finite differences in
//! f64 (relative error ≤ 1e-6), on random inputs and several widths and depths; the Laplacian
//! also against the exact trace of the gradient's Jacobian (d Hessian-vector products), and
//! backprop through the derivatives against finite differences in a parameter.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use tensor_core::nets::{ConcatSquashNet, HyperNet, Mlp, Potential, PotentialConfig, TimeLayer, TimeNet};
use tensor_core::params::ParamBuilder;
use tensor_core::{Activation, Result, SeededRng};

const FD_STEP: f64 = 1e-5;
const TOL: f64 = 1e-6;
const DEV: Device = Device::Cpu;

fn rel_err(a: &Tensor, b: &Tensor) -> Result<f64> {
    let num = (a - b)?.sqr()?.sum_all()?.sqrt()?.to_scalar::<f64>()?;
    let den = b.sqr()?.sum_all()?.sqrt()?.to_scalar::<f64>()?;
    Ok(num / den.max(1e-300))
}

fn assert_close(what: &str, a: &Tensor, b: &Tensor) -> Result<()> {
    let e = rel_err(a, b)?;
    assert!(e <= TOL, "{what}: relative error {e:.3e} > {TOL:.0e}");
    Ok(())
}

/// Central difference of `f` at `x` in direction `v`.
fn fd(f: &dyn Fn(&Tensor) -> Result<Tensor>, x: &Tensor, v: &Tensor) -> Result<Tensor> {
    let p = f(&(x + (v * FD_STEP)?)?)?;
    let m = f(&(x - (v * FD_STEP)?)?)?;
    Ok(((p - m)? / (2.0 * FD_STEP))?)
}

fn unit(b: usize, d: usize, k: usize) -> Result<Tensor> {
    let mut v = vec![0f64; b * d];
    for row in 0..b {
        v[row * d + k] = 1.0;
    }
    Ok(Tensor::from_vec(v, (b, d), &DEV)?)
}

/// JVP, exact trace and Hutchinson probes against finite differences, with one time per sample
/// and with one time shared by the batch (which the layers see as a single row).
fn check_time_net<L: TimeLayer>(net: &TimeNet<L>, rng: &mut SeededRng, label: &str) -> Result<()> {
    let per_sample = rng.uniform(5, 0.0, 1.0, DType::F64, &DEV)?;
    check_time_net_at(net, rng, &per_sample, &format!("{label}, per-sample t"))?;
    check_time_net_at(net, rng, &Tensor::new(0.37f64, &DEV)?, &format!("{label}, shared t"))
}

fn check_time_net_at<L: TimeLayer>(net: &TimeNet<L>, rng: &mut SeededRng, t: &Tensor, label: &str) -> Result<()> {
    let (b, d) = (5, net.in_dim());
    let x = rng.normal((b, d), DType::F64, &DEV)?;
    let v = rng.normal((b, d), DType::F64, &DEV)?;
    let f = |y: &Tensor| net.forward(y, t);

    let (f0, jv) = net.jvp(&x, t, &v)?;
    assert_close(&format!("{label}: forward inside jvp"), &f0, &net.forward(&x, t)?)?;
    assert_close(&format!("{label}: jvp"), &jv, &fd(&f, &x, &v)?)?;

    // exact trace = Σ_k (∂f_k/∂x_k) by finite differences
    let (_, tr) = net.exact_trace(&x, t)?;
    let mut tr_fd = Tensor::zeros((b, 1), DType::F64, &DEV)?;
    for k in 0..d {
        tr_fd = (tr_fd + fd(&f, &x, &unit(b, d, k)?)?.narrow(1, k, 1)?)?;
    }
    assert_close(&format!("{label}: exact trace"), &tr, &tr_fd)?;

    // Hutchinson: εᵀJε exactly, and its mean over all 2^d Rademacher probes is the trace
    let (_, est) = net.hutchinson_trace(&x, t, &v)?;
    assert_close(&format!("{label}: hutchinson probe"), &est, &(fd(&f, &x, &v)? * &v)?.sum_keepdim(1)?)?;
    let mut mean = Tensor::zeros((b, 1), DType::F64, &DEV)?;
    for signs in 0..(1u32 << d) {
        let e: Vec<f64> = (0..b * d).map(|i| if signs >> (i % d) & 1 == 1 { 1.0 } else { -1.0 }).collect();
        let e = Tensor::from_vec(e, (b, d), &DEV)?;
        mean = (mean + net.hutchinson_trace(&x, t, &e)?.1)?;
    }
    assert_close(&format!("{label}: E[hutchinson] over all probes"), &(mean / f64::from(1u32 << d))?, &tr)?;
    Ok(())
}

#[test]
fn mlp_derivatives_match_finite_differences() -> Result<()> {
    let mut rng = SeededRng::new(11);
    for act in [Activation::Tanh, Activation::Softplus, Activation::Swish] {
        for (d, hidden) in [(1, vec![4]), (2, vec![16, 16]), (3, vec![7, 9, 5])] {
            let vm = VarMap::new();
            let mut init = SeededRng::new(d as u64);
            let mut pb = ParamBuilder::new(&vm, &mut init, DType::F64, &DEV);
            let net = Mlp::new(&mut pb, d, &hidden, d, act)?;
            check_time_net(&net, &mut rng, &format!("Mlp {act:?} d={d} hidden={hidden:?}"))?;
        }
    }
    Ok(())
}

#[test]
fn hypernetwork_derivatives_match_finite_differences() -> Result<()> {
    let mut rng = SeededRng::new(13);
    for (d, hidden, width) in [(2, 8, 6), (3, 4, 5)] {
        let vm = VarMap::new();
        let mut init = SeededRng::new(9);
        let net = HyperNet::new(&mut ParamBuilder::new(&vm, &mut init, DType::F64, &DEV), d, hidden, width)?;
        check_time_net(&net, &mut rng, &format!("HyperNet d={d} hidden={hidden} width={width}"))?;
        // every hypernetwork parameter is listed once
        assert_eq!(net.params().len(), 6, "three linear layers, weight and bias each");
    }
    // the field is torchdiffeq's (1/w) Σᵢ Uᵢ tanh(Wᵢᵀz + bᵢ), Uᵢ = Ũᵢ ⊙ sigmoid(Gᵢ), read off the
    // hypernetwork's output by hand
    let vm = VarMap::new();
    let (d, w) = (2, 3);
    let net = HyperNet::new(&mut ParamBuilder::new(&vm, &mut SeededRng::new(4), DType::F64, &DEV), d, 5, w)?;
    let z = rng.normal((4, d), DType::F64, &DEV)?;
    let t = Tensor::new(0.6f64, &DEV)?;
    let p: Vec<f64> = net.layers()[0].hyper_output(&t)?.flatten_all()?.to_vec1()?;
    let zs: Vec<Vec<f64>> = z.to_vec2()?;
    let sigmoid = |g: f64| 1.0 / (1.0 + (-g).exp());
    let expected: Vec<f64> = zs
        .iter()
        .flat_map(|zr| {
            (0..d)
                .map(|k| {
                    (0..w)
                        .map(|i| {
                            let pre = (0..d).map(|j| p[i * d + j] * zr[j]).sum::<f64>() + p[3 * w * d + i];
                            p[w * d + i * d + k] * sigmoid(p[2 * w * d + i * d + k]) * pre.tanh()
                        })
                        .sum::<f64>()
                        / w as f64
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert_close("HyperNet vs torchdiffeq's formula", &net.forward(&z, &t)?, &Tensor::from_vec(expected, (4, d), &DEV)?)?;
    Ok(())
}

#[test]
fn concat_squash_derivatives_match_finite_differences() -> Result<()> {
    let mut rng = SeededRng::new(12);
    for act in [Activation::Tanh, Activation::Softplus] {
        for (d, hidden) in [(2, vec![8]), (4, vec![12, 6])] {
            let vm = VarMap::new();
            let mut init = SeededRng::new(7);
            let mut pb = ParamBuilder::new(&vm, &mut init, DType::F64, &DEV);
            let net = ConcatSquashNet::new(&mut pb, d, &hidden, d, act)?;
            check_time_net(&net, &mut rng, &format!("ConcatSquash {act:?} d={d} hidden={hidden:?}"))?;
        }
    }
    Ok(())
}

fn random_potential(d: usize, m: usize, layers: usize, seed: u64) -> Result<(VarMap, Potential)> {
    let vm = VarMap::new();
    let mut init = SeededRng::new(seed);
    let mut pb = ParamBuilder::new(&vm, &mut init, DType::F64, &DEV);
    let phi = Potential::new(&mut pb, PotentialConfig { dim: d, width: m, layers, rank: 10 })?;
    // OT-Flow starts from w = 1, b = c = 0; perturb them so every term is exercised
    for (name, var) in vm.data().lock().unwrap().iter() {
        if matches!(name.as_str(), "w" | "b" | "c") {
            var.set(&(var.as_tensor() + init.normal(var.dims(), DType::F64, &DEV)?)?)?;
        }
    }
    Ok((vm, phi))
}

#[test]
fn potential_gradient_and_laplacian_match_finite_differences() -> Result<()> {
    let mut rng = SeededRng::new(13);
    for (d, m, layers) in [(1, 3, 2), (2, 8, 2), (3, 17, 3), (5, 6, 4)] {
        let label = format!("Potential d={d} m={m} M={layers}");
        let (_, phi) = random_potential(d, m, layers, 100 + d as u64)?;
        let b = 4;
        let x = rng.normal((b, d), DType::F64, &DEV)?;
        let t = rng.uniform(b, 0.0, 1.0, DType::F64, &DEV)?;
        let der = phi.derivatives(&x, &t)?;
        let (gx, gt) = phi.gradient(&x, &t)?;
        assert_close(&format!("{label}: gradient() = derivatives().grad_x"), &gx, &der.grad_x)?;
        assert_close(&format!("{label}: ∂tΦ"), &gt, &der.grad_t)?;
        let (value, both) = phi.value_and_derivatives(&x, &t)?;
        assert_close(&format!("{label}: value_and_derivatives Φ"), &value, &phi.value(&x, &t)?)?;
        assert_close(&format!("{label}: value_and_derivatives ΔΦ"), &both.laplacian, &der.laplacian)?;

        // ∇ₓΦ and ∂ₜΦ against differences of Φ
        let phi_x = |y: &Tensor| phi.value(y, &t);
        for k in 0..d {
            assert_close(&format!("{label}: ∂Φ/∂x{k}"), &der.grad_x.narrow(1, k, 1)?, &fd(&phi_x, &x, &unit(b, d, k)?)?)?;
        }
        let t_col = t.reshape((b, 1))?;
        let phi_t = |s: &Tensor| phi.value(&x, s);
        assert_close(&format!("{label}: ∂Φ/∂t"), &der.grad_t, &fd(&phi_t, &t_col, &t_col.ones_like()?)?)?;

        // ΔΦ against differences of ∇Φ, and against d Hessian-vector products
        let grad_x = |y: &Tensor| Ok(phi.gradient(y, &t)?.0);
        let mut lap_fd = Tensor::zeros((b, 1), DType::F64, &DEV)?;
        for k in 0..d {
            lap_fd = (lap_fd + fd(&grad_x, &x, &unit(b, d, k)?)?.narrow(1, k, 1)?)?;
        }
        assert_close(&format!("{label}: ΔΦ vs FD"), &der.laplacian, &lap_fd)?;
        assert_close(&format!("{label}: ΔΦ vs Σ HVP"), &der.laplacian, &phi.laplacian_by_hvp(&x, &t)?)?;

        // the Hessian-vector product itself
        let v = rng.normal((b, d), DType::F64, &DEV)?;
        assert_close(&format!("{label}: HVP"), &phi.hessian_vector_product(&x, &t, &v)?, &fd(&grad_x, &x, &v)?)?;
    }
    Ok(())
}

/// Training uses first-order backprop through ∇Φ and ΔΦ: its parameter gradient must match
/// finite differences in the parameter (no silent second-order error: candle's gradient of a gradient drops terms).
/// The first, middle and last entries of the backprop gradient `grad` of `loss` with respect to
/// `var` against central differences (the variable is restored afterwards).
fn check_entries_by_differences(name: &str, var: &Var, grad: &Tensor, loss: &dyn Fn() -> Result<Tensor>) -> Result<()> {
    let g = grad.flatten_all()?.to_vec1::<f64>()?;
    let orig = var.as_tensor().copy()?;
    for idx in [0, g.len() / 2, g.len() - 1] {
        let mut bump = vec![0f64; g.len()];
        bump[idx] = FD_STEP;
        let bump = Tensor::from_vec(bump, var.dims(), &DEV)?;
        var.set(&(&orig + &bump)?)?;
        let lp = loss()?.to_scalar::<f64>()?;
        var.set(&(&orig - &bump)?)?;
        let lm = loss()?.to_scalar::<f64>()?;
        var.set(&orig)?;
        let fd = (lp - lm) / (2.0 * FD_STEP);
        assert!((g[idx] - fd).abs() <= TOL * (1.0 + fd.abs()), "{name}[{idx}]: backprop {} vs FD {fd}", g[idx]);
    }
    Ok(())
}

#[test]
fn backprop_through_laplacian_matches_parameter_differences() -> Result<()> {
    let (vm, phi) = random_potential(3, 6, 3, 5)?;
    let mut rng = SeededRng::new(14);
    let x = rng.normal((4, 3), DType::F64, &DEV)?;
    let t = Tensor::new(0.3f64, &DEV)?;
    let loss = |p: &Potential| -> Result<Tensor> {
        let der = p.derivatives(&x, &t)?;
        Ok((der.laplacian.sum_all()? + (der.grad_x.sqr()?.sum_all()? * 0.5)?)?)
    };
    let grads = loss(&phi)?.backward()?;
    let data = vm.data().lock().unwrap();
    for name in ["k0.weight", "k1.weight", "k2.bias", "A", "w"] {
        let var: &Var = &data[name];
        check_entries_by_differences(name, var, grads.get(var.as_tensor()).expect("gradient present"), &|| loss(&phi))?;
    }
    Ok(())
}

/// Backprop through a network's exact trace (a CNF's training loss, which runs through the fused
/// network op by default) against central differences in every parameter and in x, with a time
/// shared by the batch and one per sample.
#[test]
fn backprop_through_exact_trace_matches_differences() -> Result<()> {
    let vm = VarMap::new();
    let mut rng = SeededRng::new(21);
    let net = ConcatSquashNet::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F64, &DEV), 3, &[7, 5], 3, Activation::Tanh)?;
    let x = Var::from_tensor(&rng.normal((4, 3), DType::F64, &DEV)?)?;
    for t in [Tensor::new(0.3f64, &DEV)?, rng.uniform((4, 1), 0.0, 1.0, DType::F64, &DEV)?] {
        let loss = || -> Result<Tensor> {
            let (f, tr) = net.exact_trace(x.as_tensor(), &t)?;
            Ok(((f.sqr()?.sum_all()? * 0.5)? + tr.sum_all()?)?)
        };
        let grads = loss()?.backward()?;
        let mut vars: Vec<(String, Var)> = vm.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.push(("x".into(), x.clone()));
        for (name, var) in &vars {
            check_entries_by_differences(
                &format!("t {:?}, {name}", t.dims()),
                var,
                grads.get(var.as_tensor()).expect("gradient present"),
                &loss,
            )?;
        }
    }
    Ok(())
}

#[test]
fn bad_shapes_are_typed_errors() -> Result<()> {
    let (_, phi) = random_potential(3, 4, 2, 1)?;
    let x = Tensor::zeros((2, 5), DType::F64, &DEV)?;
    let e = phi.derivatives(&x, &Tensor::new(0.0f64, &DEV)?).unwrap_err().to_string();
    assert!(e.contains("expected (batch, 3)"), "{e}");
    let x = Tensor::zeros((2, 3), DType::F64, &DEV)?;
    let e = phi.value(&x, &Tensor::zeros(3, DType::F64, &DEV)?).unwrap_err().to_string();
    assert!(e.contains("time input"), "{e}");
    let vm = VarMap::new();
    let mut init = SeededRng::new(0);
    let mut pb = ParamBuilder::new(&vm, &mut init, DType::F64, &DEV);
    let rect = Mlp::new(&mut pb, 2, &[4], 3, Activation::Tanh)?;
    assert!(rect.exact_trace(&Tensor::zeros((1, 2), DType::F64, &DEV)?, &Tensor::new(0.0f64, &DEV)?).is_err());
    assert!(Mlp::new(&mut pb.pp("z"), 2, &[0], 2, Activation::Tanh).is_err());
    Ok(())
}

#[test]
fn low_precision_copies_agree_with_f32() -> Result<()> {
    let vm = VarMap::new();
    let mut init = SeededRng::new(3);
    let mut pb = ParamBuilder::new(&vm, &mut init, DType::F32, &DEV);
    let phi = Potential::new(&mut pb, PotentialConfig::new(4, 16))?;
    let x = SeededRng::new(4).normal((8, 4), DType::F32, &DEV)?;
    let t = Tensor::new(0.5f32, &DEV)?;
    let ref_lap = phi.derivatives(&x, &t)?.laplacian;
    let half = phi.to_dtype(DType::BF16)?.detach()?;
    let lap = half.derivatives(&x.to_dtype(DType::BF16)?, &t)?.laplacian.to_dtype(DType::F32)?;
    let e = ((lap - &ref_lap)?.abs()?.max_all()? / ref_lap.abs()?.max_all()?)?.to_scalar::<f32>()?;
    assert!(e < 0.1, "bf16 Laplacian off by {e}");
    // a concat-squash velocity's exact trace in f16 / bf16 (the tangent pass's composite fallbacks)
    let vm = VarMap::new();
    let net =
        ConcatSquashNet::new(&mut ParamBuilder::new(&vm, &mut SeededRng::new(5), DType::F32, &DEV), 4, &[16, 16], 4, Activation::Tanh)?;
    let (_, ref_tr) = net.exact_trace(&x, &t)?;
    for dtype in [DType::F16, DType::BF16] {
        let (_, tr) = net.to_dtype(dtype)?.detach()?.exact_trace(&x.to_dtype(dtype)?, &t)?;
        let e = ((tr.to_dtype(DType::F32)? - &ref_tr)?.abs()?.max_all()? / ref_tr.abs()?.max_all()?)?.to_scalar::<f32>()?;
        assert!(e < 0.05, "{dtype:?} exact trace off by {e}");
    }
    Ok(())
}
