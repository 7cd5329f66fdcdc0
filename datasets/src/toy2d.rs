//! The 2-D toy densities used by FFJORD (Grathwohl et al. 2019, `lib/toy_data.py`) and OT-Flow,
//! with their published constants; scikit-learn's `make_moons`, `make_circles` and
//! `make_swiss_roll` are written out here with the same parameters. Seeded: the same seed gives
//! the same samples.

use crate::error::{DataError, Result};
use crate::Matrix;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;
use std::f64::consts::{FRAC_1_SQRT_2, PI};
use std::fmt;
use std::str::FromStr;

/// A 2-D toy distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Toy2d {
    /// Eight N(c, 0.5²) blobs on a circle of radius 4, all divided by 1.414.
    EightGaussians,
    /// Uniform on the black squares of a 4 × 4 board on [−4, 4]².
    Checkerboard,
    /// Two interleaved half-circles (`make_moons`, noise 0.1), scaled by 2, shifted by (−1, −0.2).
    Moons,
    /// Five curved arms (radial std 0.3, tangential std 0.1, rate 0.25), scaled by 2.
    Pinwheel,
    /// Two spirals of 540° with uniform jitter 0.5 and noise 0.1, divided by 3.
    TwoSpirals,
    /// `make_swiss_roll` (noise 1), coordinates (x, z) divided by 5.
    Swissroll,
    /// Two concentric circles (`make_circles`, factor 0.5, noise 0.08), scaled by 3.
    Circles,
    /// Four concentric rings of radius 3, 2.25, 1.5, 0.75 with noise 0.08.
    Rings,
}

impl Toy2d {
    /// Every toy, in a fixed order.
    pub const ALL: [Toy2d; 8] = [
        Self::EightGaussians,
        Self::Checkerboard,
        Self::Moons,
        Self::Pinwheel,
        Self::TwoSpirals,
        Self::Swissroll,
        Self::Circles,
        Self::Rings,
    ];

    /// FFJORD's name for the data set.
    pub fn name(self) -> &'static str {
        match self {
            Self::EightGaussians => "8gaussians",
            Self::Checkerboard => "checkerboard",
            Self::Moons => "moons",
            Self::Pinwheel => "pinwheel",
            Self::TwoSpirals => "2spirals",
            Self::Swissroll => "swissroll",
            Self::Circles => "circles",
            Self::Rings => "rings",
        }
    }

    /// `n` samples from seed `seed`, an (n, 2) matrix.
    pub fn sample(self, n: usize, seed: u64) -> Matrix {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut pts: Vec<[f64; 2]> = (0..n).map(|i| self.point(i, n, &mut rng)).collect();
        if matches!(self, Self::Moons | Self::Circles | Self::Pinwheel | Self::TwoSpirals) {
            // these are built class by class; shuffle as the references do
            pts.shuffle(&mut rng);
        }
        to_matrix(&pts)
    }

    fn point(self, i: usize, n: usize, rng: &mut rand::rngs::StdRng) -> [f64; 2] {
        match self {
            Self::EightGaussians => {
                let c = EIGHT_DIRECTIONS;
                let (px, py) = (normal(rng) * 0.5, normal(rng) * 0.5);
                let (cx, cy) = c[rng.random_range(0..8)];
                [(px + 4.0 * cx) / 1.414, (py + 4.0 * cy) / 1.414]
            }
            Self::Checkerboard => {
                let x1 = rng.random::<f64>() * 4.0 - 2.0;
                let x2 = rng.random::<f64>() - 2.0 * rng.random_range(0..2) as f64 + (x1.floor().rem_euclid(2.0));
                [x1 * 2.0, x2 * 2.0]
            }
            Self::Moons => {
                let p = make_moons_point(i, n, 0.1, rng);
                [p[0] * 2.0 - 1.0, p[1] * 2.0 - 0.2]
            }
            Self::Circles => {
                // make_circles: angles on a grid without endpoint, inner circle scaled by 0.5
                let n_out = n / 2;
                let (k, m, r) = if i < n_out { (i, n_out, 1.0) } else { (i - n_out, n - n_out, 0.5) };
                let a = 2.0 * PI * k as f64 / m as f64;
                [(r * a.cos() + normal(rng) * 0.08) * 3.0, (r * a.sin() + normal(rng) * 0.08) * 3.0]
            }
            Self::Pinwheel => {
                let class = (i % 5) as f64;
                let f0 = normal(rng) * 0.3 + 1.0;
                let f1 = normal(rng) * 0.1;
                let angle = 2.0 * PI * class / 5.0 + 0.25 * f0.exp();
                let (c, s) = (angle.cos(), angle.sin());
                // einsum("ti,tij->tj") with rotation [[c, −s], [s, c]]
                [2.0 * (f0 * c + f1 * s), 2.0 * (-f0 * s + f1 * c)]
            }
            Self::TwoSpirals => {
                let r = rng.random::<f64>().sqrt() * 540.0 * (2.0 * PI) / 360.0;
                let dx = -r.cos() * r + rng.random::<f64>() * 0.5;
                let dy = r.sin() * r + rng.random::<f64>() * 0.5;
                let sign = if i.is_multiple_of(2) { 1.0 } else { -1.0 };
                [sign * dx / 3.0 + normal(rng) * 0.1, sign * dy / 3.0 + normal(rng) * 0.1]
            }
            Self::Swissroll => {
                let t = 1.5 * PI * (1.0 + 2.0 * rng.random::<f64>());
                // the roll's height coordinate is dropped, so it is not drawn
                let (ex, ez) = (normal(rng), normal(rng));
                [(t * t.cos() + ex) / 5.0, (t * t.sin() + ez) / 5.0]
            }
            Self::Rings => {
                // FFJORD draws from 4 rings on a dense angle grid; this is its continuum limit
                let radius = [1.0, 0.75, 0.5, 0.25][rng.random_range(0..4)] * 3.0;
                let a = 2.0 * PI * rng.random::<f64>();
                [radius * a.cos() + normal(rng) * 0.08, radius * a.sin() + normal(rng) * 0.08]
            }
        }
    }
}

