//! Ruthotto's "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs" mixed-precision forward pass (Algorithm "forward", rampde's `FixedGridODESolverBase`):
//!
//! y_H ← Q_H(y₀); for each step i: Φ_i ← Φ(f, Q_L(y_H), t_i, h_i) evaluated entirely in the low
//! precision L (any explicit RK increment, Φ = Σ b_j k_j); y_H ← y_H ⊕_H h_i·Q_H(Φ_i); store
//! only Q_L(y_H). The stored 16-bit trajectory is all the backward pass needs.

use crate::error::{MpError, Result};
use ode_solvers::low_level::rk_increment;
use ode_solvers::state::{all_finite, detach, State};
use ode_solvers::{Method, OdeTerm, SaveAt, Stats};
use tensor_core::PrecisionPolicy;

/// A mixed-precision solve: policy, method, fixed grid and output times (on the grid).
#[derive(Clone, Debug, PartialEq)]
pub struct MpConfig {
    /// Low (evaluation) and high (accumulation) precision.
    pub policy: PrecisionPolicy,
    /// An explicit Runge–Kutta method (Euler and RK4 in the seed).
    pub method: Method,
    /// Fixed time grid.
    pub grid: Vec<f64>,
    /// Outputs: `Final`, `Steps`, or `Times` lying on the grid.
    pub save_at: SaveAt,
}

/// The forward result: outputs in the high precision (fresh autograd leaves, rounded through the
/// stored low precision as the seed's algorithm returns them) and the stored trajectory.
pub struct MpSolution<S: State> {
    /// Output times.
    pub ts: Vec<f64>,
    /// Q_H(Q_L(y_H)) at the output times: compute the loss from these, then call `backward`.
    pub ys: Vec<S>,
    /// Evaluations and steps.
    pub stats: Stats,
    pub(crate) trajectory: Vec<S>,
    pub(crate) out_index: Vec<usize>,
    pub(crate) y0: S,
    pub(crate) config: MpConfig,
}

impl<S: State> MpSolution<S> {
    /// The last output.
    pub fn last(&self) -> &S {
        self.ys.last().expect("a solution has an output")
    }

    /// The configuration it was solved with.
    pub fn config(&self) -> &MpConfig {
        &self.config
    }

    /// The stored low-precision trajectory Q_L(y_H(t_i)), i = 0…N.
    pub fn trajectory(&self) -> &[S] {
        &self.trajectory
    }
}

pub(crate) fn quantize<S: State>(s: &S, p: tensor_core::Precision) -> Result<S> {
    Ok(s.with_leaves(s.leaves().iter().map(|l| Ok(p.quantize(l)?)).collect::<Result<_>>()?)?)
}

fn output_indices(save_at: &SaveAt, grid: &[f64]) -> Result<Vec<usize>> {
    let n = grid.len() - 1;
    let scale = (grid[n] - grid[0]).abs();
    Ok(match save_at {
        SaveAt::Final => vec![n],
        SaveAt::Steps => (0..=n).collect(),
        SaveAt::Times(ts) => ts
            .iter()
            .map(|t| {
                grid.iter()
                    .position(|g| (g - t).abs() <= 1e-10 * scale)
                    .ok_or_else(|| MpError::Config(format!("output time {t} is not on the grid")))
            })
            .collect::<Result<_>>()?,
    })
}

/// Integrates `term` (which receives and returns states in the low precision) from `y0`.
pub fn solve_mixed<S: State>(term: &dyn OdeTerm<S>, y0: &S, config: &MpConfig) -> Result<MpSolution<S>> {
    let grid = &config.grid;
    ode_solvers::low_level::check_grid(grid)?;
    let out_index = output_indices(&config.save_at, grid)?;
    if !all_finite(y0)? {
        return Err(ode_solvers::SolverError::NonFiniteInitial.into());
    }
    let (policy, tab) = (config.policy, config.method.tableau());
    let mut y_high = quantize(&detach(y0)?, policy.high)?;
    let mut trajectory = vec![quantize(&y_high, policy.low)?];
    let mut stats = Stats::default();
    for i in 0..grid.len() - 1 {
        let h = grid[i + 1] - grid[i];
        let (phi, nfe) = rk_increment(tab, term, grid[i], h, &trajectory[i])?;
        stats.nfe += nfe;
        stats.accepted += 1;
        let leaves =
            y_high.leaves().iter().zip(phi.leaves()).map(|(y, p)| Ok(policy.accumulate(y, h, &p)?.detach())).collect::<Result<Vec<_>>>()?;
        y_high = y_high.with_leaves(leaves)?;
        if !all_finite(&y_high)? {
            return Err(MpError::NonFinite {
                what: "state",
                step: i,
                precision: policy.low.to_string(),
                hint: "the low-precision vector field overflowed; try bf16 (wider range) or rescale the problem",
            });
        }
        trajectory.push(quantize(&y_high, policy.low)?);
    }
    let ys = out_index
        .iter()
        .map(|&i| {
            let y = quantize(&trajectory[i], policy.high)?;
            Ok(y.with_leaves(y.leaves().iter().map(|l| Ok(candle_core::Var::from_tensor(l)?.as_tensor().clone())).collect::<Result<_>>()?)?)
        })
        .collect::<Result<_>>()?;
    Ok(MpSolution {
        ts: out_index.iter().map(|&i| grid[i]).collect(),
        ys,
        stats,
        trajectory,
        out_index,
        y0: y0.clone(),
        config: config.clone(),
    })
}
