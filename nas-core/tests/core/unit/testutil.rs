//! Test helpers for the data module: uniquely named temporary files and directories that
//! clean up after themselves, gzip compression, and the path of the repository's data.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A unique path in the system temp directory whose file name ends with `name`.
fn unique_path(name: &str) -> PathBuf {
    let k = COUNTER.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("nas-data-{}-{k}-{name}", std::process::id()))
}

/// The repository's `data/` directory.
pub(crate) fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data")
}

/// Gzip-compresses `bytes`.
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A temporary file, removed on drop.
pub(crate) struct TempFile(PathBuf);

impl TempFile {
    /// Writes `bytes` to a new uniquely named temporary file whose name ends with `name`.
    pub(crate) fn new(name: &str, bytes: &[u8]) -> TempFile {
        let p = unique_path(name);
        std::fs::write(&p, bytes).unwrap();
        TempFile(p)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// The file name (which error messages must contain).
    pub(crate) fn name(&self) -> String {
        self.0.file_name().unwrap().to_string_lossy().into_owned()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A temporary directory, removed with its contents on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(name: &str) -> TempDir {
        let p = unique_path(name);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
