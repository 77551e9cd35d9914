//! A deliberately stale plugin: it claims the ABI version before this SDK's, as a plugin
//! built against an older `nas-strategies` would.

#[no_mangle]
pub extern "C" fn nas_plugin_abi_version() -> u32 {
    nas_strategies::abi::ABI_VERSION - 1
}
