//! The normal projector, the lift and the projection against their definitions on manifolds
//! with known geometry, bad input, and the whole pipeline (lift, train a flow-matching model,
//! sample, project) on a circle.

use candle_core::{DType, Device};
use candle_nn::VarMap;
use datasets::Matrix;
use flow_matching::{train_cfm, CfmConfig, Coupling, LearnedFlow, Path};
use manifold_lift::{
    lift, normal_projector, project, project_all, sample_and_project, sample_projecting_every_step, Hyperplane, Implicit, LiftError,
    Manifold, Product, ProjectionConfig, Sphere, Torus,
};
use nalgebra::{DMatrix, DVector};
use tensor_core::nets::Mlp;
use tensor_core::params::ParamBuilder;
use tensor_core::{Activation, SeededRng};

/// x²/4 + y² = 1 in ℝ², as a user's h and J.
fn ellipse() -> Box<dyn Manifold> {
    Box::new(Implicit {
        ambient_dim: 2,
        codim: 1,
        h: |x: &[f64]| DVector::from_element(1, x[0] * x[0] / 4.0 + x[1] * x[1] - 1.0),
        jacobian: |x: &[f64]| DMatrix::from_row_slice(1, 2, &[x[0] / 2.0, 2.0 * x[1]]),
    })
}

fn manifolds() -> Vec<(&'static str, Box<dyn Manifold>, Vec<f64>)> {
    vec![
        ("hyperplane", Box::new(Hyperplane::new(vec![1.0, -2.0, 0.5], 0.3).unwrap()), vec![0.3, -0.2, 0.9]),
        ("sphere", Box::new(Sphere { center: vec![0.5, -1.0, 2.0], radius: 1.5 }), vec![1.1, -0.2, 2.9]),
        ("torus", Box::new(Torus { major: 2.0, minor: 0.5 }), vec![1.7, 1.4, 0.3]),
        (
            "circle × line",
            Box::new(Product(Sphere { center: vec![0.0, 0.0], radius: 1.0 }, Hyperplane::new(vec![0.0, 1.0], 0.5).unwrap())),
            vec![0.9, 0.6, 1.2, 0.4],
        ),
        ("ellipse", ellipse(), vec![1.5, 0.8]),
    ]
}

/// P_N is symmetric, idempotent and kills tangent vectors (the null space of J) to 1e-12.
#[test]
fn normal_projector_is_the_orthogonal_projector_onto_the_normal_space() {
    for (name, m, x) in manifolds() {
        let p = normal_projector(m.as_ref(), &x).unwrap();
        let d = x.len();
        assert!((&p - p.transpose()).amax() < 1e-12, "{name}: not symmetric");
        assert!((&p * &p - &p).amax() < 1e-12, "{name}: not idempotent");
        assert!((p.trace() - m.codim() as f64).abs() < 1e-12, "{name}: rank ≠ codimension");
        let j = m.jacobian(&x);
        let tangent = DMatrix::<f64>::identity(d, d) - j.transpose() * (&j * j.transpose()).try_inverse().unwrap() * &j;
        assert!((&p * &tangent).amax() < 1e-12, "{name}: P_N does not annihilate the tangent space");
    }
}

