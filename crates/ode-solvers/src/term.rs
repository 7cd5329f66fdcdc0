//! Terms: what is integrated. An ODE is a vector field f(t, y); an SDE adds a diffusion g(t, y)
//! driven by Brownian motion, read in the Itô or the Stratonovich sense.

use crate::error::Result;
use crate::state::State;
use candle_core::Tensor;
use tensor_core::nets::{TimeLayer, TimeNet};

/// dy/dt = f(t, y). Any `Fn(f64, &S) -> Result<S>` is one.
pub trait OdeTerm<S: State> {
    /// f(t, y), a state of the same structure as y.
    fn vector_field(&self, t: f64, y: &S) -> Result<S>;
}

impl<S: State, F: Fn(f64, &S) -> Result<S>> OdeTerm<S> for F {
    fn vector_field(&self, t: f64, y: &S) -> Result<S> {
        self(t, y)
    }
}

/// A time network as an ODE term: y' = net(y, t), the time passed as a one-element tensor that
/// the network broadcasts over the batch in y's dtype. The one adapter every model uses for a
/// velocity v_θ(x, t); pass `net.detach()?` for sampling without a graph, or a `to_dtype` view
/// for a low-precision evaluation.
pub fn time_net_field<L: TimeLayer>(net: TimeNet<L>) -> impl Fn(f64, &Tensor) -> Result<Tensor> {
    move |t, y| Ok(net.forward(y, &Tensor::new(t, y.device())?)?)
}

/// How the stochastic integral of an SDE is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Calculus {
    /// Itô: g evaluated at the left end of each step (Euler–Maruyama, Milstein converge to it).
    Ito,
    /// Stratonovich: the midpoint rule (stochastic Heun converges to it).
    Stratonovich,
}

/// The shape of the driving noise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Noise {
    /// One independent Brownian motion per state entry: dy_i = f_i dt + g_i dW_i.
    Diagonal,
    /// One Brownian motion per sample (leading dimension), shared by all its entries.
    Scalar,
}

/// dy = f(t, y) dt + g(t, y) ⊙ dW with diagonal or scalar noise.
pub trait SdeTerm<S: State> {
    /// Drift f(t, y).
    fn drift(&self, t: f64, y: &S) -> Result<S>;
    /// Diffusion g(t, y), same structure as y (multiplies dW entrywise).
    fn diffusion(&self, t: f64, y: &S) -> Result<S>;
    /// ∂g_i/∂y_i, the diagonal of the diffusion's Jacobian, where the term knows it. Milstein
    /// uses it (else it falls back to its derivative-free form) and so does the Itô →
    /// Stratonovich drift correction f − ½ g ∂g/∂y of the continuous SDE adjoint.
    fn diffusion_derivative(&self, _t: f64, _y: &S) -> Result<Option<S>> {
        Ok(None)
    }
    /// Itô or Stratonovich.
    fn calculus(&self) -> Calculus;
    /// Diagonal or scalar noise.
    fn noise(&self) -> Noise;
}
