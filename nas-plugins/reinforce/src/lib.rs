//! The `reinforce` plugin: REINFORCE (or PPO) with an LSTM controller. The strategy
//! lives in [`nas_strategies::reinforce`], where ENAS shares its controller.

nas_strategies::export_strategy!(nas_strategies::reinforce::Reinforce, "reinforce", "0.1.0");
