//! Ctrl-C (SIGINT) or SIGTERM during a search that runs in this process: the search
//! stops at once, as a kill would (the journal and the checkpoints are written so that a
//! kill loses nothing: see `nas resume`), but first its page says it stopped and the user
//! is told how to go on. A cluster search acts on the same flag itself
//! (`slurm::catch_interrupts`: it cancels its jobs first).

use crate::search_args::SearchArgs;
use nas_core::experiment::RunDir;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// The signal that arrived (0: none).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Held while the run's page is written, so the page an interrupt leaves is the last.
pub static PAGE: Mutex<()> = Mutex::new(());

#[cfg(unix)]
extern "C" fn on_signal(s: libc::c_int) {
    SIGNAL.store(s, Ordering::SeqCst);
}

/// From now on SIGINT and SIGTERM only set the flag [`interrupted`] reads (whoever
/// installed this acts on it: the watcher below, or a cluster search's waiting loop).
pub fn catch_signals() {
    #[cfg(unix)]
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        let h = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
        libc::signal(libc::SIGINT, h);
        libc::signal(libc::SIGTERM, h);
    }
}

/// Whether an interrupt arrived (in a local search the page is then the watcher's to
/// write).
pub fn interrupted() -> bool {
    SIGNAL.load(Ordering::SeqCst) != 0
}

/// The signal that interrupted this process, if one did (SIGINT or SIGTERM).
pub fn signal() -> Option<i32> {
    Some(SIGNAL.load(Ordering::SeqCst)).filter(|&s| s != 0)
}

/// From now on SIGINT and SIGTERM stop the search of run `dir` (searching as `args`
/// say): a watcher thread marks its page stopped, says how to resume, and ends the
/// process with 128 plus the signal's number, as the signal would have.
pub fn stop_search_on_interrupt(dir: PathBuf, args: SearchArgs) {
    catch_signals();
    std::thread::spawn(move || loop {
        std::thread::sleep(Duration::from_millis(50));
        let signal = SIGNAL.load(Ordering::SeqCst);
        if signal == 0 {
            continue;
        }
        // A page being written is finished first; none is written after this one.
        let _page = PAGE.lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(run) = RunDir::open(&dir) {
            if let Ok(journal) = run.journal() {
                let page_exists = run.path.join(crate::report_html::FILE).exists();
                if !journal.is_empty() || page_exists {
                    let state = crate::report_html::State::Stopped;
                    let _ = crate::report_html::write(&run, &args, &journal, state);
                }
            }
        }
        eprintln!(
            "\ninterrupted: the search stopped; `nas resume {}` continues it",
            dir.display()
        );
        std::process::exit(128 + signal);
    });
}
