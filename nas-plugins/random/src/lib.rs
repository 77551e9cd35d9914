//! Random search: each choice drawn uniformly (a `Repeat`'s scoped choices where the
//! drawn depth builds them), which is uniform over the space's architectures where it
//! has no `Repeat` (a shallow depth, having fewer architectures, is drawn as often as a
//! deep one); a draw that repeats
//! an architecture already proposed is drawn again, up to 100 times, so repeats are rare
//! until most of the space has been seen (and then allowed: the budget is spent).
//!
//! Config: only the hard cost limits (`limits`, or `max_params`, `max_macs`,
//! `max_latency_ms`), which the host applies to what the run returns; the draws ignore
//! them. Any other field is an error naming it.

use nas_strategies::{
    export_strategy, json, Architecture, Choice, Metrics, Rng, Setup, Strategy, Value,
};
use std::collections::HashSet;

pub struct RandomSearch {
    space: Vec<Choice>,
    rng: Rng,
    seen: HashSet<String>,
}

impl Strategy for RandomSearch {
    fn new(setup: &Setup) -> Result<Self, String> {
        nas_strategies::check_config_fields(&setup.config, "random", &[])?;
        Ok(RandomSearch {
            space: setup.space.clone(),
            rng: Rng::new(setup.seed),
            seen: HashSet::new(),
        })
    }

    fn ask(&mut self) -> Result<Option<Architecture>, String> {
        // A few redraws avoid repeats cheaply; a space smaller than the budget repeats.
        let mut a = nas_strategies::random_architecture(&self.space, &mut self.rng);
        for _ in 0..100 {
            if !self.seen.contains(&key(&a)) {
                break;
            }
            a = nas_strategies::random_architecture(&self.space, &mut self.rng);
        }
        self.seen.insert(key(&a));
        Ok(Some(a))
    }

    fn tell(&mut self, _: &Architecture, _: &Metrics) -> Result<(), String> {
        Ok(())
    }

    fn save(&self) -> Result<Value, String> {
        let mut seen: Vec<&String> = self.seen.iter().collect();
        seen.sort();
        Ok(json!({ "rng": self.rng.state(), "seen": seen }))
    }

    fn load(&mut self, state: Value) -> Result<(), String> {
        self.rng = nas_strategies::oneshot::rng_in_state(&state)?;
        self.seen = nas_strategies::oneshot::state_field::<Vec<String>>(&state, "seen")?
            .into_iter()
            .collect();
        Ok(())
    }
}

fn key(a: &Architecture) -> String {
    serde_json_string(a)
}

fn serde_json_string(a: &Architecture) -> String {
    nas_strategies::serde_json::to_string(a).unwrap_or_default()
}

export_strategy!(RandomSearch, "random", "0.1.1");
