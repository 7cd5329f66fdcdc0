//! `cargo xtask train` killed with SIGKILL mid-run and resumed with `--resume` ends with
//! bit-identical parameters to an uninterrupted run of the same seed (on the CPU); the model it
//! saved samples, zero points included.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn xtask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
}

const RUN: [&str; 13] =
    ["train", "ot-flow", "--data", "8gaussians", "--iters", "300", "--batch", "64", "--width", "8", "--steps", "2", "--checkpoint-every"];

fn tensors(path: &Path) -> Vec<(String, Vec<u32>)> {
    let map = candle_core::safetensors::load(path, &candle_core::Device::Cpu).unwrap();
    let mut out: Vec<(String, Vec<u32>)> = map
        .into_iter()
        .map(|(n, t)| (n, t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()))
        .collect();
    out.sort();
    out
}

#[test]
fn killed_and_resumed_run_matches_an_uninterrupted_one() {
    let root = std::env::temp_dir().join(format!("xtask-resume-{}", std::process::id()));
    std::fs::remove_dir_all(&root).ok();
    let (whole, killed) = (root.join("whole"), root.join("killed"));

    let status = xtask().args(RUN).arg("5").arg("--out").arg(&whole).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(status.success());

    let mut child = xtask().args(RUN).arg("5").arg("--out").arg(&killed).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let checkpoint = killed.join("checkpoint.safetensors");
    let start = Instant::now();
    while !checkpoint.exists() {
        assert!(start.elapsed() < Duration::from_secs(120), "no checkpoint written");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(child.try_wait().unwrap().is_none(), "the run finished before it could be killed: make it longer");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!killed.join("model.safetensors").exists(), "killed before the end");

    let out = xtask().arg("train").arg("--resume").arg(&killed).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("resuming"), "{stdout}");
    assert_eq!(tensors(&killed.join("model.safetensors")), tensors(&whole.join("model.safetensors")), "parameters differ");
    // the trained model samples, also zero points (an empty batch reached the network op once)
    for n in ["0", "3"] {
        let out =
            xtask().args(["sample", "--n", n, "--model"]).arg(&killed).arg("--out").arg(killed.join(format!("s{n}.csv"))).output().unwrap();
        assert!(out.status.success(), "sample --n {n}: {}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(std::fs::read_to_string(killed.join("s3.csv")).unwrap().lines().count(), 3);
    // resuming with other settings is refused
    let out = xtask().arg("train").arg("--resume").arg(&killed).args(["--iters", "5"]).output().unwrap();
    assert!(!out.status.success());
    std::fs::remove_dir_all(&root).ok();
}
