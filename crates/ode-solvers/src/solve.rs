//! `solve` and `solve_sde`: compose a term, a solver, a step-size rule, output times and an
//! adjoint into one call (after diffrax's `diffeqsolve`).

use crate::adjoint::{Adjoint, Tape, TapeKind, TapedMethod};
use crate::brownian::VirtualBrownianTree;
use crate::controller::{initial_step, PiController};
use crate::error::{Result, SolverError};
use crate::save_at::SaveAt;
use crate::solution::{Solution, Stats};
use crate::solver::explicit_rk::{dense_eval, rk_step};
use crate::solver::stepper::{RkStepper, SdeStepper, Stepper};
use crate::solver::{Method, SdeMethod, Tableau};
use crate::state::{all_finite, detach, scaled_rms, State};
use crate::term::{OdeTerm, SdeTerm};
use candle_core::Var;

/// How the steps are chosen.
#[derive(Clone, Debug, PartialEq)]
pub enum Steps {
    /// A fixed grid t₀, t₁, …, t_N, strictly monotone (forward or backward in time).
    Grid(Vec<f64>),
    /// Error-controlled steps from t₀ to t₁ (either direction); needs an embedded pair.
    Adaptive { t0: f64, t1: f64, controller: PiController },
}

impl Steps {
    /// N equal steps from t₀ to t₁.
    pub fn uniform(t0: f64, t1: f64, n: usize) -> Result<Self> {
        Ok(Self::Grid(uniform_grid(t0, t1, n)?))
    }
}

/// t₀, t₀ + h, …, t₁: the N + 1 nodes of N equal steps (t₁ hit exactly), either direction.
pub fn uniform_grid(t0: f64, t1: f64, n: usize) -> Result<Vec<f64>> {
    if n == 0 {
        return Err(SolverError::BadGrid("zero steps".into()));
    }
    Ok((0..=n).map(|i| if i == n { t1 } else { t0 + (t1 - t0) * i as f64 / n as f64 }).collect())
}

/// Everything about a solve but the term, the method and y₀.
#[derive(Clone, Debug, PartialEq)]
pub struct SolveConfig {
    pub steps: Steps,
    pub save_at: SaveAt,
    pub adjoint: Adjoint,
    /// Step budget of adaptive solves.
    pub max_steps: usize,
}

impl SolveConfig {
    /// Final state only, full-graph gradients, at most 100 000 steps.
    pub fn new(steps: Steps) -> Self {
        Self { steps, save_at: SaveAt::Final, adjoint: Adjoint::FullGraph, max_steps: 100_000 }
    }
    /// Sets the output times.
    pub fn save_at(mut self, save_at: SaveAt) -> Self {
        self.save_at = save_at;
        self
    }
    /// Sets the gradient mode.
    pub fn adjoint(mut self, adjoint: Adjoint) -> Self {
        self.adjoint = adjoint;
        self
    }
    /// Sets the adaptive step budget.
    pub fn max_steps(mut self, max_steps: usize) -> Self {
        self.max_steps = max_steps;
        self
    }
}

/// How [`solve_sde`] runs: the fixed time grid, the Brownian path it is driven by, the output
/// times and the gradient mode. [`SdeConfig::new`] saves the final state with full-graph
/// gradients; the setters change the rest.
#[derive(Clone)]
pub struct SdeConfig<'a> {
    pub grid: Vec<f64>,
    pub brownian: &'a VirtualBrownianTree,
    pub save_at: SaveAt,
    pub adjoint: Adjoint,
}

impl<'a> SdeConfig<'a> {
    /// Steps on `grid` driven by `brownian`; final state only, full-graph gradients.
    pub fn new(grid: &[f64], brownian: &'a VirtualBrownianTree) -> Self {
        Self { grid: grid.to_vec(), brownian, save_at: SaveAt::Final, adjoint: Adjoint::FullGraph }
    }
    /// Sets the output times.
    pub fn save_at(mut self, save_at: SaveAt) -> Self {
        self.save_at = save_at;
        self
    }
    /// Sets the gradient mode.
    pub fn adjoint(mut self, adjoint: Adjoint) -> Self {
        self.adjoint = adjoint;
        self
    }
}

