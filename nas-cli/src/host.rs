//! The host side of the boundary: finds plugin libraries, checks them, and wraps a
//! loaded strategy in a safe handle. Libraries are loaded once and never unloaded.

use nas_strategies::abi::{self, PluginBuf, PluginTable};
use nas_strategies::oneshot::{OneShotSetup, SupernetHost};
use nas_strategies::oneshot_abi::OneShotTable;
use nas_strategies::{Architecture, Metrics, Setup};
use libloading::Library;
use std::ffi::CStr;
use std::os::raw::c_void;
use std::path::{Path, PathBuf};

/// A loaded, checked plugin library.
#[derive(Clone)]
pub struct Plugin {
    pub name: String,
    pub version: String,
    pub kind: u32,
    pub path: PathBuf,
    table: Table,
}

/// The entry points of the plugin's kind.
#[derive(Clone, Copy)]
enum Table {
    AskTell(&'static PluginTable),
    OneShot(&'static OneShotTable),
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Plugin({} {} at {})",
            self.name,
            self.version,
            self.path.display()
        )
    }
}

impl Plugin {
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            abi::KIND_ASK_TELL => "ask/tell",
            abi::KIND_ONE_SHOT => "one-shot",
            _ => "unknown",
        }
    }

    /// Loads one library and checks its ABI version before touching anything else.
    pub fn load(path: &Path) -> Result<Plugin, String> {
        let at = path.display();
        // SAFETY: loading runs the library's initialisers. We only load files the user
        // pointed us at (plugin directories), as any plugin host must.
        let lib = unsafe { Library::new(path) }.map_err(|e| format!("{at}: cannot load: {e}"))?;
        // Never unloaded: function pointers into it live for the whole run.
        let lib: &'static Library = Box::leak(Box::new(lib));
        // SAFETY: the symbol is declared with the signature the export macro gives it.
        let version: libloading::Symbol<extern "C" fn() -> u32> = unsafe {
            lib.get(b"nas_plugin_abi_version\0")
        }
        .map_err(|_| format!("{at}: not a nas plugin (no `nas_plugin_abi_version` symbol)"))?;
        let v = version();
        if v != abi::ABI_VERSION {
            return Err(format!(
                "{at}: plugin ABI version {v}, this host speaks version {}; rebuild the plugin \
                 against this nas-strategies",
                abi::ABI_VERSION
            ));
        }
        let text = |p: *const std::os::raw::c_char, what: &str| -> Result<String, String> {
            if p.is_null() {
                return Err(format!("{at}: plugin {what} is null"));
            }
            // SAFETY: non-null static NUL-terminated string from the export macro.
            Ok(unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
        };
        // SAFETY: as above; the ABI version matched, so the tables have these layouts.
        let ask_tell: Option<libloading::Symbol<extern "C" fn() -> *const PluginTable>> =
            unsafe { lib.get(b"nas_plugin_table\0") }.ok();
        if let Some(table) = ask_tell {
            let t = table();
            if t.is_null() {
                return Err(format!("{at}: `nas_plugin_table` returned null"));
            }
            // SAFETY: non-null, and the table is a static in the never-unloaded library.
            let table: &'static PluginTable = unsafe { &*t };
            return Ok(Plugin {
                name: text(table.name, "name")?,
                version: text(table.version, "version")?,
                kind: table.kind,
                path: path.to_path_buf(),
                table: Table::AskTell(table),
            });
        }
        // SAFETY: as above.
        let one_shot: libloading::Symbol<extern "C" fn() -> *const OneShotTable> =
            unsafe { lib.get(b"nas_plugin_one_shot_table\0") }.map_err(|_| {
                format!("{at}: missing symbol `nas_plugin_table` or `nas_plugin_one_shot_table`")
            })?;
        let t = one_shot();
        if t.is_null() {
            return Err(format!("{at}: `nas_plugin_one_shot_table` returned null"));
        }
        // SAFETY: non-null, and the table is a static in the never-unloaded library.
        let table: &'static OneShotTable = unsafe { &*t };
        Ok(Plugin {
            name: text(table.name, "name")?,
            version: text(table.version, "version")?,
            kind: abi::KIND_ONE_SHOT,
            path: path.to_path_buf(),
            table: Table::OneShot(table),
        })
    }

    /// The ask/tell table, or an error saying the plugin is of another kind.
    fn ask_tell(&self) -> Result<&'static PluginTable, String> {
        match self.table {
            Table::AskTell(t) => Ok(t),
            Table::OneShot(_) => Err(format!(
                "plugin `{}` is a one-shot strategy, not an ask/tell one",
                self.name
            )),
        }
    }

    /// Runs a one-shot plugin's search against `host`; returns the architecture it
    /// exports.
    pub fn run_one_shot(
        &self,
        setup: &OneShotSetup,
        host: &mut dyn SupernetHost,
    ) -> Result<Architecture, String> {
        match self.table {
            Table::OneShot(t) => nas_strategies::oneshot_abi::run_plugin(t, &self.name, setup, host),
            Table::AskTell(_) => Err(format!(
                "plugin `{}` is an ask/tell strategy, not a one-shot one",
                self.name
            )),
        }
    }

    /// Creates a strategy instance.
    pub fn create(&self, setup: &Setup) -> Result<LoadedStrategy, String> {
        let json = serde_json::to_vec(setup).map_err(|e| e.to_string())?;
        let mut h: *mut c_void = std::ptr::null_mut();
        let mut err = PluginBuf::empty();
        // SAFETY: the table came from a library whose ABI version matched; the pointers
        // are valid for the call (JSON bytes we own, out slots on our stack).
        let code =
            unsafe { (self.ask_tell()?.create)(json.as_ptr(), json.len(), &mut h, &mut err) };
        self.check(code, err, "create")?;
        if h.is_null() {
            return Err(format!("plugin `{}`: create returned no handle", self.name));
        }
        Ok(LoadedStrategy {
            plugin: self.clone(),
            table: self.ask_tell()?,
            handle: h,
        })
    }

    /// Turns a status code into a Result, taking the plugin's message.
    fn check(&self, code: i32, err: PluginBuf, call: &str) -> Result<i32, String> {
        let msg = self.take(err);
        match code {
            abi::OK | abi::EXHAUSTED => Ok(code),
            abi::PANIC => Err(format!("plugin `{}` {call}: {}", self.name, msg)),
            _ => Err(format!(
                "plugin `{}` {call}: {}",
                self.name,
                if msg.is_empty() {
                    format!("error code {code}")
                } else {
                    msg
                }
            )),
        }
    }

    /// Copies a plugin buffer into host memory and gives it back to the plugin.
    fn take(&self, buf: PluginBuf) -> String {
        if buf.ptr.is_null() {
            return String::new();
        }
        // SAFETY: the plugin filled `buf` with `len` initialised bytes it owns.
        let s = String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(buf.ptr, buf.len) })
            .into_owned();
        let free = match self.table {
            Table::AskTell(t) => t.free_buf,
            Table::OneShot(t) => t.free_buf,
        };
        // SAFETY: `buf` came from this plugin and is given back exactly once.
        unsafe { free(buf) };
        s
    }
}

