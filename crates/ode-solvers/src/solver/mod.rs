//! Solvers, one concept per file: the Butcher tableaux and the one explicit RK stepper that runs
//! them; the SDE schemes.

pub(crate) mod euler_maruyama;
pub(crate) mod explicit_rk;
pub(crate) mod milstein;
pub(crate) mod stepper;
pub(crate) mod stochastic_heun;
pub mod tableau;

pub use tableau::{Method, Tableau};

/// The SDE schemes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SdeMethod {
    /// Euler–Maruyama: strong order ½ (1 for additive noise); converges to the Itô solution.
    EulerMaruyama,
    /// Milstein for diagonal noise: strong order 1; Itô.
    Milstein,
    /// Stochastic Heun (trapezoidal predictor–corrector): converges to the Stratonovich solution,
    /// strong order 1 for commutative noise.
    StochasticHeun,
}

impl SdeMethod {
    /// Name as printed in tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::EulerMaruyama => "euler-maruyama",
            Self::Milstein => "milstein",
            Self::StochasticHeun => "stochastic-heun",
        }
    }

    /// The calculus the scheme converges to.
    pub fn calculus(self) -> crate::term::Calculus {
        match self {
            Self::EulerMaruyama | Self::Milstein => crate::term::Calculus::Ito,
            Self::StochasticHeun => crate::term::Calculus::Stratonovich,
        }
    }
}
