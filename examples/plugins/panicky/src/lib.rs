//! A deliberately broken plugin: every `ask` panics. The host must report it and live.

use nas_strategies::{export_strategy, Architecture, Metrics, Setup, Strategy, Value};

pub struct Panicky;

impl Strategy for Panicky {
    fn new(_: &Setup) -> Result<Self, String> {
        Ok(Panicky)
    }
    fn ask(&mut self) -> Result<Option<Architecture>, String> {
        panic!("the panicky strategy always panics")
    }
    fn tell(&mut self, _: &Architecture, _: &Metrics) -> Result<(), String> {
        Ok(())
    }
    fn save(&self) -> Result<Value, String> {
        Ok(Value::Null)
    }
    fn load(&mut self, _: Value) -> Result<(), String> {
        Ok(())
    }
}

export_strategy!(Panicky, "panicky", "0.1.0");