/// Checks a fixed time grid: at least two finite, strictly monotone times; returns the direction ±1.
pub fn check_grid(grid: &[f64]) -> Result<f64> {
    if grid.len() < 2 {
        return Err(SolverError::BadGrid(format!("need at least two times, got {}", grid.len())));
    }
    if let Some(t) = grid.iter().find(|t| !t.is_finite()) {
        return Err(SolverError::BadGrid(format!("non-finite time {t}")));
    }
    let dir = (grid[1] - grid[0]).signum();
    if dir == 0.0 {
        return Err(SolverError::BadGrid(format!("repeated time {} (zero step)", grid[0])));
    }
    if let Some(w) = grid.windows(2).find(|w| (w[1] - w[0]) * dir <= 0.0) {
        return Err(SolverError::BadGrid(format!("not strictly monotone at {} → {}", w[0], w[1])));
    }
    Ok(dir)
}

/// The step boundary at time `t`, if there is one.
fn node_index(t: f64, nodes: &[f64]) -> Option<usize> {
    let scale = (nodes[nodes.len() - 1] - nodes[0]).abs().max(1e-300);
    nodes.iter().position(|n| (n - t).abs() <= 1e-10 * scale)
}

fn validate_times(times: &[f64], t0: f64, t1: f64) -> Result<()> {
    let dir = (t1 - t0).signum();
    let eps = 1e-10 * (t1 - t0).abs();
    for &t in times {
        if !t.is_finite() || (t - t0) * dir < -eps || (t - t1) * dir > eps {
            return Err(SolverError::BadSaveAt(format!("time {t} is outside [{t0}, {t1}]")));
        }
    }
    if times.windows(2).any(|w| (w[1] - w[0]) * dir <= 0.0) {
        return Err(SolverError::BadSaveAt("output times must be strictly monotone in the direction of integration".into()));
    }
    Ok(())
}

/// Makes every leaf a fresh autograd leaf (a `Var`), cutting the graph: the outputs of the
/// memory-saving adjoints.
fn fresh_leaves<S: State>(y: &S) -> Result<S> {
    y.with_leaves(y.leaves().iter().map(|l| Ok(Var::from_tensor(&l.detach())?.as_tensor().clone())).collect::<Result<_>>()?)
}

/// The step loop shared by ODE and SDE solves: runs `stepper` over `grid`, or adaptively
/// with `adaptive`, keeping what the adjoint needs.
struct Run<S: State> {
    nodes: Vec<f64>,
    /// States at nodes: all of them for checkpointing and for SaveAt::Steps, else the ones saved.
    states: Vec<Option<S>>,
    /// (step n, θ, interpolated state) for dense outputs.
    dense: Vec<(f64, S)>,
    stats: Stats,
}

struct Plan<'a> {
    save_at: &'a SaveAt,
    adjoint: Adjoint,
    dense_tab: Option<&'static Tableau>,
}

impl Plan<'_> {
    fn keep_all(&self) -> bool {
        matches!(self.save_at, SaveAt::Steps) || self.adjoint == Adjoint::Checkpointed
    }
    fn wanted_inside(&self, t0: f64, t1: f64) -> Vec<f64> {
        match self.save_at {
            SaveAt::Times(ts) => ts.iter().copied().filter(|&t| (t - t0) * (t - t1) < 0.0).collect(),
            _ => Vec::new(),
        }
    }
}

fn post_step<S: State>(run: &mut Run<S>, plan: &Plan, y1: &S, n: usize) -> Result<S> {
    if !all_finite(y1)? {
        return Err(SolverError::NonFinite { t: run.nodes[n + 1], step: n });
    }
    let y1 = if plan.adjoint == Adjoint::FullGraph { y1.clone() } else { detach(y1)? };
    let keep = plan.keep_all()
        || match plan.save_at {
            SaveAt::Times(ts) => ts.iter().any(|&t| (t - run.nodes[n + 1]).abs() <= 1e-10 * (run.nodes[n + 1] - run.nodes[0]).abs()),
            _ => false,
        };
    run.states.push(if keep { Some(y1.clone()) } else { None });
    Ok(y1)
}

