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
            "- device: {}\n- data: {}\n- git revision: {}\n- config: `{}`\n\n",
            self.device,
            self.data_source,
            git_revision(),
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
        };
        let md = rep.markdown();
        assert!(md.contains("| method | time_s | peak_mem_mb |"), "{md}");
        assert!(md.contains("| a | 0.5000 |  |"), "{md}");
        assert!(md.contains("| b |  | 12 |"), "{md}");
    }
}
