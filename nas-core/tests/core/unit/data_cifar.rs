//! The unit tests of `nas_core::data::cifar` (`nas-core/src/data/cifar.rs`).

use crate::unit::testutil::{data_dir, gzip, TempFile};
use nas_core::data::cifar::*;
use nas_core::data::DataError;

fn sample() -> Vec<u8> {
    std::fs::read(data_dir().join("cifar10-sample/test_batch_first20.bin")).unwrap()
}

fn err_of(f: &TempFile) -> String {
    load_cifar10(&[f.path().to_path_buf()])
        .unwrap_err()
        .to_string()
}

#[test]
fn planes_are_red_green_blue_and_gzip_works() {
    let bytes = sample();
    let d = load_cifar10(&[data_dir().join("cifar10-sample/test_batch_first20.bin")]).unwrap();
    // Image 1, green plane, row 2, column 5.
    let raw = bytes[CIFAR10_RECORD_BYTES + 1 + 1024 + 2 * 32 + 5];
    assert_eq!(d.images[3072 + 1024 + 2 * 32 + 5], raw as f32 / 255.0);
    let gz = TempFile::new("cifar-sample.bin", &gzip(&bytes));
    let g = load_cifar10(&[gz.path().to_path_buf(), gz.path().to_path_buf()]).unwrap();
    assert_eq!(g.n, 40);
    assert_eq!(&g.images[..d.images.len()], &d.images[..]);
    assert_eq!(&g.labels[20..], &d.labels[..]);
}

#[test]
fn bad_length_is_an_error_naming_the_file() {
    let bytes = sample();
    let f = TempFile::new(
        "test_batch-cut.bin",
        &bytes[..3 * CIFAR10_RECORD_BYTES + 100],
    );
    let e = err_of(&f);
    assert!(
        e.contains(&f.name()) && e.contains("not a multiple of the 3073-byte"),
        "{e}"
    );
    assert!(e.contains("3 whole records and 100 bytes over"), "{e}");
    let gz = TempFile::new("test_batch-cut.bin.gz", &gzip(&bytes[..5000]));
    let e = err_of(&gz);
    assert!(
        e.contains(&gz.name()) && e.contains("not a multiple"),
        "{e}"
    );
    let empty = TempFile::new("test_batch-empty.bin", &[]);
    let e = err_of(&empty);
    assert!(e.contains(&empty.name()) && e.contains("empty"), "{e}");
}

#[test]
fn label_out_of_range_names_file_and_index() {
    let mut bytes = sample();
    bytes[2 * CIFAR10_RECORD_BYTES] = 11;
    let f = TempFile::new("bad-label.bin", &bytes);
    let e = err_of(&f);
    assert!(e.contains(&f.name()), "{e}");
    assert!(
        e.contains("label 11 at index 2 is out of range for 10 classes"),
        "{e}"
    );
}

#[test]
fn missing_file_and_no_files() {
    let p = std::env::temp_dir().join("nas-data-missing-cifar-batch.bin");
    let e = load_cifar10(&[p]).unwrap_err().to_string();
    assert!(e.contains("nas-data-missing-cifar-batch.bin"), "{e}");
    assert!(matches!(load_cifar10(&[]), Err(DataError::NoFiles)));
}
