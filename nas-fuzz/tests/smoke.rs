//! The fuzz targets' smoke run, what CI runs of them: every seed of `corpus/<target>/`,
//! then a fixed number of seeded random mutations of those seeds (bit flips, set bytes,
//! numbers swapped for extreme ones, truncation, insertion, deletion, duplication,
//! splices of two seeds). It is deterministic: the same inputs every run. The mutation
//! counts keep each target to a few seconds; `scripts/fuzz.sh` fuzzes for minutes.
//!
//! An input that makes a target panic is saved under cargo's temporary directory for
//! tests (the failure names the file), to be added to the corpus as `crash-<what>` once
//! the defect is fixed.

use nas_types::Rng;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The seeds of `target`, sorted by file name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    let mut seeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    seeds.sort();
    seeds
}

/// Runs `target` on `bytes`; if it panics, saves the input and fails naming it.
fn run(target: &str, what: &str, bytes: &[u8]) {
    let f = nas_fuzz::target(target).unwrap();
    if catch_unwind(AssertUnwindSafe(|| f(bytes))).is_err() {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("smoke-failures");
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("{target}-{}", what.replace(' ', "-")));
        std::fs::write(&p, bytes).unwrap();
        panic!(
            "target `{target}` panicked on {what} ({} bytes, saved to {}; see the panic above)",
            bytes.len(),
            p.display()
        );
    }
}

/// Numbers that make counts, sizes and indices go wrong.
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "255",
    "65536",
    "999999999",
    "4294967296",
    "18446744073709551615",
    "18446744073709551616",
    "1e308",
    "-1e308",
    "0.5",
    "1e-300",
    "nan",
];

/// Bytes that matter to the formats: NUL, the extremes, JSON and CSV punctuation.
const BYTES: &[u8] = b"\x00\x01\x7f\x80\xff0923-.e\"{}[],:\n";

/// Words that matter to binary headers.
const WORDS: &[u32] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    u32::MAX,
];

/// One random change of `b`; `other` is another seed, for splices.
fn mutate_once(b: &mut Vec<u8>, other: &[u8], rng: &mut Rng) {
    let at = |rng: &mut Rng, len: usize| rng.below(len + 1);
    match rng.below(10) {
        0 | 1 if !b.is_empty() => {
            let i = rng.below(b.len());
            b[i] ^= 1 << rng.below(8);
        }
        2 if !b.is_empty() => {
            let i = rng.below(b.len());
            b[i] = BYTES[rng.below(BYTES.len())];
        }
        3 => {
            let i = at(rng, b.len());
            b.truncate(i);
        }
        4 => {
            let i = at(rng, b.len());
            let n = 1 + rng.below(8);
            let ins: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
            b.splice(i..i, ins);
        }
        5 if !b.is_empty() => {
            let i = rng.below(b.len());
            let n = 1 + rng.below((b.len() - i).min(64));
            b.drain(i..i + n);
        }
        6 if !b.is_empty() => {
            let i = rng.below(b.len());
            let n = 1 + rng.below((b.len() - i).min(64));
            let chunk = b[i..i + n].to_vec();
            let j = at(rng, b.len());
            b.splice(j..j, chunk);
        }
        7 => {
            let i = at(rng, b.len());
            let j = at(rng, other.len());
            b.truncate(i);
            b.extend_from_slice(&other[j..]);
        }
        8 => {
            // A number (a run of digits) becomes an extreme one.
            let starts: Vec<usize> = (0..b.len())
                .filter(|&i| b[i].is_ascii_digit() && (i == 0 || !b[i - 1].is_ascii_digit()))
                .collect();
            if starts.is_empty() {
                return;
            }
            let s = starts[rng.below(starts.len())];
            let e = (s..b.len())
                .find(|&i| !b[i].is_ascii_digit())
                .unwrap_or(b.len());
            let n = NUMBERS[rng.below(NUMBERS.len())];
            b.splice(s..e, n.bytes());
        }
        _ if b.len() >= 4 => {
            // A word of a binary header or table becomes an extreme one.
            let i = rng.below(b.len() - 3) & !3;
            let w = WORDS[rng.below(WORDS.len())];
            let bytes = if rng.below(2) == 0 {
                w.to_be_bytes()
            } else {
                w.to_le_bytes()
            };
            b[i..i + 4].copy_from_slice(&bytes);
        }
        _ => {}
    }
}

/// Replays every seed of `target`, then `mutations` mutated seeds.
fn smoke(target: &str, mutations: usize) {
    let seeds = corpus(target);
    assert!(!seeds.is_empty(), "target `{target}` has no seeds");
    for (name, bytes) in &seeds {
        run(target, &format!("seed {name}"), bytes);
    }
    // Seeded by the target's name, so each target has its own fixed mutations.
    let seed = target
        .bytes()
        .fold(0x5eed, |h: u64, c| h.wrapping_mul(31) ^ c as u64);
    let mut rng = Rng::new(seed);
    for i in 0..mutations {
        let mut b = seeds[rng.below(seeds.len())].1.clone();
        let other = &seeds[rng.below(seeds.len())].1;
        for _ in 0..1 + rng.below(4) {
            mutate_once(&mut b, other, &mut rng);
        }
        run(target, &format!("mutation {i}"), &b);
    }
    nas_fuzz::remove_scratch();
}

#[test]
fn every_target_has_a_test_here() {
    let here = include_str!("smoke.rs");
    for (name, _) in nas_fuzz::TARGETS {
        assert!(
            here.contains(&format!("fn {name}()")),
            "no smoke test for `{name}`"
        );
    }
}

#[test]
fn idx() {
    smoke("idx", 4000);
}

#[test]
fn cifar() {
    smoke("cifar", 4000);
}

#[test]
fn space_file() {
    smoke("space_file", 5000);
}

#[test]
fn arch() {
    smoke("arch", 8000);
}

#[test]
fn config() {
    smoke("config", 2000);
}

#[test]
fn nb201_csv() {
    smoke("nb201_csv", 8000);
}

#[test]
fn journal() {
    smoke("journal", 1500);
}

#[test]
fn safetensors() {
    smoke("safetensors", 10000);
}

#[test]
fn plugin() {
    smoke("plugin", 50000);
}

#[test]
fn the_space_file_seeds_load() {
    // A seed the loader refuses covers only the error paths.
    use nas_core::space::file::FileSpace;
    for (name, bytes) in corpus("space_file") {
        if name.starts_with("crash-") {
            continue;
        }
        let (input, classes) = nas_fuzz::SHAPES[bytes[0] as usize % nas_fuzz::SHAPES.len()];
        let p = std::env::temp_dir().join(format!("nas-fuzz-seed-{}-{name}", std::process::id()));
        std::fs::write(&p, &bytes[1..]).unwrap();
        let r = FileSpace::load_for_batch(&p, input, classes, 2);
        std::fs::remove_file(&p).unwrap();
        if let Err(e) = r {
            panic!("seed {name}: {e}");
        }
    }
}
