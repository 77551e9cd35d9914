//! Image classification data: loading IDX (MNIST / Fashion-MNIST) and CIFAR-10 files into
//! an in-memory `Dataset`, normalising, splitting, and iterating shuffled mini-batches.
//!
//! Every loader checks the sizes a file's header claims against the bytes the file really
//! holds before allocating for them, and reports problems as a [`DataError`] whose message
//! names the offending file.

#[doc(hidden)]
pub mod batches;
#[doc(hidden)]
pub mod cifar;
#[doc(hidden)]
pub mod idx;
#[doc(hidden)]
pub mod source;

pub use batches::{augment_view, Augment, Batches, BatchesState};
pub use cifar::{load_cifar10, CIFAR10_CLASSES, CIFAR10_RECORD_BYTES};
pub use idx::{load_idx, load_idx_with_classes, IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC};
pub use source::MAX_FILE_BYTES;

use crate::rng::Rng;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// Everything that can go wrong while loading data. Each message starts with the path of
/// the file (or directory) concerned and then says what is wrong with it.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{}: cannot read: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A gzip file ends before its compressed stream (or its trailer) does.
    #[error("{}: truncated gzip stream", .path.display())]
    TruncatedGzip {
        /// The file.
        path: PathBuf,
    },
    /// A gzip file is damaged (bad header, bad deflate data or checksum mismatch).
    #[error("{}: corrupt gzip stream: {reason}", .path.display())]
    BadGzip {
        /// The file.
        path: PathBuf,
        /// What the decoder reported.
        reason: String,
    },
    /// An IDX file starts with the wrong magic number.
    #[error("{}: bad magic number {found:#010x}, expected {expected:#010x} ({what}){hint}", .path.display())]
    BadMagic {
        /// The file.
        path: PathBuf,
        /// The magic number found.
        found: u32,
        /// The magic number wanted.
        expected: u32,
        /// What kind of file was wanted ("images" or "labels").
        what: &'static str,
        /// Extra explanation (empty, or starting with "; ").
        hint: String,
    },
    /// The file's structure is wrong: too short, sizes that disagree with its header, etc.
    #[error("{}: {reason}", .path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A label is not below the number of classes.
    #[error("{}: label {label} at index {index} is out of range for {classes} classes", .path.display())]
    LabelOutOfRange {
        /// The file.
        path: PathBuf,
        /// The label found.
        label: u32,
        /// Its index within the file.
        index: usize,
        /// The number of classes.
        classes: usize,
    },
    /// An images file and its labels file disagree on the number of examples.
    #[error("{}: holds {n_images} images but {} holds {n_labels} labels", .images.display(), .labels.display())]
    CountMismatch {
        /// The images file.
        images: PathBuf,
        /// The labels file.
        labels: PathBuf,
        /// Number of images.
        n_images: usize,
        /// Number of labels.
        n_labels: usize,
    },
    /// A directory holds no recognisable dataset (or does not exist).
    #[error("{}: {reason}", .dir.display())]
    NoDataset {
        /// The directory.
        dir: PathBuf,
        /// What is missing, naming the files looked for.
        reason: String,
    },
    /// `load_cifar10` was given an empty list of files.
    #[error("no CIFAR-10 batch files given")]
    NoFiles,
}

/// An in-memory image classification set: pixels as f32 in NCHW order.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// `n * c * h * w` pixel values, image after image, each image channel after channel.
    pub images: Vec<f32>,
    /// `n` labels, each below `classes`.
    pub labels: Vec<u32>,
    /// Number of examples.
    pub n: usize,
    /// Channels per image.
    pub c: usize,
    /// Image height.
    pub h: usize,
    /// Image width.
    pub w: usize,
    /// Number of classes.
    pub classes: usize,
}

/// Images per parallel work item when computing statistics (fixed so results are
/// bit-for-bit reproducible whatever the thread count).
const STATS_CHUNK: usize = 256;

impl Dataset {
    /// `n` images of normal noise with uniform random labels: a stand-in set for
    /// plumbing tests of real networks and supernets.
    pub fn random(
        n: usize,
        c: usize,
        size: usize,
        classes: usize,
        rng: &mut crate::Rng,
    ) -> Dataset {
        Dataset {
            images: (0..n * c * size * size).map(|_| rng.normal()).collect(),
            labels: (0..n).map(|_| rng.below(classes) as u32).collect(),
            n,
            c,
            h: size,
            w: size,
            classes,
        }
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.n
    }

