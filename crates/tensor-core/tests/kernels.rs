//! The fused kernels equal their composite candle references: values and gradients to 1e-5
//! relative in f32 and 1e-12 in f64, on odd shapes, alone and inside the networks (OT-Flow's
//! potential with its ∇Φ and Laplacian; tanh and SELU MLPs and a concat-squash net with their
//! exact traces) — the elementwise kernels being tanh, SELU, sigmoid, softplus, swish, log cosh;
//! and the fused network op against the layer-by-layer path, input gradients included.

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use tensor_core::kernels::dot_bf16::{bf16_product_path, hardware_bf16, set_hardware_bf16};
use tensor_core::kernels::{self, set_fused};
use tensor_core::nets::{ConcatSquashNet, HyperNet, Mlp, Potential, PotentialConfig, TimeLayer, TimeNet};
use tensor_core::params::ParamBuilder;
use tensor_core::{Activation, Result, SeededRng};

const DEV: Device = Device::Cpu;

fn rel_err(a: &Tensor, b: &Tensor) -> Result<f64> {
    let (a, b) = (a.to_dtype(DType::F64)?, b.to_dtype(DType::F64)?);
    let num = (&a - &b)?.sqr()?.sum_all()?.sqrt()?.to_scalar::<f64>()?;
    let den = b.sqr()?.sum_all()?.sqrt()?.to_scalar::<f64>()?;
    Ok(num / den.max(1e-300))
}

/// The kernel switch is global and tests run in parallel: each test holds this while it runs.
static SWITCH: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn hold_switch() -> std::sync::MutexGuard<'static, ()> {
    SWITCH.lock().unwrap_or_else(|p| p.into_inner())
}

fn tol(dtype: DType) -> f64 {
    if dtype == DType::F64 {
        1e-12
    } else {
        1e-5
    }
}

type Elementwise = fn(&Tensor) -> Result<Tensor>;

