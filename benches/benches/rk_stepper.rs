//! Criterion benchmarks of `ode-solvers`' explicit RK stepper: one step of each method on an
//! MLP vector field (d = 2, width 64, batch 512), and an adaptive Dopri5 solve.
//! Run: `cargo bench -p continuum-benches --bench rk_stepper`.

use candle_core::{DType, Device};
use candle_nn::VarMap;
use criterion::{criterion_group, criterion_main, Criterion};
use ode_solvers::low_level::rk_step;
use ode_solvers::{solve, time_net_field, Method, PiController, SolveConfig, Steps};
use tensor_core::nets::Mlp;
use tensor_core::params::ParamBuilder;
use tensor_core::{Activation, SeededRng};

fn rk(c: &mut Criterion) {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let mut rng = SeededRng::new(0);
    let net =
        Mlp::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, &dev), 2, &[64, 64], 2, Activation::Tanh).unwrap().detach().unwrap();
    let x = rng.normal((512, 2), DType::F32, &dev).unwrap();
    let field = time_net_field(net.clone());
    for method in [Method::Euler, Method::Rk4, Method::Dopri5, Method::Tsit5] {
        c.bench_function(&format!("rk_step {} d2 w64 b512", method.name()), |b| {
            b.iter(|| rk_step(method.tableau(), &field, 0.0, 0.1, &x, None).unwrap())
        });
    }
    let cfg = SolveConfig::new(Steps::Adaptive { t0: 0.0, t1: 1.0, controller: PiController::new(1e-5, 1e-5) });
    c.bench_function("adaptive dopri5 solve d2 w64 b512", |b| b.iter(|| solve(&field, Method::Dopri5, &x, &cfg).unwrap()));
}

criterion_group!(benches, rk);
criterion_main!(benches);
