//! What can go wrong in a kernel call, by kind: the caller decides what to do with each
//! (skip a device that is not there, report a kernel that failed, fix its arguments).
//! The messages name the kernel or step and the device's own complaint.

/// A device backend's error.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KernelError {
    /// The backend is not there: no adapter, driver or NVRTC, or a build without its
    /// cargo feature.
    #[error("{0}")]
    Unavailable(String),
    /// The device's kernels did not compile or load (NVRTC, WGSL, a module).
    #[error("{0}")]
    Compile(String),
    /// A call the device refused or failed: a launch, an allocation, a copy, a map.
    #[error("{what}: {msg}")]
    Device { what: String, msg: String },
    /// Arguments no kernel takes: a geometry out of range, a size past a grid.
    #[error("{0}")]
    Invalid(String),
}

impl KernelError {
    /// A device failure of `what` (a kernel or a step) with the device's message.
    pub fn device(what: impl Into<String>, msg: impl std::fmt::Display) -> KernelError {
        KernelError::Device {
            what: what.into(),
            msg: msg.to_string(),
        }
    }
}

/// `Ok(value)` or what went wrong.
pub type Res<T> = Result<T, KernelError>;

/// Layers above the kernels that carry errors as messages take a kernel error as its
/// message.
impl From<KernelError> for String {
    fn from(e: KernelError) -> String {
        e.to_string()
    }
}
