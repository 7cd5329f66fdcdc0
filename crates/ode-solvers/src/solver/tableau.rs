//! Butcher tableaux of the explicit Runge–Kutta methods. Each method is data; one stepper
//! (`explicit_rk`) runs them all.

/// How a method interpolates inside a step (dense output).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum DenseOutput {
    /// No continuous extension: outputs must lie on step boundaries.
    None,
    /// Cubic Hermite from (y₀, f₀, y₁, f₁), f₁ the FSAL stage (third order; Bosh3).
    Hermite,
    /// Quartic through y₀, y₁, y_mid = y₀ + hΣ c_mid,i k_i, f₀, f₁ (Shampine 1986; Dopri5).
    QuarticMidpoint(&'static [f64]),
    /// Tsitouras' fifth-order continuous extension b_i(θ) (Tsit5).
    Tsit5,
}

/// An explicit Runge–Kutta method: c, A (strictly lower triangular), b, and for embedded pairs
/// the error weights e = b − b̂.
#[derive(Debug, PartialEq)]
pub struct Tableau {
    /// Name as printed in tables.
    pub name: &'static str,
    /// Nodes c_i (c₀ = 0).
    pub c: &'static [f64],
    /// Rows of A; row i has i entries.
    pub a: &'static [&'static [f64]],
    /// Weights of the propagated solution.
    pub b: &'static [f64],
    /// b − b̂ for the embedded error estimate, if the method has one.
    pub b_err: Option<&'static [f64]>,
    /// Order of the propagated solution.
    pub order: u32,
    /// Order q of the embedded solution (step control uses 1/(q+1) exponents).
    pub error_order: u32,
    /// First same as last: the last stage is f(t₁, y₁), reusable as the next step's first.
    pub fsal: bool,
    /// Continuous extension.
    pub dense: DenseOutput,
}

impl Tableau {
    /// Number of stages.
    pub fn stages(&self) -> usize {
        self.c.len()
    }
}

/// Forward Euler: y₁ = y₀ + h f(t₀, y₀). Order 1.
pub static EULER: Tableau = Tableau {
    name: "euler",
    c: &[0.0],
    a: &[&[]],
    b: &[1.0],
    b_err: None,
    order: 1,
    error_order: 0,
    fsal: false,
    dense: DenseOutput::None,
};

/// Explicit midpoint. Order 2.
pub static MIDPOINT: Tableau = Tableau {
    name: "midpoint",
    c: &[0.0, 0.5],
    a: &[&[], &[0.5]],
    b: &[0.0, 1.0],
    b_err: None,
    order: 2,
    error_order: 0,
    fsal: false,
    dense: DenseOutput::None,
};

/// Heun's method (explicit trapezoid). Order 2.
pub static HEUN: Tableau = Tableau {
    name: "heun",
    c: &[0.0, 1.0],
    a: &[&[], &[1.0]],
    b: &[0.5, 0.5],
    b_err: None,
    order: 2,
    error_order: 0,
    fsal: false,
    dense: DenseOutput::None,
};

/// Ralston's second-order method (minimal error bound, Ralston 1962).
pub static RALSTON: Tableau = Tableau {
    name: "ralston",
    c: &[0.0, 2.0 / 3.0],
    a: &[&[], &[2.0 / 3.0]],
    b: &[0.25, 0.75],
    b_err: None,
    order: 2,
    error_order: 0,
    fsal: false,
    dense: DenseOutput::None,
};

/// The classic fourth-order Runge–Kutta method (Kutta 1901), what the lecture notes call RK4.
pub static RK4: Tableau = Tableau {
    name: "rk4",
    c: &[0.0, 0.5, 0.5, 1.0],
    a: &[&[], &[0.5], &[0.0, 0.5], &[0.0, 0.0, 1.0]],
    b: &[1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0],
    b_err: None,
    order: 4,
    error_order: 0,
    fsal: false,
    dense: DenseOutput::None,
};

