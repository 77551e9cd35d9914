//! Damaged plugin files (truncated copies, flipped header bytes) beside good ones: the
//! host checks a library before it loads it, so listing plugins and searching with a
//! good strategy go on normally, and asking for a damaged one is a clear error.

use crate::common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `nas` with `plugin_path` as NAS_PLUGIN_PATH.
fn nas(plugin_path: &std::ffi::OsStr) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nas"));
    c.current_dir(root()).env("NAS_PLUGIN_PATH", plugin_path);
    c
}

/// Runs `cmd`; the host must exit by itself (0, or 1 for its own errors), never by a
/// signal or a panic.
fn run(cmd: &mut Command) -> (bool, String, String) {
    let o: Output = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        o.status.signal().is_none(),
        "host killed by signal {:?}: {:?}\n{err}",
        o.status.signal(),
        cmd
    );
    assert!(
        matches!(o.status.code(), Some(0) | Some(1)),
        "host crashed: {:?}: {:?}\n{err}",
        o.status,
        cmd
    );
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        err,
    )
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap()) as usize
}

fn u64_at(b: &[u8], at: usize) -> usize {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize
}

/// The (offset, size, link) of the section at header index `i` of a 64-bit ELF image.
fn section(b: &[u8], i: usize) -> (usize, usize, usize) {
    let h = u64_at(b, 0x28) + i * u16_at(b, 0x3A);
    let link = u32::from_le_bytes(b[h + 0x28..h + 0x2C].try_into().unwrap()) as usize;
    (u64_at(b, h + 0x18), u64_at(b, h + 0x20), link)
}

/// The header index of the first section of type `ty`.
fn section_of_type(b: &[u8], ty: u32) -> usize {
    let (shoff, shentsize) = (u64_at(b, 0x28), u16_at(b, 0x3A));
    (0..u16_at(b, 0x3C))
        .find(|i| {
            let h = shoff + i * shentsize;
            u32::from_le_bytes(b[h + 4..h + 8].try_into().unwrap()) == ty
        })
        .expect("section present")
}

/// Damaged copies of a good plugin image, each with a name and what the host must say.
fn damaged(good: &[u8]) -> Vec<(String, Vec<u8>, &'static str)> {
    let n = good.len();
    let mut v: Vec<(String, Vec<u8>, &'static str)> = vec![];
    for cut in [10, 64, 300, 4096, n / 3, n / 2, n - 4096, n - 1] {
        v.push((format!("cut_{cut}"), good[..cut].to_vec(), "truncated"));
    }
    let mut flip = |name: &str, at: usize, xor: u8, why: &'static str| {
        let mut b = good.to_vec();
        b[at] ^= xor;
        v.push((name.to_string(), b, why));
    };
    flip("magic", 1, 0x20, "not an ELF file");
    flip("class", 4, 0x03, "64-bit");
    flip("machine", 0x12, 0x40, "machine");
    flip("phoff", 0x20 + 5, 0x10, "program header");
    flip("shoff", 0x28 + 4, 0x01, "section header");
    flip("phnum", 0x38 + 1, 0x20, "program header");
    flip("shnum", 0x3C + 1, 0x10, "section header");
    flip("shentsize", 0x3A, 0x08, "section header");
    // The first letter of an ABI symbol's name in the dynamic string table, and every
    // dynamic symbol's section index (so the ABI symbols look undefined).
    let (dynsym, dynsym_len, link) = section(good, section_of_type(good, 11 /* SHT_DYNSYM */));
    let (dynstr, dynstr_len, _) = section(good, link);
    let name = b"nas_plugin_abi_version";
    let at = good[dynstr..dynstr + dynstr_len]
        .windows(name.len())
        .position(|w| w == name)
        .expect("the ABI symbol's name");
    flip("symname", dynstr + at, 0x01, "nas_plugin_abi_version");
    let mut b = good.to_vec();
    for s in (dynsym..dynsym + dynsym_len).step_by(24) {
        b[s + 6] = 0;
        b[s + 7] = 0;
    }
    v.push(("undefined".into(), b, "nas_plugin_abi_version"));
    v
}

