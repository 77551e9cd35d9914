//! The unit tests of `nas_core::data` (`nas-core/src/data/mod.rs`).

use crate::unit::testutil::{data_dir, TempDir};
use nas_core::data::cifar::load_cifar10;
use nas_core::data::idx::load_idx;
use nas_core::data::*;
use nas_core::rng::Rng;

#[test]
fn fashion_mnist_loads_via_load_dir() {
    let dir = data_dir().join("fashion-mnist");
    let s = load_dir(&dir).unwrap();
    assert_eq!(s.name, "fashion-mnist");
    let t = &s.test;
    assert_eq!((t.n, t.c, t.h, t.w, t.classes), (10_000, 1, 28, 28, 10));
    assert_eq!(t.images.len(), 10_000 * 784);
    assert_eq!(t.labels.len(), 10_000);
    let mut hist = [0usize; 10];
    for &l in &t.labels {
        hist[l as usize] += 1;
    }
    assert_eq!(hist, [1000; 10]);
    let (mean, std) = t.channel_stats();
    assert!((mean[0] - 0.286).abs() < 0.005, "mean {mean:?}");
    assert!((std[0] - 0.353).abs() < 0.01, "std {std:?}");
    assert!(t.images.iter().all(|&v| (0.0..=1.0).contains(&v)));
    let tr = &s.train;
    assert_eq!(
        (tr.n, tr.c, tr.h, tr.w, tr.classes),
        (60_000, 1, 28, 28, 10)
    );
    let mut hist = [0usize; 10];
    for &l in &tr.labels {
        hist[l as usize] += 1;
    }
    assert_eq!(hist, [6000; 10]);
}

#[test]
fn normalise_gives_zero_mean_unit_std() {
    let dir = data_dir().join("fashion-mnist");
    let mut t = load_idx(
        &dir.join("t10k-images-idx3-ubyte.gz"),
        &dir.join("t10k-labels-idx1-ubyte.gz"),
    )
    .unwrap()
    .take(2000);
    let (m, s) = t.channel_stats();
    t.normalise(&m, &s);
    let (m2, s2) = t.channel_stats();
    assert!(
        m2[0].abs() < 1e-4 && (s2[0] - 1.0).abs() < 1e-4,
        "{m2:?} {s2:?}"
    );
}

#[test]
fn channel_stats_per_channel_and_constant_channel() {
    // 2 images, 2 channels of 1x2: channel 0 = {0,1,2,3}, channel 1 constant 5.
    let mut d = Dataset {
        images: vec![0.0, 1.0, 5.0, 5.0, 2.0, 3.0, 5.0, 5.0],
        labels: vec![0, 1],
        n: 2,
        c: 2,
        h: 1,
        w: 2,
        classes: 2,
    };
    let (m, s) = d.channel_stats();
    assert_eq!(m, vec![1.5, 5.0]);
    assert!((s[0] - 1.25f32.sqrt()).abs() < 1e-6 && s[1] == 0.0, "{s:?}");
    d.normalise(&m, &s);
    assert!(d.images.iter().all(|v| v.is_finite()));
    assert_eq!(d.images[2], 0.0);
    let empty = d.take(0);
    assert_eq!(empty.channel_stats(), (vec![0.0, 0.0], vec![1.0, 1.0]));
}

#[test]
fn cifar_sample_loads() {
    let d = load_cifar10(&[data_dir().join("cifar10-sample/test_batch_first20.bin")]).unwrap();
    assert_eq!((d.n, d.c, d.h, d.w, d.classes), (20, 3, 32, 32, 10));
    assert_eq!(d.images.len(), 20 * 3072);
    assert_eq!(&d.labels[..5], &[3, 8, 8, 0, 6]);
    assert!(d.images.iter().all(|&v| (0.0..=1.0).contains(&v)));
    let (m, _) = d.channel_stats();
    assert!(m.iter().all(|&x| x > 0.2 && x < 0.8), "{m:?}");
}

