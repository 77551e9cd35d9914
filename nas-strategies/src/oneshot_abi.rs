//! The C ABI of one-shot plugins. The plugin exports `nas_plugin_one_shot_table` (after
//! `nas_plugin_abi_version`); its `run` gets the host's services as a table with one
//! entry point: a JSON request, the mixing weights in, a gradient buffer out, and a JSON
//! answer in a host-owned buffer. Both sides catch panics; errors come back as messages.

use crate::abi::{PluginBuf, ERROR, OK, PANIC};
use crate::oneshot::{
    DistillLoss, DistillLosses, Generated, GradInfo, HyperSpec, OneShotInfo, OneShotSetup,
    OneShotStrategy, Progress, Split, SslSpec, Subset, SupernetHost, WeightOp, WeightSchedule,
};
use crate::{Architecture, Metrics, Value};
use serde::{Deserialize, Serialize};
use std::os::raw::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The services table the host passes to `run`; valid for the duration of the call.
#[repr(C)]
pub struct HostServices {
    pub ctx: *mut c_void,
    /// `req` is a JSON [`Request`]; `mix` (`n_mix` floats) are the mixing weights of
    /// calls that take them; `grad` (`n_grad` floats) receives a gradient. The answer is
    /// JSON in `out` (or the error message when the status is not OK), to be given back
    /// through `free_buf`.
    pub call: unsafe extern "C" fn(
        ctx: *mut c_void,
        req: *const u8,
        req_len: usize,
        mix: *const f32,
        n_mix: usize,
        grad: *mut f32,
        n_grad: usize,
        out: *mut PluginBuf,
    ) -> i32,
    pub free_buf: unsafe extern "C" fn(buf: PluginBuf),
}

/// The table a one-shot plugin exports.
#[repr(C)]
pub struct OneShotTable {
    pub name: *const c_char,
    pub version: *const c_char,
    pub kind: u32,
    /// `setup` is the JSON of [`OneShotSetup`]; writes the JSON of the exported
    /// architecture to `out`.
    pub run: unsafe extern "C" fn(
        setup: *const u8,
        len: usize,
        host: *const HostServices,
        out: *mut PluginBuf,
        err: *mut PluginBuf,
    ) -> i32,
    pub free_buf: unsafe extern "C" fn(buf: PluginBuf),
}

// SAFETY: the table holds only function pointers and pointers to static strings.
unsafe impl Sync for OneShotTable {}

/// A host service request.
#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    NextBatch {
        split: Split,
    },
    TrainStep {
        want_grad: bool,
    },
    MixGrad {
        split: Split,
        keep_weight_grad: bool,
    },
    GateGrad {
        split: Split,
    },
    /// The mixing weights are the teacher's then each student's, `n * (1 + students)`
    /// floats.
    DistillStep {
        students: usize,
        loss: DistillLoss,
    },
    Front {
        archs: Vec<Architecture>,
    },
    GenerateWeights {
        spec: HyperSpec,
    },
    SelfSupervised {
        spec: SslSpec,
    },
    SslStep {
        paths: Vec<Vec<f32>>,
        tap: String,
        momentum: f32,
    },
    SslScore {
        paths: Vec<Vec<f32>>,
        ensemble: Vec<Vec<f32>>,
        tap: String,
        batches: usize,
        recalibrate: usize,
    },
    Weights {
        w: WeightOp,
    },
    Lr,
    Evaluate {
        batches: usize,
        recalibrate: usize,
        #[serde(default)]
        subset: Subset,
    },
    Latencies,
    OpCosts,
    DropPath {
        prob: f32,
    },
    WeightSchedule {
        schedule: WeightSchedule,
    },
    Metrics {
        arch: Architecture,
    },
    Checkpoint {
        state: Value,
    },
    Progress {
        p: Progress,
    },
}

/// A host call's error, said plainly where the host is older than the request: it
/// answers a request it does not know with serde's "unknown variant".
fn too_old(e: String, call: &str, avoid: &str) -> String {
    if e.contains("unknown variant") {
        format!(
            "this nas is older than the plugin: it does not offer `{call}` (update nas, or \
             set {avoid} to do without it)"
        )
    } else {
        e
    }
}

