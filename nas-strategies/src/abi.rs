//! The C ABI between the host and a strategy plugin, and the plugin-side glue that turns
//! a [`Strategy`] into it. Every entry point catches panics and reports them as errors.

use crate::Architecture;
use crate::{Metrics, Setup, Strategy};
use std::os::raw::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Bumped whenever the table or the meaning of a field changes. Version 2: one-shot
/// hosts answer `lr` and `VirtualStep`, `evaluate` takes a `Subset`, and choices carry
/// `edge_ops`; a plugin built for version 1 would ask a version-2 host for what it no
/// longer means, so it is refused. Version 3: the ask/tell table has `ask_costed`
/// (the host's cost model during an ask), and one-shot hosts answer `DistillStep`.
pub const ABI_VERSION: u32 = 3;

/// A strategy driven by ask/tell.
pub const KIND_ASK_TELL: u32 = 0;
/// A one-shot strategy that drives a supernet through host services
/// (see [`crate::oneshot_abi`]).
pub const KIND_ONE_SHOT: u32 = 1;

/// Status codes of every entry point.
pub const OK: i32 = 0;
/// The call failed; the error buffer holds the message.
pub const ERROR: i32 = 1;
/// The plugin panicked; the error buffer holds the panic message.
pub const PANIC: i32 = 2;
/// `ask` has nothing more to propose.
pub const EXHAUSTED: i32 = 3;

/// Bytes allocated by the plugin and handed to the host, which gives them back through
/// `free_buf` (the plugin frees only what it allocated).
#[repr(C)]
pub struct PluginBuf {
    pub ptr: *mut u8,
    pub len: usize,
    pub cap: usize,
}

impl PluginBuf {
    pub const fn empty() -> PluginBuf {
        PluginBuf {
            ptr: std::ptr::null_mut(),
            len: 0,
            cap: 0,
        }
    }
    pub(crate) fn from_vec(v: Vec<u8>) -> PluginBuf {
        let mut v = std::mem::ManuallyDrop::new(v);
        PluginBuf {
            ptr: v.as_mut_ptr(),
            len: v.len(),
            cap: v.capacity(),
        }
    }
}

/// The table a plugin exports. Input byte slices are owned by the host and only
/// borrowed for the call.
#[repr(C)]
pub struct PluginTable {
    pub name: *const c_char,
    pub version: *const c_char,
    pub kind: u32,
    /// `setup` is the JSON of [`Setup`]; writes an opaque handle.
    pub create: unsafe extern "C" fn(
        setup: *const u8,
        len: usize,
        handle: *mut *mut c_void,
        err: *mut PluginBuf,
    ) -> i32,
    pub destroy: unsafe extern "C" fn(handle: *mut c_void),
    /// Writes the JSON of the next architecture to `out`, or returns `EXHAUSTED`.
    pub ask:
        unsafe extern "C" fn(handle: *mut c_void, out: *mut PluginBuf, err: *mut PluginBuf) -> i32,
    /// `ask` with the host's cost model, valid for the call ([`HostCosts`]).
    pub ask_costed: unsafe extern "C" fn(
        handle: *mut c_void,
        costs: *const HostCosts,
        out: *mut PluginBuf,
        err: *mut PluginBuf,
    ) -> i32,
    /// `trial` is JSON `{"arch": {...}, "metrics": {...}}`.
    pub tell: unsafe extern "C" fn(
        handle: *mut c_void,
        trial: *const u8,
        len: usize,
        err: *mut PluginBuf,
    ) -> i32,
    pub save:
        unsafe extern "C" fn(handle: *mut c_void, out: *mut PluginBuf, err: *mut PluginBuf) -> i32,
    pub load: unsafe extern "C" fn(
        handle: *mut c_void,
        state: *const u8,
        len: usize,
        err: *mut PluginBuf,
    ) -> i32,
    pub free_buf: unsafe extern "C" fn(buf: PluginBuf),
}

// SAFETY: the table holds only function pointers and pointers to static strings.
unsafe impl Sync for PluginTable {}

/// The host's cost model as it crosses to an ask/tell plugin during `ask_costed`.
#[repr(C)]
pub struct HostCosts {
    pub ctx: *const c_void,
    /// `arch` is the JSON of an architecture; writes the JSON of its [`Metrics`] (costs
    /// only, accuracy 0) or an error message to `out`, a host buffer given back through
    /// `free_buf`. Returns `OK` or `ERROR`.
    pub metrics: unsafe extern "C" fn(
        ctx: *const c_void,
        arch: *const u8,
        len: usize,
        out: *mut PluginBuf,
    ) -> i32,
    pub free_buf: unsafe extern "C" fn(buf: PluginBuf),
}

