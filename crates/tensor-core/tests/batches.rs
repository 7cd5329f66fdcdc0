//! Empty and one-row batches through every network entry point: empty results for 0 rows, one
//! row for 1, with the fused network op and the composite path alike.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use tensor_core::nets::{ConcatSquashNet, HyperNet, Mlp, Potential, PotentialConfig, TimeLayer, TimeNet};
use tensor_core::params::ParamBuilder;
use tensor_core::{Activation, Result, SeededRng};

const DEV: Device = Device::Cpu;

fn check<L: TimeLayer>(net: &TimeNet<L>, rng: &mut SeededRng, label: &str) -> Result<()> {
    let d = net.in_dim();
    for rows in [0usize, 1] {
        let x = rng.normal((rows, d), DType::F32, &DEV)?;
        let t = Tensor::new(0.3f32, &DEV)?;
        assert_eq!(net.forward(&x, &t)?.dims(), &[rows, d], "{label} forward, {rows} rows");
        let (f, jv) = net.jvp(&x, &t, &rng.normal((rows, d), DType::F32, &DEV)?)?;
        assert_eq!((f.dims(), jv.dims()), (&[rows, d][..], &[rows, d][..]), "{label} jvp");
        let (f, tr) = net.exact_trace(&x, &t)?;
        assert_eq!((f.dims(), tr.dims()), (&[rows, d][..], &[rows, 1][..]), "{label} exact trace");
        let (_, tr) = net.hutchinson_trace(&x, &t, &rng.rademacher((rows, d), DType::F32, &DEV)?)?;
        assert_eq!(tr.dims(), &[rows, 1], "{label} Hutchinson");
        // one time per sample, and a backward pass through the trace
        let per_sample = rng.uniform(rows, 0.0, 1.0, DType::F32, &DEV)?;
        let (f, tr) = net.exact_trace(&x, &per_sample)?;
        let _ = (f.sum_all()? + tr.sum_all()?)?.backward()?;
    }
    Ok(())
}

#[test]
fn networks_take_empty_and_single_row_batches() -> Result<()> {
    for fused in [true, false] {
        tensor_core::kernels::set_fused(fused);
        let vm = VarMap::new();
        let mut rng = SeededRng::new(1);
        let mut pb = ParamBuilder::new(&vm, &mut rng, DType::F32, &DEV);
        let mlp = Mlp::new(&mut pb.pp("mlp"), 3, &[8], 3, Activation::Softplus)?;
        let cs = ConcatSquashNet::new(&mut pb.pp("cs"), 3, &[8, 8], 3, Activation::Tanh)?;
        let hyper = HyperNet::new(&mut pb.pp("hyper"), 2, 8, 8)?;
        let phi = Potential::new(&mut pb.pp("phi"), PotentialConfig::new(3, 8))?;
        let mut rng = SeededRng::new(2);
        check(&mlp, &mut rng, "mlp")?;
        check(&cs, &mut rng, "concat-squash")?;
        check(&hyper, &mut rng, "hypernetwork")?;
        for rows in [0usize, 1] {
            let x = rng.normal((rows, 3), DType::F32, &DEV)?;
            let t = Tensor::new(0.5f32, &DEV)?;
            assert_eq!(phi.value(&x, &t)?.dims(), &[rows, 1]);
            let d = phi.derivatives(&x, &t)?;
            assert_eq!((d.grad_x.dims(), d.laplacian.dims()), (&[rows, 3][..], &[rows, 1][..]));
        }
    }
    tensor_core::kernels::set_fused(true);
    Ok(())
}
