//! A deliberately broken plugin: it claims an ABI version no host speaks.

#[no_mangle]
pub extern "C" fn nas_plugin_abi_version() -> u32 {
    999
}
