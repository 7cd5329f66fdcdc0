//! Loaders against files of the published layouts (HDF5 fixtures made by
//! `fixtures/make_bsds300_fixture.py`, an STL-10 folder written here byte by byte), and the
//! invariants of the toy densities and the natural-patch stand-in.

use datasets::natural_patches::{self, PatchCounts};
use datasets::stl10::{self, Stl10, Stl10Split};
use datasets::toy2d::Toy2d;
use datasets::{bsds300, DataError};
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("continuum-datasets-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn toys_are_seeded_and_have_their_shape() {
    for toy in Toy2d::ALL {
        let a = toy.sample(4000, 1);
        assert_eq!((a.rows, a.cols), (4000, 2));
        assert_eq!(a, toy.sample(4000, 1), "{toy}: same seed, same data");
        assert_ne!(a, toy.sample(4000, 2), "{toy}: other seed, other data");
        assert!(a.data.iter().all(|v| v.is_finite() && v.abs() < 10.0), "{toy}: values out of range");
        let m = a.column_means();
        let sd = (a.data.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 8000.0).sqrt();
        assert!(m[0].abs() < 0.6 && m[1].abs() < 0.6 && (0.8..4.0).contains(&sd), "{toy}: mean {m:?}, rms {sd}");
        assert_eq!(toy.name().parse::<Toy2d>().unwrap(), toy);
    }
    assert!("9gaussians".parse::<Toy2d>().unwrap_err().to_string().contains("expected one of 8gaussians"));
}

#[test]
fn toys_follow_their_definitions() {
    let radii = |toy: Toy2d| -> Vec<f64> {
        toy.sample(3000, 5).data.chunks(2).map(|p| ((p[0] as f64).powi(2) + (p[1] as f64).powi(2)).sqrt()).collect()
    };
    // 8 gaussians: centres at radius 4/1.414
    let mean_r = radii(Toy2d::EightGaussians).iter().sum::<f64>() / 3000.0;
    assert!((mean_r - 4.0 / 1.414).abs() < 0.15, "8gaussians mean radius {mean_r}");
    // circles: radius 3 or 1.5 up to noise of std 0.24: ≥ 95 % within two standard deviations
    let near = radii(Toy2d::Circles).iter().filter(|&&r| (r - 3.0).abs() < 0.48 || (r - 1.5).abs() < 0.48).count();
    assert!(near as f64 >= 0.95 * 3000.0, "circles: only {near} of 3000 near a circle");
    // rings: radius 3, 2.25, 1.5 or 0.75 up to noise
    assert!(radii(Toy2d::Rings).iter().all(|r| [3.0, 2.25, 1.5, 0.75].iter().any(|c| (r - c).abs() < 0.4)));
    // checkerboard: only squares with floor(x/2) + floor(y/2) even
    for p in Toy2d::Checkerboard.sample(3000, 3).data.chunks(2) {
        let parity = ((p[0] / 2.0).floor() + (p[1] / 2.0).floor()) as i64;
        assert_eq!(parity.rem_euclid(2), 0, "checkerboard point {p:?} on a white square");
    }
}

#[test]
fn bsds300_reads_both_fixture_layouts() {
    for name in ["bsds300_small_f32.hdf5", "bsds300_small_f64_gzip.hdf5"] {
        let s = bsds300::load(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(s.source, "BSDS300");
        for (k, (m, n)) in [(&s.train, 40), (&s.validation, 12), (&s.test, 16)].into_iter().enumerate() {
            assert_eq!((m.rows, m.cols), (n, 63), "{name} split {k}");
            for (i, j) in [(0, 0), (n - 1, 62), (n / 2, 17)] {
                let expect = k as f64 + i as f64 / 100.0 + j as f64 / 10000.0;
                assert!((m.row(i)[j] as f64 - expect).abs() < 1e-6, "{name} split {k} ({i},{j}): {} vs {expect}", m.row(i)[j]);
            }
        }
    }
}

#[test]
fn bsds300_missing_or_corrupt_is_one_clear_line() {
    let e = bsds300::load(Path::new("/nonexistent/BSDS300.hdf5")).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }));
    let msg = e.to_string();
    assert!(msg.contains("zenodo.org/record/1161203") && msg.contains("datasets/data/") && !msg.contains('\n'), "{msg}");

    let dir = temp_dir("bsds");
    let bad = dir.join("BSDS300.hdf5");
    std::fs::write(&bad, b"this is not an HDF5 file at all, just forty-odd bytes").unwrap();
    let msg = bsds300::load(&bad).unwrap_err().to_string();
    assert!(msg.contains("not a readable HDF5 file") && !msg.contains('\n'), "{msg}");
    // a truncated real file
    let bytes = std::fs::read(fixture("bsds300_small_f64_gzip.hdf5")).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 3]).unwrap();
    assert!(bsds300::load(&bad).is_err());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn natural_patches_follow_maf_preprocessing() {
    let counts = PatchCounts { train: 400, validation: 100, test: 100 };
    let s = natural_patches::generate(counts, 9).unwrap();
    assert_eq!(s.source, natural_patches::SOURCE);
    assert!(s.source.contains("stand-in"));
    for m in [&s.train, &s.validation, &s.test] {
        assert_eq!(m.cols, 63);
        for i in 0..m.rows {
            let row = m.row(i);
            // values are (p + u)/256 − mean ∈ (−1, 1), and the dropped pixel −Σ row too
            assert!(row.iter().all(|v| v.abs() < 1.0));
            assert!(row.iter().map(|&v| v as f64).sum::<f64>().abs() < 1.0);
        }
    }
    assert_eq!(s.train.rows, 400);
    let var = s.train.data.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / s.train.data.len() as f64;
    assert!(var > 1e-4, "patches should not be flat: variance {var}");
    let again = natural_patches::generate(counts, 9).unwrap();
    assert_eq!(again.train, s.train);
    assert_ne!(natural_patches::generate(counts, 10).unwrap().train, s.train);
    assert_eq!(natural_patches::image_names().len(), 9);
}

