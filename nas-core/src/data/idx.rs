//! Loading IDX image and label files (the MNIST / Fashion-MNIST format), raw or gzipped.
//!
//! An images file is a big-endian header `0x00000803, n, rows, cols` followed by
//! `n * rows * cols` unsigned bytes; a labels file is `0x00000801, n` followed by `n` bytes.

use super::source::{available_memory, Source, MAX_FILE_BYTES};
use super::{DataError, Dataset};
use std::path::Path;

/// Magic number of an IDX file of unsigned-byte images (3 dimensions).
pub const IDX_IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels (1 dimension).
pub const IDX_LABELS_MAGIC: u32 = 0x0000_0801;

/// Largest image side accepted from a header.
const MAX_SIDE: u32 = 1 << 15;

/// Load an IDX images file and its labels file (each raw or gzip, detected by content)
/// into a one-channel `Dataset` with pixels scaled to [0, 1]. The number of classes is
/// inferred as the largest label plus one; use [`load_idx_with_classes`] to enforce a count.
pub fn load_idx(images: &Path, labels: &Path) -> Result<Dataset, DataError> {
    load(images, labels, None)
}

/// Like [`load_idx`], but every label must be below `classes` (an error names the file,
/// the label and its index otherwise), and the set's `classes` is that count.
pub fn load_idx_with_classes(
    images: &Path,
    labels: &Path,
    classes: usize,
) -> Result<Dataset, DataError> {
    load(images, labels, Some(classes))
}

fn load(images: &Path, labels: &Path, classes: Option<usize>) -> Result<Dataset, DataError> {
    let (n, h, w, pixels) = read_images(images)?;
    let label_bytes = read_labels(labels)?;
    if label_bytes.len() != n {
        return Err(DataError::CountMismatch {
            images: images.to_path_buf(),
            labels: labels.to_path_buf(),
            n_images: n,
            n_labels: label_bytes.len(),
        });
    }
    let classes = match classes {
        Some(k) => {
            if let Some((index, &l)) = label_bytes
                .iter()
                .enumerate()
                .find(|&(_, &l)| l as usize >= k)
            {
                return Err(DataError::LabelOutOfRange {
                    path: labels.to_path_buf(),
                    label: l as u32,
                    index,
                    classes: k,
                });
            }
            k
        }
        None => label_bytes.iter().max().map_or(0, |&m| m as usize + 1),
    };
    Ok(Dataset {
        images: pixels.iter().map(|&p| p as f32 / 255.0).collect(),
        labels: label_bytes.iter().map(|&l| l as u32).collect(),
        n,
        c: 1,
        h,
        w,
        classes,
    })
}

/// Reads the header, checking the magic number and that the file holds at least `buf.len()`
/// header bytes. Returns the header's big-endian u32 fields (magic first).
fn read_header<const K: usize>(
    src: &mut Source,
    expected: u32,
    what: &'static str,
) -> Result<[u32; K], DataError> {
    let mut buf = [0u8; 16];
    let buf = &mut buf[..4 * K];
    let got = src.read_up_to(buf)?;
    if got >= 4 {
        let found = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
        if found != expected {
            return Err(DataError::BadMagic {
                path: src.path().to_path_buf(),
                found,
                expected,
                what,
                hint: magic_hint(found).into(),
            });
        }
    }
    if got < buf.len() {
        return Err(src.invalid(format!(
            "{} holds {got} bytes, too short for an IDX {what} header of {} bytes",
            src.what(),
            buf.len()
        )));
    }
    let mut fields = [0u32; K];
    for (f, b) in fields.iter_mut().zip(buf.chunks_exact(4)) {
        *f = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    }
    Ok(fields)
}

/// A few words on what a wrong magic number suggests.
fn magic_hint(found: u32) -> &'static str {
    match found {
        IDX_IMAGES_MAGIC => "; this is an IDX images file",
        IDX_LABELS_MAGIC => "; this is an IDX labels file",
        m if m >> 16 == 0 => "; an IDX file of another type or dimension",
        _ => "; not an IDX file",
    }
}

/// Reads the body of a file whose header says it holds `expected` more bytes, checking the
/// claim against the real file length (raw) or the decompressed data (gzip) without
/// allocating for a claim the file cannot back. `claim` describes the header for messages.
fn read_body(
    src: &mut Source,
    header_len: u64,
    expected: Option<u64>,
    claim: &str,
    unit: &str,
) -> Result<Vec<u8>, DataError> {
    let size = expected.map_or_else(|| "more than 2^64".to_string(), |e| e.to_string());
    // A raw file's real length is known: compare against it before anything else.
    if let Some(len) = src.raw_len() {
        let held = len.saturating_sub(header_len);
        if expected != Some(held) {
            return Err(src.invalid(format!(
                "header says {claim} ({size} bytes) but the file holds {held} bytes of {unit}"
            )));
        }
    }
    let expected = match expected {
        Some(e) if e <= MAX_FILE_BYTES => e,
        _ => {
            return Err(src.invalid(format!(
                "header says {claim} ({size} bytes of {unit}), more than the \
                 {MAX_FILE_BYTES}-byte limit for one data file"
            )));
        }
    };
    // The bytes, then one 32-bit value (a float, a label) per byte.
    src.check_fits(claim, expected.saturating_mul(5), available_memory())?;
    let body = src.read_rest(expected)?;
    let held = body.len() as u64;
    if held < expected {
        return Err(src.invalid(format!(
            "header says {claim} ({expected} bytes) but the {} holds {held} bytes of {unit}",
            src.what()
        )));
    }
    if held > expected {
        return Err(src.invalid(format!(
            "header says {claim} ({expected} bytes) but the {} holds more bytes of {unit} \
             (trailing data)",
            src.what()
        )));
    }
    Ok(body)
}

/// Reads an IDX images file: (n, rows, cols, pixels).
fn read_images(path: &Path) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    let mut src = Source::open(path)?;
    let [_, n, rows, cols] = read_header::<4>(&mut src, IDX_IMAGES_MAGIC, "images")?;
    if rows == 0 || cols == 0 || rows > MAX_SIDE || cols > MAX_SIDE {
        return Err(src.invalid(format!(
            "header says images of {rows}x{cols}; each side must be between 1 and {MAX_SIDE}"
        )));
    }
    let expected = (n as u64).checked_mul(rows as u64 * cols as u64);
    let claim = format!("{n} images of {rows}x{cols}");
    let pixels = read_body(&mut src, 16, expected, &claim, "pixels")?;
    Ok((n as usize, rows as usize, cols as usize, pixels))
}

/// Reads an IDX labels file.
fn read_labels(path: &Path) -> Result<Vec<u8>, DataError> {
    let mut src = Source::open(path)?;
    let [_, n] = read_header::<2>(&mut src, IDX_LABELS_MAGIC, "labels")?;
    read_body(
        &mut src,
        8,
        Some(n as u64),
        &format!("{n} labels"),
        "labels",
    )
}