#[test]
fn load_dir_finds_cifar_in_subfolder() {
    let sample = std::fs::read(data_dir().join("cifar10-sample/test_batch_first20.bin")).unwrap();
    let tmp = TempDir::new("cifar-dir");
    let sub = tmp.path().join(CIFAR_SUBDIR);
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(sub.join("data_batch_1.bin"), &sample).unwrap();
    std::fs::write(sub.join("data_batch_3.bin"), &sample[..5 * 3073]).unwrap();
    std::fs::write(sub.join("test_batch.bin"), &sample[..10 * 3073]).unwrap();
    let s = load_dir(tmp.path()).unwrap();
    assert_eq!((s.train.n, s.test.n), (25, 10));
    assert_eq!(
        (s.train.c, s.train.h, s.train.w, s.train.classes),
        (3, 32, 32, 10)
    );
    assert_eq!(&s.train.labels[20..25], &s.test.labels[..5]);
    assert!(s.name.starts_with("nas-data-"), "{}", s.name);

    // Only the test batch: the error names what is missing.
    std::fs::remove_file(sub.join("data_batch_1.bin")).unwrap();
    std::fs::remove_file(sub.join("data_batch_3.bin")).unwrap();
    let e = load_dir(tmp.path()).unwrap_err().to_string();
    assert!(
        e.contains("test_batch.bin") && e.contains("data_batch_1.bin"),
        "{e}"
    );
}

#[test]
fn load_dir_errors_name_the_directory() {
    let missing = std::env::temp_dir().join("nas-data-surely-missing-dir-4711");
    let e = load_dir(&missing).unwrap_err().to_string();
    assert!(
        e.contains("nas-data-surely-missing-dir-4711") && e.contains("no such"),
        "{e}"
    );

    let tmp = TempDir::new("empty-dir");
    let e = load_dir(tmp.path()).unwrap_err().to_string();
    assert!(e.contains(&tmp.path().display().to_string()), "{e}");
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("test_batch.bin"),
        "{e}"
    );

    // A partial IDX directory says which files are missing.
    std::fs::write(tmp.path().join("train-images-idx3-ubyte.gz"), b"x").unwrap();
    let e = load_dir(tmp.path()).unwrap_err().to_string();
    assert!(
        e.contains("incomplete") && e.contains("t10k-labels-idx1-ubyte"),
        "{e}"
    );

    // A file instead of a directory.
    let f = tmp.path().join("train-images-idx3-ubyte.gz");
    let e = load_dir(&f).unwrap_err().to_string();
    assert!(e.contains("not a directory"), "{e}");
}

fn indexed(n: usize) -> Dataset {
    // Each image's pixels equal its index, labels are the index too.
    let (c, h, w) = (2, 2, 3);
    let images = (0..n)
        .flat_map(|i| std::iter::repeat(i as f32).take(c * h * w))
        .collect();
    Dataset {
        images,
        labels: (0..n as u32).collect(),
        n,
        c,
        h,
        w,
        classes: n,
    }
}

#[test]
fn split_sizes_disjoint_and_reproducible() {
    let d = indexed(103);
    let (a, b) = d.split(20, &mut Rng::new(3));
    assert_eq!((a.n, b.n), (83, 20));
    assert_eq!((a.labels.len(), b.labels.len()), (83, 20));
    assert_eq!((a.images.len(), b.images.len()), (83 * 12, 20 * 12));
    let mut all: Vec<u32> = a.labels.iter().chain(&b.labels).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..103).collect::<Vec<u32>>());
    for part in [&a, &b] {
        assert_eq!((part.c, part.h, part.w, part.classes), (2, 2, 3, 103));
        for (i, &l) in part.labels.iter().enumerate() {
            assert!(part.images[i * 12..(i + 1) * 12]
                .iter()
                .all(|&v| v == l as f32));
        }
    }
    // Shuffled, not just the tail.
    assert_ne!(b.labels, (83..103).collect::<Vec<u32>>());
    let (a2, b2) = d.split(20, &mut Rng::new(3));
    assert_eq!((a2.labels, b2.labels), (a.labels, b.labels));
    let (a3, b3) = d.split(500, &mut Rng::new(3));
    assert_eq!((a3.n, b3.n), (0, 103));
}

