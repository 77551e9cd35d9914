//! Writes the seed corpus of every fuzz target from the real files: run by
//! `nas-fuzz/make_corpus.sh`, which makes the run directory and the plugin library first.
//!
//! `make_corpus OUT DATA RUN PLUGIN` (run from the repository root) writes `OUT/<target>/<seed>` from the data directory
//! `DATA` (Fashion-MNIST, the CIFAR-10 sample, the NB201 table), the run directory `RUN`
//! of a short real search, and the shared library `PLUGIN`; the space files come from
//! `tests/spaces/` and `examples/spaces/`. Each seed is a small slice of a real file, or a
//! file the real code writes (architectures, weights), so the corpus stays small. Every
//! seed that comes from a valid file is checked to load, so a seed that the loaders
//! refuse is never mistaken for a good one.

use flate2::write::GzEncoder;
use flate2::Compression;
use nas_core::data::{load_cifar10, CIFAR10_RECORD_BYTES};
use nas_core::data::{load_idx, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC};
use nas_core::space::builtin::{self, InputSpec};
use nas_core::space::describe;
use nas_core::Rng;
use nas_fuzz::{join, STRATEGIES};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

fn main() {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [out, data, run, plugin] = &args[..] else {
        eprintln!("usage: make_corpus OUT DATA RUN PLUGIN");
        std::process::exit(2);
    };
    let c = Corpus { out: out.clone() };
    idx(&c, data);
    cifar(&c, data);
    space_file(&c);
    arch(&c, run);
    config(&c);
    nb201_csv(&c, data);
    journal(&c, run);
    safetensors(&c);
    plugin_seeds(&c, plugin);
}

/// Where the seeds go.
struct Corpus {
    out: PathBuf,
}

