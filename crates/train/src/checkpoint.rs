//! Files that survive a crash: every write goes to a temporary file in the same folder, is
//! flushed to disk, then renamed over the target (a rename within a folder is atomic), so a
//! reader sees the old file or the new one, never half of one.
//!
//! Two kinds of file, both safetensors with JSON in the header's metadata:
//! - a **model file** ([`save_model`] / [`load_model`]): the parameters, the model's kind and its
//!   complete configuration (what rebuilds the same network), and any extra data the caller
//!   keeps with it (a data standardisation);
//! - a **training checkpoint** (written by the loop): parameters, best parameters, Adam's moments
//!   and the loop's state (iteration, learning rate, RNG positions, adjoint scale), enough for a
//!   resumed run to end bit-identical to one that never stopped.

use crate::error::{Result, TrainError};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tensor_core::params::ParamBuilder;
use tensor_core::{Precision, RngState, SeededRng};

const MODEL_KEY: &str = "continuum.model";
const CONFIG_KEY: &str = "continuum.config";
const EXTRA_KEY: &str = "continuum.extra";

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename), creating the folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |p: &Path| {
        let p = p.to_path_buf();
        move |source| TrainError::Io { path: p, source }
    };
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp: PathBuf = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(())
}

/// Writes named tensors and string metadata as one safetensors file, atomically.
pub fn save_tensors(path: &Path, tensors: Vec<(String, Tensor)>, metadata: HashMap<String, String>) -> Result<()> {
    let host: Vec<(String, Tensor)> =
        tensors.into_iter().map(|(n, t)| Ok((n, t.to_device(&Device::Cpu)?.contiguous()?))).collect::<Result<_>>()?;
    let bytes = safetensors::serialize(host.iter().map(|(n, t)| (n.as_str(), t)), Some(metadata))
        .map_err(|e| TrainError::Checkpoint { path: path.to_path_buf(), reason: e.to_string() })?;
    write_atomic(path, &bytes)
}

/// Reads a safetensors file: its tensors (on `device`) and its metadata.
pub fn read_tensors(path: &Path, device: &Device) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let err = |reason: String| TrainError::Checkpoint { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read it ({e})")))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| err(format!("not a safetensors file ({e})")))?;
    let metadata = header.metadata().clone().unwrap_or_default();
    let tensors = candle_core::safetensors::load_buffer(&bytes, device).map_err(|e| err(format!("unreadable tensors ({e})")))?;
    Ok((tensors, metadata))
}

/// The variables of `varmap` by name, each under `prefix`.
pub fn named_vars(varmap: &VarMap, prefix: &str) -> Vec<(String, Tensor)> {
    let data = varmap.data().lock().expect("VarMap mutex poisoned");
    let mut out: Vec<(String, Tensor)> = data.iter().map(|(n, v)| (format!("{prefix}{n}"), v.as_tensor().clone())).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Sets every variable of `varmap` from `tensors[prefix + name]`: each must be present with the
/// variable's shape (values are converted to its dtype and device).
pub fn load_vars(varmap: &VarMap, tensors: &HashMap<String, Tensor>, prefix: &str, path: &Path) -> Result<()> {
    let err = |reason: String| TrainError::Checkpoint { path: path.to_path_buf(), reason };
    let data = varmap.data().lock().expect("VarMap mutex poisoned");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let t = tensors.get(&format!("{prefix}{name}")).ok_or_else(|| err(format!("has no tensor '{name}'")))?;
        if t.dims() != var.dims() {
            return Err(err(format!("tensor '{name}' has shape {:?}, the model expects {:?}", t.dims(), var.dims())));
        }
        var.set(&t.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    Ok(())
}

/// Saves a model: the parameters of `varmap`, its `kind` (e.g. "ot-flow"), its complete
/// `config` with the parameters' `dtype` (what rebuilds the same network), and `extra` data kept
/// with it (a data standardisation), atomically.
pub fn save_model(path: &Path, kind: &str, config: &impl Serialize, dtype: DType, extra: &Value, varmap: &VarMap) -> Result<()> {
    let config = serde_json::json!({"config": config, "dtype": Precision::of_dtype(dtype)});
    let meta = HashMap::from([
        (MODEL_KEY.to_string(), kind.to_string()),
        (CONFIG_KEY.to_string(), config.to_string()),
        (EXTRA_KEY.to_string(), extra.to_string()),
    ]);
    save_tensors(path, named_vars(varmap, ""), meta)
}

/// A model that saves itself with its complete configuration and loads back into the same
/// network (implemented with [`save_model`] / [`load_model`]).
pub trait ModelFile: Sized {
    /// The model's own error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// The kind name stored in the file ("cnf", "ot-flow").
    const KIND: &'static str;
    /// Writes the parameters of `varmap` (this model's) with the complete configuration to
    /// `path` atomically; `extra` is kept alongside (e.g. a data standardisation).
    fn save(&self, varmap: &VarMap, path: &Path, extra: &Value) -> std::result::Result<(), Self::Error>;
    /// The model saved at `path`, rebuilt from its stored configuration with its parameters.
    fn load(path: &Path, device: &Device) -> std::result::Result<LoadedModel<Self>, Self::Error>;
}

/// The kind stored in a model file, read from its header alone (no tensor is built).
pub fn model_kind(path: &Path) -> Result<String> {
    let err = |reason: String| TrainError::Checkpoint { path: path.to_path_buf(), reason };
    let bytes = std::fs::read(path).map_err(|e| err(format!("cannot read it ({e})")))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| err(format!("not a safetensors file ({e})")))?;
    header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(MODEL_KEY))
        .cloned()
        .ok_or_else(|| err("not a continuum model file (no model kind in its header)".into()))
}