#[test]
fn damaged_plugins_are_refused_without_crashing_the_host() {
    let plugins = common::workspace_plugins();
    let good = std::fs::read(plugins.join("libnas_strategy_random.so")).unwrap();
    let dir = std::env::temp_dir().join(format!("nas-bad-plugins-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // A good strategy beside the damaged ones.
    std::fs::write(dir.join("libnas_strategy_random.so"), &good).unwrap();
    let bad = damaged(&good);
    for (name, bytes, _) in &bad {
        std::fs::write(dir.join(format!("libnas_strategy_bad_{name}.so")), bytes).unwrap();
    }
    let missing = dir.join("no-such-dir");
    let path = std::env::join_paths([missing.clone(), dir.clone()]).unwrap();

    // `nas plugins` lists the good one and each damaged file with its reason.
    let (ok, out, err) = run(nas(&path).arg("plugins"));
    assert!(ok, "{out}\n{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("random") && l.contains(&*dir.to_string_lossy())),
        "the good plugin is listed: {out}"
    );
    for (name, _, _) in &bad {
        let file = format!("libnas_strategy_bad_{name}.so");
        assert!(
            out.lines()
                .any(|l| l.contains("rejected") && l.contains(&file)),
            "{file} listed as rejected: {out}"
        );
    }
    assert!(
        err.contains("NAS_PLUGIN_PATH") && err.contains(&*missing.to_string_lossy()),
        "a missing plugin directory is a warning: {err}"
    );

    // A search with the good strategy runs.
    let runs = dir.join("run");
    let (ok, out, err) = run(nas(&path)
        .args([
            "search",
            "--space",
            "nb201",
            "--strategy",
            "random",
            "--budget",
            "5",
        ])
        .arg("--out")
        .arg(&runs));
    assert!(ok, "{out}\n{err}");
    assert!(out.contains("5 trials"), "{out}");

    // Asking for a damaged one is an error naming the file and what is wrong.
    for (name, _, why) in &bad {
        let file = format!("libnas_strategy_bad_{name}.so");
        let (ok, out, err) = run(nas(&path)
            .args([
                "search",
                "--space",
                "nb201",
                "--strategy",
                &format!("bad_{name}"),
                "--budget",
                "2",
                "--out",
            ])
            .arg(dir.join(format!("run-{name}"))));
        assert!(!ok, "{name}: {out}");
        assert!(
            err.contains(&file) && err.contains(why),
            "{name}: want `{why}` about {file}: {err}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// `nas plugins` lists, for each strategy, the library `nas search --strategy X` runs:
/// the first `libnas_strategy_X.so` in the plugin directories. A library declaring `X`
/// under another file name is rejected with the name it needs; a second `X` later in
/// the directories is named as shadowed by the first. Before, a `libmine.so` declaring
/// `evolution` in an earlier directory was listed as `evolution` while searches ran the
/// workspace's own.
#[test]
fn plugins_lists_what_a_search_runs() {
    let plugins = common::workspace_plugins().to_path_buf();
    let evolution = plugins.join("libnas_strategy_evolution.so");
    let dir = common::temp_path("plugins", "named");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&evolution, dir.join("libmine.so")).unwrap();
    let path = std::env::join_paths([dir.clone(), plugins.clone()]).unwrap();
    let (ok, out, err) = run(nas(&path).arg("plugins"));
    assert!(ok, "{out}\n{err}");
    let listed = |name: &str| -> String {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("no `{name}` in {out}"))
            .to_string()
    };
    assert!(
        listed("evolution").contains(&*evolution.to_string_lossy()),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.contains("rejected")
            && l.contains("libmine.so")
            && l.contains("declares strategy `evolution`")
            && l.contains("libnas_strategy_evolution.so")),
        "{out}"
    );
    // Named as a search finds it, in the first directory: listed there, and the
    // workspace's copy named as shadowed.
    std::fs::rename(
        dir.join("libmine.so"),
        dir.join("libnas_strategy_evolution.so"),
    )
    .unwrap();
    let (ok, out, err) = run(nas(&path).arg("plugins"));
    assert!(ok, "{out}\n{err}");
    let first = dir.join("libnas_strategy_evolution.so");
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().next() == Some("evolution")
                && l.contains(&*first.to_string_lossy())),
        "{out}"
    );
    assert!(
        out.lines().any(|l| l.contains("rejected")
            && l.contains(&*evolution.to_string_lossy())
            && l.contains(&format!("shadowed by {}", first.display()))),
        "{out}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A library built without the SDK (here in C) whose table leaves an entry point null is
/// refused when it loads, naming the entry, and listed as rejected, of either kind of
/// table; before, `nas plugins` listed it as fine and a search with it died of a
/// segmentation fault.
#[test]
fn a_plugin_with_a_null_entry_point_is_refused() {
    let dir = common::temp_path("plugins", "null-entry");
    std::fs::create_dir_all(&dir).unwrap();
    let abi = nas_strategies::abi::ABI_VERSION;
    // An ask/tell table (name, version, kind, then eight entry points) with `ask`, the
    // third, null; and a one-shot table (name, version, kind, `run`, `free_buf`) with a
    // null `run`.
    let head = format!(
        "#include <stdint.h>\n#include <stddef.h>\nstatic void f(void) {{}}\n\
         uint32_t nas_plugin_abi_version(void) {{ return {abi}; }}\n"
    );
    for (name, entry, table) in [
        (
            "nullask",
            "ask",
            "struct T { const char *n, *v; uint32_t k; void (*e[8])(void); };\n\
             static const struct T t = { \"nullask\", \"0.1\", 0, { f, f, NULL, f, f, f, f, f } };\n\
             const struct T *nas_plugin_table(void) { return &t; }\n",
        ),
        (
            "nullrun",
            "run",
            "struct T { const char *n, *v; uint32_t k; void (*e[2])(void); };\n\
             static const struct T t = { \"nullrun\", \"0.1\", 1, { NULL, f } };\n\
             const struct T *nas_plugin_one_shot_table(void) { return &t; }\n",
        ),
    ] {
        let src = dir.join(format!("{name}.c"));
        std::fs::write(&src, format!("{head}{table}")).unwrap();
        let lib = dir.join(format!("libnas_strategy_{name}.so"));
        let cc = Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&lib)
            .arg(&src)
            .output()
            .expect("a C compiler (cc)");
        assert!(cc.status.success(), "{}", String::from_utf8_lossy(&cc.stderr));
        let want = format!("entry point `{entry}` is null");
        let (ok, out, err) = run(nas(dir.as_os_str()).arg("plugins"));
        assert!(ok, "{out}\n{err}");
        assert!(
            out.lines().any(|l| l.contains("rejected")
                && l.contains(&format!("libnas_strategy_{name}.so"))
                && l.contains(&want)),
            "{out}"
        );
        let (ok, out, err) = run(nas(dir.as_os_str())
            .args(["search", "--space", "nb201", "--strategy", name])
            .args(["--budget", "2", "--out"])
            .arg(dir.join("run")));
        assert!(!ok, "{out}");
        assert!(err.contains(&want), "{err}");
        assert!(!dir.join("run").exists());
    }
    std::fs::remove_dir_all(&dir).ok();
}
