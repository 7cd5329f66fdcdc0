//! A suite's results: `<suite>.json` (machine-readable rows) and `<suite>.md` (the table a paper
//! would print). Row keys are labels (strings) or figures (numbers, unit in the key).

use serde_json::{Map, Value};
use std::path::Path;

/// One row: flat keys → string labels or numeric figures.
pub type Row = Map<String, Value>;

/// Everything a suite writes.
pub struct Report {
    pub suite: String,
    pub device: String,
    pub data_source: String,
    pub config: Value,
    pub rows: Vec<Row>,
    /// Sentences printed under the table (measured ratios, what a row's failure means, …).
    pub notes: Vec<String>,
    /// File names of the plots written next to the report.
    pub plots: Vec<String>,
    /// Further Markdown sections (a derived table with its heading), printed after the notes.
    pub sections: Vec<String>,
    /// Wall time of the whole suite (every row's child process and `finish`), in seconds.
    pub seconds: f64,
}

/// `index.md` in `dir`: one line per suite report found there (`<suite>.json`), with its
/// device, data, run time, and links to its table and plots — the project's one-page report.
pub fn write_index(dir: &Path) -> std::io::Result<std::path::PathBuf> {
    let mut reports: Vec<Value> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
        .filter_map(|e| serde_json::from_str::<Value>(&std::fs::read_to_string(e.path()).ok()?).ok())
        .filter(|v| v.get("suite").is_some_and(Value::is_string) && v.get("rows").is_some())
        .collect();
    reports.sort_by_key(|v| v["suite"].as_str().unwrap_or_default().to_string());
    let mut s = format!("# continuum benchmark report\n\n{} suites in this folder (git revision {}).\n\n", reports.len(), git_revision());
    s += "| suite | device | data | rows | run time (s) | revision | plots |\n|---|---|---|---|---|---|---|\n";
    for r in &reports {
        let name = r["suite"].as_str().unwrap_or_default();
        let plots: Vec<String> =
            r["plots"].as_array().map(|a| a.iter().filter_map(Value::as_str).map(|p| format!("[{p}]({p})")).collect()).unwrap_or_default();
        let seconds = r.get("seconds").and_then(Value::as_f64).map_or("—".to_string(), |t| format!("{t:.0}"));
        s += &format!(
            "| [{name}]({name}.md) | {} | {} | {} | {seconds} | {} | {} |\n",
            r["device"].as_str().unwrap_or_default(),
            r["data_source"].as_str().unwrap_or_default().replace('|', "/"),
            r["rows"].as_array().map_or(0, Vec::len),
            r["git_revision"].as_str().unwrap_or_default(),
            plots.join(" ")
        );
    }
    let path = dir.join("index.md");
    std::fs::write(&path, s)?;
    Ok(path)
}

fn git_revision() -> String {
    let run = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    match run(&["rev-parse", "--short=12", "HEAD"]) {
        Some(rev) => {
            let dirty = run(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty {
                format!("{rev}-dirty")
            } else {
                rev
            }
        }
        None => "unknown".into(),
    }
}

fn cell(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "".into(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if n.is_f64() => format_figure(x),
            _ => n.to_string(),
        },
        Some(other) => other.to_string(),
    }
}

/// Four significant figures, scientific outside [1e-3, 1e5).
pub fn format_figure(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let a = x.abs();
    if (1e-3..1e5).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).max(0) as usize;
        format!("{x:.decimals$}")
    } else {
        format!("{x:.3e}")
    }
}

impl Report {
    /// The column order: keys in order of first appearance over the rows.
    fn columns(&self) -> Vec<String> {
        let mut cols: Vec<String> = Vec::new();
        for r in &self.rows {
            for k in r.keys() {
                if !cols.contains(k) {
                    cols.push(k.clone());
                }
            }
        }
        cols
    }

