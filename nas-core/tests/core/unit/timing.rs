//! The unit tests of `nas_core::timing` (`nas-core/src/timing.rs`).

use nas_core::timing::*;

#[test]
fn the_fastest_and_the_median_of_known_sleeps() {
    let mut n = 0;
    // Calls 2.. sleep 1 ms, except one that sleeps 20 ms: the fastest is ~1 ms.
    let ms = fastest_ms(3, || {
        n += 1;
        let d = if n == 3 { 20 } else { 1 };
        std::thread::sleep(std::time::Duration::from_millis(d));
    });
    assert!((1.0..15.0).contains(&ms), "{ms}");
    assert_eq!(n, 4, "one warm-up and three timed calls");
    let mut k = 0;
    let med = median_ms(0.0, || {
        k += 1;
        std::thread::sleep(std::time::Duration::from_millis(if k == 4 {
            30
        } else {
            2
        }));
    });
    assert!(
        (2.0..25.0).contains(&med),
        "the median ignores the one slow call: {med}"
    );
}
