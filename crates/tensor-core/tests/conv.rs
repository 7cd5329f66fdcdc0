//! The image layers against direct loops, the transposed convolution as the exact adjoint of
//! the convolution, and instance norm's gradient against finite differences (all in f64).

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use tensor_core::nets::conv::{avg_pool_2x2, global_avg_pool, instance_norm, matmul_16bit_exact, Conv3x3};
use tensor_core::params::ParamBuilder;
use tensor_core::{Result, SeededRng};

fn conv(rng: &mut SeededRng, c_in: usize, c_out: usize, bias: bool) -> Result<Conv3x3> {
    let varmap = VarMap::new();
    let mut pb = ParamBuilder::new(&varmap, rng, DType::F64, &Device::Cpu);
    Conv3x3::new(&mut pb, c_in, c_out, bias)
}

/// The convolution equals the six nested loops of its definition (zero padding, odd sizes).
#[test]
fn conv3x3_matches_direct_loops() -> Result<()> {
    let mut rng = SeededRng::new(3);
    let (b, h, w, ci, co) = (2, 5, 7, 3, 4);
    let k = conv(&mut rng, ci, co, true)?;
    let x = rng.normal((b, h, w, ci), DType::F64, &Device::Cpu)?;
    let got = k.forward(&x)?.flatten_all()?.to_vec1::<f64>()?;
    let xv = x.flatten_all()?.to_vec1::<f64>()?;
    let wv = k.weight.flatten_all()?.to_vec1::<f64>()?;
    let bv = k.bias.as_ref().unwrap().to_vec1::<f64>()?;
    let mut max_err = 0f64;
    for n in 0..b {
        for i in 0..h {
            for j in 0..w {
                for o in 0..co {
                    let mut s = bv[o];
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (y, x_) = (i as isize + ky as isize - 1, j as isize + kx as isize - 1);
                            if y < 0 || x_ < 0 || y >= h as isize || x_ >= w as isize {
                                continue;
                            }
                            for c in 0..ci {
                                s += wv[((ky * 3 + kx) * ci + c) * co + o] * xv[((n * h + y as usize) * w + x_ as usize) * ci + c];
                            }
                        }
                    }
                    max_err = max_err.max((s - got[((n * h + i) * w + j) * co + o]).abs());
                }
            }
        }
    }
    assert!(max_err < 1e-12, "max error {max_err:e}");
    Ok(())
}

/// ⟨K x, z⟩ = ⟨x, Kᵀ z⟩ to 1e-10 in f64: the transposed convolution is the adjoint.
#[test]
fn transposed_conv_is_the_adjoint() -> Result<()> {
    let mut rng = SeededRng::new(5);
    for (h, w, ci, co) in [(6, 6, 3, 5), (1, 4, 2, 2), (9, 3, 4, 1)] {
        let k = conv(&mut rng, ci, co, false)?;
        let x = rng.normal((3, h, w, ci), DType::F64, &Device::Cpu)?;
        let z = rng.normal((3, h, w, co), DType::F64, &Device::Cpu)?;
        let lhs = (k.forward(&x)? * &z)?.sum_all()?.to_scalar::<f64>()?;
        let rhs = (&x * k.transpose(&z)?)?.sum_all()?.to_scalar::<f64>()?;
        assert!((lhs - rhs).abs() < 1e-10 * lhs.abs().max(1.0), "({h},{w},{ci},{co}): {lhs} vs {rhs}");
    }
    Ok(())
}

/// The gradient of Σ r ⊙ IN(x; γ, β) with respect to x, γ and β, against central differences.
#[test]
fn instance_norm_gradients_match_finite_differences() -> Result<()> {
    let mut rng = SeededRng::new(7);
    let dev = Device::Cpu;
    let x = candle_core::Var::from_tensor(&((rng.normal((2, 3, 4, 3), DType::F64, &dev)? * 2.0)? + 0.5)?)?;
    let gamma = candle_core::Var::from_tensor(&rng.normal(3, DType::F64, &dev)?)?;
    let beta = candle_core::Var::from_tensor(&rng.normal(3, DType::F64, &dev)?)?;
    let r = rng.normal((2, 3, 4, 3), DType::F64, &dev)?;
    let f =
        |x: &Tensor, g: &Tensor, b: &Tensor| -> Result<f64> { Ok((instance_norm(x, Some((g, b)))? * &r)?.sum_all()?.to_scalar::<f64>()?) };
    let grads = (instance_norm(x.as_tensor(), Some((gamma.as_tensor(), beta.as_tensor())))? * &r)?.sum_all()?.backward()?;
    let eps = 1e-6;
    for (var, which) in [(&x, 0), (&gamma, 1), (&beta, 2)] {
        let analytic = grads.get(var.as_tensor()).expect("a gradient").flatten_all()?.to_vec1::<f64>()?;
        let base = var.as_tensor().flatten_all()?.to_vec1::<f64>()?;
        for idx in (0..base.len()).step_by(5) {
            let bump = |d: f64| -> Result<f64> {
                let mut v = base.clone();
                v[idx] += d;
                let t = Tensor::from_vec(v, var.as_tensor().shape(), &dev)?;
                match which {
                    0 => f(&t, gamma.as_tensor(), beta.as_tensor()),
                    1 => f(x.as_tensor(), &t, beta.as_tensor()),
                    _ => f(x.as_tensor(), gamma.as_tensor(), &t),
                }
            };
            let fd = (bump(eps)? - bump(-eps)?) / (2.0 * eps);
            assert!((fd - analytic[idx]).abs() < 1e-7 * fd.abs().max(1.0), "input {which} entry {idx}: fd {fd} vs {}", analytic[idx]);
        }
    }
    Ok(())
}