fn run_fixed<S: State>(stepper: &dyn Stepper<S>, grid: &[f64], y0: &S, plan: &Plan, dense: Option<&dyn OdeTerm<S>>) -> Result<Run<S>> {
    let mut run = Run { nodes: grid.to_vec(), states: vec![Some(y0.clone())], dense: Vec::new(), stats: Stats::default() };
    let mut y = y0.clone();
    let mut carry = None;
    for n in 0..grid.len() - 1 {
        let inside = plan.wanted_inside(grid[n], grid[n + 1]);
        let (y1, next_carry) = if inside.is_empty() {
            let (y1, c, nfe) = stepper.step(grid[n], grid[n + 1], &y, carry.take())?;
            run.stats.nfe += nfe;
            (y1, c)
        } else {
            // a dense output inside this step: rerun it as an RK step to keep its stages
            let (tab, term) = match (plan.dense_tab, dense) {
                (Some(tab), Some(term)) => (tab, term),
                _ => {
                    return Err(SolverError::BadSaveAt(format!(
                        "output time {} is not on the step grid (SDE solves and checkpointed/continuous adjoints need grid times)",
                        inside[0]
                    )))
                }
            };
            let h = grid[n + 1] - grid[n];
            let s = rk_step(tab, term, grid[n], h, &y, carry.take())?;
            run.stats.nfe += s.nfe;
            for t in inside {
                let theta = (t - grid[n]) / h;
                run.dense.push((t, dense_eval(tab, theta, h, &y, &s.y1, &s.stages)?));
            }
            let c = if tab.fsal { s.stages.last().cloned() } else { None };
            (s.y1, c)
        };
        run.stats.accepted += 1;
        y = post_step(&mut run, plan, &y1, n)?;
        carry = match (plan.adjoint, next_carry) {
            (Adjoint::FullGraph, c) => c,
            (_, c) => c.map(|c| detach(&c)).transpose()?,
        };
    }
    *run.states.last_mut().expect("at least the initial state") = Some(y);
    Ok(run)
}

#[allow(clippy::too_many_arguments)]
fn run_adaptive<S: State>(
    term: &dyn OdeTerm<S>,
    tab: &'static Tableau,
    t0: f64,
    t1: f64,
    ctrl: &PiController,
    max_steps: usize,
    y0: &S,
    plan: &Plan,
) -> Result<Run<S>> {
    ctrl.validate()?;
    if tab.b_err.is_none() {
        return Err(SolverError::Mismatch(format!("{} has no embedded error estimate: use a fixed grid or bosh3/dopri5/tsit5", tab.name)));
    }
    if !(t0.is_finite() && t1.is_finite()) || t0 == t1 {
        return Err(SolverError::BadGrid(format!("adaptive interval [{t0}, {t1}] must be finite and non-empty")));
    }
    let dir = (t1 - t0).signum();
    let mut run = Run { nodes: vec![t0], states: vec![Some(y0.clone())], dense: Vec::new(), stats: Stats::default() };
    let mut y = y0.clone();
    let mut k0 = term.vector_field(t0, y0)?;
    crate::state::check_like(&k0, y0, "the vector field")?;
    run.stats.nfe += 1;
    let mut h = match ctrl.first_step {
        Some(h) => h,
        None => {
            let norm = |s: &S| -> Result<f64> { scaled_rms(s, y0, y0, ctrl.rtol, ctrl.atol) };
            let (d0s, d1) = (scaled_rms(y0, y0, y0, ctrl.rtol, ctrl.atol)?, norm(&k0)?);
            let mut nfe = 0;
            let h = initial_step(
                d0s,
                d1,
                &mut |h0| {
                    let y_trial = crate::state::lincomb(y0, &[(dir * h0, &k0)])?;
                    let f1 = term.vector_field(t0 + dir * h0, &y_trial)?;
                    nfe += 1;
                    norm(&crate::state::lincomb(&f1, &[(-1.0, &k0)])?)
                },
                tab.order,
            )?;
            run.stats.nfe += nfe;
            h
        }
    } * dir;
    let mut e_prev = 1.0;
    let mut t = t0;
    while (t1 - t) * dir > 0.0 {
        if run.stats.accepted + run.stats.rejected >= max_steps {
            return Err(SolverError::MaxSteps { max_steps, t });
        }
        if h.abs() <= 1e-14 * t.abs().max(1.0) {
            return Err(SolverError::StepTooSmall { t, h: h.abs() });
        }
        // the memory-saving adjoints need outputs on step boundaries: stop exactly there
        let stop = match (plan.adjoint, plan.save_at) {
            (Adjoint::FullGraph, _) | (_, SaveAt::Final | SaveAt::Steps) => t1,
            (_, SaveAt::Times(ts)) => ts.iter().copied().find(|&s| (s - t) * dir > 1e-12 * (t1 - t0).abs()).unwrap_or(t1),
        };
        let last = (t + h - stop) * dir >= 0.0;
        let t_next = if last { stop } else { t + h };
        let h_step = t_next - t;
        let s = rk_step(tab, term, t, h_step, &y, Some(k0.clone()))?;
        run.stats.nfe += s.nfe;
        let err = s.err.as_ref().expect("embedded pair");
        let e = scaled_rms(err, &y, &s.y1, ctrl.rtol, ctrl.atol)?;
        if !e.is_finite() {
            run.stats.rejected += 1;
            h *= ctrl.factor_min;
            continue;
        }
        let factor = ctrl.factor(e, e_prev, tab.error_order);
        if e > 1.0 {
            run.stats.rejected += 1;
            h = h_step * factor;
            continue;
        }
        for tq in plan.wanted_inside(t, t_next) {
            run.dense.push((tq, dense_eval(tab, (tq - t) / h_step, h_step, &y, &s.y1, &s.stages)?));
        }
        run.stats.accepted += 1;
        run.nodes.push(t_next);
        let n = run.nodes.len() - 2;
        y = post_step(&mut run, plan, &s.y1, n)?;
        let fsal = s.stages.last().cloned().filter(|_| tab.fsal);
        k0 = match fsal {
            Some(k) if plan.adjoint == Adjoint::FullGraph => k,
            Some(k) => detach(&k)?,
            None => {
                run.stats.nfe += 1;
                term.vector_field(t_next, &y)?
            }
        };
        e_prev = e;
        t = t_next;
        h = h_step * factor;
    }
    *run.states.last_mut().expect("at least the initial state") = Some(y);
    Ok(run)
}

