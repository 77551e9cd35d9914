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

#[cfg(test)]
mod tests {
    use super::super::testutil::{data_dir, gzip, TempFile};
    use super::*;

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
}