/// A model read back by [`load_model`]: the rebuilt model, its variables and the extra data.
pub struct LoadedModel<M> {
    pub model: M,
    pub varmap: VarMap,
    pub extra: Value,
}

#[derive(Deserialize)]
struct StoredConfig<C> {
    config: C,
    dtype: Precision,
}

/// Reads a model file written by [`save_model`]: checks its kind is `kind`, rebuilds the model
/// with `build` from the stored configuration and parameter precision, and loads the stored
/// parameters into it (every one present with the same shape, and no other).
pub fn load_model<C, M, E>(
    path: &Path,
    kind: &str,
    device: &Device,
    build: impl FnOnce(&mut ParamBuilder, C) -> std::result::Result<M, E>,
) -> Result<LoadedModel<M>>
where
    C: DeserializeOwned,
    E: std::error::Error + Send + Sync + 'static,
{
    let err = |reason: String| TrainError::Checkpoint { path: path.to_path_buf(), reason };
    if !path.exists() {
        return Err(err("file not found (train a model first)".into()));
    }
    let (tensors, meta) = read_tensors(path, device)?;
    let found = meta.get(MODEL_KEY).ok_or_else(|| err("not a continuum model file (no model kind in its header)".into()))?;
    if found != kind {
        return Err(err(format!("holds a '{found}' model, not '{kind}'")));
    }
    let stored: StoredConfig<C> = serde_json::from_str(meta.get(CONFIG_KEY).map_or("null", String::as_str))
        .map_err(|e| err(format!("its '{kind}' configuration does not parse ({e})")))?;
    let extra =
        serde_json::from_str(meta.get(EXTRA_KEY).map_or("null", String::as_str)).map_err(|e| err(format!("corrupt extra data ({e})")))?;
    let varmap = VarMap::new();
    let mut rng = SeededRng::new(0);
    let model = build(&mut ParamBuilder::new(&varmap, &mut rng, stored.dtype.dtype(), device), stored.config).map_err(TrainError::model)?;
    let expected = varmap.data().lock().expect("VarMap mutex poisoned").len();
    if tensors.len() != expected {
        return Err(err(format!("holds {} tensors, the configured model has {expected}", tensors.len())));
    }
    load_vars(&varmap, &tensors, "", path)?;
    Ok(LoadedModel { model, varmap, extra })
}

/// Writes a training checkpoint atomically: the variables of `varmap` under `param/`, the
/// optimiser's state, the best parameters so far under `best/` (in [`named_vars`] order), and the loop's
/// own `state` as JSON under the header key `key`. Both training loops (`train`'s and
/// `neural-soc`'s) write theirs with it.
pub fn write_training_checkpoint(
    path: &Path,
    varmap: &VarMap,
    opt: &dyn crate::optim::Optimizer,
    best: Option<&[Tensor]>,
    key: &str,
    state: &impl Serialize,
) -> Result<()> {
    let mut tensors = named_vars(varmap, "param/");
    tensors.extend(opt.state_tensors());
    if let Some(best) = best {
        tensors.extend(named_vars(varmap, "best/").into_iter().zip(best).map(|((n, _), t)| (n, t.clone())));
    }
    let meta = HashMap::from([(key.to_string(), serde_json::to_string(state).map_err(|e| TrainError::Config(e.to_string()))?)]);
    save_tensors(path, tensors, meta)
}

/// A training checkpoint read back ([`read_training_checkpoint`]): the loop's state, and the
/// tensors, applied to the model and optimiser by [`TrainingCheckpoint::apply`] once the caller
/// has checked the state (settings) against its run.
pub struct TrainingCheckpoint<S> {
    pub state: S,
    tensors: HashMap<String, Tensor>,
    path: PathBuf,
}

