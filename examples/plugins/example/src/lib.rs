//! The example strategy of the plugin guide: a local search that keeps the best
//! architecture seen and proposes it with one choice changed (random at first).

use nas_strategies::{
    export_strategy, json, random_architecture, Architecture, Choice, Metrics, Rng, Setup,
    Strategy, Value,
};

pub struct HillClimb {
    space: Vec<Choice>,
    rng: Rng,
    best: Option<(f64, Architecture)>,
    /// Random proposals before climbing starts (config `warmup`, default 5).
    warmup: usize,
    told: usize,
}

impl Strategy for HillClimb {
    fn new(setup: &Setup) -> Result<Self, String> {
        // A misspelled option is an error, not a silent default.
        nas_strategies::check_config_fields(&setup.config, "example", &["warmup"])?;
        Ok(HillClimb {
            space: setup.space.clone(),
            rng: Rng::new(setup.seed),
            best: None,
            warmup: nas_strategies::config_field(&setup.config, "warmup", 5)?,
            told: 0,
        })
    }

    fn ask(&mut self) -> Result<Option<Architecture>, String> {
        let Some((_, best)) = self.best.as_ref().filter(|_| self.told >= self.warmup) else {
            return Ok(Some(random_architecture(&self.space, &mut self.rng)));
        };
        // Take one choice's value from a fresh random architecture.
        let other = random_architecture(&self.space, &mut self.rng);
        let mut child = best.clone();
        let labels: Vec<&String> = other.keys().collect();
        let label = labels[self.rng.below(labels.len())].clone();
        child.insert(label.clone(), other[&label].clone());
        // Repeats may have changed what exists: start again from `other` where invalid.
        if child.len() != other.len() {
            return Ok(Some(other));
        }
        Ok(Some(child))
    }

    fn tell(&mut self, arch: &Architecture, m: &Metrics) -> Result<(), String> {
        self.told += 1;
        if self.best.as_ref().is_none_or(|(b, _)| m.accuracy > *b) {
            self.best = Some((m.accuracy, arch.clone()));
        }
        Ok(())
    }

    fn save(&self) -> Result<Value, String> {
        Ok(json!({ "rng": self.rng.state(), "best": self.best, "told": self.told }))
    }

    fn load(&mut self, s: Value) -> Result<(), String> {
        self.rng = nas_strategies::oneshot::rng_in_state(&s)?;
        self.best = nas_strategies::config_field(&s, "best", None)?;
        self.told = nas_strategies::config_field(&s, "told", 0)?;
        Ok(())
    }
}

export_strategy!(HillClimb, "example", "0.1.0");