/// The host's entry point: decodes the request and calls the [`SupernetHost`].
///
/// # Safety
/// `ctx` is the `&mut &mut dyn SupernetHost` that [`run_plugin`] made; the buffers are
/// valid for the lengths given.
unsafe extern "C" fn host_call(
    ctx: *mut c_void,
    req: *const u8,
    req_len: usize,
    mix: *const f32,
    n_mix: usize,
    grad: *mut f32,
    n_grad: usize,
    out: *mut PluginBuf,
) -> i32 {
    let res = catch_unwind(AssertUnwindSafe(|| -> Result<Value, String> {
        // SAFETY: see the function's contract.
        let host: &mut &mut dyn SupernetHost = unsafe { &mut *(ctx as *mut &mut dyn SupernetHost) };
        let req: &[u8] = if req.is_null() {
            &[]
        } else {
            // SAFETY: the plugin passes `req_len` readable bytes.
            unsafe { std::slice::from_raw_parts(req, req_len) }
        };
        let mix: &[f32] = if mix.is_null() {
            &[]
        } else {
            // SAFETY: the plugin passes `n_mix` readable floats.
            unsafe { std::slice::from_raw_parts(mix, n_mix) }
        };
        let grad: Option<&mut [f32]> = if grad.is_null() {
            None
        } else {
            // SAFETY: the plugin passes `n_grad` writable floats.
            Some(unsafe { std::slice::from_raw_parts_mut(grad, n_grad) })
        };
        let req: Request =
            serde_json::from_slice(req).map_err(|e| format!("bad host request: {e}"))?;
        let n = host.info().len();
        let check_mix = |m: &[f32]| {
            if m.len() != n {
                Err(format!(
                    "{} mixing weights given, the supernet has {n}",
                    m.len()
                ))
            } else {
                Ok(())
            }
        };
        fn need_grad(g: Option<&mut [f32]>, n: usize) -> Result<&mut [f32], String> {
            match g {
                Some(g) if g.len() == n => Ok(g),
                _ => Err(format!("a gradient buffer of {n} floats is needed")),
            }
        }
        Ok(match req {
            Request::NextBatch { split } => val(&host.next_batch(split)?),
            Request::TrainStep { want_grad } => {
                check_mix(mix)?;
                let g = if want_grad {
                    Some(need_grad(grad, n)?)
                } else {
                    None
                };
                val(&host.train_step(mix, g)?)
            }
            Request::MixGrad {
                split,
                keep_weight_grad,
            } => {
                check_mix(mix)?;
                let g = need_grad(grad, n)?;
                val(&host.mix_grad(mix, split, g, keep_weight_grad)?)
            }
            Request::GateGrad { split } => {
                check_mix(mix)?;
                let g = need_grad(grad, n)?;
                val(&host.gate_grad(mix, split, g)?)
            }
            Request::DistillStep { students, loss } => {
                if students > crate::oneshot::MAX_STUDENTS {
                    return Err(format!(
                        "distill_step: {students} students, at most {}",
                        crate::oneshot::MAX_STUDENTS
                    ));
                }
                check_mix(mix.get(..n).unwrap_or(mix))?;
                if mix.len() != n * (1 + students) {
                    return Err(format!(
                        "distill_step: {} mixing weights given for a teacher and {students} \
                         students of {n}",
                        mix.len()
                    ));
                }
                let paths: Vec<Vec<f32>> = mix[n..].chunks(n.max(1)).map(|c| c.to_vec()).collect();
                val(&host.distill_step(&mix[..n], &paths, loss)?)
            }
            Request::Front { archs } => val(&host.front(&archs)?),
            Request::GenerateWeights { spec } => val(&host.generate_weights(&spec)?),
            Request::SelfSupervised { spec } => val(&host.self_supervised(&spec)?),
            Request::SslStep {
                paths,
                tap,
                momentum,
            } => val(&host.ssl_step(&paths, &tap, momentum)?),
            Request::SslScore {
                paths,
                ensemble,
                tap,
                batches,
                recalibrate,
            } => val(&host.ssl_score(&paths, &ensemble, &tap, batches, recalibrate)?),
            Request::Weights { w } => val(&host.weights(w)?),
            Request::Lr => val(&host.lr()?),
            Request::Evaluate {
                batches,
                recalibrate,
                subset,
            } => {
                check_mix(mix)?;
                val(&host.evaluate(mix, batches, recalibrate, subset)?)
            }
            Request::Latencies => val(&host.latencies()?),
            Request::OpCosts => val(&host.op_costs()?),
            Request::DropPath { prob } => val(&host.set_drop_path(prob)?),
            Request::WeightSchedule { schedule } => val(&host.set_weight_schedule(&schedule)?),
            Request::Metrics { arch } => val(&host.metrics(&arch)?),
            Request::Checkpoint { state } => val(&host.checkpoint(&state)?),
            Request::Progress { p } => val(&host.progress(&p)?),
        })
    }));
    let (code, bytes) = match res {
        Ok(Ok(v)) => (OK, serde_json::to_vec(&v).unwrap_or_default()),
        Ok(Err(e)) => (ERROR, e.into_bytes()),
        Err(p) => (
            PANIC,
            format!("host panicked: {}", crate::abi::panic_message(p.as_ref())).into_bytes(),
        ),
    };
    if !out.is_null() {
        // SAFETY: the plugin passes a writable PluginBuf slot.
        unsafe { *out = PluginBuf::from_vec(bytes) };
    }
    code
}