/// Collects outputs and builds the tape.
fn finish<S: State>(
    run: Run<S>,
    y0: &S,
    save_at: &SaveAt,
    adjoint: Adjoint,
    kind: TapeKind<S>,
    method: TapedMethod,
    backward_ctrl: Option<PiController>,
) -> Result<Solution<S>> {
    let last = run.nodes.len() - 1;
    let requests: Vec<f64> = match save_at {
        SaveAt::Final => vec![run.nodes[last]],
        SaveAt::Steps => run.nodes.clone(),
        SaveAt::Times(ts) => ts.clone(),
    };
    let mut ts = Vec::with_capacity(requests.len());
    let mut ys = Vec::with_capacity(requests.len());
    let mut out_index = Vec::with_capacity(requests.len());
    for t in requests {
        let y = match node_index(t, &run.nodes) {
            Some(i) => {
                out_index.push(i);
                run.states[i].clone().ok_or_else(|| SolverError::BadSaveAt(format!("state at t = {t} was not kept")))?
            }
            None => {
                if adjoint != Adjoint::FullGraph {
                    return Err(SolverError::BadSaveAt(format!(
                        "output time {t} is not a step boundary: the checkpointed and continuous adjoints need outputs on the step grid"
                    )));
                }
                out_index.push(usize::MAX);
                run.dense
                    .iter()
                    .find(|(td, _)| (td - t).abs() <= 1e-12 * t.abs().max(1.0))
                    .map(|(_, y)| y.clone())
                    .ok_or_else(|| SolverError::BadSaveAt(format!("no dense output at t = {t}")))?
            }
        };
        ts.push(t);
        ys.push(y);
    }
    let tape = match adjoint {
        Adjoint::FullGraph => None,
        _ => {
            ys = ys.iter().map(fresh_leaves).collect::<Result<_>>()?;
            let kind = match kind {
                TapeKind::Checkpointed(_) => TapeKind::Checkpointed(
                    run.states
                        .into_iter()
                        .map(|s| s.ok_or_else(|| SolverError::Config("checkpoint missing".into())))
                        .collect::<Result<_>>()?,
                ),
                TapeKind::Continuous => TapeKind::Continuous,
            };
            Some(Tape {
                kind,
                nodes: run.nodes,
                out_index,
                outputs: ys.clone(),
                y0: y0.clone(),
                backward_controller: backward_ctrl,
                method,
            })
        }
    };
    Ok(Solution { ts, ys, stats: run.stats, tape })
}