/// Each elementwise kernel with its name and its composite candle-op reference.
fn elementwise_cases() -> [(&'static str, Elementwise, Elementwise); 6] {
    let tanh_composite: Elementwise = |z| Ok(z.tanh()?);
    [
        ("tanh", kernels::tanh, tanh_composite),
        ("selu", kernels::selu, kernels::selu_composite),
        ("sigmoid", kernels::sigmoid, kernels::sigmoid_composite),
        ("softplus", kernels::softplus, kernels::softplus_composite),
        ("swish", kernels::swish, kernels::swish_composite),
        ("log cosh", kernels::log_cosh, kernels::log_cosh_composite),
    ]
}

#[test]
fn elementwise_kernels_equal_composite_values_and_gradients() -> Result<()> {
    let _switch = hold_switch();
    set_fused(true);
    let mut rng = SeededRng::new(1);
    let cases = elementwise_cases();
    for (name, fused_op, composite_op) in cases {
        for dtype in [DType::F32, DType::F64] {
            for shape in [(1, 1), (7, 13), (33, 65), (512, 3)] {
                let z = Var::from_tensor(&(rng.normal(shape, dtype, &DEV)? * 3.0)?)?;
                let w = rng.normal(shape, dtype, &DEV)?;
                let fused = fused_op(z.as_tensor())?;
                let composite = composite_op(z.as_tensor())?;
                let e = rel_err(&fused, &composite)?;
                assert!(e <= tol(dtype), "{name} {dtype:?} {shape:?}: value {e:e}");
                let g_fused = (&fused * &w)?.sum_all()?.backward()?.get(z.as_tensor()).cloned().expect("gradient");
                let g_comp = (&composite * &w)?.sum_all()?.backward()?.get(z.as_tensor()).cloned().expect("gradient");
                let e = rel_err(&g_fused, &g_comp)?;
                assert!(e <= tol(dtype), "{name} {dtype:?} {shape:?}: gradient {e:e}");
            }
            // a strided input (a transpose) takes the composite path and is still right
            let z = rng.normal((5, 9), dtype, &DEV)?.t()?;
            assert!(rel_err(&fused_op(&z)?, &composite_op(&z)?)? <= tol(dtype), "{name}: strided input");
        }
    }
    Ok(())
}

/// bf16 and f16 tensors run the f32 kernels on their exact f32 values, each result rounded
/// once: bit for bit the f32 kernel's output rounded, within one 16-bit rounding of candle's own
/// 16-bit ops (which round at the same point), and the gradients (candle ops in 16 bits) within
/// a few roundings. Column sums accumulate in f32, so they are nearer the f64 sum than candle's
/// 16-bit reduction.
#[test]
fn sixteen_bit_kernels_round_the_f32_result_once() -> Result<()> {
    let _switch = hold_switch();
    set_fused(true);
    let mut rng = SeededRng::new(3);
    let cases = elementwise_cases();
    let same_bits = |a: &Tensor, b: &Tensor| -> Result<bool> {
        Ok(a.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()? == b.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
    };
    for dtype in [DType::BF16, DType::F16] {
        let eps = if dtype == DType::BF16 { 2f64.powi(-8) } else { 2f64.powi(-11) };
        for (name, fused_op, composite_op) in cases {
            let z = Var::from_tensor(&(rng.normal((33, 65), DType::F32, &DEV)? * 3.0)?.to_dtype(dtype)?)?;
            let w = rng.normal((33, 65), DType::F32, &DEV)?.to_dtype(dtype)?;
            let fused = fused_op(z.as_tensor())?;
            assert_eq!(fused.dtype(), dtype);
            let rounded_f32 = fused_op(&z.as_tensor().to_dtype(DType::F32)?)?.to_dtype(dtype)?;
            assert!(same_bits(&fused, &rounded_f32)?, "{name} {dtype:?}: not the f32 kernel rounded once");
            let composite = composite_op(z.as_tensor())?;
            let e = rel_err(&fused, &composite)?;
            assert!(e <= 2.0 * eps, "{name} {dtype:?}: value {e:e} from candle's 16-bit ops");
            let g_fused = (&fused * &w)?.sum_all()?.backward()?.get(z.as_tensor()).cloned().expect("gradient");
            let g_comp = (&composite * &w)?.sum_all()?.backward()?.get(z.as_tensor()).cloned().expect("gradient");
            let e = rel_err(&g_fused, &g_comp)?;
            assert!(e <= 8.0 * eps, "{name} {dtype:?}: gradient {e:e}");
        }
        let z = rng.normal((257, 31), DType::F32, &DEV)?.to_dtype(dtype)?;
        let b = rng.normal((1, 31), DType::F32, &DEV)?.to_dtype(dtype)?;
        let with_bias = kernels::bias_add(&z, &b)?;
        assert!(same_bits(&with_bias, &z.broadcast_add(&b)?)?, "bias_add {dtype:?}: not candle's 16-bit add");
        let g = (z.abs()? + 1.0)?; // positive terms: no cancellation
        let sums = kernels::column_sum(&g)?;
        assert!(same_bits(&sums, &kernels::column_sum(&g.to_dtype(DType::F32)?)?.to_dtype(dtype)?)?, "column_sum {dtype:?}");
        let exact = g.to_dtype(DType::F64)?.sum_keepdim(0)?;
        let (ours, candle) = (rel_err(&sums, &exact)?, rel_err(&g.sum_keepdim(0)?, &exact)?);
        assert!(ours <= eps && ours <= candle, "column_sum {dtype:?}: error {ours:e} (candle's 16-bit sum: {candle:e})");
    }
    Ok(())
}

/// The trace kernel's hand-written backward against central differences: ∂(Σ ΔΦ)/∂θ for
/// entries of every weight and bias of a 3-layer f64 potential (two Jacobian steps), to 1e-6.
#[test]
fn laplacian_parameter_gradients_match_finite_differences() -> Result<()> {
    let _switch = hold_switch();
    set_fused(true);
    let vm = VarMap::new();
    let phi = Potential::new(
        &mut ParamBuilder::new(&vm, &mut SeededRng::new(15), DType::F64, &DEV),
        PotentialConfig { dim: 3, width: 6, layers: 3, rank: 2 },
    )?;
    let x = SeededRng::new(16).normal((5, 3), DType::F64, &DEV)?;
    let t = Tensor::new(0.2f64, &DEV)?;
    let total = || -> Result<f64> { Ok(phi.derivatives(&x, &t)?.laplacian.sum_all()?.to_scalar::<f64>()?) };
    let grads = phi.derivatives(&x, &t)?.laplacian.sum_all()?.backward()?;
    let vars: Vec<(String, Var)> = vm.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let mut checked = 0;
    for (name, var) in vars.iter().filter(|(n, _)| n.starts_with('k')) {
        let g = grads.get(var.as_tensor()).expect("a gradient").flatten_all()?.to_vec1::<f64>()?;
        let base = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
        for i in [0, base.len() / 2, base.len() - 1] {
            let at = |delta: f64| -> Result<f64> {
                let mut v = base.clone();
                v[i] += delta;
                var.set(&Tensor::from_vec(v, var.as_tensor().shape(), &DEV)?)?;
                total()
            };
            let eps = 1e-5;
            let fd = (at(eps)? - at(-eps)?) / (2.0 * eps);
            var.set(&Tensor::from_vec(base.clone(), var.as_tensor().shape(), &DEV)?)?;
            assert!((fd - g[i]).abs() <= 1e-6 * (1.0 + fd.abs()), "{name}[{i}]: backward {} vs central difference {fd}", g[i]);
            checked += 1;
        }
    }
    assert!(checked >= 18, "only {checked} entries checked");
    Ok(())
}

/// OT-Flow's Laplacian with bf16 and f16 parameters and inputs: the trace kernel (f32 inside,
/// rounded where the composite keeps a tensor, sums in f32) is at least as near the f64
/// Laplacian of the same rounded values as candle's 16-bit composite, and their parameter
/// gradients agree to a few 16-bit roundings.
#[test]
fn sixteen_bit_laplacian_is_near_the_f64_one() -> Result<()> {
    let _switch = hold_switch();
    let vm = VarMap::new();
    let phi = Potential::new(
        &mut ParamBuilder::new(&vm, &mut SeededRng::new(9), DType::F32, &DEV),
        PotentialConfig { dim: 7, width: 24, layers: 3, rank: 4 },
    )?;
    let x = SeededRng::new(10).normal((65, 7), DType::F32, &DEV)?;
    for dtype in [DType::BF16, DType::F16] {
        let eps = if dtype == DType::BF16 { 2f64.powi(-8) } else { 2f64.powi(-11) };
        let (phi16, x16, t16) = (phi.to_dtype(dtype)?, x.to_dtype(dtype)?, Tensor::new(0.3f32, &DEV)?.to_dtype(dtype)?);
        let truth = phi16.to_dtype(DType::F64)?.derivatives(&x16.to_dtype(DType::F64)?, &t16.to_dtype(DType::F64)?)?.laplacian;
        let run = |on: bool| -> Result<(Tensor, Vec<Tensor>)> {
            set_fused(on);
            let lap = phi16.derivatives(&x16, &t16)?.laplacian;
            assert_eq!(lap.dtype(), dtype);
            let grads = lap.to_dtype(DType::F32)?.sum_all()?.backward()?;
            // c and b do not enter the Laplacian: they have no gradient either way
            Ok((lap, phi.params().iter().filter_map(|p| grads.get(p).cloned()).collect()))
        };
        let ((fused, g_fused), (composite, g_comp)) = (run(true)?, run(false)?);
        let (e_fused, e_comp) = (rel_err(&fused, &truth)?, rel_err(&composite, &truth)?);
        assert!(e_fused <= 4.0 * eps && e_fused <= 1.5 * e_comp, "{dtype:?}: Laplacian error {e_fused:e} (composite {e_comp:e})");
        assert!(
            g_fused.len() == g_comp.len() && g_fused.len() >= 5,
            "{dtype:?}: gradients for {} / {} parameters",
            g_fused.len(),
            g_comp.len()
        );
        for (i, (gf, gc)) in g_fused.iter().zip(&g_comp).enumerate() {
            let e = rel_err(gf, gc)?;
            assert!(e <= 16.0 * eps, "{dtype:?}: gradient of parameter {i} differs by {e:e}");
        }
    }
    set_fused(true);
    Ok(())
}

/// The network op on bf16 and f16 networks (computed in f32, rounded where the composite keeps
/// a tensor, sums in f32) against candle's 16-bit layer-by-layer ops, both measured from the
/// f64 evaluation of the same rounded weights and inputs: on a tanh MLP (value, exact trace) and
/// a softplus concat-squash net (JVP), the op's outputs and parameter gradients are within a
/// few 16-bit roundings of it, and no farther than the composite's (whose batch sums of the
/// gate gradients accumulate in 16 bits).
#[test]
fn sixteen_bit_network_op_is_as_near_f64_as_the_composite() -> Result<()> {
    let _switch = hold_switch();
    let (vm, vm2) = (VarMap::new(), VarMap::new());
    let mlp = Mlp::new(&mut ParamBuilder::new(&vm, &mut SeededRng::new(11), DType::F32, &DEV), 6, &[40, 40], 6, Activation::Tanh)?;
    let squash =
        ConcatSquashNet::new(&mut ParamBuilder::new(&vm2, &mut SeededRng::new(12), DType::F32, &DEV), 6, &[32], 6, Activation::Softplus)?;
    let mut rng = SeededRng::new(13);
    let (x, dir) = (rng.normal((301, 6), DType::F32, &DEV)?, rng.normal((301, 6), DType::F32, &DEV)?);
    let t = Tensor::new(0.4f32, &DEV)?;
    for dtype in [DType::BF16, DType::F16] {
        let u = if dtype == DType::BF16 { 2f64.powi(-8) } else { 2f64.powi(-11) };
        let (x16, dir16, t16) = (x.to_dtype(dtype)?, dir.to_dtype(dtype)?, t.to_dtype(dtype)?);
        assert!(fused_applies(&mlp.to_dtype(dtype)?, &x16, &t16)?, "{dtype:?}: the network op does not apply");
        // each case evaluates in `d`, from the 16-bit values of weights and inputs
        type Outputs<'a> = Box<dyn Fn(DType) -> Result<Vec<Tensor>> + 'a>;
        let at = |v: &Tensor, d: DType| -> Result<Tensor> { Ok(v.to_dtype(dtype)?.to_dtype(d)?) };
        let (at, x16, dir16, t16) = (&at, &x16, &dir16, &t16);
        let (mlp, squash) = (&mlp, &squash);
        let cases: Vec<(&str, &VarMap, Outputs)> = vec![
            ("mlp value", &vm, Box::new(move |d| Ok(vec![mlp.to_dtype(dtype)?.to_dtype(d)?.forward(&at(x16, d)?, &at(t16, d)?)?]))),
            (
                "mlp exact trace",
                &vm,
                Box::new(move |d| mlp.to_dtype(dtype)?.to_dtype(d)?.exact_trace(&at(x16, d)?, &at(t16, d)?).map(|(f, tr)| vec![f, tr])),
            ),
            (
                "concat-squash jvp",
                &vm2,
                Box::new(move |d| {
                    squash.to_dtype(dtype)?.to_dtype(d)?.jvp(&at(x16, d)?, &at(t16, d)?, &at(dir16, d)?).map(|(f, jv)| vec![f, jv])
                }),
            ),
        ];
        for (name, vm, f) in &cases {
            let run = |on: bool, d: DType| -> Result<(Vec<Tensor>, Vec<Tensor>)> {
                set_fused(on);
                let outs = f(d)?;
                let mut loss = Tensor::zeros((), DType::F64, &DEV)?;
                for o in &outs {
                    assert_eq!(o.dtype(), d, "{name}");
                    loss = (loss + o.to_dtype(DType::F64)?.sqr()?.sum_all()?)?;
                }
                let grads = loss.backward()?;
                let mut vars: Vec<(String, Var)> = vm.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                vars.sort_by(|a, b| a.0.cmp(&b.0));
                Ok((outs, vars.iter().filter_map(|(_, v)| grads.get(v.as_tensor()).cloned()).collect()))
            };
            let ((fo, fg), (co, cg), (ro, rg)) = (run(true, dtype)?, run(false, dtype)?, run(true, DType::F64)?);
            for ((a, b), r) in fo.iter().zip(&co).zip(&ro) {
                let (ef, ec) = (rel_err(a, r)?, rel_err(b, r)?);
                assert!(ef <= 4.0 * u && ef <= 1.5 * ec.max(u), "{name} {dtype:?}: output {ef:e} from f64 (composite {ec:e})");
            }
            assert!(fg.len() == cg.len() && fg.len() == rg.len() && !fg.is_empty(), "{name} {dtype:?}: missing gradients");
            for (i, ((a, b), r)) in fg.iter().zip(&cg).zip(&rg).enumerate() {
                let (ef, ec) = (rel_err(a, r)?, rel_err(b, r)?);
                assert!(ef <= 16.0 * u && ef <= 1.5 * ec.max(u), "{name} {dtype:?}: gradient {i} {ef:e} from f64 (composite {ec:e})");
            }
        }
    }
    set_fused(true);
    Ok(())
}

/// 16-bit matrix products against the f64 product of the same 16-bit values, on odd shapes
/// (1, 15, 17, 33, 1000), with either operand transposed (a strided view): every element within
/// one 16-bit rounding of the exact value plus f32 summation error; the gradients are the same
/// op's products, within a few roundings of f64's. bf16 runs on both paths: the AVX512-BF16
/// products where this CPU has them, and the portable f32 products.
#[test]
fn sixteen_bit_matmul_is_the_rounded_f32_product() -> Result<()> {
    let _switch = hold_switch();
    set_fused(true);
    let mut rng = SeededRng::new(14);
    let default_path = hardware_bf16();
    for (dtype, hardware) in [(DType::BF16, true), (DType::BF16, false), (DType::F16, false)] {
        set_hardware_bf16(hardware);
        eprintln!("{dtype:?} products: {}", bf16_product_path());
        let u = if dtype == DType::BF16 { 2f64.powi(-8) } else { 2f64.powi(-11) };
        for (m, k, n) in [(1, 1, 1), (15, 17, 33), (33, 1000, 17), (1000, 15, 1), (17, 33, 1000)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                // a variable, and the operand: the variable or its transpose (a strided view)
                let operand = |rows: usize, cols: usize, transposed: bool, rng: &mut SeededRng| -> Result<(Var, Tensor)> {
                    let shape = if transposed { (cols, rows) } else { (rows, cols) };
                    let var = Var::from_tensor(&rng.normal(shape, DType::F32, &DEV)?.to_dtype(dtype)?)?;
                    let view = if transposed { var.as_tensor().t()? } else { var.as_tensor().clone() };
                    Ok((var, view))
                };
                let ((va, a), (vb, b)) = (operand(m, k, ta, &mut rng)?, operand(k, n, tb, &mut rng)?);
                assert!(a.is_contiguous() != ta || m == 1 || k == 1, "the transposed operand is a strided view");
                let c = kernels::matmul(&a, &b)?;
                assert_eq!((c.dims(), c.dtype()), (&[m, n][..], dtype));
                let (a64, b64) = (a.to_dtype(DType::F64)?, b.to_dtype(DType::F64)?);
                let exact = a64.matmul(&b64)?;
                let magnitude = a64.abs()?.matmul(&b64.abs()?)?;
                let bound = ((exact.abs()? * u)? + (magnitude * (k as f64 * 2f64.powi(-23)))?)?;
                let excess = ((c.to_dtype(DType::F64)? - &exact)?.abs()? - bound)?.max_all()?.to_scalar::<f64>()?;
                assert!(excess <= 0.0, "{dtype:?} ({m}, {k}, {n}) transposed {ta}/{tb}: off by {excess:e} beyond the bound");
                let w = rng.normal((m, n), DType::F32, &DEV)?;
                let grads = (c.to_dtype(DType::F32)? * &w)?.sum_all()?.backward()?;
                let w64 = w.to_dtype(DType::F64)?;
                let (ga, gb) = (w64.matmul(&b64.t()?)?, a64.t()?.matmul(&w64)?);
                for (var, exact_grad) in [(&va, if ta { ga.t()? } else { ga }), (&vb, if tb { gb.t()? } else { gb })] {
                    let g = grads.get(var.as_tensor()).expect("a gradient");
                    assert_eq!(g.dtype(), dtype);
                    let e = rel_err(g, &exact_grad)?;
                    assert!(e <= 4.0 * u, "{dtype:?} ({m}, {k}, {n}) transposed {ta}/{tb}: gradient off by {e:e}");
                }
            }
        }
    }
    set_hardware_bf16(default_path);
    Ok(())
}

#[test]
fn bias_add_and_column_sum_equal_composite_values_and_gradients() -> Result<()> {
    let _switch = hold_switch();
    let mut rng = SeededRng::new(2);
    for dtype in [DType::F32, DType::F64] {
        for (rows, m) in [(1, 1), (7, 13), (33, 65), (512, 3)] {
            let z = Var::from_tensor(&rng.normal((rows, m), dtype, &DEV)?)?;
            let b = Var::from_tensor(&rng.normal((1, m), dtype, &DEV)?)?;
            let w = rng.normal((rows, m), dtype, &DEV)?;
            let run = |on: bool| -> Result<(Tensor, Tensor, Tensor)> {
                set_fused(on);
                let y = kernels::bias_add(z.as_tensor(), b.as_tensor())?;
                let g = (&y * &w)?.sum_all()?.backward()?;
                Ok((y, g.get(z.as_tensor()).cloned().expect("dz"), g.get(b.as_tensor()).cloned().expect("db")))
            };
            let (fused, composite) = (run(true)?, run(false)?);
            for (what, f, c) in [("value", &fused.0, &composite.0), ("dz", &fused.1, &composite.1), ("db", &fused.2, &composite.2)] {
                let e = rel_err(f, c)?;
                assert!(e <= tol(dtype), "bias_add {dtype:?} ({rows}, {m}): {what} {e:e}");
            }
            // column sums of a strided tensor (a transpose), with their gradient
            let g = Var::from_tensor(&rng.normal((m, rows), dtype, &DEV)?)?;
            let v = rng.normal((1, m), dtype, &DEV)?;
            let sums = |on: bool| -> Result<(Tensor, Tensor)> {
                set_fused(on);
                let s = kernels::column_sum(&g.as_tensor().t()?)?;
                let grad = (&s * &v)?.sum_all()?.backward()?.get(g.as_tensor()).cloned().expect("dg");
                Ok((s, grad))
            };
            let (f, c) = (sums(true)?, sums(false)?);
            assert!(rel_err(&f.0, &c.0)? <= tol(dtype) && rel_err(&f.1, &c.1)? <= tol(dtype), "column_sum {dtype:?} ({rows}, {m})");
        }
    }
    set_fused(true);
    Ok(())
}

/// Parameter gradients of a scalar built from `f`, under the fused kernels and the composite ops.
fn both_ways(vm: &VarMap, f: &dyn Fn() -> Result<Tensor>) -> Result<Vec<(Tensor, Tensor, Tensor, Tensor)>> {
    let run = |on: bool| -> Result<(Tensor, Vec<Tensor>)> {
        set_fused(on);
        let out = f()?;
        let grads = out.sum_all()?.backward()?;
        let mut vars: Vec<(String, Var)> = vm.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((
            out,
            vars.iter().map(|(_, v)| grads.get(v.as_tensor()).cloned().unwrap_or_else(|| v.as_tensor().zeros_like().unwrap())).collect(),
        ))
    };
    let (fo, fg) = run(true)?;
    let (co, cg) = run(false)?;
    set_fused(true);
    Ok(fg.into_iter().zip(cg).map(|(a, b)| (fo.clone(), co.clone(), a, b)).collect())
}

/// A scalar built from a network's outputs.
type Scalar<'a> = dyn Fn() -> Result<Tensor> + 'a;

#[test]
fn networks_with_fused_kernels_equal_composite() -> Result<()> {
    let _switch = hold_switch();
    for dtype in [DType::F32, DType::F64] {
        let mut rng = SeededRng::new(2);
        let x = rng.normal((17, 5), dtype, &DEV)?;
        let t = Tensor::new(0.3f64, &DEV)?.to_dtype(dtype)?;
        // OT-Flow's Φ (log-cosh: σ' = tanh) with 2, 3 and 4 layers (the trace kernel's recursion
        // with zero, one and two Jacobian updates): value, ∇Φ and the Laplacian in one scalar
        let phi_vms: Vec<VarMap> = (0..3).map(|_| VarMap::new()).collect();
        let phis = phi_vms
            .iter()
            .zip([2, 3, 4])
            .map(|(vm, layers)| {
                Potential::new(
                    &mut ParamBuilder::new(vm, &mut SeededRng::new(3), dtype, &DEV),
                    PotentialConfig { dim: 5, width: 11, layers, rank: 4 },
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let potential = |phi: &Potential| -> Result<Tensor> {
            let d = phi.derivatives(&x, &t)?;
            let value = phi.value(&x, &t)?.sum_all()?;
            Ok((((value + d.grad_x.sqr()?.sum_all()?)? + d.grad_t.sum_all()?)? + d.laplacian.sum_all()?)?)
        };
        // a tanh MLP: velocity and exact trace
        let vm2 = VarMap::new();
        let mlp = Mlp::new(&mut ParamBuilder::new(&vm2, &mut SeededRng::new(4), dtype, &DEV), 5, &[13, 7], 5, Activation::Tanh)?;
        let velocity = || -> Result<Tensor> {
            let (v, tr) = mlp.exact_trace(&x, &t)?;
            Ok((v.sqr()?.sum_all()? + tr.sum_all()?)?)
        };
        // MLPs with every other activation (SELU is torchcfm's): velocity and exact trace
        let others = [Activation::Selu, Activation::Softplus, Activation::Swish, Activation::LogCosh];
        let other_vms: Vec<VarMap> = others.iter().map(|_| VarMap::new()).collect();
        let other_mlps = others
            .iter()
            .zip(&other_vms)
            .map(|(&act, vm)| Mlp::new(&mut ParamBuilder::new(vm, &mut SeededRng::new(5), dtype, &DEV), 5, &[13, 7], 5, act))
            .collect::<Result<Vec<_>>>()?;
        let (xr, tr_) = (&x, &t);
        let other_velocities: Vec<Box<Scalar>> = other_mlps
            .iter()
            .map(|net| {
                Box::new(move || -> Result<Tensor> {
                    let (v, tr) = net.exact_trace(xr, tr_)?;
                    Ok((v.sqr()?.sum_all()? + tr.sum_all()?)?)
                }) as Box<Scalar>
            })
            .collect();
        // FFJORD's concat-squash net, with a time shared by the batch and with one time per sample
        let vm4 = VarMap::new();
        let squash =
            ConcatSquashNet::new(&mut ParamBuilder::new(&vm4, &mut SeededRng::new(6), dtype, &DEV), 5, &[13, 7], 5, Activation::Tanh)?;
        let per_sample_t = rng.uniform((17, 1), 0.0, 1.0, dtype, &DEV)?;
        let squash_velocity = || -> Result<Tensor> {
            let (v, tr) = squash.exact_trace(&x, &t)?;
            let (w, tr_w) = squash.exact_trace(&x, &per_sample_t)?;
            Ok((((v.sqr()?.sum_all()? + tr.sum_all()?)? + w.sqr()?.sum_all()?)? + tr_w.sum_all()?)?)
        };
        let potentials: Vec<Box<Scalar>> = phis.iter().map(|phi| Box::new(move || potential(phi)) as Box<Scalar>).collect();
        let mut cases: Vec<(String, &VarMap, &Scalar)> =
            vec![("tanh mlp".into(), &vm2, &velocity), ("concat-squash".into(), &vm4, &squash_velocity)];
        for ((act, vm), f) in others.iter().zip(&other_vms).zip(&other_velocities) {
            cases.push((format!("{act:?} mlp"), vm, f.as_ref()));
        }
        for ((layers, vm), f) in [2, 3, 4].iter().zip(&phi_vms).zip(&potentials) {
            cases.push((format!("potential, {layers} layers"), vm, f.as_ref()));
        }
        for (name, vm, f) in cases {
            for (fo, co, fg, cg) in both_ways(vm, f)? {
                let (ev, eg) = (rel_err(&fo, &co)?, rel_err(&fg, &cg)?);
                assert!(ev <= tol(dtype) && eg <= tol(dtype), "{name} {dtype:?}: value {ev:e}, gradient {eg:e}");
            }
        }
    }
    Ok(())
}

/// Whether the fused network op applies to `net` at time `t` (as the net passes it to its layers).
fn fused_applies<L: TimeLayer>(net: &TimeNet<L>, x: &Tensor, t: &Tensor) -> Result<bool> {
    let t = if t.elem_count() == 1 { t.reshape((1, 1))? } else { t.clone() };
    let forms = net.layers().iter().map(|l| l.affine_form(&t)).collect::<Result<Option<Vec<_>>>>()?;
    Ok(match forms {
        Some(forms) => kernels::network_tangents(&forms, net.activation(), x, None)?.is_some(),
        None => false,
    })
}

/// The network op (one graph node per network, `kernels::network_tangents`) equals the
/// layer-by-layer composite path: outputs, and the gradients of Σ out² to the input and to every
/// parameter, for K = 0 (the value), 1 (JVP, Hutchinson) and d (exact trace); with a time shared
/// by the batch and one per sample; for MLP, concat-squash and hypernetwork layers; on a batch
/// large enough to be split over threads.
#[test]
fn network_op_equals_layer_by_layer() -> Result<()> {
    let _switch = hold_switch();
    for dtype in [DType::F32, DType::F64] {
        let mut rng = SeededRng::new(7);
        let (b, d) = (301, 3);
        let x = Var::from_tensor(&rng.normal((b, d), dtype, &DEV)?)?;
        let shared = Tensor::new(0.7f64, &DEV)?.to_dtype(dtype)?;
        let per_sample = rng.uniform((b, 1), 0.0, 1.0, dtype, &DEV)?;
        let eps = rng.normal((b, d), dtype, &DEV)?;
        let vm = VarMap::new();
        let mut init = SeededRng::new(8);
        let mut pb = ParamBuilder::new(&vm, &mut init, dtype, &DEV);
        let mlp = Mlp::new(&mut pb.pp("mlp"), d, &[64, 48], d, Activation::Softplus)?;
        let squash = ConcatSquashNet::new(&mut pb.pp("squash"), d, &[64, 64], d, Activation::Tanh)?;
        let hyper = HyperNet::new(&mut pb.pp("hyper"), d, 16, 64)?;
        for t in [&shared, &per_sample] {
            assert!(fused_applies(&mlp, &x, t)? && fused_applies(&squash, &x, t)?, "{dtype:?}: the network op does not apply");
        }
        assert!(fused_applies(&hyper, &x, &shared)?, "{dtype:?}: the network op does not apply to the hypernetwork");
        type Case<'a> = (&'a str, Box<dyn Fn() -> Result<Vec<Tensor>> + 'a>);
        let mut cases: Vec<Case> = Vec::new();
        for (tn, t) in [("shared t", &shared), ("per-sample t", &per_sample)] {
            let (mlp, squash, xt, eps) = (&mlp, &squash, x.as_tensor(), &eps);
            cases.push((tn, Box::new(move || Ok(vec![mlp.forward(xt, t)?]))));
            cases.push((tn, Box::new(move || mlp.exact_trace(xt, t).map(|(f, tr)| vec![f, tr]))));
            cases.push((tn, Box::new(move || squash.hutchinson_trace(xt, t, eps).map(|(f, tr)| vec![f, tr]))));
            cases.push((tn, Box::new(move || squash.exact_trace(xt, t).map(|(f, tr)| vec![f, tr]))));
            cases.push((tn, Box::new(move || squash.jvp(xt, t, eps).map(|(f, jv)| vec![f, jv]))));
        }
        let (hyper_ref, xt, sh) = (&hyper, x.as_tensor(), &shared);
        cases.push(("hypernetwork", Box::new(move || hyper_ref.exact_trace(xt, sh).map(|(f, tr)| vec![f, tr]))));
        let mut wrt: Vec<(String, Tensor)> = vm.data().lock().unwrap().iter().map(|(k, v)| (k.clone(), v.as_tensor().clone())).collect();
        wrt.sort_by(|a, b| a.0.cmp(&b.0));
        wrt.push(("x".into(), x.as_tensor().clone()));
        for (i, (name, f)) in cases.iter().enumerate() {
            let run = |on: bool| -> Result<(Vec<Tensor>, Vec<Option<Tensor>>)> {
                set_fused(on);
                let outs = f()?;
                let mut loss = Tensor::zeros((), dtype, &DEV)?;
                for o in &outs {
                    loss = (loss + o.sqr()?.sum_all()?)?;
                }
                let grads = loss.backward()?;
                Ok((outs, wrt.iter().map(|(_, p)| grads.get(p).cloned()).collect()))
            };
            let (fo, fg) = run(true)?;
            let (co, cg) = run(false)?;
            set_fused(true);
            for (a, c) in fo.iter().zip(&co) {
                let e = rel_err(a, c)?;
                assert!(e <= tol(dtype), "case {i} ({name}) {dtype:?}: output differs by {e:e}");
            }
            for ((p, a), c) in wrt.iter().map(|w| &w.0).zip(&fg).zip(&cg) {
                match (a, c) {
                    (Some(a), Some(c)) => {
                        let e = rel_err(a, c)?;
                        assert!(e <= tol(dtype), "case {i} ({name}) {dtype:?}: gradient to {p} differs by {e:e}");
                    }
                    (None, None) => {}
                    (a, c) => {
                        panic!("case {i} ({name}) {dtype:?}: gradient to {p} present fused {} / composite {}", a.is_some(), c.is_some())
                    }
                }
            }
        }
    }
    Ok(())
}

/// `kernels::cast` gives candle's `to_dtype` bits between f32, bf16 and f16 (ties, overflow,
/// subnormals, NaN among the inputs), and its gradient is the gradient cast back.
#[test]
fn cast_equals_candle_to_dtype_and_casts_the_gradient_back() -> Result<()> {
    let _switch = hold_switch();
    set_fused(true);
    let mut values: Vec<f32> = (0..=u32::MAX).step_by(65_537).map(f32::from_bits).collect();
    values.extend([1.0 + 2f32.powi(-9), 65_519.0, 65_520.0, 1e-40, f32::INFINITY]);
    let x = Tensor::new(values.as_slice(), &DEV)?;
    let bits = |t: &Tensor| -> Result<Vec<u32>> {
        let wide = t.to_dtype(DType::F32)?.to_vec1::<f32>()?;
        Ok(wide.iter().map(|v| if v.is_nan() { u32::MAX } else { v.to_bits() }).collect())
    };
    for (from, to) in [
        (DType::F32, DType::BF16),
        (DType::F32, DType::F16),
        (DType::BF16, DType::F32),
        (DType::F16, DType::F32),
        (DType::BF16, DType::F16),
    ] {
        let source = x.to_dtype(from)?;
        let (ours, candle) = (kernels::cast(&source, to)?, source.to_dtype(to)?);
        assert_eq!(ours.dtype(), to);
        assert!(bits(&ours)? == bits(&candle)?, "{from:?} → {to:?}: differs from candle's to_dtype");
    }
    let w = Var::new(&[0.5f32, -3.25, 1e3], &DEV)?;
    let g = Tensor::new(&[2.0f32, -0.75, 0.125], &DEV)?.to_dtype(DType::BF16)?;
    let grads = (kernels::cast(w.as_tensor(), DType::BF16)? * &g)?.sum_all()?.backward()?;
    let grad = grads.get(w.as_tensor()).expect("a gradient");
    assert_eq!(grad.dtype(), DType::F32);
    assert_eq!(grad.to_vec1::<f32>()?, g.to_dtype(DType::F32)?.to_vec1::<f32>()?);
    Ok(())
}