/// An answer as JSON.
fn val<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Host side: runs a one-shot plugin's `run` against `host`.
pub fn run_plugin(
    table: &OneShotTable,
    name: &str,
    setup: &OneShotSetup,
    host: &mut dyn SupernetHost,
) -> Result<Architecture, String> {
    let json = serde_json::to_vec(setup).map_err(|e| e.to_string())?;
    let mut host_ref: &mut dyn SupernetHost = host;
    let services = HostServices {
        ctx: &mut host_ref as *mut &mut dyn SupernetHost as *mut c_void,
        call: host_call,
        free_buf: crate::abi::free_buf,
    };
    let (mut out, mut err) = (PluginBuf::empty(), PluginBuf::empty());
    // SAFETY: the table came from a plugin whose ABI version matched; `services` and the
    // buffers outlive the call.
    let code = unsafe { (table.run)(json.as_ptr(), json.len(), &services, &mut out, &mut err) };
    let take = |b: PluginBuf| -> String {
        if b.ptr.is_null() {
            return String::new();
        }
        // SAFETY: the plugin filled `b` with `len` bytes it owns; given back once.
        let s = String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(b.ptr, b.len) })
            .into_owned();
        // SAFETY: as above.
        unsafe { (table.free_buf)(b) };
        s
    };
    let (out, err) = (take(out), take(err));
    if code != OK {
        return Err(format!("plugin `{name}`: {err}"));
    }
    serde_json::from_str(&out)
        .map_err(|e| format!("plugin `{name}` returned no architecture: {e}: {out}"))
}

/// Plugin side: the host's services behind the [`SupernetHost`] trait.
struct FfiHost<'a> {
    services: &'a HostServices,
    info: OneShotInfo,
}

impl FfiHost<'_> {
    fn call<T: serde::de::DeserializeOwned>(
        &self,
        req: &Request,
        mix: &[f32],
        grad: Option<&mut [f32]>,
    ) -> Result<T, String> {
        let req = serde_json::to_vec(req).map_err(|e| e.to_string())?;
        let (gp, gn) = match grad {
            Some(g) => (g.as_mut_ptr(), g.len()),
            None => (std::ptr::null_mut(), 0),
        };
        let mut out = PluginBuf::empty();
        // SAFETY: the services table is valid during `run`; our buffers outlive the call.
        let code = unsafe {
            (self.services.call)(
                self.services.ctx,
                req.as_ptr(),
                req.len(),
                mix.as_ptr(),
                mix.len(),
                gp,
                gn,
                &mut out,
            )
        };
        let text = if out.ptr.is_null() {
            Vec::new()
        } else {
            // SAFETY: the host filled `out` with `len` bytes; given back once below.
            let v = unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec();
            // SAFETY: the buffer came from this host's `call`.
            unsafe { (self.services.free_buf)(out) };
            v
        };
        if code != OK {
            return Err(String::from_utf8_lossy(&text).into_owned());
        }
        serde_json::from_slice(&text).map_err(|e| format!("bad host answer: {e}"))
    }
}

