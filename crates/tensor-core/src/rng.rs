//! Seeded randomness. candle's CPU generator cannot be seeded (`Device::Cpu.set_seed` errors),
//! so every draw in continuum goes through [`SeededRng`]: ChaCha12 (the stream of `rand`'s
//! `StdRng`) from a user seed, drawn on the host and moved to the device. The same seed gives the
//! same numbers on every run and every device, and [`SeededRng::state`] / [`SeededRng::from_state`]
//! capture and restore the exact position in the stream (a resumed training run draws the same
//! minibatches as one that never stopped).

use crate::error::Result;
use candle_core::{DType, Device, Shape, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha12Rng;
use rand_distr::{Distribution, StandardNormal};

/// A position in a [`SeededRng`]'s stream (for checkpoints).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RngState {
    pub seed: [u8; 32],
    pub stream: u64,
    pub word_pos: u128,
}

/// A reproducible random source for tensors.
#[derive(Clone, Debug)]
pub struct SeededRng {
    rng: ChaCha12Rng,
}

impl SeededRng {
    /// A generator whose whole stream is fixed by `seed`.
    pub fn new(seed: u64) -> Self {
        Self { rng: ChaCha12Rng::seed_from_u64(seed) }
    }

    /// The exact position in the stream: seed, stream number and word position.
    pub fn state(&self) -> RngState {
        RngState { seed: self.rng.get_seed(), stream: self.rng.get_stream(), word_pos: self.rng.get_word_pos() }
    }

    /// The generator at a position [`SeededRng::state`] captured: its next draws are the ones
    /// the captured generator would have made.
    pub fn from_state(state: &RngState) -> Self {
        let mut rng = ChaCha12Rng::from_seed(state.seed);
        rng.set_stream(state.stream);
        rng.set_word_pos(state.word_pos);
        Self { rng }
    }

    /// An independent generator derived from this one's stream (for a sub-task that must not
    /// shift the parent's later draws, derive it once up front).
    pub fn fork(&mut self) -> Self {
        Self::new(self.next_seed())
    }

    /// A fresh seed from this stream, for APIs that take a seed (a Brownian tree, a sub-run).
    pub fn next_seed(&mut self) -> u64 {
        self.rng.random()
    }

    /// Direct access to the underlying `rand` generator, for scalar draws.
    pub fn inner(&mut self) -> &mut ChaCha12Rng {
        &mut self.rng
    }

    fn tensor<S: Into<Shape>>(
        &mut self,
        shape: S,
        dtype: DType,
        device: &Device,
        mut draw: impl FnMut(&mut ChaCha12Rng) -> f64,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let n = shape.elem_count();
        let t = if dtype == DType::F64 {
            let v: Vec<f64> = (0..n).map(|_| draw(&mut self.rng)).collect();
            Tensor::from_vec(v, shape, &Device::Cpu)?
        } else {
            let v: Vec<f32> = (0..n).map(|_| draw(&mut self.rng) as f32).collect();
            Tensor::from_vec(v, shape, &Device::Cpu)?.to_dtype(dtype)?
        };
        Ok(t.to_device(device)?)
    }

    /// Standard normal entries N(0, 1).
    pub fn normal<S: Into<Shape>>(&mut self, shape: S, dtype: DType, device: &Device) -> Result<Tensor> {
        self.tensor(shape, dtype, device, |r| StandardNormal.sample(r))
    }

    /// Uniform entries on [lo, hi).
    pub fn uniform<S: Into<Shape>>(&mut self, shape: S, lo: f64, hi: f64, dtype: DType, device: &Device) -> Result<Tensor> {
        self.tensor(shape, dtype, device, |r| lo + (hi - lo) * r.random::<f64>())
    }

    /// `batch` rows of `data` drawn uniformly with replacement (a minibatch).
    pub fn rows(&mut self, data: &Tensor, batch: usize) -> Result<Tensor> {
        Ok(self.paired_rows(&[data], batch)?.remove(0))
    }