/// Kutta's 3/8 rule, fourth order — the method torchdiffeq calls `rk4`.
pub static RK4_38: Tableau = Tableau {
    name: "rk4-3/8",
    c: &[0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0],
    a: &[&[], &[1.0 / 3.0], &[-1.0 / 3.0, 1.0], &[1.0, -1.0, 1.0]],
    b: &[0.125, 0.375, 0.375, 0.125],
    b_err: None,
    order: 4,
    error_order: 0,
    fsal: false,
    dense: DenseOutput::None,
};

/// Bogacki–Shampine 3(2), FSAL (Bogacki & Shampine 1989).
pub static BOSH3: Tableau = Tableau {
    name: "bosh3",
    c: &[0.0, 0.5, 0.75, 1.0],
    a: &[&[], &[0.5], &[0.0, 0.75], &[2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0]],
    b: &[2.0 / 9.0, 1.0 / 3.0, 4.0 / 9.0, 0.0],
    b_err: Some(&[2.0 / 9.0 - 7.0 / 24.0, 1.0 / 3.0 - 0.25, 4.0 / 9.0 - 1.0 / 3.0, -0.125]),
    order: 3,
    error_order: 2,
    fsal: true,
    dense: DenseOutput::Hermite,
};

/// Dormand–Prince 5(4), FSAL, with Shampine's dense output (Dormand & Prince 1980; Shampine 1986).
pub static DOPRI5: Tableau = Tableau {
    name: "dopri5",
    c: &[0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0],
    a: &[
        &[],
        &[1.0 / 5.0],
        &[3.0 / 40.0, 9.0 / 40.0],
        &[44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0],
        &[19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0],
        &[9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0],
        &[35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0],
    ],
    b: &[35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0, 0.0],
    b_err: Some(&[
        35.0 / 384.0 - 1951.0 / 21600.0,
        0.0,
        500.0 / 1113.0 - 22642.0 / 50085.0,
        125.0 / 192.0 - 451.0 / 720.0,
        -2187.0 / 6784.0 + 12231.0 / 42400.0,
        11.0 / 84.0 - 649.0 / 6300.0,
        -1.0 / 60.0,
    ]),
    order: 5,
    error_order: 4,
    fsal: true,
    dense: DenseOutput::QuarticMidpoint(&[
        6025192743.0 / 30085553152.0 / 2.0,
        0.0,
        51252292925.0 / 65400821598.0 / 2.0,
        -2691868925.0 / 45128329728.0 / 2.0,
        187940372067.0 / 1594534317056.0 / 2.0,
        -1776094331.0 / 19743644256.0 / 2.0,
        11237099.0 / 235043384.0 / 2.0,
    ]),
};

const TSIT5_B: [f64; 7] = [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081, 2.324710524099774, 0.0];

