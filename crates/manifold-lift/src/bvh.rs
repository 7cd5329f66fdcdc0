//! Closest points on a triangle mesh: a bounding-volume hierarchy (axis-aligned boxes, split at
//! the median centroid along the longest axis) searched best-first, and the closest point on a
//! triangle by its Voronoi regions ("Real-Time Collision Detection", Ericson 2004, §5.1.5).

use crate::mesh::{dot, sub, TriangleMesh};

#[derive(Clone, Copy, Debug)]
struct Aabb {
    lo: [f64; 3],
    hi: [f64; 3],
}

impl Aabb {
    fn of(points: &[[f64; 3]]) -> Self {
        let point = |p: &[f64; 3]| Aabb { lo: *p, hi: *p };
        points.iter().map(point).reduce(Aabb::union).unwrap_or(Aabb { lo: [f64::INFINITY; 3], hi: [f64::NEG_INFINITY; 3] })
    }
    fn union(self, o: Aabb) -> Aabb {
        Aabb { lo: std::array::from_fn(|k| self.lo[k].min(o.lo[k])), hi: std::array::from_fn(|k| self.hi[k].max(o.hi[k])) }
    }
    /// Squared distance from `p` to the box (0 inside).
    fn distance_sq(&self, p: [f64; 3]) -> f64 {
        (0..3).map(|k| (self.lo[k] - p[k]).max(0.0).max(p[k] - self.hi[k])).map(|d| d * d).sum()
    }
}

enum Node {
    Leaf { bounds: Aabb, faces: Vec<usize> },
    Inner { bounds: Aabb, children: Box<[Node; 2]> },
}

impl Node {
    fn bounds(&self) -> Aabb {
        match self {
            Node::Leaf { bounds, .. } | Node::Inner { bounds, .. } => *bounds,
        }
    }
}

/// A mesh with its hierarchy, answering closest-point queries.
pub struct MeshBvh {
    pub mesh: TriangleMesh,
    root: Node,
}

/// The closest point on the mesh to a query: the point, its face and the distance.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClosestPoint {
    pub point: [f64; 3],
    pub face: usize,
    pub distance: f64,
}

const LEAF_SIZE: usize = 4;

impl MeshBvh {
    /// Builds the hierarchy over `mesh`'s faces.
    pub fn new(mesh: TriangleMesh) -> Self {
        let boxes: Vec<Aabb> = (0..mesh.faces.len()).map(|i| Aabb::of(&mesh.triangle(i))).collect();
        let root = build(&boxes, (0..mesh.faces.len()).collect());
        Self { mesh, root }
    }

    /// The closest point on the mesh to `p`.
    pub fn closest(&self, p: [f64; 3]) -> ClosestPoint {
        let mut best = ClosestPoint { point: p, face: usize::MAX, distance: f64::INFINITY };
        let mut best_sq = f64::INFINITY;
        let mut stack = vec![&self.root];
        while let Some(node) = stack.pop() {
            if node.bounds().distance_sq(p) >= best_sq {
                continue;
            }
            match node {
                Node::Leaf { faces, .. } => {
                    for &f in faces {
                        let q = closest_on_triangle(p, self.mesh.triangle(f));
                        let d = sub(q, p);
                        let d2 = dot(d, d);
                        if d2 < best_sq {
                            best_sq = d2;
                            best = ClosestPoint { point: q, face: f, distance: d2.sqrt() };
                        }
                    }
                }
                Node::Inner { children, .. } => {
                    // nearer child last, so it is searched first
                    let [a, b] = &**children;
                    let (near, far) = if a.bounds().distance_sq(p) <= b.bounds().distance_sq(p) { (a, b) } else { (b, a) };
                    stack.push(far);
                    stack.push(near);
                }
            }
        }
        best
    }

    /// The same query by checking every triangle (the reference the hierarchy is tested against).
    pub fn closest_brute_force(&self, p: [f64; 3]) -> ClosestPoint {
        (0..self.mesh.faces.len())
            .map(|f| {
                let q = closest_on_triangle(p, self.mesh.triangle(f));
                let d = sub(q, p);
                ClosestPoint { point: q, face: f, distance: dot(d, d).sqrt() }
            })
            .min_by(|a, b| a.distance.total_cmp(&b.distance))
            .expect("a mesh has faces")
    }
}

fn build(boxes: &[Aabb], mut faces: Vec<usize>) -> Node {
    let bounds = faces.iter().map(|&f| boxes[f]).reduce(Aabb::union).expect("non-empty");
    if faces.len() <= LEAF_SIZE {
        return Node::Leaf { bounds, faces };
    }
    let extent: [f64; 3] = std::array::from_fn(|k| bounds.hi[k] - bounds.lo[k]);
    let axis = (0..3).max_by(|&a, &b| extent[a].total_cmp(&extent[b])).unwrap_or(0);
    let centre = |f: usize| boxes[f].lo[axis] + boxes[f].hi[axis];
    faces.sort_by(|&a, &b| centre(a).total_cmp(&centre(b)));
    let right = faces.split_off(faces.len() / 2);
    Node::Inner { bounds, children: Box::new([build(boxes, faces), build(boxes, right)]) }
}

/// The closest point to `p` on the triangle (a, b, c).
pub fn closest_on_triangle(p: [f64; 3], [a, b, c]: [[f64; 3]; 3]) -> [f64; 3] {
    let (ab, ac, ap) = (sub(b, a), sub(c, a), sub(p, a));
    let (d1, d2) = (dot(ab, ap), dot(ac, ap));
    if d1 <= 0.0 && d2 <= 0.0 {
        return a;
    }
    let bp = sub(p, b);
    let (d3, d4) = (dot(ab, bp), dot(ac, bp));
    if d3 >= 0.0 && d4 <= d3 {
        return b;
    }
    let vc = d1 * d4 - d3 * d2;
    if vc <= 0.0 && d1 >= 0.0 && d3 <= 0.0 {
        let v = d1 / (d1 - d3);
        return std::array::from_fn(|k| a[k] + v * ab[k]);
    }
    let cp = sub(p, c);
    let (d5, d6) = (dot(ab, cp), dot(ac, cp));
    if d6 >= 0.0 && d5 <= d6 {
        return c;
    }
    let vb = d5 * d2 - d1 * d6;
    if vb <= 0.0 && d2 >= 0.0 && d6 <= 0.0 {
        let w = d2 / (d2 - d6);
        return std::array::from_fn(|k| a[k] + w * ac[k]);
    }
    let va = d3 * d6 - d5 * d4;
    if va <= 0.0 && (d4 - d3) >= 0.0 && (d5 - d6) >= 0.0 {
        let w = (d4 - d3) / ((d4 - d3) + (d5 - d6));
        return std::array::from_fn(|k| b[k] + w * (c[k] - b[k]));
    }
    let denom = 1.0 / (va + vb + vc);
    let (v, w) = (vb * denom, vc * denom);
    std::array::from_fn(|k| a[k] + ab[k] * v + ac[k] * w)
}
