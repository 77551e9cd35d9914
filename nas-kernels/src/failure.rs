//! Failures a run meets in the middle of its work that its input causes rather than a
//! bug: a device call that failed (out of memory, past a limit of the adapter) or host
//! memory that could not be had for a buffer. [`fail`] unwinds with the message and
//! remembers it, so a host tells such a panic from a crash ([`failure`]) and reports it
//! as an error (a multi-trial search as that trial's failure).

use std::collections::VecDeque;
use std::sync::Mutex;

/// The messages of the latest failures: several, since trials running side by side may
/// fail at once, each unwinding to its own catch.
static FAILURES: Mutex<VecDeque<String>> = Mutex::new(VecDeque::new());

/// Panics with `msg`, remembered so that [`failure`] can tell this panic from a bug.
pub fn fail(msg: String) -> ! {
    let mut last = FAILURES.lock().unwrap_or_else(|e| e.into_inner());
    if last.len() == 64 {
        last.pop_front();
    }
    last.push_back(msg.clone());
    drop(last);
    std::panic::panic_any(msg)
}

/// The message of the failure a panic carries (`payload`, as a panic hook or
/// `catch_unwind` sees it), or None for any other panic.
pub fn failure(payload: &(dyn std::any::Any + Send)) -> Option<String> {
    let msg = payload.downcast_ref::<String>()?;
    known(msg).then(|| msg.clone())
}

/// Whether `msg` is the message of a failure [`fail`] raised (one a panic's text was
/// carried elsewhere in, such as across a plugin's boundary).
pub fn known(msg: &str) -> bool {
    let last = FAILURES.lock().unwrap_or_else(|e| e.into_inner());
    last.iter().any(|m| m == msg)
}

/// The failure whose message `text` holds (an error that carried a failure's text, such
/// as a plugin's report of what its host call met), if any.
pub fn within(text: &str) -> Option<String> {
    let last = FAILURES.lock().unwrap_or_else(|e| e.into_inner());
    last.iter()
        .rev()
        .find(|m| text.contains(m.as_str()))
        .cloned()
}
