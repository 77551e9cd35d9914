//! The host side of the boundary: finds plugin libraries, checks them, and wraps a
//! loaded strategy in a safe handle. Libraries are loaded once and never unloaded.

use libloading::Library;
use nas_strategies::abi::{self, PluginBuf, PluginTable};
use nas_strategies::oneshot::{OneShotSetup, SupernetHost};
use nas_strategies::oneshot_abi::OneShotTable;
use nas_strategies::{Architecture, Metrics, Setup};
use std::ffi::CStr;
use std::os::raw::c_void;
use std::path::{Path, PathBuf};

/// The symbol every plugin exports first: its ABI version.
const ABI_SYMBOL: &str = "nas_plugin_abi_version";
/// The entry-point tables; a plugin exports one of them.
const TABLE_SYMBOLS: [&str; 2] = ["nas_plugin_table", "nas_plugin_one_shot_table"];

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

/// Loads the very bytes [`crate::elf::check_image`] passed, not the file again: on Linux
/// they go into an anonymous in-memory file (`memfd_create`) that the loader opens, so a
/// plugin rewritten between the check and the load cannot slip past the check. Elsewhere
/// (ELF platforms without memfd) the file is loaded by its path.
fn load_checked(bytes: &[u8], path: &Path) -> Result<Library, String> {
    let at = path.display();
    #[cfg(target_os = "linux")]
    {
        use std::io::Write;
        use std::os::fd::FromRawFd;
        // SAFETY: a NUL-terminated name and valid flags; the result is checked.
        let fd = unsafe { libc::memfd_create(c"nas-plugin".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(format!("{at}: cannot load: memfd_create: {e}"));
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
        file.write_all(bytes)
            .map_err(|e| format!("{at}: cannot load: writing its in-memory copy: {e}"))?;
        // SAFETY: as for any plugin (see `Plugin::load`): its initialisers run.
        let lib = unsafe { Library::new(format!("/proc/self/fd/{fd}")) }
            .map_err(|e| format!("{at}: cannot load: {e}"))?;
        // The mapping outlives the descriptor, but a descriptor number reused later
        // could name another library to the loader's cache: keep it open for the run.
        std::mem::forget(file);
        Ok(lib)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = bytes;
        // SAFETY: as for any plugin (see `Plugin::load`).
        unsafe { Library::new(path) }.map_err(|e| format!("{at}: cannot load: {e}"))
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
    /// The file is checked first ([`crate::elf`]): a truncated or damaged library is
    /// refused with what is wrong instead of crashing the host inside the loader.
    pub fn load(path: &Path) -> Result<Plugin, String> {
        let _span = tracing::debug_span!("load plugin", file = %path.display()).entered();
        let at = path.display();
        // The entry-point tables the file exports (all that may be, where it is not ELF).
        let (tables, lib) = if crate::elf::platform_uses_elf() {
            let bytes = std::fs::read(path).map_err(|e| format!("{at}: cannot read: {e}"))?;
            let tables = crate::elf::check_image(&bytes, &[ABI_SYMBOL], &TABLE_SYMBOLS)
                .map_err(|e| format!("{at}: cannot load: {e}"))?;
            (tables, load_checked(&bytes, path)?)
        } else {
            let tables = TABLE_SYMBOLS.iter().map(|t| t.to_string()).collect();
            // SAFETY: loading runs the library's initialisers. We only load files the
            // user pointed us at (plugin directories), as any plugin host must.
            let lib =
                unsafe { Library::new(path) }.map_err(|e| format!("{at}: cannot load: {e}"))?;
            (tables, lib)
        };
        let exports = |t: &str| tables.iter().any(|x: &String| x == t);
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
        // Only a table the file's symbol table holds, soundly, is looked up.
        let ask_tell: Option<libloading::Symbol<extern "C" fn() -> *const PluginTable>> =
            if exports(TABLE_SYMBOLS[0]) {
                unsafe { lib.get(b"nas_plugin_table\0") }.ok()
            } else {
                None
            };
        if let Some(table) = ask_tell {
            let t = table();
            if t.is_null() {
                return Err(format!("{at}: `nas_plugin_table` returned null"));
            }
            use std::mem::offset_of;
            let entries = [
                ("create", offset_of!(PluginTable, create)),
                ("destroy", offset_of!(PluginTable, destroy)),
                ("ask", offset_of!(PluginTable, ask)),
                ("ask_costed", offset_of!(PluginTable, ask_costed)),
                ("tell", offset_of!(PluginTable, tell)),
                ("save", offset_of!(PluginTable, save)),
                ("load", offset_of!(PluginTable, load)),
                ("free_buf", offset_of!(PluginTable, free_buf)),
            ];
            // SAFETY: non-null, and a whole table (the ABI version matched).
            unsafe { no_null_entry(t.cast(), &entries, &at)? };
            // SAFETY: non-null, every entry point set, and the table is a static in the
            // never-unloaded library.
            let table: &'static PluginTable = unsafe { &*t };
            return Ok(Plugin {
                name: text(table.name, "name")?,
                version: text(table.version, "version")?,
                kind: table.kind,
                path: path.to_path_buf(),
                table: Table::AskTell(table),
            });
        }
        let missing =
            || format!("{at}: missing symbol `nas_plugin_table` or `nas_plugin_one_shot_table`");
        if !exports(TABLE_SYMBOLS[1]) {
            return Err(missing());
        }
        // SAFETY: as above.
        let one_shot: libloading::Symbol<extern "C" fn() -> *const OneShotTable> =
            unsafe { lib.get(b"nas_plugin_one_shot_table\0") }.map_err(|_| missing())?;
        let t = one_shot();
        if t.is_null() {
            return Err(format!("{at}: `nas_plugin_one_shot_table` returned null"));
        }
        let entries = [
            ("run", std::mem::offset_of!(OneShotTable, run)),
            ("free_buf", std::mem::offset_of!(OneShotTable, free_buf)),
        ];
        // SAFETY: as above.
        unsafe { no_null_entry(t.cast(), &entries, &at)? };
        // SAFETY: non-null, every entry point set, and the table is a static in the
        // never-unloaded library.
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
            Table::OneShot(t) => {
                nas_strategies::oneshot_abi::run_plugin(t, &self.name, setup, host)
            }
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
        self.answer(code, out, err)
    }

    /// [`ask`](Self::ask), with `costs` (an architecture's costs before it is evaluated)
    /// open to the strategy during the call.
    pub fn ask_costed(
        &mut self,
        costs: &dyn Fn(&Architecture) -> Result<Metrics, String>,
    ) -> Result<Option<Architecture>, String> {
        let (mut out, mut err) = (PluginBuf::empty(), PluginBuf::empty());
        let table = abi::host_costs(&costs);
        // SAFETY: a live handle from `create`; `table` borrows `costs` for the call; out
        // slots on our stack.
        let code = unsafe { (self.table.ask_costed)(self.handle, &table, &mut out, &mut err) };
        self.answer(code, out, err)
    }

    /// An ask's answer: an architecture, or None when the strategy has nothing left.
    fn answer(
        &mut self,
        code: i32,
        out: PluginBuf,
        err: PluginBuf,
    ) -> Result<Option<Architecture>, String> {
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

/// Where plugins are looked for, and what was loaded from there. [`discover`] loads
/// nothing until a strategy is asked for by name ([`Discovery::get`]);
/// [`discover_all`] checks and loads every library (for listings).
#[derive(Debug, Default)]
pub struct Discovery {
    pub dirs: Vec<PathBuf>,
    /// Every plugin that loaded (filled by [`discover_all`]).
    pub plugins: Vec<Plugin>,
    /// Libraries that were refused, and why (filled by [`discover_all`]).
    pub rejected: Vec<(PathBuf, String)>,
    /// Strategies loaded by name; never unloaded, like their libraries.
    named: std::sync::Mutex<Vec<&'static Plugin>>,
}

impl Discovery {
    /// The plugin named `name`: loaded from its own library file only
    /// (`libnas_strategy_<name>.so`, see [`find`]), so a damaged library of another
    /// strategy is never touched; or an error naming the file and what is wrong, or
    /// listing what there is.
    pub fn get(&self, name: &str) -> Result<&Plugin, String> {
        // `foo-bar` asks for the plugin that calls itself `foo_bar` (its file name).
        let same = |p: &Plugin| p.name.replace('-', "_") == name.replace('-', "_");
        if let Some(p) = self.plugins.iter().find(|p| same(p)) {
            return Ok(p);
        }
        let mut named = self.named.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(p) = named.iter().find(|p| same(p)) {
            return Ok(*p);
        }
        let p: &'static Plugin = Box::leak(Box::new(find(&self.dirs, name)?));
        named.push(p);
        Ok(p)
    }
}

/// An error naming the first entry point of a plugin's table (by name and byte offset)
/// that is null. The SDK's export macros fill every one, but a library built without
/// them can leave one out, and the host would crash calling it; the entries are read as
/// words, before the table is taken as one with function pointers (which are never null).
///
/// # Safety
/// `table` points to a whole table whose entries lie at `entries`' offsets.
unsafe fn no_null_entry(
    table: *const u8,
    entries: &[(&str, usize)],
    at: &dyn std::fmt::Display,
) -> Result<(), String> {
    for (name, offset) in entries {
        // SAFETY: inside the table, per the caller.
        if unsafe { table.add(*offset).cast::<usize>().read_unaligned() } == 0 {
            return Err(format!(
                "{at}: the plugin's entry point `{name}` is null (its table must fill every \
                 entry, as nas-strategies' export macros do)"
            ));
        }
    }
    Ok(())
}

/// Whether a file name looks like a shared library.
fn is_library(p: &Path) -> bool {
    let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
    ext == std::env::consts::DLL_EXTENSION
}

/// The start of a strategy library's file name, after the platform's prefix.
const FILE_STEM: &str = "nas_strategy_";

/// The file name of strategy `name`'s library (`libnas_strategy_<name>.so` on Linux; a
/// `-` in the name is a `_` in the file, as cargo names a crate's library), or None for
/// a name that could not be a file name.
pub fn library_file(name: &str) -> Option<String> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return None;
    }
    Some(format!(
        "{}{FILE_STEM}{}{}",
        std::env::consts::DLL_PREFIX,
        name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    ))
}

/// The strategy name a library file's name promises, if it follows the naming rule.
fn named_strategy(p: &Path) -> Option<String> {
    let f = p.file_name()?.to_str()?;
    let stem = f
        .strip_prefix(std::env::consts::DLL_PREFIX)?
        .strip_suffix(std::env::consts::DLL_SUFFIX)?;
    stem.strip_prefix(FILE_STEM).map(str::to_string)
}

/// Loads the strategy `name` and only it: the first `libnas_strategy_<name>.so` in
/// `dirs` (in order), so a damaged library of another strategy beside it is never
/// touched. The library must declare the strategy it is named for.
pub fn find(dirs: &[PathBuf], name: &str) -> Result<Plugin, String> {
    let file = library_file(name).ok_or_else(|| {
        format!("`{name}` is not a strategy name (letters, digits, `_` and `-` only)")
    })?;
    if let Some(path) = dirs.iter().map(|d| d.join(&file)).find(|p| p.is_file()) {
        let p = Plugin::load(&path)?;
        if p.name.replace('-', "_") != name.replace('-', "_") {
            return Err(format!(
                "{}: declares strategy `{}`, not `{name}` (a strategy's library is named \
                 {file})",
                path.display(),
                p.name
            ));
        }
        return Ok(p);
    }
    // What there is, by file name (nothing else is loaded).
    let mut have: Vec<String> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flat_map(|e| e.filter_map(|e| e.ok()).map(|e| e.path()))
        .filter(|p| is_library(p))
        .filter_map(|p| named_strategy(&p))
        .collect();
    have.sort();
    have.dedup();
    let have = match have.is_empty() {
        true => "no strategy libraries there".to_string(),
        false => format!(
            "libraries there named for {}; `nas plugins` says which load",
            have.join(", ")
        ),
    };
    Err(format!(
        "no strategy plugin named `{name}`: no {file} in {} ({have})\n(the workspace's \
         strategies are built by `cargo build --release --workspace`; a plugin built \
         elsewhere is found with --plugin-dir or NAS_PLUGIN_PATH)",
        dirs.iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
    ))
}

/// The plugin directories `dirs`, with nothing loaded yet: [`Discovery::get`] loads
/// the one strategy asked for.
pub fn discover(dirs: &[PathBuf]) -> Discovery {
    Discovery {
        dirs: dirs.to_vec(),
        ..Discovery::default()
    }
}

/// Checks and loads every library in `dirs` (in order; the first plugin of a name
/// wins); a library that fails its checks is rejected with the reason.
pub fn discover_all(dirs: &[PathBuf]) -> Discovery {
    let mut d = discover(dirs);
    // The first file named for each strategy, which is the one `find` loads, good or not.
    let mut claimed: Vec<(String, PathBuf)> = vec![];
    let norm = |s: &str| s.replace('-', "_");
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
        files.sort();
        for f in files.into_iter().filter(|f| is_library(f)) {
            let promised = named_strategy(&f).map(|n| norm(&n));
            if let Some(n) = &promised {
                if let Some((_, first)) = claimed.iter().find(|(m, _)| m == n) {
                    let why = format!(
                        "shadowed by {}, which a search for `{n}` loads (the first in the \
                         plugin directories)",
                        first.display()
                    );
                    d.rejected.push((f, why));
                    continue;
                }
                claimed.push((n.clone(), f.clone()));
            }
            let p = match Plugin::load(&f) {
                Ok(p) => p,
                Err(e) => {
                    d.rejected.push((f, e));
                    continue;
                }
            };
            // `nas search --strategy X` loads X's library by its file name ([`find`]): a
            // library named otherwise is never what a search runs, so it is not listed
            // as the plugin of its name (before, it was, and shadowed the one that ran).
            if promised != Some(norm(&p.name)) {
                let why = format!(
                    "declares strategy `{}`, but a search loads that strategy from a file \
                     named {}; rename it to be found",
                    p.name,
                    library_file(&p.name).unwrap_or_default()
                );
                d.rejected.push((f, why));
                continue;
            }
            // (A second library of the name was shadowed above, by its file name.)
            d.plugins.push(p);
        }
    }
    d
}

/// Where the host looks: `--plugin-dir` directories, then `NAS_PLUGIN_PATH` (separated
/// like PATH), then the directory of the running binary.
pub fn search_dirs(explicit: &[PathBuf]) -> Vec<PathBuf> {
    // A directory named that is not one is likely a typo: said (the search goes on with
    // the other directories).
    let check = |what: &str, d: &Path| {
        if let Some(why) = crate::not_a_directory(d) {
            tracing::warn!("{what} {} {why}", d.display());
        }
    };
    for d in explicit {
        check("--plugin-dir", d);
    }
    let mut dirs = explicit.to_vec();
    if let Some(p) = std::env::var_os("NAS_PLUGIN_PATH") {
        for d in std::env::split_paths(&p) {
            if d.as_os_str().is_empty() {
                continue;
            }
            check("NAS_PLUGIN_PATH entry", &d);
            dirs.push(d);
        }
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir);
    }
    dirs
}
