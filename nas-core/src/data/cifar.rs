//! Loading CIFAR-10 binary batch files: records of one label byte followed by 3072 pixel
//! bytes (the red, green and blue 32x32 planes, rows top to bottom), raw or gzipped.

use super::source::{available_memory, Source, MAX_FILE_BYTES};
use super::{DataError, Dataset};
use std::path::{Path, PathBuf};

/// Bytes per CIFAR-10 record: 1 label byte + 3 x 32 x 32 pixels.
pub const CIFAR10_RECORD_BYTES: usize = 1 + 3 * 32 * 32;
/// Number of CIFAR-10 classes.
pub const CIFAR10_CLASSES: usize = 10;

/// Load one or more CIFAR-10 binary batch files (each raw or gzip, detected by content)
/// into one `Dataset` of 3x32x32 images with pixels scaled to [0, 1], in file order.
pub fn load_cifar10(files: &[PathBuf]) -> Result<Dataset, DataError> {
    if files.is_empty() {
        return Err(DataError::NoFiles);
    }
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for path in files {
        let bytes = read_records(path)?;
        let records = bytes.len() / CIFAR10_RECORD_BYTES;
        images.reserve_exact(records * (CIFAR10_RECORD_BYTES - 1));
        labels.reserve_exact(records);
        for (index, rec) in bytes.chunks_exact(CIFAR10_RECORD_BYTES).enumerate() {
            let label = rec[0];
            if label as usize >= CIFAR10_CLASSES {
                return Err(DataError::LabelOutOfRange {
                    path: path.clone(),
                    label: label as u32,
                    index,
                    classes: CIFAR10_CLASSES,
                });
            }
            labels.push(label as u32);
            images.extend(rec[1..].iter().map(|&p| p as f32 / 255.0));
        }
    }
    Ok(Dataset {
        n: labels.len(),
        images,
        labels,
        c: 3,
        h: 32,
        w: 32,
        classes: CIFAR10_CLASSES,
    })
}

/// Reads a whole batch file, checking that it holds a positive whole number of records.
fn read_records(path: &Path) -> Result<Vec<u8>, DataError> {
    let mut src = Source::open(path)?;
    if let Some(len) = src.raw_len() {
        check_len(&src, len)?;
    }
    let bytes = src.read_rest(MAX_FILE_BYTES)?;
    check_len(&src, bytes.len() as u64)?;
    let records = bytes.len() / CIFAR10_RECORD_BYTES;
    // The records' pixels become 32-bit floats while the bytes are still held.
    let floats = (records * (CIFAR10_RECORD_BYTES - 1)) as u64 * 4;
    src.check_fits(
        &format!("{records} CIFAR-10 records"),
        floats,
        available_memory(),
    )?;
    Ok(bytes)
}

fn check_len(src: &Source, len: u64) -> Result<(), DataError> {
    let rec = CIFAR10_RECORD_BYTES as u64;
    let what = src.what();
    if len > MAX_FILE_BYTES {
        return Err(src.invalid(format!(
            "{what} holds more than the {MAX_FILE_BYTES}-byte limit for one data file"
        )));
    }
    if len == 0 {
        return Err(src.invalid(format!("{what} is empty; expected CIFAR-10 records")));
    }
    if len % rec != 0 {
        return Err(src.invalid(format!(
            "{what} holds {len} bytes, not a multiple of the {rec}-byte CIFAR-10 record \
             (1 label + 3x32x32 pixels): {} whole records and {} bytes over",
            len / rec,
            len % rec
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{data_dir, gzip, TempFile};
    use super::*;

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
}