/// A strategy instance living in a plugin.
pub struct LoadedStrategy {
    pub plugin: Plugin,
    table: &'static PluginTable,
    handle: *mut c_void,
}

// SAFETY: the handle is only used through `&mut self`, one call at a time, and the
// `Strategy` trait requires `Send` of the plugin's type.
unsafe impl Send for LoadedStrategy {}

impl LoadedStrategy {
    /// The next architecture, or None when the strategy has nothing left.
    pub fn ask(&mut self) -> Result<Option<Architecture>, String> {
        let (mut out, mut err) = (PluginBuf::empty(), PluginBuf::empty());
        // SAFETY: a live handle from `create`, and out slots on our stack.
        let code = unsafe { (self.table.ask)(self.handle, &mut out, &mut err) };
        if self.plugin.check(code, err, "ask")? == abi::EXHAUSTED {
            return Ok(None);
        }
        let text = self.plugin.take(out);
        serde_json::from_str(&text).map(Some).map_err(|e| {
            format!(
                "plugin `{}` ask: not an architecture: {e}: {text}",
                self.plugin.name
            )
        })
    }

    pub fn tell(&mut self, arch: &Architecture, metrics: &Metrics) -> Result<(), String> {
        let json = serde_json::to_vec(&abi::Trial {
            arch: arch.clone(),
            metrics: metrics.clone(),
        })
        .map_err(|e| e.to_string())?;
        let mut err = PluginBuf::empty();
        // SAFETY: a live handle; JSON bytes we own for the call.
        let code = unsafe { (self.table.tell)(self.handle, json.as_ptr(), json.len(), &mut err) };
        self.plugin.check(code, err, "tell").map(|_| ())
    }

