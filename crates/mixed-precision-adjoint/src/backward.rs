//! Ruthotto's "Continuous-Time Deep Learning for Generative AI and High-Dim PDEs" mixed-precision backward pass with dynamic adjoint scaling (rampde's
//! `FixedGridODESolverDynamic`):
//!
//! a_H ← Q_H(∂L/∂y_N); for each step i, in reverse: rebuild Φ at the stored Q_L(y_i) in the low
//! precision; VJP with the scaled cotangent Q_L(S·a_H); if it is not finite, halve S and retry
//! (bounded, then a typed error); a_H ← a_H + (h/S)·Q_H(aᵀ∂Φ/∂y), g ← g + (h/S)·Q_H(aᵀ∂Φ/∂θ),
//! both in high precision; add the cotangent of an output at t_i; double S when the scaled
//! adjoint has headroom. Returns ∂L/∂y₀ and adds ∂L/∂θ into the user's `GradStore`.

use crate::error::{MpError, Result};
use crate::forward::{quantize, MpSolution};
use crate::scaler::DynamicScaler;
use candle_core::backprop::GradStore;
use candle_core::{DType, Tensor};
use ode_solvers::low_level::rk_increment;
use ode_solvers::low_level::{deliver_gradients, output_cotangent, vjp};
use ode_solvers::state::{all_finite, lincomb, scale, zeros_like, State};
use ode_solvers::OdeTerm;

/// What the backward pass did, to inspect or print.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BackwardReport {
    /// Scale at the start and the end of this backward pass.
    pub initial_scale: f64,
    pub final_scale: f64,
    /// Halvings (overflow retries) and doublings in this pass.
    pub halvings: usize,
    pub doublings: usize,
    /// Steps where the entries of the scaled cotangent S·a that fall below the low precision's
    /// smallest normal number (subnormal or zero in L) carry more than u_L of ‖a‖: more is lost
    /// to underflow than to rounding. Without scaling this is how 16-bit gradients go silently
    /// wrong; a non-zero count flags it.
    pub underflow_steps: usize,
}

impl BackwardReport {
    /// True when underflow may have degraded the gradients.
    pub fn degraded(&self) -> bool {
        self.underflow_steps > 0
    }
}

/// True when the part of S·a that underflows in L (below its smallest normal) has a norm above
/// u_L·‖S·a‖, i.e. underflow costs more than rounding would.
fn underflows(a: &[Tensor], s: f64, low: tensor_core::Precision) -> Result<bool> {
    let (mut lost, mut total) = (0f64, 0f64);
    for l in a {
        let scaled = (l.to_dtype(DType::F64)? * s)?;
        let tiny = scaled.abs()?.lt(low.min_positive_normal())?.to_dtype(DType::F64)?;
        lost += (&scaled * tiny)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
        total += scaled.sqr()?.sum_all()?.to_scalar::<f64>()?;
    }
    Ok(total > 0.0 && lost.sqrt() > low.unit_roundoff() * total.sqrt())
}

fn finite_all(ts: &[Tensor]) -> Result<bool> {
    for t in ts {
        if !all_finite(t)? {
            return Ok(false);
        }
    }
    Ok(true)
}

impl<S: State> MpSolution<S> {
    /// Carries the output cotangents found in `grads` back through the solve in mixed precision,
    /// adds ∂L/∂θ for `params` into `grads` (one store, ready for a candle-nn optimizer) and
    /// returns ∂L/∂y₀ in the high precision. `term` must be the forward's; `scaler` persists
    /// across iterations (one per ODE block).
    pub fn backward(
        &self,
        term: &dyn OdeTerm<S>,
        params: &[Tensor],
        scaler: &mut DynamicScaler,
        grads: &mut GradStore,
    ) -> Result<(S, BackwardReport)> {
        let (policy, tab, grid) = (self.config.policy, self.config.method.tableau(), &self.config.grid);
        let cotangent = |i: usize| -> Result<Option<S>> {
            let mut acc: Option<S> = None;
            for (k, _) in self.out_index.iter().enumerate().filter(|(_, &j)| j == i) {
                let c = quantize(&output_cotangent(&self.ys[k], grads)?, policy.high)?;
                acc = Some(match acc {
                    None => c,
                    Some(a) => ode_solvers::state::add(&a, &c)?,
                });
            }
            Ok(acc)
        };
        let n = grid.len() - 1;
        let mut a = match cotangent(n)? {
            Some(c) => c,
            None => quantize(&zeros_like(&self.trajectory[n])?, policy.high)?,
        };
        if !all_finite(&a)? {
            return Err(MpError::NonFiniteCotangent);
        }
        let (h0, d0) = (scaler.halvings, scaler.doublings);
        let mut report = BackwardReport { initial_scale: scaler.current(&a.leaves())?, ..Default::default() };
        let mut g: Vec<Option<Tensor>> = vec![None; params.len()];
        for i in (0..n).rev() {
            let (t, h) = (grid[i], grid[i + 1] - grid[i]);
            let mut attempts = 0;
            let (s, da, dp) = loop {
                let s = scaler.current(&a.leaves())?;
                let scaled = quantize(&scale(&a, s)?, policy.low)?;
                let result = if all_finite(&scaled)? {
                    let (_, da, dp) = vjp(&self.trajectory[i], &scaled, params, |y| Ok(rk_increment(tab, term, t, h, y)?.0))?;
                    let finite = all_finite(&da)? && finite_all(&dp.iter().flatten().cloned().collect::<Vec<_>>())?;
                    finite.then_some((da, dp))
                } else {
                    None
                };
                match result {
                    Some((da, dp)) => {
                        if underflows(&a.leaves(), s, scaler.low())? {
                            report.underflow_steps += 1;
                        }
                        break (s, da, dp);
                    }
                    None if !scaler.is_enabled() => {
                        return Err(MpError::NonFinite {
                            what: "adjoint VJP",
                            step: i,
                            precision: policy.low.to_string(),
                            hint: "the unscaled low-precision cotangent overflowed; enable DynamicScaler",
                        });
                    }
                    None => {
                        scaler.on_overflow();
                        attempts += 1;
                        if attempts >= scaler.max_attempts {
                            return Err(MpError::ScalingFailed { step: i, attempts, scale: scaler.current(&a.leaves())? });
                        }
                    }
                }
            };
            // a_H ← a_H + (h/S)·Q_H(da),  g ← g + (h/S)·Q_H(dp), in high precision
            a = lincomb(&a, &[(h / s, &quantize(&da, policy.high)?)])?;
            for (acc, d) in g.iter_mut().zip(dp) {
                if let Some(d) = d {
                    let d = (policy.high.quantize(&d)? * (h / s))?;
                    *acc = Some(match acc.take() {
                        Some(x) => (x + d)?,
                        None => d,
                    });
                }
            }
            if let Some(c) = cotangent(i)? {
                a = ode_solvers::state::add(&a, &c)?;
            }
            if !all_finite(&a)? || !finite_all(&g.iter().flatten().cloned().collect::<Vec<_>>())? {
                return Err(MpError::NonFinite {
                    what: "high-precision adjoint",
                    step: i,
                    precision: policy.high.to_string(),
                    hint: "the gradient is not representable in the accumulation precision",
                });
            }
            if attempts == 0 {
                scaler.maybe_increase(&a.leaves())?;
            }
        }
        report.final_scale = scaler.current(&a.leaves())?;
        report.halvings = scaler.halvings - h0;
        report.doublings = scaler.doublings - d0;
        deliver_gradients(&self.y0, &a, params, g, grads)?;
        Ok((a, report))
    }
}
