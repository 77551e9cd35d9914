//! The unit tests of `nas_core::data::batches` (`nas-core/src/data/batches.rs`).

use nas_core::data::batches::*;
use nas_core::data::Dataset;
use nas_core::rng::Rng;

/// n images of 1x2x3 whose pixels are 100*i + position + 1 (so none is 0), label i.
fn tiny(n: usize) -> Dataset {
    let images = (0..n)
        .flat_map(|i| (0..6).map(move |p| (100 * i + p + 1) as f32))
        .collect();
    Dataset {
        images,
        labels: (0..n as u32).collect(),
        n,
        c: 1,
        h: 2,
        w: 3,
        classes: n,
    }
}

/// An endless stream gives full batches only, covers each pass once without repeats,
/// reshuffles between passes, and resumes from its state to the same batches.
#[test]
fn endless_stream_passes_and_resumes() {
    let d = tiny(10);
    let mut s = Batches::endless(&d, 3, 7).unwrap();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let mut labels = vec![];
    let mut saved = None;
    let mut after = vec![];
    for step in 0..12 {
        if step == 5 {
            saved = s.state();
        }
        assert_eq!(s.next_into(&mut x, &mut y), Some(3));
        assert_eq!(x.len(), 3 * d.image_len());
        if step >= 5 {
            after.push(y.clone());
        }
        labels.push(y.clone());
    }
    // Three full batches per pass of 10: each pass's 9 labels are distinct.
    for pass in labels.chunks(3) {
        let mut seen: Vec<u32> = pass.concat();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 9);
    }
    assert_ne!(labels[0..3].concat(), labels[3..6].concat(), "no reshuffle");
    let mut r = Batches::endless(&d, 3, 99).unwrap();
    r.restore(&saved.unwrap());
    for want in after {
        r.next_into(&mut x, &mut y);
        assert_eq!(y, want);
    }
    assert!(Batches::endless(&d, 11, 0).is_err());
    assert!(
        Batches::new(&d, 3, true, false, Augment::default(), &mut Rng::new(0))
            .state()
            .is_none()
    );
}

fn epoch(
    d: &Dataset,
    bs: usize,
    shuffle: bool,
    drop: bool,
    aug: Augment,
    seed: u64,
) -> Vec<Vec<u32>> {
    let mut rng = Rng::new(seed);
    let mut it = Batches::new(d, bs, shuffle, drop, aug, &mut rng);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let mut out = Vec::new();
    let nb = it.num_batches();
    while let Some(b) = it.next_into(&mut x, &mut y) {
        assert_eq!((x.len(), y.len()), (b * d.image_len(), b));
        out.push(y.clone());
    }
    assert_eq!(out.len(), nb);
    assert_eq!(it.next_into(&mut x, &mut y), None);
    out
}

#[test]
fn shuffled_epoch_covers_each_example_once_with_partial_last_batch() {
    let d = tiny(23);
    let batches = epoch(&d, 5, true, false, Augment::default(), 1);
    assert_eq!(
        batches.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![5, 5, 5, 5, 3]
    );
    let mut all: Vec<u32> = batches.concat();
    assert_ne!(all, (0..23).collect::<Vec<u32>>(), "not shuffled");
    all.sort_unstable();
    assert_eq!(all, (0..23).collect::<Vec<u32>>());

    let dropped = epoch(&d, 5, true, true, Augment::default(), 1);
    assert_eq!(dropped.len(), 4);
    assert!(dropped.iter().all(|b| b.len() == 5));
    let exact = epoch(&d, 23, true, true, Augment::default(), 1);
    assert_eq!(exact.len(), 1);
    assert_eq!(epoch(&d, 30, true, true, Augment::default(), 1).len(), 0);
    assert_eq!(
        epoch(&d.take(0), 4, true, false, Augment::default(), 1).len(),
        0
    );
}

#[test]
fn in_order_without_shuffle_and_pixels_follow_labels() {
    let d = tiny(7);
    let mut rng = Rng::new(0);
    let mut it = Batches::new(&d, 3, false, false, Augment::default(), &mut rng);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let mut seen = Vec::new();
    while let Some(b) = it.next_into(&mut x, &mut y) {
        for k in 0..b {
            assert_eq!(&x[k * 6..(k + 1) * 6], &d.images[y[k] as usize * 6..][..6]);
        }
        seen.extend_from_slice(&y);
    }
    assert_eq!(seen, (0..7).collect::<Vec<u32>>());
}