    /// The same `batch` random rows (with replacement) of every tensor in `data`, which must have
    /// equally many rows: minibatches of paired data.
    pub fn paired_rows(&mut self, data: &[&Tensor], batch: usize) -> Result<Vec<Tensor>> {
        let n = data.first().map_or(Ok(0), |d| d.dim(0))?;
        if n == 0 {
            return Err(crate::Error::Config("cannot draw rows from an empty tensor".into()));
        }
        if let Some(d) = data.iter().find(|d| d.dim(0).ok() != Some(n)) {
            return Err(crate::Error::Shape {
                context: "paired_rows",
                expected: format!("{n} rows like the first tensor"),
                got: d.dims().to_vec(),
            });
        }
        let idx: Vec<u32> = (0..batch).map(|_| self.rng.random_range(0..n as u32)).collect();
        let idx = Tensor::new(idx.as_slice(), data[0].device())?;
        Ok(data.iter().map(|d| d.index_select(&idx, 0)).collect::<candle_core::Result<_>>()?)
    }

    /// Rademacher entries: ±1 with probability ½ each (Hutchinson's estimator).
    pub fn rademacher<S: Into<Shape>>(&mut self, shape: S, dtype: DType, device: &Device) -> Result<Tensor> {
        self.tensor(shape, dtype, device, |r| if r.random::<bool>() { 1.0 } else { -1.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers_other_seed_other_numbers() -> Result<()> {
        let draw = |seed| -> Result<Vec<f32>> {
            let mut r = SeededRng::new(seed);
            let a = r.normal(64, DType::F32, &Device::Cpu)?;
            let b = r.uniform(64, -1.0, 1.0, DType::F32, &Device::Cpu)?;
            Ok(Tensor::cat(&[a, b], 0)?.to_vec1()?)
        };
        assert_eq!(draw(7)?, draw(7)?);
        assert_ne!(draw(7)?, draw(8)?);
        Ok(())
    }

    /// The stream is rand's `StdRng` (every figure drawn before the switch to an explicit
    /// ChaCha12 is unchanged), and a captured state resumes it exactly, mid-word included.
    #[test]
    fn stream_is_std_rng_and_state_resumes_it() -> Result<()> {
        let mut std = rand::rngs::StdRng::seed_from_u64(11);
        let mut ours = SeededRng::new(11);
        let a: Vec<u64> = (0..9).map(|_| std.random()).collect();
        let b: Vec<u64> = (0..9).map(|_| ours.inner().random()).collect();
        assert_eq!(a, b);
        let _: u32 = ours.inner().random(); // leave the stream mid-word
        let mut resumed = SeededRng::from_state(&ours.state());
        assert_eq!(
            ours.normal(33, DType::F64, &Device::Cpu)?.to_vec1::<f64>()?,
            resumed.normal(33, DType::F64, &Device::Cpu)?.to_vec1::<f64>()?
        );
        assert_eq!(ours.next_seed(), resumed.next_seed());
        Ok(())
    }

    #[test]
    fn moments_are_right() -> Result<()> {
        let mut r = SeededRng::new(1);
        let n = 200_000;
        let x = r.normal(n, DType::F64, &Device::Cpu)?.to_vec1::<f64>()?;
        let mean = x.iter().sum::<f64>() / n as f64;
        let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        // 5 standard errors
        assert!(mean.abs() < 5.0 / (n as f64).sqrt(), "mean {mean}");
        assert!((var - 1.0).abs() < 5.0 * (2.0 / n as f64).sqrt(), "var {var}");
        let u = r.uniform(n, 2.0, 4.0, DType::F64, &Device::Cpu)?.to_vec1::<f64>()?;
        assert!(u.iter().all(|&v| (2.0..4.0).contains(&v)));
        assert!((u.iter().sum::<f64>() / n as f64 - 3.0).abs() < 0.01);
        let z = r.rademacher(n, DType::F32, &Device::Cpu)?.to_vec1::<f32>()?;
        assert!(z.iter().all(|&v| v == 1.0 || v == -1.0));
        assert!((z.iter().sum::<f32>() / n as f32).abs() < 0.02);
        Ok(())
    }
}
