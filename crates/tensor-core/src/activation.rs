//! Activations with their first and second derivatives as candle ops, so a network's analytic
//! derivatives (JVP, traces, ∇Φ, ΔΦ) are themselves differentiable by first-order backprop.

use crate::error::Result;
use crate::kernels::selu::{SELU_ALPHA, SELU_LAMBDA};
use crate::kernels::{self, sigmoid};
use candle_core::Tensor;
use std::str::FromStr;

/// A smooth scalar activation σ applied elementwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Activation {
    /// σ = tanh z, σ' = 1 − tanh² z, σ'' = −2 tanh z (1 − tanh² z).
    Tanh,
    /// σ = log(1 + eᶻ), σ' = sigmoid z, σ'' = sigmoid z (1 − sigmoid z).
    Softplus,
    /// Swish / SiLU (Ramachandran et al. 2017): σ = z·sigmoid z.
    Swish,
    /// OT-Flow's activation (Onken et al. 2021): σ = log cosh z, σ' = tanh z, σ'' = 1 − tanh² z.
    LogCosh,
    /// SELU (Klambauer et al. 2017), torchcfm's default: λz for z > 0, λα(eᶻ − 1) otherwise.
    /// σ'' jumps at 0 (from λα to 0), so it is smooth enough for velocities and traces but not
    /// for a potential's Laplacian.
    Selu,
}

/// (1[z > 0], e^{min(z, 0)}): the two pieces every SELU formula is made of.
fn selu_pieces(z: &Tensor) -> Result<(Tensor, Tensor)> {
    let positive = z.gt(0.0)?.to_dtype(z.dtype())?;
    let exp_neg = z.minimum(0.0)?.exp()?;
    Ok((positive, exp_neg))
}

impl Activation {
    /// Whether σ'' is continuous (every activation but SELU): what a Laplacian needs.
    pub fn is_c2(self) -> bool {
        self != Self::Selu
    }

    /// σ(z).
    pub fn value(self, z: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Tanh => kernels::tanh(z)?,
            Self::Softplus => kernels::softplus(z)?,
            Self::Swish => kernels::swish(z)?,
            Self::LogCosh => kernels::log_cosh(z)?,
            // λ(relu z + α(e^{min(z,0)} − 1)), one vectorised pass where the kernel applies
            Self::Selu => kernels::selu(z)?,
        })
    }

    /// σ'(z).
    pub fn derivative(self, z: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Tanh => (1.0 - kernels::tanh(z)?.sqr()?)?,
            Self::Softplus => sigmoid(z)?,
            Self::Swish => {
                let s = sigmoid(z)?;
                // s + z s (1 − s)
                (&s + (z * (&s * (1.0 - &s)?)?)?)?
            }
            Self::LogCosh => kernels::tanh(z)?,
            Self::Selu => {
                let (pos, e) = selu_pieces(z)?;
                ((&pos + ((e * (1.0 - &pos)?)? * SELU_ALPHA)?)? * SELU_LAMBDA)?
            }
        })
    }

    /// σ''(z).
    pub fn second_derivative(self, z: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Tanh => {
                let th = kernels::tanh(z)?;
                ((&th * -2.0)? * (1.0 - th.sqr()?)?)?
            }
            Self::Softplus => {
                let s = sigmoid(z)?;
                (&s * (1.0 - &s)?)?
            }
            Self::Swish => {
                // s(1 − s)(2 + z(1 − 2s))
                let s = sigmoid(z)?;
                let ds = (&s * (1.0 - &s)?)?;
                (ds * ((z * (1.0 - (&s * 2.0)?)?)? + 2.0)?)?
            }
            Self::LogCosh => (1.0 - kernels::tanh(z)?.sqr()?)?,
            Self::Selu => {
                let (pos, e) = selu_pieces(z)?;
                ((e * (1.0 - pos)?)? * (SELU_ALPHA * SELU_LAMBDA))?
            }
        })
    }

    /// (σ(z), σ'(z)), sharing work where the formulas allow.
    pub fn value_and_derivative(self, z: &Tensor) -> Result<(Tensor, Tensor)> {
        match self {
            Self::Tanh => {
                let th = kernels::tanh(z)?;
                let d = (1.0 - th.sqr()?)?;
                Ok((th, d))
            }
            _ => Ok((self.value(z)?, self.derivative(z)?)),
        }
    }
}

impl FromStr for Activation {
    type Err = crate::error::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "tanh" => Ok(Self::Tanh),
            "softplus" => Ok(Self::Softplus),
            "swish" | "silu" => Ok(Self::Swish),
            "logcosh" | "log-cosh" | "antiderivtanh" => Ok(Self::LogCosh),
            "selu" => Ok(Self::Selu),
            other => {
                Err(crate::error::Error::Config(format!("unknown activation '{other}': expected tanh, softplus, swish, logcosh or selu")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn derivatives_match_central_differences() -> Result<()> {
        let zs: Vec<f64> = (-40..=40).map(|i| i as f64 * 0.2 + 0.013).collect();
        let z = Tensor::new(zs.as_slice(), &Device::Cpu)?;
        let h = 1e-5;
        for act in [Activation::Tanh, Activation::Softplus, Activation::Swish, Activation::LogCosh, Activation::Selu] {
            let fd = |f: &dyn Fn(&Tensor) -> Result<Tensor>| -> Result<Vec<f64>> {
                let p = f(&(&z + h)?)?.to_vec1::<f64>()?;
                let m = f(&(&z - h)?)?.to_vec1::<f64>()?;
                Ok(p.iter().zip(m).map(|(a, b)| (a - b) / (2.0 * h)).collect())
            };
            let d1 = act.derivative(&z)?.to_vec1::<f64>()?;
            let d2 = act.second_derivative(&z)?.to_vec1::<f64>()?;
            let fd1 = fd(&|t| act.value(t))?;
            let fd2 = fd(&|t| act.derivative(t))?;
            for i in 0..zs.len() {
                assert!((d1[i] - fd1[i]).abs() <= 1e-8 * (1.0 + d1[i].abs()), "{act:?} σ' at {}: {} vs {}", zs[i], d1[i], fd1[i]);
                assert!((d2[i] - fd2[i]).abs() <= 1e-8 * (1.0 + d2[i].abs()), "{act:?} σ'' at {}: {} vs {}", zs[i], d2[i], fd2[i]);
            }
            let (v, d) = act.value_and_derivative(&z)?;
            assert_eq!(v.to_vec1::<f64>()?, act.value(&z)?.to_vec1::<f64>()?);
            assert_eq!(d.to_vec1::<f64>()?, d1);
        }
        Ok(())
    }

    #[test]
    fn stable_at_large_arguments() -> Result<()> {
        let z = Tensor::new(&[-500.0f32, 500.0], &Device::Cpu)?;
        for act in [Activation::Softplus, Activation::Swish, Activation::LogCosh, Activation::Selu] {
            let v = act.value(&z)?.to_vec1::<f32>()?;
            assert!(v.iter().all(|x| x.is_finite()), "{act:?}: {v:?}");
        }
        let lc = Activation::LogCosh.value(&z)?.to_vec1::<f32>()?;
        assert!((lc[1] - (500.0 - std::f32::consts::LN_2)).abs() < 1e-3);
        Ok(())
    }
}
