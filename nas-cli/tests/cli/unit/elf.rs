//! The unit tests of `nas_cli::elf` (`nas-cli/src/elf.rs`).

use nas_cli::elf::*;

#[test]
fn short_foreign_and_32_bit_files_are_named_for_what_they_are() {
    let check = |b: &[u8]| check_image(b, &["f"], &[]).unwrap_err();
    assert!(check(b"").contains("truncated"), "{}", check(b""));
    assert!(check(b"\x7fEL").contains("truncated"));
    assert!(check(b"MZ\x90\x00 a PE file").contains("not an ELF file"));
    let mut h = vec![0u8; EHDR_SIZE];
    h[..4].copy_from_slice(MAGIC);
    assert!(check(&h[..20]).contains("truncated"));
    h[4] = 1;
    assert!(check(&h).contains("64-bit"), "{}", check(&h));
    h[4] = CLASS_64;
    h[5] = 7;
    assert!(check(&h).contains("byte order"), "{}", check(&h));
}

#[test]
fn a_table_past_the_end_of_the_file_is_refused_without_overflow() {
    assert!(table_end("t", u64::MAX - 1, 56, 2, 100)
        .unwrap_err()
        .contains("overflow"));
    assert!(table_end("t", 64, 56, 2, 100)
        .unwrap_err()
        .contains("truncated"));
    table_end("t", 64, 56, 2, 176).unwrap();
}