#[test]
fn filter_classes_keeps_listed_classes_relabelled_in_order() {
    // 30 examples, labels 0..5 in turn (6 each); pixels equal the index.
    let mut d = indexed(30);
    d.labels = (0..30).map(|i| i % 5).collect();
    d.classes = 5;
    let f = d.filter_classes(&[3, 1]).unwrap();
    assert_eq!((f.n, f.classes, f.labels.len()), (12, 2, 12));
    assert_eq!(f.images.len(), 12 * 12);
    // Class 3 becomes 0, class 1 becomes 1; the order of the examples is kept.
    let kept: Vec<usize> = (0..30).filter(|i| i % 5 == 1 || i % 5 == 3).collect();
    for (j, &i) in kept.iter().enumerate() {
        assert_eq!(f.labels[j], if i % 5 == 3 { 0 } else { 1 }, "example {i}");
        assert!(f.images[j * 12..(j + 1) * 12]
            .iter()
            .all(|&v| v == i as f32));
    }
    let count = |l: u32| f.labels.iter().filter(|&&x| x == l).count();
    assert_eq!((count(0), count(1)), (6, 6));
    assert_eq!((f.c, f.h, f.w), (d.c, d.h, d.w));
    // One class, and every class in a new order.
    let one = d.filter_classes(&[4]).unwrap();
    assert_eq!((one.n, one.classes), (6, 1));
    assert!(one.labels.iter().all(|&l| l == 0));
    let all = d.filter_classes(&[4, 3, 2, 1, 0]).unwrap();
    assert_eq!(all.n, 30);
    assert_eq!(&all.labels[..5], &[4, 3, 2, 1, 0]);

    let e = d.filter_classes(&[]).unwrap_err();
    assert!(e.contains("no classes"), "{e}");
    let e = d.filter_classes(&[1, 3, 1]).unwrap_err();
    assert!(e.contains("class 1") && e.contains("twice"), "{e}");
    let e = d.filter_classes(&[2, 5]).unwrap_err();
    assert!(e.contains("class 5") && e.contains("0..4"), "{e}");
}

#[test]
fn split_fraction_holds_out_a_reproducible_share() {
    let d = indexed(100);
    let (a, b) = d.split_fraction(0.2, &mut Rng::new(7)).unwrap();
    assert_eq!((a.n, b.n), (80, 20));
    let (a2, b2) = d.split_fraction(0.2, &mut Rng::new(7)).unwrap();
    assert_eq!((a2.labels, b2.labels), (a.labels.clone(), b.labels.clone()));
    let (_, b3) = d.split_fraction(0.2, &mut Rng::new(8)).unwrap();
    assert_ne!(b3.labels, b.labels);
    let mut all: Vec<u32> = a.labels.iter().chain(&b.labels).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..100).collect::<Vec<u32>>());
    assert_eq!(d.split_fraction(0.001, &mut Rng::new(1)).unwrap().1.n, 1);
    for bad in [0.0, 1.0, -0.5, 2.0, f64::NAN] {
        assert!(d.split_fraction(bad, &mut Rng::new(1)).is_err(), "{bad}");
    }
    let e = indexed(1)
        .split_fraction(0.5, &mut Rng::new(1))
        .unwrap_err();
    assert!(e.contains("none to train on"), "{e}");
}

#[test]
fn take_first_examples() {
    let d = indexed(10);
    let t = d.take(4);
    assert_eq!((t.n, t.len(), t.is_empty()), (4, 4, false));
    assert_eq!(t.labels, vec![0, 1, 2, 3]);
    assert_eq!(t.images, d.images[..48].to_vec());
    assert_eq!(d.take(99).n, 10);
    assert!(d.take(0).is_empty());
}