/// scikit-learn's (and torchdyn's) `make_moons` point i of n: n/2 on the outer half circle, the
/// rest on the inner one, plus N(0, noise²) jitter.
fn make_moons_point(i: usize, n: usize, noise: f64, rng: &mut rand::rngs::StdRng) -> [f64; 2] {
    let n_out = n / 2;
    let p = if i < n_out {
        let a = PI * i as f64 / (n_out.max(2) - 1) as f64;
        [a.cos(), a.sin()]
    } else {
        let n_in = n - n_out;
        let a = PI * (i - n_out) as f64 / (n_in.max(2) - 1) as f64;
        [1.0 - a.cos(), 1.0 - a.sin() - 0.5]
    };
    [p[0] + normal(rng) * noise, p[1] + normal(rng) * noise]
}

fn to_matrix(pts: &[[f64; 2]]) -> Matrix {
    Matrix { data: pts.iter().flat_map(|p| [p[0] as f32, p[1] as f32]).collect(), rows: pts.len(), cols: 2 }
}

/// The eight unit directions both 8-Gaussian sets put their centres along.
const EIGHT_DIRECTIONS: [(f64, f64); 8] = [
    (1.0, 0.0),
    (-1.0, 0.0),
    (0.0, 1.0),
    (0.0, -1.0),
    (FRAC_1_SQRT_2, FRAC_1_SQRT_2),
    (FRAC_1_SQRT_2, -FRAC_1_SQRT_2),
    (-FRAC_1_SQRT_2, FRAC_1_SQRT_2),
    (-FRAC_1_SQRT_2, -FRAC_1_SQRT_2),
];

/// torchcfm's `sample_8gaussians` (`torchcfm/utils.py`): centres on the unit circle scaled by 5,
/// plus N(0, √0.1·I) noise — torchcfm passes var = 0.1 as the covariance √var·I, so the
/// per-coordinate standard deviation is 0.1^¼ ≈ 0.562. Differs from FFJORD's 8gaussians.
pub fn torchcfm_8gaussians(n: usize, seed: u64) -> Matrix {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let std = 0.1f64.powf(0.25);
    let c = EIGHT_DIRECTIONS;
    let pts: Vec<[f64; 2]> = (0..n)
        .map(|_| {
            let (cx, cy) = c[rng.random_range(0..8)];
            [5.0 * cx + std * normal(&mut rng), 5.0 * cy + std * normal(&mut rng)]
        })
        .collect();
    to_matrix(&pts)
}

/// torchcfm's `sample_moons`: torchdyn's `generate_moons(n, noise = 0.2)`, times 3, minus 1,
/// shuffled.
pub fn torchcfm_moons(n: usize, seed: u64) -> Matrix {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut pts: Vec<[f64; 2]> =
        (0..n).map(|i| make_moons_point(i, n, 0.2, &mut rng)).map(|p| [3.0 * p[0] - 1.0, 3.0 * p[1] - 1.0]).collect();
    pts.shuffle(&mut rng);
    to_matrix(&pts)
}

fn normal(rng: &mut rand::rngs::StdRng) -> f64 {
    rng.sample(StandardNormal)
}

impl fmt::Display for Toy2d {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Toy2d {
    type Err = DataError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|t| t.name().eq_ignore_ascii_case(s.trim())).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|t| t.name()).collect();
            DataError::Config(format!("unknown toy data set '{s}': expected one of {}", names.join(", ")))
        })
    }
}

/// A 2-D smiley: two eyes N((∓0.5, 0.5), 0.1²I) with weight ¼ each and a mouth (weight ½),
/// the arc of radius 0.8 around (0, 0.2) from 200° to 340° with N(0, 0.05²) radial noise — the
/// density the manifold-lift lectures embed in a plane in ℝ³.
pub fn smiley(n: usize, seed: u64) -> Matrix {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let pts: Vec<[f64; 2]> = (0..n)
        .map(|_| {
            let (a, b): (f64, f64) = (rng.sample(StandardNormal), rng.sample(StandardNormal));
            match rng.random_range(0..4) {
                0 => [-0.5 + 0.1 * a, 0.5 + 0.1 * b],
                1 => [0.5 + 0.1 * a, 0.5 + 0.1 * b],
                _ => {
                    let angle = rng.random_range(200f64..340.0).to_radians();
                    let r = 0.8 + 0.05 * a;
                    [r * angle.cos(), 0.2 + r * angle.sin()]
                }
            }
        })
        .collect();
    to_matrix(&pts)
}