impl SupernetHost for FfiHost<'_> {
    fn info(&self) -> &OneShotInfo {
        &self.info
    }
    fn next_batch(&mut self, split: Split) -> Result<(), String> {
        self.call(&Request::NextBatch { split }, &[], None)
    }
    fn train_step(&mut self, mix: &[f32], grad: Option<&mut [f32]>) -> Result<f32, String> {
        let want_grad = grad.is_some();
        self.call(&Request::TrainStep { want_grad }, mix, grad)
    }
    fn mix_grad(
        &mut self,
        mix: &[f32],
        split: Split,
        grad: &mut [f32],
        keep_weight_grad: bool,
    ) -> Result<GradInfo, String> {
        self.call(
            &Request::MixGrad {
                split,
                keep_weight_grad,
            },
            mix,
            Some(grad),
        )
    }
    fn gate_grad(
        &mut self,
        mix: &[f32],
        split: Split,
        grad: &mut [f32],
    ) -> Result<GradInfo, String> {
        self.call(&Request::GateGrad { split }, mix, Some(grad))
    }
    fn distill_step(
        &mut self,
        teacher: &[f32],
        students: &[Vec<f32>],
        loss: DistillLoss,
    ) -> Result<DistillLosses, String> {
        let n = self.info.len();
        let mut mix = Vec::with_capacity(n * (1 + students.len()));
        for m in std::iter::once(teacher).chain(students.iter().map(|s| s.as_slice())) {
            if m.len() != n {
                return Err(format!(
                    "distill_step: {} mixing weights given, the supernet has {n}",
                    m.len()
                ));
            }
            mix.extend_from_slice(m);
        }
        self.call(
            &Request::DistillStep {
                students: students.len(),
                loss,
            },
            &mix,
            None,
        )
    }
    fn front(&mut self, archs: &[Architecture]) -> Result<(), String> {
        self.call(
            &Request::Front {
                archs: archs.to_vec(),
            },
            &[],
            None,
        )
    }
    fn generate_weights(&mut self, spec: &HyperSpec) -> Result<Generated, String> {
        self.call(&Request::GenerateWeights { spec: *spec }, &[], None)
    }
    fn self_supervised(&mut self, spec: &SslSpec) -> Result<(), String> {
        self.call(&Request::SelfSupervised { spec: spec.clone() }, &[], None)
    }
    fn ssl_step(&mut self, paths: &[Vec<f32>], tap: &str, momentum: f32) -> Result<f32, String> {
        self.call(
            &Request::SslStep {
                paths: paths.to_vec(),
                tap: tap.to_string(),
                momentum,
            },
            &[],
            None,
        )
    }
    fn ssl_score(
        &mut self,
        paths: &[Vec<f32>],
        ensemble: &[Vec<f32>],
        tap: &str,
        batches: usize,
        recalibrate: usize,
    ) -> Result<Vec<f32>, String> {
        self.call(
            &Request::SslScore {
                paths: paths.to_vec(),
                ensemble: ensemble.to_vec(),
                tap: tap.to_string(),
                batches,
                recalibrate,
            },
            &[],
            None,
        )
    }
    fn weights(&mut self, w: WeightOp) -> Result<(), String> {
        self.call(&Request::Weights { w }, &[], None)
    }
    fn lr(&mut self) -> Result<f32, String> {
        self.call(&Request::Lr, &[], None)
    }
    fn evaluate(
        &mut self,
        mix: &[f32],
        batches: usize,
        recalibrate: usize,
        subset: Subset,
    ) -> Result<f32, String> {
        self.call(
            &Request::Evaluate {
                batches,
                recalibrate,
                subset,
            },
            mix,
            None,
        )
    }
    fn latencies(&mut self) -> Result<Vec<f32>, String> {
        self.call(&Request::Latencies, &[], None)
    }
    fn op_costs(&mut self) -> Result<Vec<crate::OpCost>, String> {
        self.call(&Request::OpCosts, &[], None).map_err(|e| {
            too_old(
                e,
                "op_costs",
                "SNAS's `resource_lambda` 0 or SPOS's `macs_bins` 0",
            )
        })
    }
    fn set_drop_path(&mut self, prob: f32) -> Result<(), String> {
        self.call(&Request::DropPath { prob }, &[], None)
            .map_err(|e| too_old(e, "set_drop_path", "SNAS's `drop_path` 0"))
    }
    fn set_weight_schedule(&mut self, schedule: &WeightSchedule) -> Result<(), String> {
        let r = Request::WeightSchedule {
            schedule: *schedule,
        };
        self.call(&r, &[], None).map_err(|e| {
            too_old(
                e,
                "set_weight_schedule",
                "NAT's `finetune_lr` 0 (the host's schedule)",
            )
        })
    }
    fn metrics(&mut self, arch: &Architecture) -> Result<Metrics, String> {
        self.call(&Request::Metrics { arch: arch.clone() }, &[], None)
    }
    fn checkpoint(&mut self, state: &Value) -> Result<(), String> {
        self.call(
            &Request::Checkpoint {
                state: state.clone(),
            },
            &[],
            None,
        )
    }
    fn progress(&mut self, p: &Progress) -> Result<(), String> {
        self.call(&Request::Progress { p: p.clone() }, &[], None)
    }
}

