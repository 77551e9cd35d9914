//! Opening a data file that may be raw or gzip-compressed (detected by its magic bytes),
//! with bounded reads so that no header can make us allocate more than the file holds.

use super::DataError;
use flate2::bufread::MultiGzDecoder;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// The most bytes one data file may hold (after decompression): 1 GiB. Headers that claim
/// more are rejected before anything is read or allocated.
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// Bytes of memory a data set may take when it is loaded: the memory the kernel says is
/// available (`MemAvailable`), less where the process's cgroup allows less, and less
/// again where `NAS_MAX_MEMORY` (bytes) says so. None where none of them is known.
pub fn available_memory() -> Option<u64> {
    memory(true)
}

/// The memory a process may fill at most: as [`available_memory`], but a cgroup counts
/// by its limit, not by what it holds now (which counts the page cache of files read,
/// and reads near 0 in a container whose cache is near its limit). What the parameters
/// of a network may take ([`crate::Tensor::parameter`]).
pub fn memory_bound() -> Option<u64> {
    memory(false)
}

fn memory(headroom: bool) -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("MemAvailable:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let read = |p: &str| -> Option<u64> { std::fs::read_to_string(p).ok()?.trim().parse().ok() };
    let cgroup = read("/sys/fs/cgroup/memory.max").map(|max| match headroom {
        true => max.saturating_sub(read("/sys/fs/cgroup/memory.current").unwrap_or(0)),
        false => max,
    });
    let env = std::env::var("NAS_MAX_MEMORY")
        .ok()
        .and_then(|v| v.trim().parse().ok());
    [meminfo, cgroup, env].into_iter().flatten().min()
}

/// GiB, for messages.
fn gib(bytes: u64) -> String {
    format!("{:.2} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// The two bytes every gzip stream starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// An open data file: a reader over its (decompressed) bytes.
#[doc(hidden)]
pub struct Source {
    path: PathBuf,
    reader: Box<dyn Read>,
    /// The file length when it is raw; None when it is gzip (length unknown until read).
    raw_len: Option<u64>,
}

impl Source {
    /// Opens `path`, detecting gzip by the file's first two bytes (not its extension).
    pub fn open(path: &Path) -> Result<Source, DataError> {
        let io_err = |source| DataError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let mut buf = BufReader::with_capacity(1 << 16, file);
        let head = buf.fill_buf().map_err(io_err)?;
        let is_gzip = head.len() >= 2 && head[..2] == GZIP_MAGIC;
        let (reader, raw_len): (Box<dyn Read>, _) = if is_gzip {
            (Box::new(MultiGzDecoder::new(buf)), None)
        } else {
            (Box::new(buf), Some(len))
        };
        Ok(Source {
            path: path.to_path_buf(),
            reader,
            raw_len,
        })
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The raw file length, or None for a gzip file.
    pub fn raw_len(&self) -> Option<u64> {
        self.raw_len
    }

    /// "file" or "decompressed file", for messages about sizes.
    pub(crate) fn what(&self) -> &'static str {
        if self.raw_len.is_some() {
            "file"
        } else {
            "decompressed file"
        }
    }

    /// An `Invalid` error for this file.
    pub(crate) fn invalid(&self, reason: String) -> DataError {
        DataError::Invalid {
            path: self.path.clone(),
            reason,
        }
    }

    /// An error when loading what the file holds (`claim`, for example "60000 images
    /// of 28x28") needs `need` bytes at once, more than the `available` memory.
    pub fn check_fits(
        &self,
        claim: &str,
        need: u64,
        available: Option<u64>,
    ) -> Result<(), DataError> {
        match available {
            Some(a) if need > a => Err(self.invalid(format!(
                "{claim} take {} in memory once loaded (the bytes and their 32-bit floats), \
                 more than the {} available{}",
                gib(need),
                gib(a),
                if std::env::var_os("NAS_MAX_MEMORY").is_some() {
                    " (NAS_MAX_MEMORY included)"
                } else {
                    ""
                }
            ))),
            _ => Ok(()),
        }
    }

    /// Turns a read error into a `DataError` naming this file; for gzip files an early end
    /// of input is reported as a truncated stream and other failures as corruption.
    fn read_error(&self, e: io::Error) -> DataError {
        let path = self.path.clone();
        match (self.raw_len, e.kind()) {
            (Some(_), _) => DataError::Io { path, source: e },
            (None, io::ErrorKind::UnexpectedEof) => DataError::TruncatedGzip { path },
            (None, _) => DataError::BadGzip {
                path,
                reason: e.to_string(),
            },
        }
    }

    /// Fills as much of `buf` as the file allows; returns the number of bytes read (less
    /// than `buf.len()` only at the end of the data).
    pub fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, DataError> {
        let mut got = 0;
        while got < buf.len() {
            match self.reader.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(k) => got += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.read_error(e)),
            }
        }
        Ok(got)
    }

    /// Reads the rest of the data, but at most `limit + 1` bytes, so a caller expecting
    /// exactly `limit` bytes can tell "too short", "exact" and "too long" apart. The buffer
    /// grows with the data actually read; for raw files it is sized up front from the real
    /// file length. For gzip files the whole stream (trailer included) is verified when the
    /// data ends within the limit.
    pub fn read_rest(&mut self, limit: u64) -> Result<Vec<u8>, DataError> {
        let cap = limit.saturating_add(1);
        let mut out = Vec::new();
        if let Some(len) = self.raw_len {
            // The file length is real, so reserving up to it is safe.
            out.reserve_exact(len.min(cap).min(MAX_FILE_BYTES + 1) as usize);
        }
        match (&mut self.reader).take(cap).read_to_end(&mut out) {
            Ok(_) => Ok(out),
            Err(e) => Err(self.read_error(e)),
        }
    }
}