/// Solves dy/dt = f(t, y) from y₀ with `method` as `config` says.
///
/// ```
/// use candle_core::{Device, Tensor};
/// use ode_solvers::{solve, Method, SolveConfig, Steps};
/// // y' = −y, y(0) = 1  ⇒  y(1) = e⁻¹
/// let f = |_t: f64, y: &Tensor| Ok(y.neg()?);
/// let y0 = Tensor::new(&[1.0f64], &Device::Cpu)?;
/// let sol = solve(&f, Method::Rk4, &y0, &SolveConfig::new(Steps::uniform(0.0, 1.0, 20)?))?;
/// let y1 = sol.last().to_vec1::<f64>()?[0];
/// assert!((y1 - (-1f64).exp()).abs() < 1e-6);
/// # Ok::<(), ode_solvers::SolverError>(())
/// ```
pub fn solve<S: State>(term: &dyn OdeTerm<S>, method: Method, y0: &S, config: &SolveConfig) -> Result<Solution<S>> {
    if !all_finite(y0)? {
        return Err(SolverError::NonFiniteInitial);
    }
    let tab = method.tableau();
    let y_start = if config.adjoint == Adjoint::FullGraph { y0.clone() } else { detach(y0)? };
    let plan = Plan { save_at: &config.save_at, adjoint: config.adjoint, dense_tab: Some(tab) };
    let kind = if config.adjoint == Adjoint::Checkpointed { TapeKind::Checkpointed(Vec::new()) } else { TapeKind::Continuous };
    match &config.steps {
        Steps::Grid(grid) => {
            check_grid(grid)?;
            if let SaveAt::Times(ts) = &config.save_at {
                validate_times(ts, grid[0], grid[grid.len() - 1])?;
            }
            let stepper = RkStepper { tab, term };
            let run = run_fixed(&stepper, grid, &y_start, &plan, Some(term))?;
            finish(run, y0, &config.save_at, config.adjoint, kind, TapedMethod::Ode(method), None)
        }
        Steps::Adaptive { t0, t1, controller } => {
            if let SaveAt::Times(ts) = &config.save_at {
                validate_times(ts, *t0, *t1)?;
            }
            let run = run_adaptive(term, tab, *t0, *t1, controller, config.max_steps, &y_start, &plan)?;
            finish(run, y0, &config.save_at, config.adjoint, kind, TapedMethod::Ode(method), Some(*controller))
        }
    }
}

/// Solves dy = f dt + g ⊙ dW on `config`'s fixed grid driven by its Brownian path, with `method` (whose
/// calculus must match the term's), saving and differentiating as asked. SDE solves take
/// [`Adjoint::FullGraph`] or [`Adjoint::Checkpointed`] (exact gradients of the discrete
/// solution), or [`Adjoint::Continuous`] (the continuous adjoint SDE, see `adjoint`).
pub fn solve_sde<S: State>(term: &dyn SdeTerm<S>, method: SdeMethod, y0: &S, config: &SdeConfig) -> Result<Solution<S>> {
    let SdeConfig { grid, brownian, save_at, adjoint } = config;
    let (adjoint, brownian) = (*adjoint, *brownian);
    if method.calculus() != term.calculus() {
        return Err(SolverError::Mismatch(format!(
            "{} converges to the {:?} solution but the term is {:?}",
            method.name(),
            method.calculus(),
            term.calculus()
        )));
    }
    if method == SdeMethod::Milstein && term.noise() != crate::term::Noise::Diagonal {
        return Err(SolverError::Mismatch("Milstein is implemented for diagonal noise".into()));
    }
    if !all_finite(y0)? {
        return Err(SolverError::NonFiniteInitial);
    }
    check_grid(grid)?;
    if let SaveAt::Times(ts) = save_at {
        validate_times(ts, grid[0], grid[grid.len() - 1])?;
    }
    let y_start = if adjoint == Adjoint::FullGraph { y0.clone() } else { detach(y0)? };
    let plan = Plan { save_at, adjoint, dense_tab: None };
    let stepper = SdeStepper { method, term, brownian };
    let run = run_fixed(&stepper, grid, &y_start, &plan, None)?;
    let kind = if adjoint == Adjoint::Checkpointed { TapeKind::Checkpointed(Vec::new()) } else { TapeKind::Continuous };
    finish(run, y0, save_at, adjoint, kind, TapedMethod::Sde(method), None)
}