/// Instance norm gives each image's channel mean 0 and variance 1 in f32 and bf16 input alike
/// (its statistics accumulate in f32), and pooling averages the right pixels.
#[test]
fn normalisation_and_pooling_values() -> Result<()> {
    let mut rng = SeededRng::new(9);
    let x = ((rng.normal((2, 8, 8, 3), DType::F32, &Device::Cpu)? * 3.0)? + 7.0)?;
    for dtype in [DType::F32, DType::BF16] {
        let y = instance_norm(&x.to_dtype(dtype)?, None)?.to_dtype(DType::F64)?;
        let mean = y.mean_keepdim(1)?.mean_keepdim(2)?;
        let var = y.broadcast_sub(&mean)?.sqr()?.mean_keepdim(1)?.mean_keepdim(2)?;
        let (m, v) = (mean.abs()?.max_all()?.to_scalar::<f64>()?, (var - 1.0)?.abs()?.max_all()?.to_scalar::<f64>()?);
        let tol = if dtype == DType::F32 { 1e-5 } else { 2e-2 };
        assert!(m < tol && v < tol, "{dtype:?}: |mean| {m:e}, |var − 1| {v:e}");
    }
    let p = Tensor::arange(0f64, 16.0, &Device::Cpu)?.reshape((1, 4, 4, 1))?;
    assert_eq!(avg_pool_2x2(&p)?.flatten_all()?.to_vec1::<f64>()?, vec![2.5, 4.5, 10.5, 12.5]);
    assert_eq!(global_avg_pool(&p)?.flatten_all()?.to_vec1::<f64>()?, vec![7.5]);
    assert!(avg_pool_2x2(&p.narrow(1, 0, 3)?).is_err(), "odd height must be refused");
    Ok(())
}

/// The fused im2col kernel and its col2im backward equal the composite candle ops (value and
/// gradient, plain and mirrored): to rounding in f64, to bf16's rounding of the differently
/// ordered gradient sums in bf16.
#[test]
fn fused_columns_match_the_composite_ops() -> Result<()> {
    let mut rng = SeededRng::new(11);
    let k = conv(&mut rng, 3, 4, true)?;
    for dtype in [DType::F64, DType::BF16] {
        let x = candle_core::Var::from_tensor(&rng.normal((2, 5, 3, 3), DType::F64, &Device::Cpu)?.to_dtype(dtype)?)?;
        let z = rng.normal((2, 5, 3, 4), DType::F64, &Device::Cpu)?.to_dtype(dtype)?;
        let k = k.to_dtype(dtype)?;
        let run = |fused: bool| -> Result<(Vec<f64>, Vec<f64>)> {
            tensor_core::kernels::set_fused(fused);
            let y = (k.forward(x.as_tensor())? + k.transpose(&k.forward(x.as_tensor())?)?.sum_all()?.broadcast_as((2, 5, 3, 4))?)?;
            let loss = (y.to_dtype(DType::F64)? * z.to_dtype(DType::F64)?)?.sum_all()?;
            let g = loss.backward()?.get(x.as_tensor()).expect("a gradient").to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?;
            Ok((y.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?, g))
        };
        let (fused, composite) = (run(true)?, run(false)?);
        tensor_core::kernels::set_fused(true);
        let tol = if dtype == DType::F64 { 1e-12 } else { 3e-2 };
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()));
        assert!(close(&fused.0, &composite.0) && close(&fused.1, &composite.1), "{dtype:?}: fused and composite differ");
    }
    Ok(())
}

/// The 16-bit product through f32 equals candle's own 16-bit CPU matmul, value and gradients,
/// in bf16 and f16 (odd sizes).
#[test]
fn sixteen_bit_products_equal_candles() -> Result<()> {
    let mut rng = SeededRng::new(13);
    for dtype in [DType::BF16, DType::F16] {
        let a = candle_core::Var::from_tensor(&rng.normal((37, 19), DType::F32, &Device::Cpu)?.to_dtype(dtype)?)?;
        let b = candle_core::Var::from_tensor(&rng.normal((19, 11), DType::F32, &Device::Cpu)?.to_dtype(dtype)?)?;
        let r = rng.normal((37, 11), DType::F32, &Device::Cpu)?.to_dtype(dtype)?;
        let ours = matmul_16bit_exact(a.as_tensor(), b.as_tensor())?;
        let theirs = a.as_tensor().matmul(b.as_tensor())?;
        let bits = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?) };
        assert_eq!(bits(&ours)?, bits(&theirs)?, "{dtype:?} values");
        let (g1, g2) = ((ours * &r)?.sum_all()?.backward()?, (theirs * &r)?.sum_all()?.backward()?);
        for v in [&a, &b] {
            let (x, y) = (bits(g1.get(v.as_tensor()).unwrap())?, bits(g2.get(v.as_tensor()).unwrap())?);
            let worst = x.iter().zip(&y).map(|(p, q)| (p - q).abs() / q.abs().max(1e-3)).fold(0f32, f32::max);
            assert!(worst <= 1e-2, "{dtype:?} gradient differs by {worst:e} relative");
        }
    }
    Ok(())
}