/// What an architecture costs, from the host, before it is evaluated: its parameters,
/// multiply-adds, latency (the evaluator's: a table's column, or measured on this
/// machine) and, in `extra`, `activations` (floats of one image's forward pass), as the
/// evaluator would report them; accuracy is 0. Given to [`Strategy::ask_costed`].
pub enum Costs<'a> {
    /// Through the plugin boundary.
    Host(&'a HostCosts),
    /// In the same program (the host's side of the boundary, and tests).
    Local(&'a dyn Fn(&Architecture) -> Result<Metrics, String>),
}

impl Costs<'_> {
    pub fn metrics(&self, arch: &Architecture) -> Result<Metrics, String> {
        match self {
            Costs::Local(f) => f(arch),
            Costs::Host(h) => {
                let json = serde_json::to_vec(arch).map_err(|e| e.to_string())?;
                let mut out = PluginBuf::empty();
                // SAFETY: the host's table is valid during `ask_costed`, the only time a
                // `Costs::Host` exists; our bytes and slot outlive the call.
                let code = unsafe { (h.metrics)(h.ctx, json.as_ptr(), json.len(), &mut out) };
                let text = if out.ptr.is_null() {
                    String::new()
                } else {
                    // SAFETY: the host filled `out` with `len` bytes; given back once.
                    let t = String::from_utf8_lossy(unsafe {
                        std::slice::from_raw_parts(out.ptr, out.len)
                    })
                    .into_owned();
                    // SAFETY: as above.
                    unsafe { (h.free_buf)(out) };
                    t
                };
                if code != OK {
                    return Err(format!("the host's costs: {text}"));
                }
                serde_json::from_str(&text)
                    .map_err(|e| format!("the host's costs: not metrics: {e}: {text}"))
            }
        }
    }
}

/// Host side: `f` as a [`HostCosts`] table, valid while `f` is borrowed.
pub fn host_costs(f: &&dyn Fn(&Architecture) -> Result<Metrics, String>) -> HostCosts {
    HostCosts {
        ctx: f as *const &dyn Fn(&Architecture) -> Result<Metrics, String> as *const c_void,
        metrics: costs_call,
        free_buf,
    }
}

/// The host's entry point of [`HostCosts::metrics`].
///
/// # Safety
/// `ctx` is the `&&dyn Fn` that [`host_costs`] took, still borrowed; `arch` holds `len`
/// readable bytes; `out` is a writable slot.
unsafe extern "C" fn costs_call(
    ctx: *const c_void,
    arch: *const u8,
    len: usize,
    out: *mut PluginBuf,
) -> i32 {
    let res = catch_unwind(AssertUnwindSafe(|| -> Result<Vec<u8>, String> {
        // SAFETY: see the function's contract.
        let f = unsafe { &*(ctx as *const &dyn Fn(&Architecture) -> Result<Metrics, String>) };
        let arch: Architecture = serde_json::from_slice(bytes(arch, len))
            .map_err(|e| format!("not an architecture: {e}"))?;
        serde_json::to_vec(&f(&arch)?).map_err(|e| e.to_string())
    }));
    let (code, v) = match res {
        Ok(Ok(v)) => (OK, v),
        Ok(Err(e)) => (ERROR, e.into_bytes()),
        Err(p) => (
            ERROR,
            format!("host panicked: {}", panic_message(p.as_ref())).into_bytes(),
        ),
    };
    if !out.is_null() {
        // SAFETY: the plugin passes a writable slot.
        unsafe { *out = PluginBuf::from_vec(v) };
    }
    code
}

/// Frees a buffer this plugin allocated.
///
/// # Safety
/// `buf` must have been returned by this plugin and not freed before.
pub unsafe extern "C" fn free_buf(buf: PluginBuf) {
    if !buf.ptr.is_null() {
        // SAFETY: the buffer came from `PluginBuf::from_vec` in this same library, so the
        // pointer, length and capacity describe a live Vec<u8> of this allocator.
        unsafe { drop(Vec::from_raw_parts(buf.ptr, buf.len, buf.cap)) };
    }
}

thread_local! {
    /// Where the last panic in this plugin happened, recorded by its panic hook.
    static PANIC_AT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Replaces the plugin's panic hook (its own copy of std's) with one that records the
/// location instead of printing: the host reports the panic as an error.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()));
            PANIC_AT.with(|p| *p.borrow_mut() = at);
        }))
    });
}

/// The message a panic carried.
pub(crate) fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Runs `f`, turning an `Err` or a panic into a status code and a message in `err`.
pub(crate) fn guard(err: *mut PluginBuf, f: impl FnOnce() -> Result<i32, String>) -> i32 {
    quiet_panics();
    let (code, msg) = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(code)) => return code,
        Ok(Err(m)) => (ERROR, m),
        Err(p) => {
            let m = panic_message(p.as_ref());
            let at = PANIC_AT.with(|p| p.borrow_mut().take());
            let at = at.map(|a| format!(" (at {a})")).unwrap_or_default();
            (PANIC, format!("panicked: {m}{at}"))
        }
    };
    if !err.is_null() {
        // SAFETY: the host passes a valid, writable PluginBuf for errors.
        unsafe { *err = PluginBuf::from_vec(msg.into_bytes()) };
    }
    code
}