/// The plugin's `run` entry point for strategy type `S`.
///
/// # Safety
/// Called by the host through the one-shot table with the pointers the ABI describes.
pub unsafe extern "C" fn run<S: OneShotStrategy>(
    setup: *const u8,
    len: usize,
    host: *const HostServices,
    out: *mut PluginBuf,
    err: *mut PluginBuf,
) -> i32 {
    crate::abi::guard(err, || {
        let bytes: &[u8] = if setup.is_null() {
            &[]
        } else {
            // SAFETY: the host passes `len` readable bytes.
            unsafe { std::slice::from_raw_parts(setup, len) }
        };
        let setup: OneShotSetup = serde_json::from_slice(bytes)
            .map_err(|e| format!("bad one-shot setup JSON from the host: {e}"))?;
        if host.is_null() {
            return Err("null host services".into());
        }
        setup.info.check()?;
        let mut h = FfiHost {
            // SAFETY: checked non-null; valid for the call.
            services: unsafe { &*host },
            info: setup.info.clone(),
        };
        let mut s = S::new(&setup)?;
        let arch = s.run(&mut h, setup.resume.as_ref())?;
        crate::abi::write(out, serde_json::to_vec(&arch).map_err(|e| e.to_string())?)?;
        Ok(OK)
    })
}

/// Exports a [`OneShotStrategy`] as a plugin:
/// `export_one_shot!(MyStrategy, "name", "0.1.0");` in a crate built as a `cdylib`.
#[macro_export]
macro_rules! export_one_shot {
    ($ty:ty, $name:expr, $version:expr) => {
        #[no_mangle]
        pub extern "C" fn nas_plugin_abi_version() -> u32 {
            $crate::abi::ABI_VERSION
        }

        #[no_mangle]
        pub extern "C" fn nas_plugin_one_shot_table() -> *const $crate::oneshot_abi::OneShotTable {
            static NAME: &str = concat!($name, "\0");
            static VERSION: &str = concat!($version, "\0");
            static TABLE: $crate::oneshot_abi::OneShotTable = $crate::oneshot_abi::OneShotTable {
                name: NAME.as_ptr() as *const ::std::os::raw::c_char,
                version: VERSION.as_ptr() as *const ::std::os::raw::c_char,
                kind: $crate::abi::KIND_ONE_SHOT,
                run: $crate::oneshot_abi::run::<$ty>,
                free_buf: $crate::abi::free_buf,
            };
            &TABLE
        }
    };
}

#[cfg(test)]
mod tests {
    /// A host older than a request answers serde's "unknown variant"; the plugin says
    /// what that means and how to do without the call. Other errors pass unchanged.
    #[test]
    fn a_host_older_than_the_request_is_named() {
        let old = "bad host request: unknown variant `drop_path`, expected one of `lr`".into();
        let e = super::too_old(old, "set_drop_path", "SNAS's `drop_path` 0");
        assert!(
            e.contains("older than the plugin") && e.contains("`drop_path` 0"),
            "{e}"
        );
        let other = super::too_old("out of memory".into(), "op_costs", "x");
        assert_eq!(other, "out of memory");
    }
}
