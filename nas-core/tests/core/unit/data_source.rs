//! The unit tests of `nas_core::data::source` (`nas-core/src/data/source.rs`).

use crate::unit::testutil::{gzip, TempFile};
use nas_core::data::source::*;

#[test]
fn a_data_set_larger_than_the_memory_available_is_refused() {
    let f = TempFile::new("fits.bin", b"x");
    let src = Source::open(f.path()).unwrap();
    let claim = "1000000 images of 1024x1024";
    let e = src
        .check_fits(claim, 5 << 40, Some(8 << 30))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("fits.bin")
            && e.contains(claim)
            && e.contains("5120.00 GiB")
            && e.contains("8.00 GiB available"),
        "{e}"
    );
    assert!(src.check_fits(claim, 1 << 30, Some(8 << 30)).is_ok());
    assert!(src.check_fits(claim, 5 << 40, None).is_ok());
    assert!(
        available_memory().is_some_and(|m| m > 0),
        "Linux says how much memory is free"
    );
}

#[test]
fn detects_gzip_by_content_not_extension() {
    let payload: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let gz = TempFile::new("plain-name.bin", &gzip(&payload));
    let raw = TempFile::new("fake.gz", &payload);
    for (f, gz_expected) in [(&gz, true), (&raw, false)] {
        let mut s = Source::open(f.path()).unwrap();
        assert_eq!(s.raw_len().is_none(), gz_expected);
        let mut head = [0u8; 10];
        assert_eq!(s.read_up_to(&mut head).unwrap(), 10);
        assert_eq!(&head, &payload[..10]);
        let rest = s.read_rest(4990).unwrap();
        assert_eq!(rest, &payload[10..]);
    }
    // A limit below the data length stops after limit + 1 bytes.
    let mut s = Source::open(gz.path()).unwrap();
    assert_eq!(s.read_rest(100).unwrap().len(), 101);
}

#[test]
fn missing_file_error_names_it() {
    let p = std::env::temp_dir().join("nas-data-no-such-file-0815.bin");
    let e = Source::open(&p).err().unwrap().to_string();
    assert!(
        e.contains("nas-data-no-such-file-0815.bin") && e.contains("cannot read"),
        "{e}"
    );
}

#[test]
fn corrupt_gzip_is_reported() {
    let payload = vec![7u8; 100_000];
    let mut bytes = gzip(&payload);
    let n = bytes.len();
    bytes[n - 6] ^= 0xff; // damage the CRC / size trailer
    let f = TempFile::new("badcrc.gz", &bytes);
    let mut s = Source::open(f.path()).unwrap();
    let e = s.read_rest(200_000).unwrap_err().to_string();
    assert!(e.contains("badcrc.gz") && e.contains("corrupt gzip"), "{e}");
}
