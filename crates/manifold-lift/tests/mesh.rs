//! Meshes: generators, OBJ / PLY readers on valid and broken files, the BVH against brute force,
//! and the lift and projection on a mesh surface.

use datasets::Matrix;
use manifold_lift::mesh_io::{parse_obj, parse_ply};
use manifold_lift::{lift, project_all, read_mesh, MeshBvh, MeshNormals, MeshSurface, ProjectionConfig, Surface, TriangleMesh};
use nalgebra::{DMatrix, DVector};
use rand::{Rng, SeedableRng};
use std::path::Path;

#[test]
fn generated_meshes_have_the_right_shape() {
    let ico = TriangleMesh::icosphere(2);
    assert_eq!((ico.vertices.len(), ico.faces.len()), (162, 320));
    assert!(ico.vertices.iter().all(|v| ((v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt() - 1.0).abs() < 1e-12));
    // outward normals: every face normal points away from the centre
    assert!((0..ico.faces.len()).all(|f| {
        let n = ico.face_normal(f);
        let c = ico.triangle(f)[0];
        n[0] * c[0] + n[1] * c[1] + n[2] * c[2] > 0.0
    }));
    let torus = TriangleMesh::torus(2.0, 0.5, 24, 12);
    assert_eq!((torus.vertices.len(), torus.faces.len()), (288, 576));
    assert!(TriangleMesh::new(torus.vertices.clone(), torus.faces.clone()).is_ok());
    let moved =
        TriangleMesh::new(ico.vertices.iter().map(|v| [3.0 * v[0] + 1.0, 3.0 * v[1] - 2.0, 3.0 * v[2]]).collect(), ico.faces.clone())
            .unwrap();
    let unit = moved.centred_unit();
    assert!(unit.vertices.iter().zip(&ico.vertices).all(|(a, b)| (0..3).all(|k| (a[k] - b[k]).abs() < 1e-12)));
    let bumpy = TriangleMesh::bumpy_sphere(2, 0.2);
    let radii: Vec<f64> = bumpy.vertices.iter().map(|v| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()).collect();
    assert!(radii.iter().all(|r| (0.79..=1.21).contains(r)) && radii.iter().any(|r| *r > 1.1));
}

#[test]
fn obj_files_read_or_fail_with_the_place() {
    let p = Path::new("fixture.obj");
    let quad = "# a unit square split in two\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nvn 0 0 1\nf 1//1 2//1 3//1 4//1\n";
    let m = parse_obj(p, quad).unwrap();
    assert_eq!(m.faces, vec![[0, 1, 2], [0, 2, 3]]);
    let negative = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf -3 -2 -1\n";
    assert_eq!(parse_obj(p, negative).unwrap().faces, vec![[0, 1, 2]]);
    let cases = [
        ("v 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", "line 1"),
        ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n", "refers to vertex 8"),
        ("v 0 0 0\nv 1 0 x\n", "'x' is not a number"),
        ("v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n", "non-finite"),
        ("v 0 0 0\nv 1 0 0\nf 1 2\n", "at least three"),
        ("v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n", "degenerate"),
    ];
    for (text, expect) in cases {
        let e = parse_obj(p, text).unwrap_err().to_string();
        assert!(e.contains(expect) && e.starts_with("invalid input: fixture.obj"), "{e}");
    }
}

fn ply_binary(vertices: &[[f32; 3]], faces: &[[i32; 3]], announced_faces: usize) -> Vec<u8> {
    let mut b = format!(
        "ply\nformat binary_little_endian 1.0\ncomment made by the test\nelement vertex {}\nproperty float x\nproperty float y\nproperty float z\nproperty uchar red\nelement face {announced_faces}\nproperty list uchar int vertex_indices\nend_header\n",
        vertices.len()
    )
    .into_bytes();
    for v in vertices {
        for c in v {
            b.extend(c.to_le_bytes());
        }
        b.push(200); // the colour, skipped
    }
    for f in faces {
        b.push(3);
        for i in f {
            b.extend(i.to_le_bytes());
        }
    }
    b
}

#[test]
fn ply_files_read_or_fail_with_the_place() {
    let p = Path::new("fixture.ply");
    let ascii = "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\nelement face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n";
    assert_eq!(parse_ply(p, ascii.as_bytes()).unwrap().faces, vec![[0, 1, 2], [0, 2, 3]]);
    let verts = [[0.0f32, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let faces = [[0, 1, 2], [0, 1, 3]];
    let m = parse_ply(p, &ply_binary(&verts, &faces, 2)).unwrap();
    assert_eq!((m.vertices.len(), m.faces.len()), (4, 2));
    assert_eq!(m.vertices[3], [0.0, 0.0, 1.0]);
    // the header announces three faces, the body holds two: truncated
    let e = parse_ply(p, &ply_binary(&verts, &faces, 3)).unwrap_err().to_string();
    assert!(e.contains("face 2") && e.contains("truncated"), "{e}");
    let e = parse_ply(p, &ply_binary(&[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [f32::NAN, 1.0, 0.0]], &[[0, 1, 2]], 1)).unwrap_err().to_string();
    assert!(e.contains("non-finite"), "{e}");
    let e = parse_ply(p, ascii.replace("ascii", "binary_big_endian").as_bytes()).unwrap_err().to_string();
    assert!(e.contains("not supported"), "{e}");
    let e = parse_ply(p, b"ply\nformat ascii 1.0\nelement vertex 3\n").unwrap_err().to_string();
    assert!(e.contains("end_header"), "{e}");
    let e = read_mesh(Path::new("/nonexistent/bunny.ply")).unwrap_err().to_string();
    assert!(e.contains("cannot read"), "{e}");
    // a file round trip through the reader by extension
    let dir = std::env::temp_dir().join(format!("mesh-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("t.ply"), ply_binary(&verts, &faces, 2)).unwrap();
    assert_eq!(read_mesh(&dir.join("t.ply")).unwrap(), m);
    std::fs::remove_dir_all(&dir).ok();
}

/// The hierarchy returns the brute-force closest point (same distance) for points near, on and
/// far from the mesh.
#[test]
fn bvh_closest_point_matches_brute_force() {
    let bvh = MeshBvh::new(TriangleMesh::bumpy_sphere(2, 0.2));
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for _ in 0..500 {
        let scale = [0.3, 1.0, 1.2, 3.0][rng.random_range(0..4)];
        let p = [rng.random_range(-1.0..1.0) * scale, rng.random_range(-1.0..1.0) * scale, rng.random_range(-1.0..1.0) * scale];
        let (fast, slow) = (bvh.closest(p), bvh.closest_brute_force(p));
        assert!((fast.distance - slow.distance).abs() < 1e-12, "{p:?}: {fast:?} vs {slow:?}");
    }
}

/// On a mesh: the lift moves points along their face normal only, and projecting returns them
/// to the mesh.
#[test]
fn lift_and_project_on_a_mesh() {
    let surface = MeshSurface::new(TriangleMesh::bumpy_sphere(3, 0.15), Some(0.2));
    // face centroids: points on the mesh, inside a face
    let centroids: Vec<f32> = (0..surface.bvh.mesh.faces.len())
        .step_by(5)
        .flat_map(|f| {
            let t = surface.bvh.mesh.triangle(f);
            (0..3).map(move |k| ((t[0][k] + t[1][k] + t[2][k]) / 3.0) as f32)
        })
        .collect();
    let n = centroids.len() / 3;
    let points = Matrix::new(centroids, n, 3).unwrap();
    let lifted = lift(&surface, &points, 0.02, 4).unwrap();
    for i in 0..n {
        let z: Vec<f64> = points.row(i).iter().map(|&v| v as f64).collect();
        let d = DVector::from_iterator(3, lifted.row(i).iter().zip(&z).map(|(&x, z)| x as f64 - z));
        let tangential = (DMatrix::identity(3, 3) - surface.normal_projector(&z).unwrap()) * &d;
        assert!(tangential.amax() < 1e-6, "row {i}: {tangential}");
    }
    let (back, report) = project_all(&surface, &lifted, &ProjectionConfig::default()).unwrap();
    assert!(report.max_violation_before > 1e-3 && report.max_violation_after < 1e-6 && report.flagged == 0, "{report:?}");
    let err = back.data.iter().zip(&points.data).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(err < 0.05, "projected points far from their base points: {err}");
    // farther than the reach vouched for: flagged
    let (_, report) = project_all(&surface, &Matrix::new(vec![3.0, 0.0, 0.0], 1, 3).unwrap(), &ProjectionConfig::default()).unwrap();
    assert_eq!(report.flagged, 1);
}

/// Interpolated vertex normals on a fine icosphere are close to the exact sphere normal x/‖x‖
/// (closer than the face normals), and their projector is still an orthogonal projector.
#[test]
fn interpolated_normals_approach_the_smooth_normal() {
    let faces = MeshSurface::new(TriangleMesh::icosphere(3), None);
    let smooth = MeshSurface::new(TriangleMesh::icosphere(3), None).with_normals(MeshNormals::Interpolated);
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    let (mut err_face, mut err_smooth) = (0f64, 0f64);
    for _ in 0..200 {
        let d: [f64; 3] = [rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0), rng.random_range(-1.0..1.0)];
        let len = (d[0] * d[0] + d[1] * d[1] + d[2] * d[2]).sqrt();
        let z = faces.bvh.closest(d.map(|c| c / len)).point;
        let exact = DVector::from_iterator(3, z.iter().map(|c| c / len.max(1e-12)));
        let exact = &exact / exact.norm();
        let truth = &exact * exact.transpose();
        let (pf, ps) = (faces.normal_projector(&z).unwrap(), smooth.normal_projector(&z).unwrap());
        assert!((&ps * &ps - &ps).amax() < 1e-12 && (&ps - ps.transpose()).amax() < 1e-12);
        err_face = err_face.max((pf - &truth).amax());
        err_smooth = err_smooth.max((ps - &truth).amax());
    }
    assert!(err_smooth < 0.5 * err_face, "interpolated {err_smooth} vs face {err_face}");
}
