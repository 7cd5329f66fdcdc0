//! A user's own data: NumPy `.npy` (format versions 1–3, little-endian f4/f8, C or Fortran
//! order, 1-D or 2-D) and `.csv` (comma- or whitespace-separated numbers, optional header row),
//! read into a [`Matrix`] and written back (samples). Every problem is one clear error line.

use crate::error::{read_file, DataError, Result};
use crate::Matrix;
use std::path::Path;

fn format_err(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Format { source_name: path.display().to_string(), reason: reason.into() }
}

/// Reads `.npy` or `.csv` by extension; rejects empty data and non-finite values.
pub fn load_matrix(path: &Path) -> Result<Matrix> {
    if !path.is_file() {
        return Err(DataError::Missing {
            what: path.display().to_string(),
            looked: path.display().to_string(),
            how_to_get: "check the path".into(),
        });
    }
    let m = match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("npy") => read_npy(path)?,
        Some("csv") | Some("txt") => read_csv(path)?,
        _ => return Err(format_err(path, "unknown file type: expected .npy or .csv")),
    };
    if m.rows == 0 || m.cols == 0 {
        return Err(format_err(path, "no data"));
    }
    if let Some(i) = m.data.iter().position(|v| !v.is_finite()) {
        return Err(format_err(path, format!("non-finite value at row {}, column {}", i / m.cols, i % m.cols)));
    }
    Ok(m)
}

fn header_value<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}'"))? + key.len() + 2;
    let rest = header[start..].trim_start().strip_prefix(':')?.trim_start();
    Some(rest)
}

/// Reads a NumPy `.npy` file of 32- or 64-bit little-endian floats.
pub fn read_npy(path: &Path) -> Result<Matrix> {
    let bytes = read_file(path)?;
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(format_err(path, "not a .npy file (bad magic)"));
    }
    let (header_len, offset) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format_err(path, format!("unsupported .npy version {v}"))),
    };
    let header = std::str::from_utf8(bytes.get(offset..offset + header_len).ok_or_else(|| format_err(path, "truncated header"))?)
        .map_err(|_| format_err(path, "header is not text"))?;
    let descr =
        header_value(header, "descr").and_then(|v| v.split('\'').nth(1)).ok_or_else(|| format_err(path, "header has no 'descr'"))?;
    let fortran = header_value(header, "fortran_order").is_some_and(|v| v.starts_with("True"));
    let shape_text = header_value(header, "shape")
        .and_then(|v| v.strip_prefix('('))
        .and_then(|v| v.split(')').next())
        .ok_or_else(|| format_err(path, "header has no 'shape'"))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| format_err(path, format!("bad shape entry '{s}'"))))
        .collect::<Result<_>>()?;
    let (rows, cols) = match shape.as_slice() {
        [n] => (*n, 1),
        [n, d] => (*n, *d),
        s => return Err(format_err(path, format!("shape {s:?}: expected a 1-D or 2-D array (samples × dimension)"))),
    };
    let body = &bytes[offset + header_len..];
    let n = rows * cols;
    let values: Vec<f32> = match descr {
        "<f4" | "=f4" if body.len() >= 4 * n => {
            body[..4 * n].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
        }
        "<f8" | "=f8" if body.len() >= 8 * n => {
            body[..8 * n].chunks_exact(8).map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32).collect()
        }
        "<f4" | "=f4" | "<f8" | "=f8" => return Err(format_err(path, format!("truncated data: {} bytes for shape {shape:?}", body.len()))),
        other => {
            return Err(format_err(
                path,
                format!("dtype '{other}': expected little-endian float32 or float64 (convert with arr.astype('float32'))"),
            ))
        }
    };
    let data = if fortran && cols > 1 { (0..n).map(|k| values[(k % cols) * rows + k / cols]).collect() } else { values };
    Ok(Matrix { data, rows, cols })
}

/// Reads numbers separated by commas or whitespace, one sample per line; a first line that is
/// not numeric is a header and skipped.
pub fn read_csv(path: &Path) -> Result<Matrix> {
    let text = String::from_utf8(read_file(path)?).map_err(|_| format_err(path, "not UTF-8 text"))?;
    let mut data = Vec::new();
    let (mut rows, mut cols) = (0usize, None);
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(|c: char| c == ',' || c.is_whitespace()).filter(|s| !s.is_empty()).collect();
        let parsed: std::result::Result<Vec<f32>, _> = fields.iter().map(|s| s.parse::<f32>()).collect();
        match parsed {
            Ok(v) => {
                match cols {
                    None => cols = Some(v.len()),
                    Some(c) if c != v.len() => {
                        return Err(format_err(path, format!("line {}: {} values, earlier lines have {c}", i + 1, v.len())))
                    }
                    _ => {}
                }
                data.extend(v);
                rows += 1;
            }
            Err(_) if rows == 0 && cols.is_none() => continue, // header
            Err(_) => return Err(format_err(path, format!("line {}: not a number in '{line}'", i + 1))),
        }
    }
    Ok(Matrix { data, rows, cols: cols.unwrap_or(0) })
}

/// Writes a `.npy` (version 1.0, little-endian float32, C order).
pub fn write_npy(path: &Path, m: &Matrix) -> Result<()> {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}", m.rows, m.cols);
    // pad so that the data starts on a 64-byte boundary, header ends with '\n'
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend((header.len() as u16).to_le_bytes());
    bytes.extend(header.as_bytes());
    for v in &m.data {
        bytes.extend(v.to_le_bytes());
    }
    std::fs::write(path, bytes).map_err(|source| DataError::Io { path: path.to_path_buf(), source })
}

/// Writes a `.csv`, one sample per line.
pub fn write_csv(path: &Path, m: &Matrix) -> Result<()> {
    let text: String = (0..m.rows).map(|i| m.row(i).iter().map(|v| v.to_string()).collect::<Vec<_>>().join(",") + "\n").collect();
    std::fs::write(path, text).map_err(|source| DataError::Io { path: path.to_path_buf(), source })
}
