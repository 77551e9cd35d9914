//! The `reinforce` plugin: REINFORCE (or PPO) with an LSTM controller. The strategy
//! lives in [`nas_controller`], where ENAS shares its controller.

nas_strategies::export_strategy!(nas_controller::Reinforce, "reinforce", "0.1.1");
