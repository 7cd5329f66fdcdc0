//! Criterion benchmarks of the hot derivative kernels: OT-Flow's Φ (gradient + Laplacian) at
//! the BSDS300 dimension, the MLP's JVP and exact trace (with and without backward, network op vs
//! layer by layer) at the 2-D toy size, and each vectorised
//! activation kernel against its composite candle-op formula on a 512×512 tensor; and square
//! matrix products in f32, bf16 and f16 with their GFLOP/s (criterion's "elem/s" counts 2n³
//! flops per product).
//! Run: `cargo bench -p continuum-benches`.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use tensor_core::kernels;
use tensor_core::nets::{Mlp, Potential, PotentialConfig};
use tensor_core::params::ParamBuilder;
use tensor_core::{Activation, SeededRng};

fn potential(c: &mut Criterion) {
    let dev = Device::Cpu;
    for (d, m, b) in [(63, 128, 256), (2, 32, 1024)] {
        let vm = VarMap::new();
        let mut rng = SeededRng::new(0);
        let phi =
            Potential::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, &dev), PotentialConfig::new(d, m)).unwrap().detach().unwrap();
        let x = rng.normal((b, d), DType::F32, &dev).unwrap();
        let t = Tensor::new(0.5f32, &dev).unwrap();
        c.bench_function(&format!("potential_grad_laplacian d{d} m{m} b{b}"), |bench| bench.iter(|| phi.derivatives(&x, &t).unwrap()));
        c.bench_function(&format!("potential_gradient d{d} m{m} b{b}"), |bench| bench.iter(|| phi.gradient(&x, &t).unwrap()));
    }
}

/// The MLP's JVP and exact trace (inference), and the exact trace with the backward of training,
/// through the network op (`fused`) and layer by layer (`composite`).
fn mlp(c: &mut Criterion) {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let mut rng = SeededRng::new(0);
    let trained = Mlp::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, &dev), 2, &[64, 64], 2, Activation::Tanh).unwrap();
    let net = trained.detach().unwrap();
    let x = rng.normal((1024, 2), DType::F32, &dev).unwrap();
    let v = rng.normal((1024, 2), DType::F32, &dev).unwrap();
    let t = Tensor::new(0.5f32, &dev).unwrap();
    for (path, on) in [("fused", true), ("composite", false)] {
        kernels::set_fused(on);
        c.bench_function(&format!("mlp_jvp d2 w64 b1024 {path}"), |bench| bench.iter(|| net.jvp(&x, &t, &v).unwrap()));
        c.bench_function(&format!("mlp_exact_trace d2 w64 b1024 {path}"), |bench| bench.iter(|| net.exact_trace(&x, &t).unwrap()));
        c.bench_function(&format!("mlp_exact_trace_backward d2 w64 b1024 {path}"), |bench| {
            bench.iter(|| {
                let (f, tr) = trained.exact_trace(&x, &t).unwrap();
                (f.sqr().unwrap().sum_all().unwrap() + tr.sum_all().unwrap()).unwrap().backward().unwrap()
            })
        });
    }
    kernels::set_fused(true);
}

type Elementwise = fn(&Tensor) -> tensor_core::Result<Tensor>;

/// Each vectorised activation against its composite candle-op formula.
fn activations(c: &mut Criterion) {
    let z = SeededRng::new(0).normal((512, 512), DType::F32, &Device::Cpu).unwrap();
    let tanh_candle: Elementwise = |z| Ok(z.tanh()?);
    let cases: [(&str, Elementwise, Elementwise); 6] = [
        ("tanh", kernels::tanh, tanh_candle),
        ("selu", kernels::selu, kernels::selu_composite),
        ("sigmoid", kernels::sigmoid, kernels::sigmoid_composite),
        ("softplus", kernels::softplus, kernels::softplus_composite),
        ("swish", kernels::swish, kernels::swish_composite),
        ("log_cosh", kernels::log_cosh, kernels::log_cosh_composite),
    ];
    for (name, fused, composite) in cases {
        c.bench_function(&format!("{name} fused 512x512 f32"), |bench| bench.iter(|| fused(&z).unwrap()));
        c.bench_function(&format!("{name} composite 512x512 f32"), |bench| bench.iter(|| composite(&z).unwrap()));
    }
}

/// n×n·n×n products in each precision: candle's matmul (bf16 widened to f32 element by element,
/// multiplied, rounded back; f16 by `gemm`'s f16 path) and `kernels::matmul` (the same numbers
/// with vectorised conversions; bf16 on AVX512-BF16 where the CPU has it, see
/// `kernels::dot_bf16::bf16_product_path`), against f32; throughput in flops (2n³ per product).
fn matmul(c: &mut Criterion) {
    let mut group = c.benchmark_group("matmul");
    for n in [512usize, 1024] {
        let mut rng = SeededRng::new(n as u64);
        let (a, b) = (rng.normal((n, n), DType::F32, &Device::Cpu).unwrap(), rng.normal((n, n), DType::F32, &Device::Cpu).unwrap());
        group.throughput(Throughput::Elements(2 * (n as u64).pow(3)));
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            let (a, b) = (a.to_dtype(dtype).unwrap(), b.to_dtype(dtype).unwrap());
            group.bench_function(format!("candle {dtype:?} n{n}"), |bench| bench.iter(|| a.matmul(&b).unwrap()));
            if dtype != DType::F32 {
                group.bench_function(format!("kernels {dtype:?} n{n}"), |bench| bench.iter(|| kernels::matmul(&a, &b).unwrap()));
            }
        }
    }
    group.finish();
}

criterion_group!(benches, potential, mlp, activations, matmul);
criterion_main!(benches);
