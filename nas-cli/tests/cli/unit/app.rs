//! The unit tests of `nas_cli::app` (`nas-cli/src/app.rs`).

use nas_cli::app::*;

#[test]
fn long_lines_of_a_message_lose_their_middle() {
    let value = "x".repeat(10_000_000);
    let msg = format!("--config: population: \"{value}\" is not a number\nsecond line");
    let s = shorten(&msg);
    assert!(s.len() < 2 * MAX_LINE, "{} bytes", s.len());
    assert!(s.starts_with("--config: population: \"xxx"));
    assert!(s.contains("characters cut"));
    assert!(
        s.ends_with("xxx\" is not a number\nsecond line"),
        "{}",
        &s[s.len() - 80..]
    );
    let short = "a short message\nwith two lines";
    assert_eq!(shorten(short), short);
    // Multi-byte characters are cut on character boundaries.
    assert!(shorten(&"é".repeat(5000)).contains("characters cut"));
}