    /// True when the set holds no examples.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// Values per image: `c * h * w`.
    pub fn image_len(&self) -> usize {
        self.c * self.h * self.w
    }

    /// Per-channel mean and (population) standard deviation of the pixels, accumulated in
    /// f64. An empty set gives mean 0 and std 1 for every channel.
    pub fn channel_stats(&self) -> (Vec<f32>, Vec<f32>) {
        let (c, plane, il) = (self.c, self.h * self.w, self.image_len());
        let count = (self.n * plane) as f64;
        if self.n == 0 || plane == 0 {
            return (vec![0.0; c], vec![1.0; c]);
        }
        let images = &self.images[..self.n * il];
        let sum_chunks = |f: &(dyn Fn(usize, f32) -> f64 + Sync)| -> Vec<f64> {
            let partials: Vec<Vec<f64>> = images
                .par_chunks(STATS_CHUNK * il)
                .map(|chunk| {
                    let mut acc = vec![0.0f64; c];
                    for img in chunk.chunks_exact(il) {
                        for (ch, px) in img.chunks_exact(plane).enumerate() {
                            acc[ch] += px.iter().map(|&v| f(ch, v)).sum::<f64>();
                        }
                    }
                    acc
                })
                .collect();
            let mut total = vec![0.0f64; c];
            for p in partials {
                for (t, v) in total.iter_mut().zip(p) {
                    *t += v;
                }
            }
            total
        };
        let mean: Vec<f64> = sum_chunks(&|_, v| v as f64)
            .into_iter()
            .map(|s| s / count)
            .collect();
        let var = sum_chunks(&|ch, v| {
            let d = v as f64 - mean[ch];
            d * d
        });
        let std = var.into_iter().map(|s| (s / count).sqrt() as f32).collect();
        (mean.into_iter().map(|m| m as f32).collect(), std)
    }

    /// In-place `(x - mean[c]) / std[c]` for every pixel of channel `c`. A std that is zero
    /// or not finite is treated as 1, so a constant channel becomes 0 rather than NaN.
    ///
    /// Panics if `mean` or `std` does not have one entry per channel.
    pub fn normalise(&mut self, mean: &[f32], std: &[f32]) {
        assert!(
            mean.len() == self.c && std.len() == self.c,
            "normalise: {} channels but {} means and {} stds",
            self.c,
            mean.len(),
            std.len()
        );
        let plane = self.h * self.w;
        let il = self.image_len();
        if il == 0 {
            return;
        }
        let inv: Vec<f32> = std
            .iter()
            .map(|&s| {
                if s.is_finite() && s != 0.0 {
                    1.0 / s
                } else {
                    1.0
                }
            })
            .collect();
        self.images.par_chunks_mut(il).for_each(|img| {
            for (ch, px) in img.chunks_mut(plane).enumerate() {
                let (m, k) = (mean[ch], inv[ch]);
                for v in px {
                    *v = (*v - m) * k;
                }
            }
        });
    }