/// Value of pixel (i, c, row, col) in the STL-10 fixture.
fn stl_value(i: usize, c: usize, row: usize, col: usize) -> u8 {
    ((i * 31 + c * 7 + row * 3 + col * 5) % 256) as u8
}

fn write_stl10(dir: &Path, n: usize, labels: &[u8]) {
    let mut x = vec![0u8; n * stl10::IMAGE_BYTES];
    for i in 0..n {
        for c in 0..3 {
            for row in 0..96 {
                for col in 0..96 {
                    // the published layout: byte = n·27648 + c·9216 + col·96 + row
                    x[i * 27648 + c * 9216 + col * 96 + row] = stl_value(i, c, row, col);
                }
            }
        }
    }
    std::fs::write(dir.join("train_X.bin"), &x).unwrap();
    std::fs::write(dir.join("train_y.bin"), labels).unwrap();
    let folds: String = (0..10).map(|k| format!("{} {}\n", k % n, (k + 1) % n)).collect();
    std::fs::write(dir.join("fold_indices.txt"), folds).unwrap();
}

#[test]
fn stl10_reads_the_binary_layout() {
    let dir = temp_dir("stl10");
    write_stl10(&dir, 3, &[1, 10, 5]);
    let d = Stl10::load(&dir, Stl10Split::Train).unwrap();
    assert_eq!(d.len, 3);
    assert_eq!(d.labels.as_deref(), Some(&[0u8, 9, 4][..]));
    for (i, c, row, col) in [(0, 0, 0, 0), (1, 2, 95, 3), (2, 1, 10, 80)] {
        assert_eq!(d.pixel(i, c, row, col), stl_value(i, c, row, col));
    }
    let chw = d.to_chw_f32(1..3);
    assert_eq!(chw.len(), 2 * 27648);
    // (image 2, channel 1, row 10, col 80) in row-major (n, 3, 96, 96) starting at image 1
    let idx = 27648 + 9216 + 10 * 96 + 80;
    assert_eq!(chw[idx], stl_value(2, 1, 10, 80) as f32 / 255.0);
    // the same pixel channels-last: (n, 96, 96, 3)
    let hwc = d.to_hwc_f32(1..3);
    assert_eq!(hwc[27648 + (10 * 96 + 80) * 3 + 1], stl_value(2, 1, 10, 80) as f32 / 255.0);
    let folds = stl10::load_folds(&dir, 3).unwrap();
    assert_eq!(folds.len(), 10);
    assert_eq!(folds[1], vec![1, 2]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn stl10_bad_files_are_one_clear_line() {
    let dir = temp_dir("stl10bad");
    let e = Stl10::load(&dir, Stl10Split::Test).unwrap_err().to_string();
    assert!(e.contains("stl10_binary.tar.gz") && e.contains("test_X.bin") && !e.contains('\n'), "{e}");
    write_stl10(&dir, 2, &[1, 11]);
    let e = Stl10::load(&dir, Stl10Split::Train).unwrap_err().to_string();
    assert!(e.contains("label 11 of image 1"), "{e}");
    std::fs::write(dir.join("train_X.bin"), vec![0u8; 27648 + 5]).unwrap();
    let e = Stl10::load(&dir, Stl10Split::Train).unwrap_err().to_string();
    assert!(e.contains("not a whole number") && e.contains("truncated"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn npy_and_csv_read_numpy_files_and_round_trip() {
    use datasets::npy_csv::{load_matrix, write_csv, write_npy};
    let m = load_matrix(&fixture("small_f8.npy")).unwrap();
    assert_eq!((m.rows, m.cols), (2, 3));
    assert_eq!(m.data, vec![1.5, -2.0, 3.25, 4.0, 5.5, -6.75]);
    let f = load_matrix(&fixture("small_f4_fortran.npy")).unwrap();
    assert_eq!(f.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "Fortran order is transposed back");
    let e = load_matrix(&fixture("small_i8.npy")).unwrap_err().to_string();
    assert!(e.contains("dtype '<i8'") && !e.contains('\n'), "{e}");

    let dir = temp_dir("npycsv");
    write_npy(&dir.join("out.npy"), &m).unwrap();
    assert_eq!(load_matrix(&dir.join("out.npy")).unwrap(), m);
    write_csv(&dir.join("out.csv"), &m).unwrap();
    assert_eq!(load_matrix(&dir.join("out.csv")).unwrap(), m);
    std::fs::write(dir.join("h.csv"), "x,y\n1,2\n3 4\n").unwrap();
    assert_eq!(load_matrix(&dir.join("h.csv")).unwrap().data, vec![1.0, 2.0, 3.0, 4.0]);
    // bad files: ragged, NaN, empty, garbage, missing
    std::fs::write(dir.join("ragged.csv"), "1,2\n3\n").unwrap();
    assert!(load_matrix(&dir.join("ragged.csv")).unwrap_err().to_string().contains("line 2: 1 values"));
    std::fs::write(dir.join("nan.csv"), "1,2\nnan,4\n").unwrap();
    assert!(load_matrix(&dir.join("nan.csv")).unwrap_err().to_string().contains("non-finite value at row 1, column 0"));
    std::fs::write(dir.join("empty.csv"), "x,y\n").unwrap();
    assert!(load_matrix(&dir.join("empty.csv")).unwrap_err().to_string().contains("no data"));
    std::fs::write(dir.join("junk.npy"), b"hello").unwrap();
    assert!(load_matrix(&dir.join("junk.npy")).unwrap_err().to_string().contains("not a .npy file"));
    assert!(matches!(load_matrix(&dir.join("none.npy")), Err(DataError::Missing { .. })));
    std::fs::remove_dir_all(dir).ok();
}

/// The embedded UCI digits: the published count per class, the first image as in the file,
/// pixels scaled to [0, 1]; a stratified split that is disjoint, complete, seeded and keeps
/// every class in proportion; malformed rows name their line.
#[test]
fn digits_are_the_uci_set_and_split_by_class() {
    use datasets::digits::{Digits, CLASSES};
    let d = Digits::embedded().unwrap();
    assert_eq!((d.images.rows, d.images.cols, d.len()), (1797, 64, 1797));
    let mut counts = [0usize; CLASSES];
    d.labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert_eq!(counts, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
    let first: Vec<f32> = [0., 0., 5., 13., 9., 1., 0., 0.].iter().map(|v| v / 16.0).collect();
    assert_eq!((&d.images.row(0)[..8], d.labels[0]), (&first[..], 0));
    assert!(d.images.data.iter().all(|v| (0.0..=1.0).contains(v)));

    let [train, val, test] = d.stratified_split(0.1, 0.2, 7).unwrap();
    let mut all: Vec<usize> = train.iter().chain(&val).chain(&test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..1797).collect::<Vec<_>>(), "the splits are disjoint and cover the set");
    for class in 0..CLASSES as u8 {
        let share = |ids: &[usize]| ids.iter().filter(|&&i| d.labels[i] == class).count() as f64 / counts[class as usize] as f64;
        assert!((share(&test) - 0.2).abs() < 0.01 && (share(&val) - 0.1).abs() < 0.01, "class {class}");
    }
    assert_eq!(d.stratified_split(0.1, 0.2, 7).unwrap()[2], test, "same seed, same split");
    assert_ne!(d.stratified_split(0.1, 0.2, 8).unwrap()[2], test);
    assert_eq!(d.select(&test[..3]).labels, test[..3].iter().map(|&i| d.labels[i]).collect::<Vec<_>>());
    let up = d.upsampled(2).unwrap();
    assert_eq!((up.images.cols, up.len()), (256, 1797));
    // pixel (row 3, column 5) of image 4 covers rows 6–7, columns 10–11 of its enlargement
    for (i, j) in [(6, 10), (6, 11), (7, 10), (7, 11)] {
        assert_eq!(up.images.row(4)[i * 16 + j], d.images.row(4)[3 * 8 + 5]);
    }
    assert!(d.upsampled(0).is_err());

    let row = |pixel: &str, label: &str| format!("{}{pixel},{label}\n", "0,".repeat(63));
    for (text, says) in [
        ("1,2,3\n".to_string(), "line 1: 3 fields"),
        (format!("{}{}", row("0", "1"), row("17", "1")), "line 2: pixel 17 outside"),
        (row("0", "10"), "label '10' is not a class"),
        (String::new(), "no images"),
    ] {
        let e = Digits::parse_csv(&text, "test.csv").unwrap_err().to_string();
        assert!(matches!(Digits::parse_csv(&text, "t").unwrap_err(), DataError::Format { .. }) && e.contains(says), "{e}");
    }
    assert!(d.stratified_split(0.5, 0.5, 0).is_err());
}
