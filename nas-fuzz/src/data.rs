//! The data loaders: IDX (MNIST, Fashion-MNIST) and CIFAR-10 batch files.

use crate::{scratch_file, split};
use nas_core::data::Dataset;
use nas_core::data::{load_cifar10, CIFAR10_CLASSES};
use nas_core::data::{load_idx, load_idx_with_classes};

/// Panics unless `d` is what a loaded set promises: `n*c*h*w` pixels in [0, 1] and `n`
/// labels below `classes`.
fn check_set(d: &Dataset, what: &str) {
    let want = d.n.checked_mul(d.c * d.h * d.w);
    assert_eq!(
        Some(d.images.len()),
        want,
        "{what}: {} pixels for n={} c={} h={} w={}",
        d.images.len(),
        d.n,
        d.c,
        d.h,
        d.w
    );
    assert_eq!(
        d.labels.len(),
        d.n,
        "{what}: {} labels for n={}",
        d.labels.len(),
        d.n
    );
    if let Some((i, p)) = d
        .images
        .iter()
        .enumerate()
        .find(|(_, p)| !(0.0..=1.0).contains(*p))
    {
        panic!("{what}: pixel {i} is {p}, outside [0, 1]");
    }
    if let Some((i, l)) = d
        .labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= d.classes)
    {
        panic!("{what}: label {i} is {l}, not below {} classes", d.classes);
    }
}

pub(crate) fn idx(bytes: &[u8]) {
    let parts = split(bytes, 2);
    let images = scratch_file("images-idx3-ubyte", parts[0]);
    let labels = scratch_file("labels-idx1-ubyte", parts.get(1).copied().unwrap_or(&[]));
    let any = load_idx(&images, &labels);
    if let Ok(d) = &any {
        check_set(d, "load_idx");
        assert_eq!(d.c, 1, "IDX images have one channel");
        let max = d.labels.iter().max().map_or(0, |&m| m as usize + 1);
        assert_eq!(d.classes, max, "load_idx infers the largest label plus one");
    }
    let ten = load_idx_with_classes(&images, &labels, 10);
    match (&any, &ten) {
        (_, Ok(d)) => {
            check_set(d, "load_idx_with_classes");
            assert_eq!(d.classes, 10);
            let a = any
                .as_ref()
                .expect("a set with 10 classes loads without a count");
            assert_eq!((a.n, a.h, a.w), (d.n, d.h, d.w));
            assert!(
                a.images == d.images && a.labels == d.labels,
                "the same bytes load alike"
            );
        }
        (Ok(a), Err(e)) => {
            // Only the class count may refuse what loads without one.
            assert!(
                a.classes > 10,
                "refused a set of {} classes: {e}",
                a.classes
            );
        }
        (Err(_), Err(_)) => {}
    }
}

pub(crate) fn cifar(bytes: &[u8]) {
    let path = scratch_file("data_batch.bin", bytes);
    if let Ok(d) = load_cifar10(std::slice::from_ref(&path)) {
        check_set(&d, "load_cifar10");
        assert_eq!((d.c, d.h, d.w, d.classes), (3, 32, 32, CIFAR10_CLASSES));
        assert!(d.n > 0, "an empty file must not load");
    }
}