    /// A new set holding the examples at `indices`, in that order.
    ///
    /// Panics if an index is not below `len()`.
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let il = self.image_len();
        let mut images = Vec::with_capacity(indices.len() * il);
        let mut labels = Vec::with_capacity(indices.len());
        for &i in indices {
            assert!(
                i < self.n,
                "Dataset::select: index {i} out of range for {} examples",
                self.n
            );
            images.extend_from_slice(&self.images[i * il..(i + 1) * il]);
            labels.push(self.labels[i]);
        }
        Dataset {
            images,
            labels,
            n: indices.len(),
            ..self.shape_only()
        }
    }

    /// Shuffle the indices with the rng, take `count` examples as the second (validation)
    /// set and the rest as the first. Order within each output follows the shuffle.
    /// A `count` larger than the set is clamped to its size.
    pub fn split(&self, count: usize, rng: &mut Rng) -> (Dataset, Dataset) {
        let count = count.min(self.n);
        let mut order: Vec<usize> = (0..self.n).collect();
        rng.shuffle(&mut order);
        let (val, train) = order.split_at(count);
        (self.select(train), self.select(val))
    }

    /// Holds out `fraction` of the examples (rounded, at least one, and leaving at least
    /// one), chosen by the rng, as a second (test) set: [`Dataset::split`] with the count
    /// that `fraction` gives. The same rng seed gives the same split.
    ///
    /// Errors when `fraction` is not strictly between 0 and 1, or when the set is too
    /// small to leave an example on each side.
    pub fn split_fraction(
        &self,
        fraction: f64,
        rng: &mut Rng,
    ) -> Result<(Dataset, Dataset), String> {
        if !(fraction > 0.0 && fraction < 1.0) {
            return Err(format!(
                "{fraction} is not a fraction between 0 and 1 (exclusive)"
            ));
        }
        let count = ((self.n as f64 * fraction).round() as usize).max(1);
        if count >= self.n {
            return Err(format!(
                "holding out {fraction} of {} images leaves none to train on",
                self.n
            ));
        }
        Ok(self.split(count, rng))
    }

    /// The examples whose labels are in `classes`, in their order, relabelled by their
    /// class's position in the list (the first listed class becomes 0, the next 1, ...),
    /// so the result has `classes.len()` classes.
    ///
    /// Errors (naming the class) for an empty list, a class listed twice, or a class not
    /// below this set's class count.
    pub fn filter_classes(&self, classes: &[u32]) -> Result<Dataset, String> {
        if classes.is_empty() {
            return Err("no classes listed".into());
        }
        let mut new_label: Vec<Option<u32>> = vec![None; self.classes];
        for (i, &c) in classes.iter().enumerate() {
            let slot = new_label.get_mut(c as usize).ok_or_else(|| {
                format!(
                    "class {c} is not in the data, whose labels are 0..{}",
                    self.classes.saturating_sub(1)
                )
            })?;
            if slot.is_some() {
                return Err(format!("class {c} is listed twice"));
            }
            *slot = Some(i as u32);
        }
        let keep: Vec<usize> = (0..self.n)
            .filter(|&i| {
                new_label
                    .get(self.labels[i] as usize)
                    .is_some_and(Option::is_some)
            })
            .collect();
        let mut d = self.select(&keep);
        for l in &mut d.labels {
            *l = new_label[*l as usize].unwrap();
        }
        d.classes = classes.len();
        Ok(d)
    }

    /// The first `count` examples (all of them if there are fewer), for quick runs and tests.
    pub fn take(&self, count: usize) -> Dataset {
        let count = count.min(self.n);
        let il = self.image_len();
        Dataset {
            images: self.images[..count * il].to_vec(),
            labels: self.labels[..count].to_vec(),
            n: count,
            ..self.shape_only()
        }
    }

    /// An empty set with this set's image shape and class count.
    fn shape_only(&self) -> Dataset {
        Dataset {
            images: Vec::new(),
            labels: Vec::new(),
            n: 0,
            c: self.c,
            h: self.h,
            w: self.w,
            classes: self.classes,
        }
    }
}

/// The train and test sets of a dataset directory.
#[derive(Clone, Debug)]
pub struct Splits {
    /// The training set.
    pub train: Dataset,
    /// The test set.
    pub test: Dataset,
    /// A name for the dataset: the directory's last component (e.g. "fashion-mnist").
    pub name: String,
}

/// The IDX files `load_dir` looks for, as (train images, train labels, test images, test labels).
const IDX_STEMS: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// The CIFAR-10 sub-folder name used by the official archive.
#[doc(hidden)]
pub const CIFAR_SUBDIR: &str = "cifar-10-batches-bin";