/// Π lands on M to 1e-10, is idempotent, and for the sphere and the torus is the exact nearest
/// point (closed forms).
#[test]
fn projection_lands_on_the_manifold_and_is_the_nearest_point() {
    let cfg = ProjectionConfig::default();
    for (name, m, x) in manifolds() {
        let p = project(m.as_ref(), &x, &cfg).unwrap();
        assert!(!p.flagged && p.violation < 1e-10, "{name}: {p:?}");
        let again = project(m.as_ref(), &p.point, &cfg).unwrap();
        assert!(again.point.iter().zip(&p.point).all(|(a, b)| (a - b).abs() < 1e-12), "{name}: not idempotent");
    }
    let sphere = Sphere { center: vec![0.5, -1.0, 2.0], radius: 1.5 };
    let x = [1.1, -0.2, 2.9];
    let r = ((0.6f64).powi(2) + 0.8f64.powi(2) + 0.9f64.powi(2)).sqrt();
    let nearest: Vec<f64> = x.iter().zip(&sphere.center).map(|(a, c)| c + 1.5 * (a - c) / r).collect();
    let p = project(&sphere, &x, &cfg).unwrap();
    assert!(p.point.iter().zip(&nearest).all(|(a, b)| (a - b).abs() < 1e-12), "{:?} vs {nearest:?}", p.point);
    // torus: the nearest point lies on the segment from the tube's centre circle to x
    let torus = Torus { major: 2.0, minor: 0.5 };
    let x = [1.7, 1.4, 0.3];
    let rho = (1.7f64 * 1.7 + 1.4 * 1.4).sqrt();
    let centre = [2.0 * 1.7 / rho, 2.0 * 1.4 / rho, 0.0];
    let off: Vec<f64> = x.iter().zip(&centre).map(|(a, c)| a - c).collect();
    let len = off.iter().map(|v| v * v).sum::<f64>().sqrt();
    let nearest: Vec<f64> = centre.iter().zip(&off).map(|(c, o)| c + 0.5 * o / len).collect();
    let p = project(&torus, &x, &cfg).unwrap();
    assert!(p.point.iter().zip(&nearest).all(|(a, b)| (a - b).abs() < 1e-12), "{:?} vs {nearest:?}", p.point);
}

/// Lifted points differ from their base points only in normal directions, with the noise scale
/// asked for.
#[test]
fn lifted_samples_have_no_tangential_component() {
    let torus = Torus { major: 2.0, minor: 0.5 };
    let base: Vec<f32> = (0..400)
        .flat_map(|i| {
            let (u, v) = (i as f64 * 0.37, i as f64 * 1.13);
            [((2.0 + 0.5 * v.cos()) * u.cos()) as f32, ((2.0 + 0.5 * v.cos()) * u.sin()) as f32, (0.5 * v.sin()) as f32]
        })
        .collect();
    let points = Matrix::new(base, 400, 3).unwrap();
    let sigma = 0.05;
    let lifted = lift(&torus, &points, sigma, 3).unwrap();
    let mut sq = 0.0;
    for i in 0..points.rows {
        let z: Vec<f64> = points.row(i).iter().map(|&v| v as f64).collect();
        let n = DVector::from_iterator(3, lifted.row(i).iter().zip(&z).map(|(&x, z)| x as f64 - z));
        let tangential = (DMatrix::identity(3, 3) - normal_projector(&torus, &z).unwrap()) * &n;
        assert!(tangential.amax() < 1e-6, "row {i}: tangential part {tangential}");
        sq += n.norm_squared();
    }
    let rms = (sq / points.rows as f64).sqrt();
    assert!((rms - sigma).abs() < 0.15 * sigma, "normal noise rms {rms} for σ = {sigma}");
    // the same seed, the same lift
    assert_eq!(lift(&torus, &points, sigma, 3).unwrap(), lifted);
}

/// Bad input is a typed error naming the problem; points beyond the reach or at a singular point
/// are flagged or refused, never silently projected.
#[test]
fn bad_input_and_singular_points() {
    let sphere = Sphere { center: vec![0.0; 3], radius: 1.0 };
    let cfg = ProjectionConfig::default();
    assert!(matches!(project(&sphere, &[1.0, 2.0], &cfg), Err(LiftError::Input(_))));
    assert!(project(&sphere, &[f64::NAN, 0.0, 0.0], &cfg).unwrap_err().to_string().contains("non-finite"));
    assert!(matches!(project(&sphere, &[0.0, 0.0, 0.0], &cfg), Err(LiftError::Singular(_))));
    assert!(project(&sphere, &[4.0, 0.0, 0.0], &cfg).unwrap().flagged, "moved 3 > reach 1");
    assert!(lift(&sphere, &Matrix::new(vec![1.0, 0.0, 0.0], 1, 3).unwrap(), f64::NAN, 0).is_err());
    assert!(Hyperplane::new(vec![0.0, 0.0], 1.0).is_err());
    let (_, report) = project_all(&sphere, &Matrix::new(vec![0.5, 0.0, 0.0, 5.0, 0.0, 0.0], 2, 3).unwrap(), &cfg).unwrap();
    assert_eq!(report.flagged, 1);
}

