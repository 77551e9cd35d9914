//! The unit tests of `nas_core::data::idx` (`nas-core/src/data/idx.rs`).

use crate::unit::testutil::{data_dir, gzip, TempFile};
use nas_core::data::idx::*;

fn images_file(n: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [IDX_IMAGES_MAGIC, n, rows, cols] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

fn labels_file(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [IDX_LABELS_MAGIC, labels.len() as u32] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    v.extend_from_slice(labels);
    v
}

fn err_of(images: &TempFile, labels: &TempFile) -> String {
    load_idx(images.path(), labels.path())
        .unwrap_err()
        .to_string()
}

#[test]
fn small_raw_and_gzip_files_load_the_same() {
    let pixels: Vec<u8> = (0..3 * 2 * 4).map(|i| (i * 10) as u8).collect();
    let img = images_file(3, 2, 4, &pixels);
    let lab = labels_file(&[2, 0, 1]);
    let (ri, rl) = (
        TempFile::new("img-raw", &img),
        TempFile::new("lab-raw", &lab),
    );
    let (gi, gl) = (
        TempFile::new("img.gz", &gzip(&img)),
        TempFile::new("lab", &gzip(&lab)),
    );
    let a = load_idx(ri.path(), rl.path()).unwrap();
    let b = load_idx(gi.path(), gl.path()).unwrap();
    assert_eq!((a.n, a.c, a.h, a.w, a.classes), (3, 1, 2, 4, 3));
    assert_eq!(a.labels, vec![2, 0, 1]);
    assert_eq!(a.images[1], 10.0 / 255.0);
    assert_eq!(a.images, b.images);
    assert_eq!(a.labels, b.labels);
    let c = load_idx_with_classes(gi.path(), gl.path(), 10).unwrap();
    assert_eq!(c.classes, 10);
}

#[test]
fn truncated_gzip_is_an_error_naming_the_file() {
    let dir = data_dir().join("fashion-mnist");
    let labels = std::fs::read(dir.join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let images = std::fs::read(dir.join("t10k-images-idx3-ubyte.gz")).unwrap();
    let good_labels = TempFile::new("good-labels.gz", &labels);
    let good_images = TempFile::new("good-images.gz", &images);
    let n = labels.len();
    for cut in [5, 20, 40, n / 2, n - 9, n - 4, n - 1] {
        let t = TempFile::new("t10k-labels-truncated.gz", &labels[..cut]);
        let e = err_of(&good_images, &t);
        assert!(e.contains(&t.name()), "cut {cut}: {e}");
        if cut >= 40 {
            assert!(e.contains("truncated gzip stream"), "cut {cut}: {e}");
        }
    }
    let t = TempFile::new("t10k-images-truncated.gz", &images[..images.len() / 2]);
    let e = err_of(&t, &good_labels);
    assert!(
        e.contains(&t.name()) && e.contains("truncated gzip stream"),
        "{e}"
    );
}

#[test]
fn huge_header_in_tiny_file_is_rejected_without_allocating() {
    let img = images_file(1_000_000_000, 28, 28, &[0u8; 100]);
    let lab = TempFile::new("labels", &labels_file(&[0]));
    let raw = TempFile::new("huge-raw-idx3-ubyte", &img);
    let e = err_of(&raw, &lab);
    assert!(
        e.contains(&raw.name()) && e.contains("1000000000 images of 28x28"),
        "{e}"
    );
    assert!(e.contains("holds 100 bytes of pixels"), "{e}");
    let gz = TempFile::new("huge-idx3-ubyte.gz", &gzip(&img));
    let e = err_of(&gz, &lab);
    assert!(
        e.contains(&gz.name()) && e.contains("1000000000 images"),
        "{e}"
    );

    // Within the size limit, but the gzip stream holds far less than claimed.
    let img = images_file(1_000_000, 28, 28, &[0u8; 100]);
    let gz = TempFile::new("short-idx3-ubyte.gz", &gzip(&img));
    let e = err_of(&gz, &lab);
    assert!(
        e.contains(&gz.name()) && e.contains("holds 100 bytes of pixels"),
        "{e}"
    );

    // Labels file claiming 4e9 labels.
    let mut lab_bytes = labels_file(&[1, 2]);
    lab_bytes[4..8].copy_from_slice(&4_000_000_000u32.to_be_bytes());
    let lab = TempFile::new("huge-labels.gz", &gzip(&lab_bytes));
    let img = TempFile::new("img", &images_file(2, 1, 1, &[0, 0]));
    let e = err_of(&img, &lab);
    assert!(
        e.contains(&lab.name()) && e.contains("4000000000 labels"),
        "{e}"
    );

    // Absurd sides.
    let img = TempFile::new("wide", &images_file(1, 1, 100_000, &[0u8; 10]));
    let e = err_of(&img, &lab);
    assert!(e.contains(&img.name()) && e.contains("1x100000"), "{e}");
}

#[test]
fn bad_magic_and_short_header() {
    let lab_bytes = labels_file(&[0, 1]);
    let lab = TempFile::new("labels-for-magic", &lab_bytes);
    // A labels file given as the images file.
    let wrong = TempFile::new("swapped-idx1-ubyte.gz", &gzip(&lab_bytes));
    let e = err_of(&wrong, &lab);
    assert!(e.contains(&wrong.name()), "{e}");
    assert!(
        e.contains("bad magic number 0x00000801, expected 0x00000803 (images)"),
        "{e}"
    );
    let mut img = images_file(2, 1, 1, &[0, 0]);
    img[3] = 0x02;
    let bad = TempFile::new("bad-magic-idx3", &img);
    let e = err_of(&bad, &lab);
    assert!(
        e.contains("bad magic number 0x00000802, expected 0x00000803 (images)"),
        "{e}"
    );
    let img = TempFile::new("ok-images", &images_file(2, 1, 1, &[0, 0]));
    let bad_lab = TempFile::new("bad-labels", &images_file(2, 1, 1, &[0, 0]));
    let e = err_of(&img, &bad_lab);
    assert!(
        e.contains(&bad_lab.name()) && e.contains("expected 0x00000801 (labels)"),
        "{e}"
    );

    let short = TempFile::new("short-header", &images_file(2, 1, 1, &[])[..10]);
    let e = err_of(&short, &lab);
    assert!(e.contains(&short.name()) && e.contains("too short"), "{e}");
    let empty = TempFile::new("empty-file", &[]);
    let e = err_of(&empty, &lab);
    assert!(
        e.contains(&empty.name()) && e.contains("holds 0 bytes"),
        "{e}"
    );
}

#[test]
fn label_out_of_range_and_count_mismatch() {
    let img = TempFile::new("six-images", &images_file(6, 1, 1, &[0; 6]));
    let lab = TempFile::new("labels-with-11", &labels_file(&[0, 1, 2, 3, 4, 11]));
    let e = load_idx_with_classes(img.path(), lab.path(), 10)
        .unwrap_err()
        .to_string();
    assert!(e.contains(&lab.name()), "{e}");
    assert!(
        e.contains("label 11 at index 5 is out of range for 10 classes"),
        "{e}"
    );

    let lab = TempFile::new("five-labels", &labels_file(&[0, 1, 2, 3, 4]));
    let e = err_of(&img, &lab);
    assert!(e.contains(&img.name()) && e.contains(&lab.name()), "{e}");
    assert!(
        e.contains("holds 6 images") && e.contains("holds 5 labels"),
        "{e}"
    );

    let mut long = images_file(6, 1, 1, &[0; 6]);
    long.push(9);
    let long = TempFile::new("trailing.gz", &gzip(&long));
    let lab = TempFile::new("six-labels", &labels_file(&[0; 6]));
    let e = err_of(&long, &lab);
    assert!(e.contains(&long.name()) && e.contains("trailing"), "{e}");
}

#[test]
fn missing_file_names_it() {
    let lab = TempFile::new("labels-x", &labels_file(&[0]));
    let p = std::env::temp_dir().join("nas-data-missing-images-idx3-ubyte.gz");
    let e = load_idx(&p, lab.path()).unwrap_err().to_string();
    assert!(e.contains("nas-data-missing-images-idx3-ubyte.gz"), "{e}");
}
