//! The unit tests of `nas_core::buffer` (`nas-core/src/buffer.rs`).

use nas_core::buffer::*;

#[test]
fn lengths_no_longer_taken_leave_the_pool() {
    clear();
    // Networks of many shapes, one after another, each using its own lengths: a
    // long search over a space file, or a fuzzer's inputs.
    for net in 0..200usize {
        let bufs: Vec<Vec<f32>> = (0..4).map(|i| take(20_000 + 8 * net + i)).collect();
        bufs.into_iter().for_each(give);
    }
    let many = pooled_floats();
    assert!(many > 100 * 4 * 20_000, "the pool kept {many} floats");
    // Then one network whose steps keep taking the same two lengths.
    for _ in 0..(IDLE_TAKES + 2 * SWEEP_EVERY) / 2 {
        let (a, b) = (take(777), take(778));
        give(a);
        give(b);
    }
    assert_eq!(pooled_floats(), 777 + 778, "idle lengths are dropped");
    POOL.with(|p| {
        let p = p.borrow();
        assert_eq!(p.made.len(), 2);
        assert_eq!(p.last.len(), 2);
    });
}

#[test]
fn the_pool_holds_no_more_of_a_length_than_take_made() {
    clear();
    let before = pooled_floats();
    // A length never taken: freed.
    give(vec![1.0; 12_345]);
    assert_eq!(pooled_floats(), before);
    // Two taken, three given back (one made by the caller): two kept.
    let (a, b) = (take(12_346), take(12_346));
    give(a);
    give(b);
    give(vec![0.0; 12_346]);
    assert_eq!(pooled_floats(), before + 2 * 12_346);
    // A caller that makes its own vectors of a pooled length, again and again, does
    // not grow the pool.
    for _ in 0..100 {
        give(vec![0.0; 12_346]);
    }
    assert_eq!(pooled_floats(), before + 2 * 12_346);
    assert_eq!(take(12_346).len(), 12_346);
    assert_eq!(take(12_346).len(), 12_346);
    assert_eq!(pooled_floats(), before);
}