/// Lift a blob on the unit circle, train I-CFM on the lifted points, sample and project: every
/// sample lands on the circle, none flagged, and the samples' angles follow the data's.
#[test]
fn lift_train_project_on_a_circle() -> Result<(), Box<dyn std::error::Error>> {
    let circle = Sphere { center: vec![0.0, 0.0], radius: 1.0 };
    let mut rng = SeededRng::new(5);
    let angles = (rng.normal(2000, DType::F64, &Device::Cpu)? * 0.4)?.affine(1.0, 0.8)?.to_vec1::<f64>()?;
    let data = Matrix::new(angles.iter().flat_map(|a| [a.cos() as f32, a.sin() as f32]).collect(), 2000, 2)?;
    let lifted = lift(&circle, &data, 0.05, 6)?;
    let vm = VarMap::new();
    let net = Mlp::new(&mut ParamBuilder::new(&vm, &mut rng, DType::F32, &Device::Cpu), 2, &[64, 64], 2, Activation::Swish)?;
    let source = rng.normal((2000, 2), DType::F32, &Device::Cpu)?;
    let cfg = CfmConfig { coupling: Coupling::Independent, path: Path::Straight { sigma: 0.0 }, iters: 600, batch: 256, lr: 2e-3, seed: 8 };
    train_cfm(&net, &vm, &source, &lifted.to_tensor(&Device::Cpu)?, &cfg)?;
    let flow = LearnedFlow { net };
    let z = rng.normal((500, 2), DType::F32, &Device::Cpu)?;
    let (samples, report) = sample_and_project(&flow, &circle, &z, 40, &ProjectionConfig::default())?;
    assert!(report.max_violation_before > 1e-3, "the raw samples are off the circle: {report:?}");
    assert!(report.max_violation_after < 1e-6 && report.flagged == 0, "{report:?}");
    let mean_angle =
        (0..samples.rows).map(|i| (samples.row(i)[1] as f64).atan2(samples.row(i)[0] as f64)).sum::<f64>() / samples.rows as f64;
    assert!((mean_angle - 0.8).abs() < 0.1, "mean angle {mean_angle}, data 0.8");
    let (stepwise, report) = sample_projecting_every_step(&flow, &circle, &z, 40, &ProjectionConfig::default())?;
    assert_eq!(stepwise.rows, 500);
    assert!(report.max_violation_after < 1e-6, "{report:?}");
    Ok(())
}

/// Plane coordinates embed onto the hyperplane and read back.
#[test]
fn hyperplane_frame_embeds_and_reads_back() {
    let plane = Hyperplane::new(vec![1.0, 1.0, 2.0], 0.7).unwrap();
    let b = plane.tangent_basis();
    assert!((b.transpose() * &b - DMatrix::<f64>::identity(2, 2)).amax() < 1e-12);
    let uv = datasets::toy2d::smiley(50, 1);
    let x = plane.embed(&uv).unwrap();
    for i in 0..x.rows {
        let p: Vec<f64> = x.row(i).iter().map(|&v| v as f64).collect();
        assert!(plane.constraint(&p).norm() < 1e-6);
    }
    let back = plane.coordinates(&x).unwrap();
    assert!(back.data.iter().zip(&uv.data).all(|(a, b)| (a - b).abs() < 1e-6));
}

/// Every analytic Jacobian against central differences of h (relative error ≤ 1e-6).
#[test]
fn jacobians_match_central_differences() {
    let eps = 1e-6;
    for (name, m, x) in manifolds() {
        let j = m.jacobian(&x);
        for k in 0..x.len() {
            let (mut xp, mut xm) = (x.clone(), x.clone());
            xp[k] += eps;
            xm[k] -= eps;
            let fd = (m.constraint(&xp) - m.constraint(&xm)) / (2.0 * eps);
            for r in 0..m.codim() {
                let err = (fd[r] - j[(r, k)]).abs() / j.amax().max(1e-12);
                assert!(err < 1e-6, "{name}: ∂h{r}/∂x{k} analytic {} vs difference {}", j[(r, k)], fd[r]);
            }
        }
    }
}
