//! The `nas` host as a library, so tests drive it in process: the plugin loader
//! ([`host`], with its check of a library's file in [`elf`]) and the supernet services behind the one-shot boundary ([`trainer`]). The
//! commands themselves are the `nas` binary's (`main.rs`); what it logs is [`logging`],
//! and the spans its traces are made of [`spans`].

pub mod distill;
pub mod elf;
pub mod host;
pub mod logging;
pub mod spans;
pub mod trainer;
