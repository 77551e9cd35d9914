//! Built-in spaces on images of unusual sizes and hostile space files, end to end: the
//! real binary either runs or exits with an error that says why, never with a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn nas(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_nas"))
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args(["--threads", "2"])
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A fresh directory of tiny raw IDX files: `n` train and `n` test images of
/// `size` x `size` pixels, labels cycling through 10 classes.
fn idx_dir(size: usize, n: usize) -> PathBuf {
    idx_dir_hw(size, size, n)
}

/// [`idx_dir`] with images of `h` x `w` pixels.
fn idx_dir_hw(h: usize, w: usize, n: usize) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nas-sizes-{h}x{w}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for split in ["train", "t10k"] {
        let mut img = vec![0, 0, 8, 3];
        for v in [n, h, w] {
            img.extend((v as u32).to_be_bytes());
        }
        img.extend((0..n * h * w).map(|i| (i * 37 % 251) as u8));
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte")), img).unwrap();
        let mut lab = vec![0, 0, 8, 1];
        lab.extend((n as u32).to_be_bytes());
        lab.extend((0..n).map(|i| (i % 10) as u8));
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte")), lab).unwrap();
    }
    dir
}

/// Fails on a panic (exit 101) or any other non-zero exit.
fn assert_ok(o: &Output, what: &str) {
    assert!(o.status.success(), "{what}: {:?}\n{}", o.status, text(o));
}

/// Fails unless the command exits with an error (not a panic) whose text has `want`.
fn assert_refused(o: &Output, what: &str, want: &[&str]) {
    let t = text(o);
    assert!(!o.status.success(), "{what} should fail:\n{t}");
    assert_ne!(o.status.code(), Some(101), "{what} panicked:\n{t}");
    assert!(!t.contains("panicked"), "{what} panicked:\n{t}");
    for w in want {
        assert!(t.contains(w), "{what}: the error should say `{w}`:\n{t}");
    }
}

#[test]
fn builtin_spaces_train_on_30_pixel_images() {
    let dir = idx_dir(30, 16);
    let data = dir.to_str().unwrap();
    for (space, extra) in [
        ("nb201", &["--channels", "4", "--cells", "1"][..]),
        ("darts", &["--channels", "4", "--cells", "3"][..]),
        ("seed-net", &[][..]),
    ] {
        let mut args = vec![
            "train",
            "--data",
            data,
            "--space",
            space,
            "--arch",
            "random",
            "--epochs",
            "1",
            "--batch-size",
            "8",
        ];
        args.extend(extra);
        assert_ok(&nas(&args), &format!("train {space} on 30x30"));
    }
    std::fs::remove_dir_all(dir).ok();
}

/// Images that are not square train (a 28x1 strip on nb201, 7x16 on seed-net), or are
/// refused naming their height and width (seed-net on the strip panicked in a pooling
/// kernel: the space was sized by the height alone).
#[test]
fn non_square_images_train_or_are_refused_clearly() {
    let strip = idx_dir_hw(28, 1, 8);
    let data = strip.to_str().unwrap();
    let args = [
        "train",
        "--data",
        data,
        "--epochs",
        "1",
        "--batch-size",
        "4",
    ];
    assert_refused(
        &nas(&args),
        "seed-net on 28x1",
        &["`seed-net`", "4x4", "28x1"],
    );
    let mut nb201 = args.to_vec();
    nb201.extend([
        "--space",
        "nb201",
        "--channels",
        "4",
        "--cells",
        "1",
        "--arch",
        "random",
    ]);
    assert_ok(&nas(&nb201), "nb201 on 28x1");
    let wide = idx_dir_hw(7, 16, 8);
    let data = wide.to_str().unwrap();
    assert_ok(
        &nas(&[
            "train",
            "--data",
            data,
            "--epochs",
            "1",
            "--batch-size",
            "4",
        ]),
        "seed-net on 7x16",
    );
    std::fs::remove_dir_all(strip).ok();
    std::fs::remove_dir_all(wide).ok();
}