/// The host's borrowed bytes as a slice.
fn bytes<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: the host guarantees `ptr` points at `len` readable bytes for the call.
    unsafe { std::slice::from_raw_parts(ptr, len) }
}

fn handle<'a, S>(h: *mut c_void) -> Result<&'a mut S, String> {
    if h.is_null() {
        return Err("null strategy handle".into());
    }
    // SAFETY: non-null handles are the Box<S> made by `create::<S>` of this library.
    Ok(unsafe { &mut *(h as *mut S) })
}

pub(crate) fn write(out: *mut PluginBuf, v: Vec<u8>) -> Result<(), String> {
    if out.is_null() {
        return Err("null output buffer".into());
    }
    // SAFETY: checked non-null; the host passes a writable PluginBuf.
    unsafe { *out = PluginBuf::from_vec(v) };
    Ok(())
}

/// # Safety
/// Called by the host through the plugin table with the pointers the ABI describes.
pub unsafe extern "C" fn create<S: Strategy>(
    setup: *const u8,
    len: usize,
    out: *mut *mut c_void,
    err: *mut PluginBuf,
) -> i32 {
    guard(err, || {
        let setup: Setup = serde_json::from_slice(bytes(setup, len))
            .map_err(|e| format!("bad setup JSON from the host: {e}"))?;
        let s = S::new(&setup)?;
        if out.is_null() {
            return Err("null handle pointer".into());
        }
        // SAFETY: checked non-null; the host passes a writable pointer slot.
        unsafe { *out = Box::into_raw(Box::new(s)) as *mut c_void };
        Ok(OK)
    })
}

/// # Safety
/// Called by the host through the plugin table with the pointers the ABI describes.
pub unsafe extern "C" fn destroy<S: Strategy>(h: *mut c_void) {
    if !h.is_null() {
        let _ = catch_unwind(|| {
            // SAFETY: the handle is the Box<S> made by `create::<S>`; the host destroys
            // each handle once.
            drop(unsafe { Box::from_raw(h as *mut S) })
        });
    }
}

/// # Safety
/// Called by the host through the plugin table with the pointers the ABI describes.
pub unsafe extern "C" fn ask<S: Strategy>(
    h: *mut c_void,
    out: *mut PluginBuf,
    err: *mut PluginBuf,
) -> i32 {
    guard(err, || match handle::<S>(h)?.ask()? {
        None => Ok(EXHAUSTED),
        Some(a) => {
            write(out, serde_json::to_vec(&a).map_err(|e| e.to_string())?)?;
            Ok(OK)
        }
    })
}

/// # Safety
/// Called by the host through the plugin table with the pointers the ABI describes;
/// `costs` is valid for the call.
pub unsafe extern "C" fn ask_costed<S: Strategy>(
    h: *mut c_void,
    costs: *const HostCosts,
    out: *mut PluginBuf,
    err: *mut PluginBuf,
) -> i32 {
    guard(err, || {
        if costs.is_null() {
            return Err("null cost table".into());
        }
        // SAFETY: checked non-null; the host keeps it valid for the call.
        let costs = Costs::Host(unsafe { &*costs });
        match handle::<S>(h)?.ask_costed(&costs)? {
            None => Ok(EXHAUSTED),
            Some(a) => {
                write(out, serde_json::to_vec(&a).map_err(|e| e.to_string())?)?;
                Ok(OK)
            }
        }
    })
}

/// A finished trial as it crosses the boundary.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Trial {
    pub arch: Architecture,
    pub metrics: Metrics,
}

/// # Safety
/// Called by the host through the plugin table with the pointers the ABI describes.
pub unsafe extern "C" fn tell<S: Strategy>(
    h: *mut c_void,
    trial: *const u8,
    len: usize,
    err: *mut PluginBuf,
) -> i32 {
    guard(err, || {
        let t: Trial = serde_json::from_slice(bytes(trial, len))
            .map_err(|e| format!("bad trial JSON from the host: {e}"))?;
        handle::<S>(h)?.tell(&t.arch, &t.metrics)?;
        Ok(OK)
    })
}

/// # Safety
/// Called by the host through the plugin table with the pointers the ABI describes.
pub unsafe extern "C" fn save<S: Strategy>(
    h: *mut c_void,
    out: *mut PluginBuf,
    err: *mut PluginBuf,
) -> i32 {
    guard(err, || {
        let v = handle::<S>(h)?.save()?;
        write(out, serde_json::to_vec(&v).map_err(|e| e.to_string())?)?;
        Ok(OK)
    })
}

/// # Safety
/// Called by the host through the plugin table with the pointers the ABI describes.
pub unsafe extern "C" fn load<S: Strategy>(
    h: *mut c_void,
    state: *const u8,
    len: usize,
    err: *mut PluginBuf,
) -> i32 {
    guard(err, || {
        let v = serde_json::from_slice(bytes(state, len))
            .map_err(|e| format!("bad saved state: {e}"))?;
        handle::<S>(h)?.load(v)?;
        Ok(OK)
    })
}
