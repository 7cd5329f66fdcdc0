//! Mean-field games: the particle estimates of the functionals against closed forms for
//! Gaussians, training against the closed-form optimum of Gaussian transport, bad configurations.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use ot_flow::mfg::*;
use ot_flow::OtFlowError;
use tensor_core::params::ParamBuilder;
use tensor_core::SeededRng;
use train::TrainConfig;

type TestResult = std::result::Result<(), Box<dyn std::error::Error>>;

fn mean(t: &Tensor) -> f64 {
    t.to_dtype(DType::F64).unwrap().mean_all().unwrap().to_scalar::<f64>().unwrap()
}

/// Congestion ∫ρ² = (4πs²)^{−d/2} and the obstacle ∫Qρ = h·Πₖ N(μₖ; cₖ, s² + τₖ²) for
/// ρ = N(μ, s²I), estimated from 40,000 particles with their exact log-density.
#[test]
fn interaction_estimates_match_gaussian_closed_forms() -> TestResult {
    let dev = Device::Cpu;
    for d in [2usize, 3] {
        let (s, mu) = (0.7, vec![0.4; d]);
        let rho = Gaussian::isotropic(mu.clone(), s);
        let x = rho.sample(40_000, &mut SeededRng::new(d as u64), DType::F64, &dev)?;
        let log_rho = rho.log_prob(&x)?;
        let congestion = Interaction { congestion: 1.0, obstacle: None };
        let (rate, variation) = congestion.rate_and_variation(&x, &log_rho)?;
        let exact = (4.0 * std::f64::consts::PI * s * s).powf(-(d as f64) / 2.0);
        assert!((mean(&rate) - exact).abs() < 0.02 * exact, "d = {d}: ∫ρ² ≈ {} vs {exact}", mean(&rate));
        assert!((mean(&variation) - 2.0 * exact).abs() < 0.04 * exact, "δF/δρ = 2ρ");
        let obstacle = Obstacle { centre: vec![0.0, -0.5], std: vec![1.0, 0.5], height: 50.0 };
        let exact_q: f64 = obstacle.height
            * obstacle
                .centre
                .iter()
                .zip(&obstacle.std)
                .zip(&mu)
                .map(|((c, t), m)| {
                    let v = s * s + t * t;
                    (-(m - c).powi(2) / (2.0 * v)).exp() / (2.0 * std::f64::consts::PI * v).sqrt()
                })
                .product::<f64>();
        let (q, _) = Interaction { congestion: 0.0, obstacle: Some(obstacle) }.rate_and_variation(&x, &log_rho)?;
        assert!((mean(&q) - exact_q).abs() < 0.02 * exact_q, "d = {d}: ∫Qρ ≈ {} vs {exact_q}", mean(&q));
    }
    Ok(())
}

/// KL(N(μ₀, s²I) ‖ N(μ₁, s²I)) = ‖μ₀ − μ₁‖²/(2s²) from particles of ρ₀.
#[test]
fn kl_terminal_matches_the_gaussian_closed_form() -> TestResult {
    let dev = Device::Cpu;
    let (rho0, rho1) = (Gaussian::isotropic(vec![0.0, 1.0, -1.0], 0.5), Gaussian::isotropic(vec![0.5, 0.0, -1.0], 0.5));
    let x = rho0.sample(20_000, &mut SeededRng::new(4), DType::F64, &dev)?;
    let (g, dg) = Terminal::Kl(rho1).integrand_and_variation(&x, &rho0.log_prob(&x)?)?;
    let exact = (0.25 + 1.0) / (2.0 * 0.25);
    assert!((mean(&g) - exact).abs() < 0.03 * exact, "KL ≈ {} vs {exact}", mean(&g));
    assert!((mean(&dg) - mean(&g) - 1.0).abs() < 1e-12);
    Ok(())
}

/// Transport between N(±1.5 e₁, 0.5²I) in d = 2 with α_G = 2: 250 iterations reach the
/// closed-form optimum J* = ½‖Δμ‖²·a/(1 + a), a = α_G/s², within 5 % on a validation draw.
#[test]
fn gaussian_transport_reaches_the_closed_form_optimum() -> TestResult {
    let dev = Device::Cpu;
    let config = MfgConfig::gaussian_transport(2, 16, vec![-1.5, 0.0], vec![1.5, 0.0], 0.5, 2.0);
    let (j_star, l_star, _) = config.translation_optimum().expect("a Gaussian transport");
    let vm = VarMap::new();
    let mut rng = SeededRng::new(0);
    let game = MeanFieldGame::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, &dev), config.clone())?;
    let fit = config.initial.sample(2048, &mut rng, DType::F32, &dev)?;
    let val = config.initial.sample(1024, &mut rng, DType::F32, &dev)?;
    let cfg = TrainConfig::default().iters(250).batch(512).lr(0.02).steps(4).val_steps(8).val_every(50);
    let out = train::train(&game, &vm, &fit, &val, &cfg, &mut |_| {})?;
    let (_, best) = out.best.expect("validated");
    let (j, l) = (best.get("J").unwrap(), best.get("transport").unwrap());
    eprintln!(
        "J = {j:.4} (J* = {j_star:.4}), L = {l:.4} (L* = {l_star:.4}), HJB {:.4}, final HJB {:.4}",
        best.get("hjb").unwrap(),
        best.get("hjb_final").unwrap()
    );
    assert!((j - j_star).abs() < 0.05 * j_star, "J = {j} vs J* = {j_star}");
    Ok(())
}

#[test]
fn bad_game_configurations_are_typed_errors() -> TestResult {
    let dev = Device::Cpu;
    let vm = VarMap::new();
    let mut rng = SeededRng::new(0);
    let good = MfgConfig::crowd_motion(8, 0.01);
    let cases = [
        MfgConfig { dim: 3, ..good.clone() },
        MfgConfig { interaction: Interaction { congestion: -1.0, obstacle: None }, ..good.clone() },
        MfgConfig { terminal: Terminal::Quadratic { target: vec![0.0; 5], weight: 1.0 }, ..good.clone() },
        MfgConfig { initial: Gaussian { mean: vec![0.0, 0.0], std: vec![0.0] }, ..good.clone() },
        MfgConfig {
            interaction: Interaction { congestion: 0.0, obstacle: Some(Obstacle { centre: vec![0.0; 3], std: vec![1.0], height: 1.0 }) },
            ..good.clone()
        },
    ];
    for c in cases {
        let e = MeanFieldGame::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, &dev), c.clone()).expect_err("invalid");
        assert!(matches!(e, OtFlowError::Config(_)), "{c:?}: {e}");
    }
    let game = MeanFieldGame::new(&mut ParamBuilder::new(&VarMap::new(), &mut rng, DType::F32, &dev), good)?;
    assert!(game.initial_state(&Tensor::zeros((4, 3), DType::F32, &dev)?).is_err(), "states of the wrong dimension");
    Ok(())
}
