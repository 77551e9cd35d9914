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