impl Corpus {
    /// Writes seed `name` of `target`.
    fn put(&self, target: &str, name: &str, bytes: &[u8]) {
        let dir = self.out.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = vec![];
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(vec![], Compression::best());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An IDX header: the magic number then the dimensions, big-endian.
fn header(fields: &[u32]) -> Vec<u8> {
    fields.iter().flat_map(|f| f.to_be_bytes()).collect()
}

/// Checks that images and labels load as IDX files.
fn check_idx(images: &[u8], labels: &[u8]) {
    let dir = std::env::temp_dir().join(format!("nas-make-corpus-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (i, l) = (dir.join("i"), dir.join("l"));
    std::fs::write(&i, images).unwrap();
    std::fs::write(&l, labels).unwrap();
    load_idx(&i, &l).expect("an IDX seed loads");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The first test images and labels of Fashion-MNIST: three whole 28x28 images (raw),
/// two (gzip, as the files ship), and four cut to their 8x8 centre (raw).
fn idx(c: &Corpus, data: &Path) {
    let dir = data.join("fashion-mnist");
    let images = gunzip(&read(&dir.join("t10k-images-idx3-ubyte.gz")));
    let labels = gunzip(&read(&dir.join("t10k-labels-idx1-ubyte.gz")));
    let (pix, lab) = (&images[16..], &labels[8..]);
    let whole = |n: usize| {
        let i = [
            header(&[IDX_IMAGES_MAGIC, n as u32, 28, 28]),
            pix[..n * 784].to_vec(),
        ]
        .concat();
        let l = [header(&[IDX_LABELS_MAGIC, n as u32]), lab[..n].to_vec()].concat();
        (i, l)
    };
    let (i, l) = whole(3);
    check_idx(&i, &l);
    c.put("idx", "t10k-3x28x28-raw", &join(&[&i, &l]));
    let (i, l) = whole(2);
    let (i, l) = (gzip(&i), gzip(&l));
    check_idx(&i, &l);
    c.put("idx", "t10k-2x28x28-gzip", &join(&[&i, &l]));
    let mut i = header(&[IDX_IMAGES_MAGIC, 4, 8, 8]);
    for k in 0..4 {
        for row in 10..18 {
            let at = k * 784 + row * 28 + 10;
            i.extend_from_slice(&pix[at..at + 8]);
        }
    }
    let l = [header(&[IDX_LABELS_MAGIC, 4]), lab[..4].to_vec()].concat();
    check_idx(&i, &l);
    c.put("idx", "t10k-4x8x8-raw", &join(&[&i, &l]));
}

/// The first record of the CIFAR-10 sample, raw and gzipped.
fn cifar(c: &Corpus, data: &Path) {
    let bytes = read(&data.join("cifar10-sample/test_batch_first20.bin"));
    let one = &bytes[..CIFAR10_RECORD_BYTES];
    for (name, b) in [("test-1-raw", one.to_vec()), ("test-1-gzip", gzip(one))] {
        let p = std::env::temp_dir().join(format!("nas-make-corpus-cifar-{}", std::process::id()));
        std::fs::write(&p, &b).unwrap();
        load_cifar10(std::slice::from_ref(&p)).expect("a CIFAR seed loads");
        std::fs::remove_file(&p).unwrap();
        c.put("cifar", name, &b);
    }
}

/// The repository's space files, each behind the byte that picks the data shape (see
/// `nas_fuzz::space_file`), and one file of every op and every kind of layer.
fn space_file(c: &Corpus) {
    let every_op = r#"{"name": "every-op", "layers": [
  {"op": "conv", "out": 4, "kernel": {"choice": "k", "values": [1, 3]}, "dilation": 1},
  {"op": "bn"}, {"op": "relu"},
  {"choice": "c", "candidates": {
    "sep": [{"op": "sep_conv", "out": 4, "kernel": 3}],
    "dil": [{"op": "dil_conv", "out": 4, "kernel": 3, "dilation": 2}],
    "grp": [{"op": "conv", "out": 4, "kernel": 3, "groups": 2}],
    "max": [{"op": "max_pool", "kernel": 3, "stride": 1}],
    "avg": [{"op": "avg_pool", "kernel": 3, "stride": 1}],
    "id": [{"op": "identity"}],
    "zero": [{"op": "zero"}]
  }},
  {"repeat": "d", "depths": [1, 2], "body": [{"residual": "r", "body": [{"op": "relu"}, {"op": "conv", "out": 4, "kernel": 1}]}]},
  {"op": "max_pool", "kernel": 2},
  {"op": "gap"}, {"op": "linear", "out": 6}, {"op": "relu"}, {"op": "linear", "out": "classes"}
]}
"#;
    // The small CNN's pooling candidate rounds odd sides down where its strided
    // convolution rounds them up, so it takes even sides only.
    let square = [(b'0', "1x8x8"), (b'1', "3x8x8")];
    let odd = [(b'0', "1x8x8"), (b'3', "2x5x7")];
    let files = [
        ("harmful", read(Path::new("tests/spaces/harmful.json")), odd),
        (
            "small-cnn",
            read(Path::new("examples/spaces/small-cnn.json")),
            square,
        ),
        ("every-op", every_op.as_bytes().to_vec(), odd),
    ];
    for (name, text, shapes) in files {
        for (pick, shape) in shapes {
            let seed = [&[pick][..], &text].concat();
            nas_fuzz::space_file(&seed);
            c.put("space_file", &format!("{name}-{shape}"), &seed);
        }
    }
}

/// The best architecture of the real run (NB201), and a random architecture of each
/// built-in space as `nas` saves them.
fn arch(c: &Corpus, run: &Path) {
    let best: serde_json::Value = serde_json::from_slice(&read(&run.join("best.json"))).unwrap();
    let p = std::env::temp_dir().join(format!("nas-make-corpus-arch-{}", std::process::id()));
    let a = serde_json::from_value(best["arch"].clone()).expect("best.json holds `arch`");
    nas_types::arch::save(&p, &a).unwrap();
    c.put("arch", "nb201-best", &read(&p));
    let input = InputSpec {
        channels: 1,
        height: 8,
        width: 8,
        classes: 3,
    };
    let mut rng = Rng::new(3);
    for name in builtin::NAMES {
        let space = builtin::by_name(name, input).unwrap();
        let a = nas_types::arch::random(&describe(space.as_ref()), &mut rng);
        nas_types::arch::save(&p, &a).unwrap();
        c.put("arch", &format!("{name}-random"), &read(&p));
    }
    std::fs::remove_file(&p).unwrap();
}

/// For each strategy (by its letter, see `nas_fuzz::STRATEGIES`): no options, and the
/// options the README shows or each strategy's fields at small values.
fn config(c: &Corpus) {
    let options: [(&str, &str); 14] = [
        ("random", r#"{}"#),
        ("grid", r#"{"shuffle": true}"#),
        (
            "evolution",
            r#"{"population": 4, "sample": 2, "objectives": ["accuracy", "params"], "limits": {"params": 1000000}}"#,
        ),
        (
            "genetic",
            r#"{"population": 4, "p_crossover": 0.5, "q_crossover": 0.3, "p_mutation": 0.8, "q_mutation": 0.1}"#,
        ),
        (
            "qlearning",
            r#"{"alpha": 0.1, "discount": 0.9, "q_init": 0.5, "replay": 4, "max_resample": 5}"#,
        ),
        (
            "pnas",
            r#"{"beam": 2, "max_candidates": 50, "hidden": 8, "ensemble": 2, "train_steps": 10, "lr": 0.01}"#,
        ),
        (
            "reinforce",
            r#"{"hidden": 8, "lr": 0.01, "batch": 2, "ppo": true, "ppo_epochs": 2}"#,
        ),
        ("darts", r#"{"order": 2}"#),
        ("snas", r#"{"tau_max": 2.0, "tau_min": 0.1}"#),
        ("gdas", r#"{"tau_max": 10.0, "tau_min": 0.1}"#),
        (
            "enas",
            r#"{"controller_steps": 3, "final_samples": 2, "final_batches": 1, "controller": {"hidden": 8}}"#,
        ),
        ("proxylessnas", r#"{"latency_weight": 0.5}"#),
        (
            "spos",
            r#"{"population": 4, "parents": 2, "generations": 2, "eval_batches": 1, "recalibrate": 1, "max_macs": 30.0}"#,
        ),
        ("fbnet", r#"{"beta": 2.0, "tau": 1.0, "weights_only": 0.5}"#),
    ];
    for (i, (name, opts)) in options.iter().enumerate() {
        assert_eq!(STRATEGIES[i], *name);
        let letter = b'a' + i as u8;
        let upper = letter.to_ascii_uppercase();
        for (suffix, pick, text) in [
            ("default", letter, "{}"),
            ("options", letter, *opts),
            ("options-other-space", upper, *opts),
        ] {
            let seed = [&[pick][..], text.as_bytes()].concat();
            nas_fuzz::config(&seed);
            c.put("config", &format!("{name}-{suffix}"), &seed);
        }
    }
}

/// The header and the first rows of the NAS-Bench-201 table.
fn nb201_csv(c: &Corpus, data: &Path) {
    let text = String::from_utf8(read(&data.join("nasbench201/nb201_cifar10.csv"))).unwrap();
    let head: String = text.lines().take(9).map(|l| format!("{l}\n")).collect();
    c.put("nb201_csv", "first-8-rows", head.as_bytes());
    let head: String = text.lines().take(2).map(|l| format!("{l}\n")).collect();
    c.put("nb201_csv", "first-row", head.as_bytes());
}

/// The real run directory (config, journal, strategy state), and its journal cut short
/// in its last line and without its last newline, as a kill leaves it.
fn journal(c: &Corpus, run: &Path) {
    let config = read(&run.join("config.json"));
    let journal = read(&run.join("journal.jsonl"));
    let state = read(&run.join("strategy_state.json"));
    c.put("journal", "run", &join(&[&config, &journal, &state]));
    let torn = &journal[..journal.len() - 40];
    c.put("journal", "run-torn", &join(&[&config, torn, &state]));
    let unended = &journal[..journal.len() - 1];
    c.put("journal", "run-no-newline", &join(&[&config, unended, b""]));
    let lines: Vec<&[u8]> = journal.split_inclusive(|&b| b == b'\n').take(3).collect();
    c.put("journal", "journal-3-trials", &lines.concat());
}

/// The weights of the small network the target loads into, as `nas` saves them, and
/// the same file without its batch-norm statistics.
fn safetensors(c: &Corpus) {
    let net = nas_fuzz::small_net();
    let p = std::env::temp_dir().join(format!("nas-make-corpus-st-{}", std::process::id()));
    nas_core::io::save_module(&p, &net).unwrap();
    c.put("safetensors", "small-net", &read(&p));
    let state = nas_core::nn::state(&net);
    let params: Vec<_> = state
        .into_iter()
        .filter(|(n, _)| !n.contains("running"))
        .collect();
    nas_core::io::save_tensors(&p, &params).unwrap();
    c.put("safetensors", "small-net-no-stats", &read(&p));
    std::fs::remove_file(&p).unwrap();
}

/// The plugin library, and its first 64 bytes (an ELF header and nothing else).
fn plugin_seeds(c: &Corpus, plugin: &Path) {
    let bytes = read(plugin);
    let tables = nas_cli::elf::check_image(
        &bytes,
        &["nas_plugin_abi_version"],
        &["nas_plugin_table", "nas_plugin_one_shot_table"],
    )
    .expect("the plugin seed passes the host's check");
    assert_eq!(tables, ["nas_plugin_table"]);
    c.put("plugin", "tiny-plugin", &bytes);
    c.put("plugin", "elf-header-only", &bytes[..64]);
}