/// Tsitouras 5(4), FSAL, with its own fifth-order interpolant (Tsitouras 2011).
pub static TSIT5: Tableau = Tableau {
    name: "tsit5",
    c: &[0.0, 0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0],
    a: &[
        &[],
        &[0.161],
        &[-0.008480655492356989, 0.335480655492357],
        &[2.897153057105493, -6.359448489975075, 4.3622954328695815],
        &[5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
        &[5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401, -0.028269050394068383],
        &[TSIT5_B[0], TSIT5_B[1], TSIT5_B[2], TSIT5_B[3], TSIT5_B[4], TSIT5_B[5]],
    ],
    b: &TSIT5_B,
    b_err: Some(&[
        0.09646076681806523 - 0.09468075576583945,
        0.01 - 0.009183565540343254,
        0.4798896504144996 - 0.4877705284247616,
        1.379008574103742 - 1.234297566930479,
        -3.290069515436081 + 2.7077123499835256,
        2.324710524099774 - 1.866628418170587,
        -1.0 / 66.0,
    ]),
    order: 5,
    error_order: 4,
    fsal: true,
    dense: DenseOutput::Tsit5,
};

/// Tsit5's continuous weights b_i(θ), θ ∈ [0, 1] (b_i(1) = b_i). Constants as published.
#[allow(clippy::excessive_precision)]
pub(crate) fn tsit5_weights(t: f64) -> [f64; 7] {
    let t2 = t * t;
    [
        -1.0530884977290216 * t * (t - 1.3299890189751412) * (t2 - 1.4364028541716351 * t + 0.7139816917074209),
        0.1017 * t2 * (t2 - 2.1966568338249754 * t + 1.2949852507374631),
        2.490627285651252793 * t2 * (t2 - 2.38535645472061657 * t + 1.57803468208092486),
        -16.54810288924490272 * (t - 1.21712927295533244) * (t - 0.61620406037800089) * t2,
        47.37952196281928122 * (t - 1.203071208372362603) * (t - 0.658047292653547382) * t2,
        -34.87065786149660974 * (t - 1.2) * (t - 0.666666666666666667) * t2,
        2.5 * (t - 1.0) * (t - 0.6) * t2,
    ]
}

/// The explicit Runge–Kutta methods by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    Euler,
    Midpoint,
    Heun,
    Ralston,
    /// Classic RK4.
    Rk4,
    /// Kutta's 3/8 rule (torchdiffeq's `rk4`).
    Rk4ThreeEighths,
    Bosh3,
    Dopri5,
    Tsit5,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 9] =
        [Self::Euler, Self::Midpoint, Self::Heun, Self::Ralston, Self::Rk4, Self::Rk4ThreeEighths, Self::Bosh3, Self::Dopri5, Self::Tsit5];

    /// The method's tableau.
    pub fn tableau(self) -> &'static Tableau {
        match self {
            Self::Euler => &EULER,
            Self::Midpoint => &MIDPOINT,
            Self::Heun => &HEUN,
            Self::Ralston => &RALSTON,
            Self::Rk4 => &RK4,
            Self::Rk4ThreeEighths => &RK4_38,
            Self::Bosh3 => &BOSH3,
            Self::Dopri5 => &DOPRI5,
            Self::Tsit5 => &TSIT5,
        }
    }

    /// Name as printed in tables.
    pub fn name(self) -> &'static str {
        self.tableau().name
    }
}

impl std::str::FromStr for Method {
    type Err = crate::error::SolverError;
    fn from_str(s: &str) -> crate::error::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|m| m.name().eq_ignore_ascii_case(s) || (s.eq_ignore_ascii_case("rk38") && *m == Self::Rk4ThreeEighths))
            .ok_or_else(|| {
                crate::error::SolverError::Config(format!(
                    "unknown method '{s}': expected one of {}",
                    Self::ALL.map(|m| m.name()).join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Row sums of A equal c, weights sum to 1, error weights sum to 0, FSAL last row = b.
    #[test]
    fn tableaux_are_consistent() {
        for m in Method::ALL {
            let t = m.tableau();
            assert_eq!(t.a.len(), t.stages(), "{}", t.name);
            for (i, row) in t.a.iter().enumerate() {
                assert_eq!(row.len(), i, "{} row {i}", t.name);
                assert!((row.iter().sum::<f64>() - t.c[i]).abs() < 1e-12, "{} row {i} sums to c", t.name);
            }
            assert!((t.b.iter().sum::<f64>() - 1.0).abs() < 1e-12, "{}", t.name);
            if let Some(e) = t.b_err {
                assert!(e.iter().sum::<f64>().abs() < 1e-12, "{} error weights", t.name);
            }
            if t.fsal {
                let last = t.a[t.stages() - 1];
                assert!(last.iter().zip(t.b).all(|(a, b)| (a - b).abs() < 1e-15), "{} FSAL", t.name);
            }
        }
        let w = tsit5_weights(1.0);
        assert!(w.iter().zip(TSIT5.b).all(|(a, b)| (a - b).abs() < 1e-9), "{w:?}");
        assert!(tsit5_weights(0.0).iter().all(|&v| v == 0.0));
    }
}