    pub fn save(&mut self) -> Result<serde_json::Value, String> {
        let (mut out, mut err) = (PluginBuf::empty(), PluginBuf::empty());
        // SAFETY: a live handle, and out slots on our stack.
        let code = unsafe { (self.table.save)(self.handle, &mut out, &mut err) };
        self.plugin.check(code, err, "save")?;
        let text = self.plugin.take(out);
        serde_json::from_str(&text).map_err(|e| format!("plugin `{}` save: {e}", self.plugin.name))
    }

    pub fn load(&mut self, state: &serde_json::Value) -> Result<(), String> {
        let json = serde_json::to_vec(state).map_err(|e| e.to_string())?;
        let mut err = PluginBuf::empty();
        // SAFETY: a live handle; JSON bytes we own for the call.
        let code = unsafe { (self.table.load)(self.handle, json.as_ptr(), json.len(), &mut err) };
        self.plugin.check(code, err, "load").map(|_| ())
    }
}

impl Drop for LoadedStrategy {
    fn drop(&mut self) {
        // SAFETY: the handle is live and dropped once; nothing uses it afterwards.
        unsafe { (self.table.destroy)(self.handle) };
    }
}

/// What discovery found: the plugins that loaded, and why the others did not.
#[derive(Debug, Default)]
pub struct Discovery {
    pub plugins: Vec<Plugin>,
    pub rejected: Vec<(PathBuf, String)>,
}

impl Discovery {
    /// The plugin named `name`, or an error listing what there is.
    pub fn get(&self, name: &str) -> Result<&Plugin, String> {
        self.plugins.iter().find(|p| p.name == name).ok_or_else(|| {
            let have: Vec<&str> = self.plugins.iter().map(|p| p.name.as_str()).collect();
            let mut msg = format!(
                "no strategy plugin named `{name}` (found: {})",
                have.join(", ")
            );
            for (p, why) in &self.rejected {
                if p.file_name()
                    .is_some_and(|f| f.to_string_lossy().contains(name))
                {
                    msg += &format!("; {why}");
                }
            }
            msg
        })
    }
}

/// Whether a file name looks like a shared library.
fn is_library(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    ext == std::env::consts::DLL_EXTENSION
}

/// Loads every library in `dirs` (in order; the first plugin of a name wins).
pub fn discover(dirs: &[PathBuf]) -> Discovery {
    let mut d = Discovery::default();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for f in files.into_iter().filter(|f| is_library(f)) {
            match Plugin::load(&f) {
                Ok(p) if d.plugins.iter().any(|q| q.name == p.name) => d.rejected.push((
                    f,
                    format!(
                        "plugin `{}` already loaded from an earlier directory",
                        p.name
                    ),
                )),
                Ok(p) => d.plugins.push(p),
                Err(e) => d.rejected.push((f, e)),
            }
        }
    }
    d
}

/// Where the host looks: `--plugin-dir` directories, then `NAS_PLUGIN_PATH` (separated
/// like PATH), then the directory of the running binary.
pub fn search_dirs(explicit: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = explicit.to_vec();
    if let Some(p) = std::env::var_os("NAS_PLUGIN_PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir);
    }
    dirs
}
