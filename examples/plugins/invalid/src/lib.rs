//! A deliberately broken plugin: it proposes architectures that are not in the space.

use nas_strategies::{export_strategy, json, Architecture, Metrics, Setup, Strategy, Value};

pub struct Invalid;

impl Strategy for Invalid {
    fn new(_: &Setup) -> Result<Self, String> {
        Ok(Invalid)
    }
    fn ask(&mut self) -> Result<Option<Architecture>, String> {
        let mut a = Architecture::new();
        a.insert("no_such_choice".into(), json!("conv9x9"));
        Ok(Some(a))
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

export_strategy!(Invalid, "invalid", "0.1.0");