/// Detect the format of a directory and load its train and test sets.
///
/// * IDX: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte`,
///   `t10k-labels-idx1-ubyte`, each raw or with a `.gz` suffix. The class count is the
///   larger of the two sets' inferred counts, so train and test agree.
/// * CIFAR-10: whichever of `data_batch_1.bin` .. `data_batch_5.bin` exist (at least one)
///   and `test_batch.bin`, in the directory itself or in its `cifar-10-batches-bin` folder.
///
/// Errors name the directory and the files looked for when neither format is found.
pub fn load_dir(dir: &Path) -> Result<Splits, DataError> {
    let no_dataset = |reason: String| DataError::NoDataset {
        dir: dir.to_path_buf(),
        reason,
    };
    if !dir.exists() {
        return Err(no_dataset("no such directory".into()));
    }
    if !dir.is_dir() {
        return Err(no_dataset("not a directory".into()));
    }
    let name = dataset_name(dir);

    // IDX.
    let idx: Vec<Option<PathBuf>> = IDX_STEMS.iter().map(|s| find_idx(dir, s)).collect();
    if idx.iter().all(Option::is_some) {
        let p: Vec<PathBuf> = idx.into_iter().flatten().collect();
        let mut s = load_idx_splits((&p[0], &p[1]), (&p[2], &p[3]))?;
        s.name = name;
        return Ok(s);
    }
    if idx.iter().any(Option::is_some) {
        let found: Vec<String> = idx.iter().flatten().map(|p| file_name(p)).collect();
        let missing: Vec<String> = IDX_STEMS
            .iter()
            .zip(&idx)
            .filter(|(_, p)| p.is_none())
            .map(|(s, _)| format!("{s}[.gz]"))
            .collect();
        return Err(no_dataset(format!(
            "incomplete IDX dataset: found {} but not {}",
            found.join(", "),
            missing.join(", ")
        )));
    }

    // CIFAR-10.
    for base in [dir.to_path_buf(), dir.join(CIFAR_SUBDIR)] {
        let train: Vec<PathBuf> = (1..=5)
            .map(|i| base.join(format!("data_batch_{i}.bin")))
            .filter(|p| p.is_file())
            .collect();
        let test = base.join("test_batch.bin");
        let has_test = test.is_file();
        if train.is_empty() && !has_test {
            continue;
        }
        if train.is_empty() {
            return Err(no_dataset(format!(
                "found {} but none of data_batch_1.bin..data_batch_5.bin",
                test.display()
            )));
        }
        if !has_test {
            return Err(no_dataset(format!(
                "found {} but not {}",
                train
                    .iter()
                    .map(|p| file_name(p))
                    .collect::<Vec<_>>()
                    .join(", "),
                test.display()
            )));
        }
        let (train, test) = rayon::join(|| load_cifar10(&train), || load_cifar10(&[test]));
        return Ok(Splits {
            train: train?,
            test: test?,
            name,
        });
    }

    Err(no_dataset(format!(
        "no dataset found; looked for IDX files {} (each optionally .gz) and for CIFAR-10 \
         files data_batch_1.bin..data_batch_5.bin with test_batch.bin (also in {CIFAR_SUBDIR}/)",
        IDX_STEMS.join(", ")
    )))
}

/// Loads a train and a test pair of IDX files (images, labels), each raw or gzip, with
/// any file names. The class count is the larger of the two sets' inferred counts, so
/// train and test agree; images of different sizes are an error naming both files. The
/// name is the train images file's, less a `.gz` suffix.
pub fn load_idx_splits(train: (&Path, &Path), test: (&Path, &Path)) -> Result<Splits, DataError> {
    let (tr, te) = rayon::join(|| load_idx(train.0, train.1), || load_idx(test.0, test.1));
    let (mut tr, mut te) = (tr?, te?);
    if (tr.c, tr.h, tr.w) != (te.c, te.h, te.w) {
        return Err(DataError::Invalid {
            path: test.0.to_path_buf(),
            reason: format!(
                "test images are {}x{} but the train images ({}) are {}x{}",
                te.h,
                te.w,
                train.0.display(),
                tr.h,
                tr.w
            ),
        });
    }
    let classes = tr.classes.max(te.classes);
    tr.classes = classes;
    te.classes = classes;
    Ok(Splits {
        train: tr,
        test: te,
        name: idx_name(train.0),
    })
}

/// A dataset name for an IDX images file: its file name without a `.gz` suffix.
pub fn idx_name(images: &Path) -> String {
    let n = file_name(images);
    n.strip_suffix(".gz").map(str::to_string).unwrap_or(n)
}

/// `dir/stem` if it is a file, else `dir/stem.gz` if that is, else None.
fn find_idx(dir: &Path, stem: &str) -> Option<PathBuf> {
    [dir.join(stem), dir.join(format!("{stem}.gz"))]
        .into_iter()
        .find(|p| p.is_file())
}

/// The last component of a path as a string (or the whole path if it has none).
fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| p.display().to_string())
}

/// A dataset name for a directory: its last component, resolving "." and the like.
fn dataset_name(dir: &Path) -> String {
    if let Some(n) = dir.file_name() {
        return n.to_string_lossy().into_owned();
    }
    dir.canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| dir.display().to_string())
}
