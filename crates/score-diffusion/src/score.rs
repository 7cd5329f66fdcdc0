//! Scores s(x, t) ≈ ∇ₓ log p_t(x): a trained network ([`ScoreNet`]) or the exact score of a
//! Gaussian mixture diffused by a forward SDE ([`MixtureScore`]). Samplers and the likelihood
//! take any [`Score`].

use crate::error::Result;
use crate::mixture::GaussianMixture;
use crate::sde::ForwardSde;
use candle_core::Tensor;
use tensor_core::nets::{TimeLayer, TimeNet};

/// A time-dependent score field.
pub trait Score {
    /// s(x, t), shape of x (B, d).
    fn score(&self, x: &Tensor, t: f64) -> Result<Tensor>;
    /// (s(x, t), ∇·s(x, t) of shape (B, 1)): exact, or Hutchinson's εᵀ(∂s/∂x)ε for `probe` ε.
    fn score_and_divergence(&self, x: &Tensor, t: f64, probe: Option<&Tensor>) -> Result<(Tensor, Tensor)>;
}

/// What the network outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parametrization {
    /// The score itself: s = net(x, t).
    Score,
    /// The noise (DDPM's ε-prediction): s = −net(x, t)/σ_t.
    Noise,
}

/// A score network: any `tensor-core` time network d → d with a parametrization.
pub struct ScoreNet<L: TimeLayer> {
    pub net: TimeNet<L>,
    pub sde: ForwardSde,
    pub parametrization: Parametrization,
}

impl<L: TimeLayer> ScoreNet<L> {
    /// The factor c(t) with s = c(t)·net(x, t).
    fn factor(&self, t: f64) -> f64 {
        match self.parametrization {
            Parametrization::Score => 1.0,
            Parametrization::Noise => -1.0 / self.sde.sigma(t),
        }
    }

    /// The same score with parameters cut from the graph (for sampling).
    pub fn detach(&self) -> Result<Self> {
        Ok(Self { net: self.net.detach()?, sde: self.sde, parametrization: self.parametrization })
    }
}

impl<L: TimeLayer> Score for ScoreNet<L> {
    fn score(&self, x: &Tensor, t: f64) -> Result<Tensor> {
        Ok((self.net.forward(x, &Tensor::new(t, x.device())?.to_dtype(x.dtype())?)? * self.factor(t))?)
    }
    fn score_and_divergence(&self, x: &Tensor, t: f64, probe: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        let time = Tensor::new(t, x.device())?.to_dtype(x.dtype())?;
        let (v, tr) = match probe {
            None => self.net.exact_trace(x, &time)?,
            Some(e) => self.net.hutchinson_trace(x, &time, e)?,
        };
        let c = self.factor(t);
        Ok(((v * c)?, (tr * c)?))
    }
}

/// The exact score of μ diffused by `sde`: p_t = law of α_t X + σ_t Z, X ~ μ.
pub struct MixtureScore {
    pub mixture: GaussianMixture,
    pub sde: ForwardSde,
}

impl Score for MixtureScore {
    fn score(&self, x: &Tensor, t: f64) -> Result<Tensor> {
        self.mixture.score(x, self.sde.alpha(t), self.sde.sigma(t))
    }
    /// Always the exact Laplacian of log p_t (the probe is not needed).
    fn score_and_divergence(&self, x: &Tensor, t: f64, _probe: Option<&Tensor>) -> Result<(Tensor, Tensor)> {
        self.mixture.score_and_laplacian(x, self.sde.alpha(t), self.sde.sigma(t))
    }
}
