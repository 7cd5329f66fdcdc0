//! Triangle meshes as surfaces in ℝ³: vertices and faces, per-face unit normals, and the meshes
//! the suites make by code — an icosphere, a bumpy sphere r = 1 + a·Y(θ, φ), a torus.

use crate::error::{LiftError, Result};

/// A triangle mesh: vertex positions and faces as vertex-index triples.
#[derive(Clone, Debug, PartialEq)]
pub struct TriangleMesh {
    pub vertices: Vec<[f64; 3]>,
    pub faces: Vec<[usize; 3]>,
}

pub(crate) fn sub(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

pub(crate) fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

pub(crate) fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

impl TriangleMesh {
    /// A mesh after checking every index is in range, every coordinate finite and no face
    /// degenerate (zero area).
    pub fn new(vertices: Vec<[f64; 3]>, faces: Vec<[usize; 3]>) -> Result<Self> {
        if let Some((i, v)) = vertices.iter().enumerate().find(|(_, v)| v.iter().any(|c| !c.is_finite())) {
            return Err(LiftError::Input(format!("vertex {i} has a non-finite coordinate: {v:?}")));
        }
        let mesh = Self { vertices, faces };
        for (i, f) in mesh.faces.iter().enumerate() {
            if let Some(&bad) = f.iter().find(|&&v| v >= mesh.vertices.len()) {
                return Err(LiftError::Input(format!("face {i} refers to vertex {bad}, the mesh has {}", mesh.vertices.len())));
            }
            let n = mesh.face_cross(i);
            if dot(n, n) == 0.0 {
                return Err(LiftError::Input(format!("face {i} {f:?} is degenerate (zero area)")));
            }
        }
        if mesh.faces.is_empty() {
            return Err(LiftError::Input("a mesh needs at least one face".into()));
        }
        Ok(mesh)
    }

    fn face_cross(&self, i: usize) -> [f64; 3] {
        let [a, b, c] = self.faces[i].map(|v| self.vertices[v]);
        cross(sub(b, a), sub(c, a))
    }

    /// The unit normal of face `i` (right-hand rule on its vertex order).
    pub fn face_normal(&self, i: usize) -> [f64; 3] {
        let n = self.face_cross(i);
        let len = dot(n, n).sqrt();
        n.map(|c| c / len)
    }

    /// The corners of face `i`.
    pub fn triangle(&self, i: usize) -> [[f64; 3]; 3] {
        self.faces[i].map(|v| self.vertices[v])
    }

    /// The same mesh centred at its vertex mean and scaled so its farthest vertex is at distance
    /// 1 (a scanned mesh such as the Stanford bunny, brought to the scale of the others).
    pub fn centred_unit(&self) -> Self {
        let n = self.vertices.len() as f64;
        let c: [f64; 3] = std::array::from_fn(|k| self.vertices.iter().map(|v| v[k]).sum::<f64>() / n);
        let r = self.vertices.iter().map(|v| dot(sub(*v, c), sub(*v, c)).sqrt()).fold(0.0, f64::max);
        Self { vertices: self.vertices.iter().map(|v| sub(*v, c).map(|x| x / r)).collect(), faces: self.faces.clone() }
    }

    /// The unit icosphere: an icosahedron with each face split in four `subdivisions` times and
    /// the vertices pushed onto the sphere.
    pub fn icosphere(subdivisions: usize) -> Self {
        let t = (1.0 + 5f64.sqrt()) / 2.0;
        let mut vertices: Vec<[f64; 3]> = [
            [-1.0, t, 0.0],
            [1.0, t, 0.0],
            [-1.0, -t, 0.0],
            [1.0, -t, 0.0],
            [0.0, -1.0, t],
            [0.0, 1.0, t],
            [0.0, -1.0, -t],
            [0.0, 1.0, -t],
            [t, 0.0, -1.0],
            [t, 0.0, 1.0],
            [-t, 0.0, -1.0],
            [-t, 0.0, 1.0],
        ]
        .into_iter()
        .map(unit)
        .collect();
        let mut faces: Vec<[usize; 3]> = vec![
            [0, 11, 5],
            [0, 5, 1],
            [0, 1, 7],
            [0, 7, 10],
            [0, 10, 11],
            [1, 5, 9],
            [5, 11, 4],
            [11, 10, 2],
            [10, 7, 6],
            [7, 1, 8],
            [3, 9, 4],
            [3, 4, 2],
            [3, 2, 6],
            [3, 6, 8],
            [3, 8, 9],
            [4, 9, 5],
            [2, 4, 11],
            [6, 2, 10],
            [8, 6, 7],
            [9, 8, 1],
        ];
        for _ in 0..subdivisions {
            let mut midpoints = std::collections::HashMap::new();
            let mut mid = |a: usize, b: usize, vertices: &mut Vec<[f64; 3]>| -> usize {
                *midpoints.entry((a.min(b), a.max(b))).or_insert_with(|| {
                    let (p, q) = (vertices[a], vertices[b]);
                    vertices.push(unit([(p[0] + q[0]) / 2.0, (p[1] + q[1]) / 2.0, (p[2] + q[2]) / 2.0]));
                    vertices.len() - 1
                })
            };
            faces = faces
                .iter()
                .flat_map(|&[a, b, c]| {
                    let (ab, bc, ca) = (mid(a, b, &mut vertices), mid(b, c, &mut vertices), mid(c, a, &mut vertices));
                    [[a, ab, ca], [b, bc, ab], [c, ca, bc], [ab, bc, ca]]
                })
                .collect();
        }
        Self { vertices, faces }
    }

    /// The icosphere with every vertex moved to radius 1 + a·Y(θ, φ), Y = sin³θ·cos 3φ (a real
    /// spherical harmonic of degree 3, up to normalisation).
    pub fn bumpy_sphere(subdivisions: usize, amplitude: f64) -> Self {
        let mut mesh = Self::icosphere(subdivisions);
        for v in &mut mesh.vertices {
            let (theta, phi) = (v[2].clamp(-1.0, 1.0).acos(), v[1].atan2(v[0]));
            let r = 1.0 + amplitude * theta.sin().powi(3) * (3.0 * phi).cos();
            *v = v.map(|c| c * r);
        }
        mesh
    }

    /// The torus around the z-axis with major radius `major` and tube radius `minor`, `around`
    /// × `tube` quads split in two.
    pub fn torus(major: f64, minor: f64, around: usize, tube: usize) -> Self {
        let mut vertices = Vec::with_capacity(around * tube);
        for i in 0..around {
            let u = 2.0 * std::f64::consts::PI * i as f64 / around as f64;
            for j in 0..tube {
                let v = 2.0 * std::f64::consts::PI * j as f64 / tube as f64;
                let r = major + minor * v.cos();
                vertices.push([r * u.cos(), r * u.sin(), minor * v.sin()]);
            }
        }
        let idx = |i: usize, j: usize| (i % around) * tube + j % tube;
        let faces = (0..around)
            .flat_map(|i| {
                (0..tube).flat_map(move |j| [[idx(i, j), idx(i + 1, j), idx(i + 1, j + 1)], [idx(i, j), idx(i + 1, j + 1), idx(i, j + 1)]])
            })
            .collect();
        Self { vertices, faces }
    }
}

fn unit(v: [f64; 3]) -> [f64; 3] {
    let n = dot(v, v).sqrt();
    v.map(|c| c / n)
}
