//! Reading triangle meshes: Wavefront OBJ (`v` and `f` records; polygons split into fans;
//! `i`, `i/t`, `i/t/n`, `i//n` and negative indices) and PLY (ASCII and binary little-endian;
//! `vertex` x, y, z and `face` vertex index lists; other elements and properties skipped).
//! Every error is one line naming the file and the place.

use crate::error::{LiftError, Result};
use crate::mesh::TriangleMesh;
use std::path::Path;

fn fail(path: &Path, place: impl std::fmt::Display, reason: impl std::fmt::Display) -> LiftError {
    LiftError::Input(format!("{}: {place}: {reason}", path.display()))
}

/// Reads an `.obj` or `.ply` file by its extension.
pub fn read_mesh(path: &Path) -> Result<TriangleMesh> {
    let bytes = std::fs::read(path).map_err(|e| fail(path, "cannot read", e))?;
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("obj") => parse_obj(path, &String::from_utf8_lossy(&bytes)),
        Some("ply") => parse_ply(path, &bytes),
        _ => Err(fail(path, "format", "expected a .obj or .ply file")),
    }
}

/// Parses OBJ text (`path` names it in errors).
pub fn parse_obj(path: &Path, text: &str) -> Result<TriangleMesh> {
    let (mut vertices, mut faces) = (Vec::new(), Vec::new());
    for (n, line) in text.lines().enumerate() {
        let place = format!("line {}", n + 1);
        let mut tokens = line.split_whitespace();
        match tokens.next() {
            Some("v") => {
                let c: Vec<f64> = tokens
                    .take(3)
                    .map(|t| t.parse::<f64>().map_err(|_| fail(path, &place, format!("'{t}' is not a number"))))
                    .collect::<Result<_>>()?;
                let [x, y, z] = c[..] else { return Err(fail(path, &place, "a vertex needs three coordinates")) };
                vertices.push([x, y, z]);
            }
            Some("f") => {
                let idx: Vec<usize> = tokens
                    .map(|t| {
                        let i: i64 = t
                            .split('/')
                            .next()
                            .unwrap_or("")
                            .parse()
                            .map_err(|_| fail(path, &place, format!("'{t}' is not a vertex index")))?;
                        let resolved = if i < 0 { vertices.len() as i64 + i } else { i - 1 };
                        usize::try_from(resolved).map_err(|_| fail(path, &place, format!("vertex index {i} out of range")))
                    })
                    .collect::<Result<_>>()?;
                if idx.len() < 3 {
                    return Err(fail(path, &place, "a face needs at least three vertices"));
                }
                faces.extend((1..idx.len() - 1).map(|k| [idx[0], idx[k], idx[k + 1]]));
            }
            _ => {}
        }
    }
    TriangleMesh::new(vertices, faces).map_err(|e| fail(path, "mesh", e))
}

#[derive(Clone, Copy, Debug)]
enum Scalar {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    F32,
    F64,
}

impl Scalar {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "char" | "int8" => Self::I8,
            "uchar" | "uint8" => Self::U8,
            "short" | "int16" => Self::I16,
            "ushort" | "uint16" => Self::U16,
            "int" | "int32" => Self::I32,
            "uint" | "uint32" => Self::U32,
            "float" | "float32" => Self::F32,
            "double" | "float64" => Self::F64,
            _ => return None,
        })
    }
    fn size(self) -> usize {
        match self {
            Self::I8 | Self::U8 => 1,
            Self::I16 | Self::U16 => 2,
            Self::I32 | Self::U32 | Self::F32 => 4,
            Self::F64 => 8,
        }
    }
}

enum Property {
    Scalar(String, Scalar),
    List(String, Scalar, Scalar),
}

struct Element {
    name: String,
    count: usize,
    properties: Vec<Property>,
}

/// The body of a PLY file, read value by value.
enum Body<'a> {
    Ascii(std::str::SplitWhitespace<'a>),
    Binary(&'a [u8]),
}

impl Body<'_> {
    fn read(&mut self, ty: Scalar) -> Option<f64> {
        match self {
            Body::Ascii(tokens) => tokens.next()?.parse().ok(),
            Body::Binary(bytes) => {
                let n = ty.size();
                if bytes.len() < n {
                    return None;
                }
                let (head, rest) = bytes.split_at(n);
                *bytes = rest;
                Some(match ty {
                    Scalar::I8 => head[0] as i8 as f64,
                    Scalar::U8 => head[0] as f64,
                    Scalar::I16 => i16::from_le_bytes([head[0], head[1]]) as f64,
                    Scalar::U16 => u16::from_le_bytes([head[0], head[1]]) as f64,
                    Scalar::I32 => i32::from_le_bytes([head[0], head[1], head[2], head[3]]) as f64,
                    Scalar::U32 => u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as f64,
                    Scalar::F32 => f32::from_le_bytes([head[0], head[1], head[2], head[3]]) as f64,
                    Scalar::F64 => f64::from_le_bytes(std::array::from_fn(|k| head[k])),
                })
            }
        }
    }
}

