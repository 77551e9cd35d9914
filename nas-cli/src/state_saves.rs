//! When a multi-trial search saves its strategy's state. The journal is what a resumed
//! run trusts; the state only shortens the replay that brings a fresh strategy to the
//! journal's end (`restore` asks and tells the trials journaled after it). A state can
//! grow with the trials (evolution keeps every architecture it has proposed), so saving
//! it after every batch made a search's writes grow with the square of its budget. It is
//! saved after a batch when the journal has grown by at least the bytes of the last
//! state since that was saved, or when [`STATE_EVERY`] has passed, and at the end; so
//! the bytes written for states stay within those of the journal plus a few states.

use crate::host::LoadedStrategy;
use anyhow::{anyhow, Result};
use nas_core::experiment::RunDir;
use std::time::{Duration, Instant};

/// The longest a search goes without saving its strategy's state (so a slow strategy's
/// replay after a kill stays short, whatever the sizes).
pub const STATE_EVERY: Duration = Duration::from_secs(10);

/// The state saves of one search process, and what they wrote.
#[derive(Debug, Default)]
pub struct StateSaves {
    /// Trials the last saved state had been told (0 before the first save).
    told: usize,
    /// Bytes of the last state saved, and of the journal appended since.
    last_bytes: usize,
    journaled: usize,
    at: Option<Instant>,
    /// Saves and bytes written so far; saves made because [`STATE_EVERY`] had passed.
    pub saves: usize,
    pub bytes: u64,
    pub on_time: usize,
}

impl StateSaves {
    /// Notes `bytes` appended to the journal.
    pub fn journaled(&mut self, bytes: usize) {
        self.journaled += bytes;
    }

    /// After a batch: saves the state of `s`, told `told` trials, when a save is due.
    pub fn after_batch(&mut self, s: &mut LoadedStrategy, run: &RunDir, told: usize) -> Result<()> {
        let late = self.at.is_some_and(|t| t.elapsed() >= STATE_EVERY);
        let grown = self.journaled >= self.last_bytes;
        if self.at.is_none() || grown || late {
            if late && !grown {
                self.on_time += 1;
            }
            self.save(s, run, told)?;
        }
        Ok(())
    }

    /// At the end of the search: saves the state if the last save left trials out.
    pub fn at_end(&mut self, s: &mut LoadedStrategy, run: &RunDir, told: usize) -> Result<()> {
        if self.at.is_some() && told > self.told {
            self.save(s, run, told)?;
        }
        Ok(())
    }

    fn save(&mut self, s: &mut LoadedStrategy, run: &RunDir, told: usize) -> Result<()> {
        let _span = tracing::debug_span!("save state", told).entered();
        let state = s.save().map_err(|e| anyhow!(e))?;
        let n = run
            .save_state(told, &s.plugin.name, &state)
            .map_err(|e| anyhow!(e))?;
        self.told = told;
        self.last_bytes = n;
        self.journaled = 0;
        self.at = Some(Instant::now());
        self.saves += 1;
        self.bytes += n as u64;
        Ok(())
    }
}