#[test]
fn reproducible_for_same_seed_and_epochs_differ() {
    let d = tiny(50);
    let aug = Augment {
        random_crop_pad: 1,
        hflip: true,
    };
    let run = |seed| {
        let mut rng = Rng::new(seed);
        let mut xs = Vec::new();
        for _ in 0..2 {
            let mut it = Batches::new(&d, 8, true, false, aug.clone(), &mut rng);
            let (mut x, mut y) = (Vec::new(), Vec::new());
            while it.next_into(&mut x, &mut y).is_some() {
                xs.push((x.clone(), y.clone()));
            }
        }
        xs
    };
    let (a, b, c) = (run(9), run(9), run(10));
    assert_eq!(a, b);
    assert_ne!(a, c);
    let labels = |r: &[(Vec<f32>, Vec<u32>)], e: usize| -> Vec<u32> {
        r[e * 7..(e + 1) * 7]
            .iter()
            .flat_map(|(_, y)| y.clone())
            .collect()
    };
    assert_ne!(labels(&a, 0), labels(&a, 1), "two epochs shuffled alike");
}

#[test]
fn steady_state_does_not_reallocate() {
    let d = tiny(40);
    let mut rng = Rng::new(2);
    let aug = Augment {
        random_crop_pad: 2,
        hflip: true,
    };
    let mut it = Batches::new(&d, 16, true, false, aug, &mut rng);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    it.next_into(&mut x, &mut y).unwrap();
    let (px, py) = (x.as_ptr(), y.as_ptr());
    while it.next_into(&mut x, &mut y).is_some() {
        assert_eq!((x.as_ptr(), y.as_ptr()), (px, py));
    }
}

#[test]
fn hflip_mirrors_rows() {
    let d = tiny(1);
    let src = d.images.clone();
    let mirrored: Vec<f32> = src
        .chunks(3)
        .flat_map(|r| r.iter().rev().copied())
        .collect();
    let aug = Augment {
        random_crop_pad: 0,
        hflip: true,
    };
    let mut rng = Rng::new(5);
    let (mut flips, mut keeps) = (0, 0);
    for _ in 0..200 {
        let mut it = Batches::new(&d, 1, true, false, aug.clone(), &mut rng);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        it.next_into(&mut x, &mut y).unwrap();
        if x == mirrored {
            flips += 1;
        } else {
            assert_eq!(x, src);
            keeps += 1;
        }
    }
    assert!(flips > 60 && keeps > 60, "{flips} flips, {keeps} keeps");
    assert_eq!(mirrored, vec![3.0, 2.0, 1.0, 6.0, 5.0, 4.0]);
}

/// The image shifted so output (i, j) = src(i + dy, j + dx), zero outside.
fn shifted(src: &[f32], c: usize, h: usize, w: usize, dy: isize, dx: isize) -> Vec<f32> {
    let mut out = vec![0.0; c * h * w];
    for ch in 0..c {
        for i in 0..h as isize {
            for j in 0..w as isize {
                let (sy, sx) = (i + dy, j + dx);
                if sy >= 0 && sy < h as isize && sx >= 0 && sx < w as isize {
                    out[ch * h * w + (i as usize) * w + j as usize] =
                        src[ch * h * w + sy as usize * w + sx as usize];
                }
            }
        }
    }
    out
}

#[test]
fn crop_keeps_shape_and_is_a_padded_shift() {
    let (c, h, w) = (2, 4, 5);
    let images: Vec<f32> = (0..c * h * w).map(|p| p as f32 + 1.0).collect();
    let d = Dataset {
        images: images.clone(),
        labels: vec![0],
        n: 1,
        c,
        h,
        w,
        classes: 1,
    };
    for hflip in [false, true] {
        let aug = Augment {
            random_crop_pad: 2,
            hflip,
        };
        let mut rng = Rng::new(11);
        let mut shifts = std::collections::HashSet::new();
        for _ in 0..300 {
            let mut it = Batches::new(&d, 4, true, false, aug.clone(), &mut rng);
            let (mut x, mut y) = (Vec::new(), Vec::new());
            assert_eq!(it.next_into(&mut x, &mut y), Some(1));
            assert_eq!(x.len(), c * h * w);
            let mut found = None;
            'search: for dy in -2..=2isize {
                for dx in -2..=2isize {
                    let s = shifted(&images, c, h, w, dy, dx);
                    let m: Vec<f32> = s.chunks(w).flat_map(|r| r.iter().rev().copied()).collect();
                    if x == s || (hflip && x == m) {
                        found = Some((dy, dx));
                        break 'search;
                    }
                }
            }
            shifts.insert(found.expect("output is not a padded crop"));
        }
        assert_eq!(shifts.len(), 25, "not every offset drawn: {shifts:?}");
    }
    // A pad larger than the image is clamped and still keeps the shape.
    let aug = Augment {
        random_crop_pad: 100,
        hflip: true,
    };
    let mut it = Batches::new(&d, 1, false, false, aug, &mut Rng::new(1));
    let (mut x, mut y) = (Vec::new(), Vec::new());
    assert_eq!(it.next_into(&mut x, &mut y), Some(1));
    assert_eq!(x.len(), c * h * w);
}
