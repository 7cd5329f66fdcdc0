//! Criterion benchmarks of the hot derivative kernels: OT-Flow's Φ (gradient + Laplacian) at
//! the BSDS300 dimension, the MLP's JVP and exact trace at the 2-D toy size, and the fused tanh
//! kernel against candle's scalar one on a 512×512 tensor.
//! Run: `cargo bench -p continuum-benches`.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use criterion::{criterion_group, criterion_main, Criterion};
use tensor_core::nets::{Mlp, Potential, PotentialConfig};
use tensor_core::params::ParamBuilder;
use tensor_core::{Activation, SeededRng};

fn potential(c: &mut Criterion) {
    let dev = Device::Cpu;
    for (d, m, b) in [(63, 128, 256), (2, 32, 1024)] {
        let vm = VarMap::new();
        let mut rng = SeededRng::new(0);
        let phi = Potential::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, &dev), PotentialConfig::new(d, m)).unwrap().detach().unwrap();
        let x = rng.normal((b, d), DType::F32, &dev).unwrap();
        let t = Tensor::new(0.5f32, &dev).unwrap();
        c.bench_function(&format!("potential_grad_laplacian d{d} m{m} b{b}"), |bench| bench.iter(|| phi.derivatives(&x, &t).unwrap()));
        c.bench_function(&format!("potential_gradient d{d} m{m} b{b}"), |bench| bench.iter(|| phi.gradient(&x, &t).unwrap()));
    }
}

fn mlp(c: &mut Criterion) {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let mut rng = SeededRng::new(0);
    let net = Mlp::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, &dev), 2, &[64, 64], 2, Activation::Tanh).unwrap().detach().unwrap();
    let x = rng.normal((1024, 2), DType::F32, &dev).unwrap();
    let v = rng.normal((1024, 2), DType::F32, &dev).unwrap();
    let t = Tensor::new(0.5f32, &dev).unwrap();
    c.bench_function("mlp_jvp d2 w64 b1024", |bench| bench.iter(|| net.jvp(&x, &t, &v).unwrap()));
    c.bench_function("mlp_exact_trace d2 w64 b1024", |bench| bench.iter(|| net.exact_trace(&x, &t).unwrap()));
}

fn tanh(c: &mut Criterion) {
    let z = SeededRng::new(0).normal((512, 512), DType::F32, &Device::Cpu).unwrap();
    c.bench_function("tanh fused 512x512 f32", |bench| bench.iter(|| tensor_core::kernels::tanh(&z).unwrap()));
    c.bench_function("tanh candle 512x512 f32", |bench| bench.iter(|| z.tanh().unwrap()));
}

criterion_group!(benches, potential, mlp, tanh);
criterion_main!(benches);