#[test]
fn seed_net_refuses_tiny_images_clearly() {
    let dir = idx_dir(3, 8);
    let o = nas(&[
        "train",
        "--data",
        dir.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "4",
    ]);
    assert_refused(&o, "seed-net on 3x3", &["`seed-net`", "4x4", "3x3"]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn spaces_show_takes_any_input_side() {
    for side in ["30", "7", "1"] {
        let o = nas(&[
            "spaces", "--show", "--space", "nb201", "--input", "3", side, "10",
        ]);
        assert_ok(&o, &format!("spaces --show nb201 at {side}"));
    }
    let o = nas(&[
        "spaces", "--show", "--space", "seed-net", "--input", "1", "2", "10",
    ]);
    assert_refused(&o, "spaces seed-net at 2", &["`seed-net`", "4x4"]);
}

#[test]
fn hostile_space_files_are_refused_quickly() {
    let tail = r#"{"op": "gap"}, {"op": "linear", "out": "classes"}"#;
    let cases = [
        (
            format!(r#"{{"op": "conv", "out": 4, "kernel": 4294967299}}, {tail}"#),
            "layers[0].kernel: 4294967299",
        ),
        (
            format!(r#"{{"op": "conv", "out": 100000000}}, {tail}"#),
            "layers[0].out: 100000000",
        ),
        (
            format!(
                r#"{{"op": "conv", "out": 4}}, {{"repeat": "d", "depths": [1, 9223372036854775807], "body": [{{"op": "relu"}}]}}, {tail}"#
            ),
            "layers[1].depths[1]: 9223372036854775807",
        ),
    ];
    for (i, (layers, want)) in cases.iter().enumerate() {
        let p =
            std::env::temp_dir().join(format!("nas-sizes-hostile-{i}-{}.json", std::process::id()));
        std::fs::write(&p, format!(r#"{{"name": "h", "layers": [{layers}]}}"#)).unwrap();
        let t = std::time::Instant::now();
        let o = nas(&["spaces", "--space-file", p.to_str().unwrap()]);
        let took = t.elapsed();
        std::fs::remove_file(&p).ok();
        assert_refused(&o, want, &[want, "nas-sizes-hostile"]);
        assert!(took.as_secs() < 10, "{want}: took {took:?}");
    }
}

/// A space file's memory bound is taken at the batch the command trains with: a small
/// network that fits at the default batch is refused at a batch of a million images.
#[test]
fn a_space_files_bound_uses_the_batch_size() {
    let p = std::env::temp_dir().join(format!("nas-sizes-batch-{}.json", std::process::id()));
    std::fs::write(
        &p,
        r#"{"name": "b", "layers": [{"op": "conv", "out": 32}, {"op": "gap"},
            {"op": "linear", "out": "classes"}]}"#,
    )
    .unwrap();
    let file = p.to_str().unwrap();
    assert_ok(
        &nas(&["spaces", "--space-file", file]),
        "the file at batch 64",
    );
    let o = nas(&[
        "train",
        "--space-file",
        file,
        "--arch",
        "random",
        "--batch-size",
        "1000000",
        "--epochs",
        "1",
    ]);
    std::fs::remove_file(&p).ok();
    assert_refused(
        &o,
        "the file at batch 1000000",
        &["too large", "nas-sizes-batch"],
    );
}

/// `nas spaces --space-file` says why a file has no supernet (which choice), so a user
/// learns why a one-shot search of it is refused; a file with a supernet says yes.
#[test]
fn spaces_says_why_a_file_has_no_supernet() {
    let o = nas(&["spaces", "--space-file", "examples/spaces/small-cnn.json"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}");
    assert!(out.contains("supernet: no"), "{out}");
    assert!(
        out.contains("no supernet (one-shot strategies cannot search it)")
            && out.contains("value choice `stem_kernel`"),
        "{out}"
    );
    let o = nas(&["spaces", "--space-file", "tests/spaces/harmful.json"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("supernet: yes") && !out.contains("no supernet"),
        "{out}"
    );
}
