//! Journals and run directories.

use crate::{fresh_dir, split};
use nas_core::evaluate::Metrics;
use nas_core::experiment::{
    best, candidates, cost, parse_journal, Candidate, JournalTail, Limits, RunDir, TrialRecord,
};
use std::path::Path;

pub(crate) fn journal(bytes: &[u8]) {
    // The whole input as one journal.
    let _ = parse_journal(Path::new("journal.jsonl"), bytes);

    // The input as a run directory.
    let dir = fresh_dir("run");
    let names = ["config.json", "journal.jsonl", "strategy_state.json"];
    let parts = split(bytes, names.len());
    for (name, part) in names.iter().zip(&parts) {
        std::fs::write(dir.join(name), part).expect("writing a scratch file");
    }
    let Ok(d) = RunDir::open(&dir) else {
        return;
    };
    let read = d.read_journal();
    // A run without a journal has no trials yet.
    let parsed = match parts.get(1) {
        Some(bytes) => parse_journal(&d.journal_path(), bytes),
        None => parse_journal(&d.journal_path(), b""),
    };
    assert_eq!(read, parsed, "reading the journal is parsing its bytes");
    let _ = d.load_state();
    let limits = d.config().ok().and_then(|c| Limits::from_config(&c).ok());
    if let (Ok(j), Some(limits)) = (&read, &limits) {
        summarise(&j.trials, limits);
    }

    // A writer repairs the journal so that appends start on a fresh line.
    let w = RunDir::open_to_write(&dir).expect("the scratch run is not locked");
    let repaired = w.repair_journal();
    let again = w.read_journal();
    match (&read, &repaired, &again) {
        (Ok(before), Ok(said), Ok(after)) => {
            assert_eq!(after.tail, JournalTail::Clean, "after a repair ({said:?})");
            assert_eq!(
                after.trials, before.trials,
                "a repair keeps every whole trial"
            );
            assert_eq!(said.is_none(), before.tail == JournalTail::Clean);
            let next = TrialRecord {
                trial: after.trials.len(),
                arch: Default::default(),
                metrics: Metrics::default(),
                seconds: 0.0,
            };
            w.append(&next).expect("appending to a repaired journal");
            let grown = w.read_journal().expect("a journal appended to reads");
            assert_eq!(grown.tail, JournalTail::Clean);
            assert_eq!(grown.trials.len(), after.trials.len() + 1);
            assert_eq!(grown.trials.last(), Some(&next));
        }
        (Err(_), Err(_), _) => {}
        other => panic!("reading, repairing and reading again disagree: {other:?}"),
    }
}

/// The run's summaries, with what each promises.
fn summarise(trials: &[TrialRecord], limits: &Limits) {
    let c = candidates(trials, limits);
    let mut seen = std::collections::HashSet::new();
    for k in &c {
        assert!(limits.feasible(&k.metrics), "an infeasible candidate");
        assert!(
            k.metrics.accuracy.is_finite(),
            "accuracy {}",
            k.metrics.accuracy
        );
        for t in &k.trials {
            assert!(seen.insert(*t), "trial {t} is in two candidates");
        }
    }
    let top = best(&c);
    assert_eq!(top.is_none(), c.is_empty());
    if let Some(b) = top {
        assert!(c.iter().all(|k| k.metrics.accuracy <= b.metrics.accuracy));
    }
    for &name in nas_types::COSTS {
        let front = nas_core::experiment::pareto(&c, |m| cost(m, name));
        check_front(&c, &front, name);
    }
}

/// A Pareto front: distinct candidates that have the cost, in order of cost, none
/// beaten by another candidate.
fn check_front(c: &[Candidate], front: &[usize], name: &str) {
    let of = |i: usize| (c[i].metrics.accuracy, cost(&c[i].metrics, name).unwrap());
    for (n, &i) in front.iter().enumerate() {
        assert!(i < c.len(), "index {i} of {} candidates", c.len());
        assert!(!front[..n].contains(&i), "candidate {i} twice on the front");
        let (a, x) = of(i);
        if n > 0 {
            assert!(
                of(front[n - 1]).1 <= x,
                "the {name} front is not sorted by cost"
            );
        }
        for (j, k) in c.iter().enumerate() {
            if let Some(y) = cost(&k.metrics, name) {
                let b = k.metrics.accuracy;
                assert!(
                    !(b >= a && y <= x && (b > a || y < x)),
                    "candidate {j} ({b}, {y}) dominates candidate {i} ({a}, {x}) of the \
                     {name} front"
                );
            }
        }
    }
}