/// Reads the checkpoint at `path` that [`write_training_checkpoint`] wrote with `key`; `what`
/// names the loop in errors ("training", "stochastic-control").
pub fn read_training_checkpoint<S: DeserializeOwned>(path: &Path, varmap: &VarMap, key: &str, what: &str) -> Result<TrainingCheckpoint<S>> {
    let err = |reason: String| TrainError::Checkpoint { path: path.to_path_buf(), reason };
    if !path.exists() {
        return Err(err("not found: nothing to resume (start the run without resume first)".into()));
    }
    let device = varmap.all_vars().first().map(|v| v.device().clone()).unwrap_or(Device::Cpu);
    let (tensors, meta) = read_tensors(path, &device)?;
    let state = serde_json::from_str(meta.get(key).ok_or_else(|| err(format!("not a {what} checkpoint (no loop state in its header)")))?)
        .map_err(|e| err(format!("corrupt loop state ({e})")))?;
    Ok(TrainingCheckpoint { state, tensors, path: path.to_path_buf() })
}

impl<S> TrainingCheckpoint<S> {
    /// Sets the variables and the optimiser's state (having taken `adam_steps` steps); returns the
    /// best parameters when `with_best`.
    pub fn apply(
        &self,
        varmap: &VarMap,
        opt: &mut dyn crate::optim::Optimizer,
        adam_steps: usize,
        with_best: bool,
    ) -> Result<Option<Vec<Tensor>>> {
        load_vars(varmap, &self.tensors, "param/", &self.path)?;
        opt.restore(&self.tensors, adam_steps)?;
        if !with_best {
            return Ok(None);
        }
        let err = |reason: String| TrainError::Checkpoint { path: self.path.clone(), reason };
        named_vars(varmap, "")
            .iter()
            .map(|(n, _)| self.tensors.get(&format!("best/{n}")).cloned().ok_or_else(|| err(format!("has no best parameter '{n}'"))))
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }
}

/// A [`SeededRng`]'s position as JSON-safe fields (the 128-bit word position as a string), for
/// training states kept in a checkpoint's header.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedRng {
    seed: [u8; 32],
    stream: u64,
    word_pos: String,
}

impl SavedRng {
    /// The position of `rng`.
    pub fn of(rng: &SeededRng) -> Self {
        let s = rng.state();
        Self { seed: s.seed, stream: s.stream, word_pos: s.word_pos.to_string() }
    }
    /// A generator at the saved position.
    pub fn restore(&self) -> Result<SeededRng> {
        let word_pos = self.word_pos.parse().map_err(|_| TrainError::Config(format!("corrupt RNG position '{}'", self.word_pos)))?;
        Ok(SeededRng::from_state(&RngState { seed: self.seed, stream: self.stream, word_pos }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::Init;

    /// A file written atomically reads back; a model of another shape, a missing tensor, a
    /// missing file and a file that is not safetensors are errors naming the problem.
    #[test]
    fn tensors_round_trip_and_mismatches_are_named() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("train-ckpt-{}", std::process::id()));
        let path = dir.join("vars.safetensors");
        let vm = VarMap::new();
        vm.get((3, 4), "layer.weight", Init::Const(0.5), DType::F32, &Device::Cpu)?;
        save_tensors(&path, named_vars(&vm, "p/"), HashMap::from([("k".to_string(), "v".to_string())]))?;
        let (tensors, meta) = read_tensors(&path, &Device::Cpu)?;
        assert_eq!(meta["k"], "v");
        let other = VarMap::new();
        other.get((3, 4), "layer.weight", Init::Const(0.0), DType::F32, &Device::Cpu)?;
        load_vars(&other, &tensors, "p/", &path)?;
        assert_eq!(other.all_vars()[0].as_tensor().to_vec2::<f32>()?, vec![vec![0.5f32; 4]; 3]);
        let wide = VarMap::new();
        wide.get((4, 4), "layer.weight", Init::Const(0.0), DType::F32, &Device::Cpu)?;
        let e = load_vars(&wide, &tensors, "p/", &path).unwrap_err().to_string();
        assert!(e.contains("shape [3, 4]"), "{e}");
        let e = load_vars(&other, &tensors, "q/", &path).unwrap_err().to_string();
        assert!(e.contains("has no tensor 'layer.weight'"), "{e}");
        assert!(read_tensors(&dir.join("nope.safetensors"), &Device::Cpu).unwrap_err().to_string().contains("cannot read"));
        std::fs::write(dir.join("junk.safetensors"), b"junk").expect("temp file");
        assert!(read_tensors(&dir.join("junk.safetensors"), &Device::Cpu).unwrap_err().to_string().contains("not a safetensors file"));
        assert!(
            !std::fs::read_dir(&dir).expect("dir").any(|e| e.expect("entry").file_name().to_string_lossy().ends_with(".tmp")),
            "no temporary file left behind"
        );
        std::fs::remove_dir_all(&dir).ok();
        Ok(())
    }
}