/// Parses a PLY file's bytes (`path` names it in errors).
pub fn parse_ply(path: &Path, bytes: &[u8]) -> Result<TriangleMesh> {
    const END: &[u8] = b"end_header";
    let end = bytes.windows(END.len()).position(|w| w == END).ok_or_else(|| fail(path, "header", "no end_header line"))?;
    let body_start = bytes[end..]
        .iter()
        .position(|&b| b == b'\n')
        .map(|p| end + p + 1)
        .ok_or_else(|| fail(path, "header", "nothing after end_header"))?;
    let header = String::from_utf8_lossy(&bytes[..end]);
    let mut lines = header.lines();
    if lines.next().map(str::trim) != Some("ply") {
        return Err(fail(path, "line 1", "not a PLY file (no 'ply' magic)"));
    }
    let (mut binary, mut elements) = (None, Vec::<Element>::new());
    for (n, line) in lines.enumerate() {
        let place = format!("header line {}", n + 2);
        let t: Vec<&str> = line.split_whitespace().collect();
        match t.as_slice() {
            ["format", "ascii", _] => binary = Some(false),
            ["format", "binary_little_endian", _] => binary = Some(true),
            ["format", other, _] => {
                return Err(fail(path, &place, format!("format '{other}' is not supported (ascii or binary_little_endian)")))
            }
            ["element", name, count] => {
                let count = count.parse().map_err(|_| fail(path, &place, format!("element count '{count}' is not a number")))?;
                elements.push(Element { name: name.to_string(), count, properties: Vec::new() });
            }
            ["property", "list", count_ty, item_ty, name] => {
                let (Some(c), Some(i)) = (Scalar::parse(count_ty), Scalar::parse(item_ty)) else {
                    return Err(fail(path, &place, "unknown list property type"));
                };
                elements.last_mut().ok_or_else(|| fail(path, &place, "property before any element"))?.properties.push(Property::List(
                    name.to_string(),
                    c,
                    i,
                ));
            }
            ["property", ty, name] => {
                let ty = Scalar::parse(ty).ok_or_else(|| fail(path, &place, format!("unknown property type '{ty}'")))?;
                elements
                    .last_mut()
                    .ok_or_else(|| fail(path, &place, "property before any element"))?
                    .properties
                    .push(Property::Scalar(name.to_string(), ty));
            }
            ["comment", ..] | ["obj_info", ..] | [] => {}
            _ => return Err(fail(path, &place, format!("unexpected '{line}'"))),
        }
    }
    let binary = binary.ok_or_else(|| fail(path, "header", "no format line"))?;
    let rest = &bytes[body_start..];
    let ascii_text;
    let mut body = if binary {
        Body::Binary(rest)
    } else {
        ascii_text = String::from_utf8_lossy(rest);
        Body::Ascii(ascii_text.split_whitespace())
    };
    let (mut vertices, mut faces) = (Vec::new(), Vec::new());
    for el in &elements {
        for r in 0..el.count {
            let place = format!("{} {r}", el.name);
            let truncated = || fail(path, &place, format!("truncated or malformed: the header announces {} {} records", el.count, el.name));
            let mut xyz = [f64::NAN; 3];
            for p in &el.properties {
                match p {
                    Property::Scalar(name, ty) => {
                        let v = body.read(*ty).ok_or_else(truncated)?;
                        if let Some(k) = ["x", "y", "z"].iter().position(|c| c == name) {
                            xyz[k] = v;
                        }
                    }
                    Property::List(name, count_ty, item_ty) => {
                        let count = body.read(*count_ty).ok_or_else(truncated)? as usize;
                        let items: Vec<f64> = (0..count).map(|_| body.read(*item_ty).ok_or_else(truncated)).collect::<Result<_>>()?;
                        if el.name == "face" && (name == "vertex_indices" || name == "vertex_index") {
                            if items.len() < 3 || items.iter().any(|&i| i < 0.0) {
                                return Err(fail(path, &place, "a face needs at least three non-negative vertex indices"));
                            }
                            faces.extend((1..items.len() - 1).map(|k| [items[0] as usize, items[k] as usize, items[k + 1] as usize]));
                        }
                    }
                }
            }
            if el.name == "vertex" {
                vertices.push(xyz);
            }
        }
    }
    TriangleMesh::new(vertices, faces).map_err(|e| fail(path, "mesh", e))
}