    /// The Markdown table.
    pub fn markdown(&self) -> String {
        let cols = self.columns();
        let mut s = format!("# {}\n\n", self.suite);
        s += &format!(
            "- device: {}\n- data: {}\n- git revision: {}\n- run time: {:.0} s\n- config: `{}`\n\n",
            self.device,
            self.data_source,
            git_revision(),
            self.seconds,
            self.config
        );
        s += &format!("| {} |\n|{}|\n", cols.join(" | "), cols.iter().map(|_| "---").collect::<Vec<_>>().join("|"));
        for r in &self.rows {
            s += &format!("| {} |\n", cols.iter().map(|c| cell(r.get(c))).collect::<Vec<_>>().join(" | "));
        }
        if !self.notes.is_empty() {
            s += "\n";
            for n in &self.notes {
                s += &format!("- {n}\n");
            }
        }
        for section in &self.sections {
            s += &format!("\n{section}\n");
        }
        for p in &self.plots {
            s += &format!("\n![{p}]({p})\n");
        }
        s
    }

    /// Writes `<suite>.json` and `<suite>.md` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::json!({
            "suite": self.suite,
            "device": self.device,
            "git_revision": git_revision(),
            "data_source": self.data_source,
            "config": self.config,
            "rows": self.rows,
            "notes": self.notes,
            "plots": self.plots,
            "sections": self.sections,
            "seconds": self.seconds,
        });
        std::fs::write(dir.join(format!("{}.json", self.suite)), serde_json::to_string_pretty(&json)? + "\n")?;
        std::fs::write(dir.join(format!("{}.md", self.suite)), self.markdown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_keep_four_significant_digits() {
        assert_eq!(format_figure(1234.5678), "1235");
        assert_eq!(format_figure(0.012345), "0.01235");
        assert_eq!(format_figure(3.0), "3.000");
        assert_eq!(format_figure(1.5e-7), "1.500e-7");
    }

    #[test]
    fn markdown_has_a_column_per_key() {
        let mut r1 = Row::new();
        r1.insert("method".into(), "a".into());
        r1.insert("time_s".into(), 0.5.into());
        let mut r2 = Row::new();
        r2.insert("method".into(), "b".into());
        r2.insert("peak_mem_mb".into(), 12.into());
        let rep = Report {
            suite: "x".into(),
            device: "cpu".into(),
            data_source: "none".into(),
            config: Value::Null,
            rows: vec![r1, r2],
            notes: vec!["n".into()],
            plots: vec![],
            sections: vec![],
            seconds: 0.0,
        };
        let md = rep.markdown();
        assert!(md.contains("| method | time_s | peak_mem_mb |"), "{md}");
        assert!(md.contains("| a | 0.5000 |  |"), "{md}");
        assert!(md.contains("| b |  | 12 |"), "{md}");
    }

    /// The index lists every report in the folder with its link, plots and run time, and skips
    /// other JSON files.
    #[test]
    fn index_links_every_report() {
        let dir = std::env::temp_dir().join(format!("continuum-index-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for (name, plots) in [("beta", vec!["b.png".to_string()]), ("alpha", vec![])] {
            let rep = Report {
                suite: name.into(),
                device: "cpu".into(),
                data_source: "stand-in | labelled".into(),
                config: Value::Null,
                rows: vec![Row::new()],
                notes: vec![],
                plots,
                sections: vec![],
                seconds: 12.4,
            };
            rep.write(&dir).unwrap();
        }
        std::fs::write(dir.join("other.json"), "{\"x\": 1}").unwrap();
        let index = std::fs::read_to_string(write_index(&dir).unwrap()).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(index.contains("2 suites"), "{index}");
        let (a, b) = (index.find("[alpha](alpha.md)").unwrap(), index.find("[beta](beta.md)").unwrap());
        assert!(a < b && index.contains("[b.png](b.png)") && index.contains("| 12 |") && index.contains("stand-in / labelled"), "{index}");
    }
}
