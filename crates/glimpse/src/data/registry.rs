//! The data sets Glimpse knows: where they live under a data root, their files and checksums,
//! and the public mirrors they can be fetched from.

use std::path::{Path, PathBuf};

/// One file of a data set, with the SHA-256 of its *unpacked* bytes.
#[derive(Debug, Clone, Copy)]
pub struct KnownFile {
    /// File name without `.gz` (the IDX name, e.g. `train-images-idx3-ubyte`).
    pub name: &'static str,
    /// Lower-case hex SHA-256 of the unpacked file.
    pub sha256: &'static str,
}

/// A data set Glimpse can verify and fetch.
#[derive(Debug, Clone, Copy)]
pub struct DatasetSpec {
    /// Name used on the command line (`mnist`, `fashion-mnist`).
    pub name: &'static str,
    /// Folder under the data root.
    pub dir: &'static str,
    /// Its files.
    pub files: &'static [KnownFile],
    /// Base URLs tried in order; `<base><name>.gz` is fetched.
    pub mirrors: &'static [&'static str],
    /// A system folder (e.g. from a Debian package) searched after the data root.
    pub system_dir: Option<&'static str>,
    /// Attribution and licence, printed by `glimpse data list`.
    pub licence: &'static str,
}

/// MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0.
pub const MNIST: DatasetSpec = DatasetSpec {
    name: "mnist",
    dir: "mnist",
    files: &[
        KnownFile {
            name: "train-images-idx3-ubyte",
            sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        },
        KnownFile {
            name: "train-labels-idx1-ubyte",
            sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        },
        KnownFile {
            name: "t10k-images-idx3-ubyte",
            sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        },
        KnownFile {
            name: "t10k-labels-idx1-ubyte",
            sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
    ],
    mirrors: &[
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    system_dir: None,
    licence: "MNIST: Yann LeCun, Corinna Cortes, Christopher Burges; CC BY-SA 3.0",
};

/// Fashion-MNIST (Xiao, Rasul, Vollgraf 2017), MIT. Checksums are of the unpacked files as
/// shipped by Debian's `dataset-fashion-mnist` package.
pub const FASHION_MNIST: DatasetSpec = DatasetSpec {
    name: "fashion-mnist",
    dir: "fashion-mnist",
    files: &[
        KnownFile {
            name: "train-images-idx3-ubyte",
            sha256: "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        },
        KnownFile {
            name: "train-labels-idx1-ubyte",
            sha256: "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        },
        KnownFile {
            name: "t10k-images-idx3-ubyte",
            sha256: "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        },
        KnownFile {
            name: "t10k-labels-idx1-ubyte",
            sha256: "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
    ],
    mirrors: &[
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
    system_dir: Some("/usr/share/datasets/fashion-mnist"),
    licence: "Fashion-MNIST: Zalando Research (Xiao, Rasul, Vollgraf 2017); MIT",
};

/// Every data set known by name.
pub const ALL: &[DatasetSpec] = &[MNIST, FASHION_MNIST];

/// Looks a data set up by its command-line name.
pub fn by_name(name: &str) -> Option<&'static DatasetSpec> {
    ALL.iter().find(|d| d.name == name)
}

/// Where one file of a data set was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// Its path (`.gz` or plain).
    pub path: PathBuf,
}

impl DatasetSpec {
    /// The folders searched for this data set under `root`, in order.
    pub fn search_dirs(&self, root: &Path) -> Vec<PathBuf> {
        let mut dirs = vec![root.join(self.dir)];
        if let Some(sys) = self.system_dir {
            dirs.push(PathBuf::from(sys));
        }
        dirs
    }

    /// The data set's files found under `root` (or the system folder).
    pub fn located(&self, root: &Path) -> Vec<PathBuf> {
        self.files.iter().filter_map(|f| self.locate(root, f.name)).collect()
    }

    /// Finds `file` under `root` (or the system folder): `name.gz` first, then `name`.
    pub fn locate(&self, root: &Path, file: &str) -> Option<PathBuf> {
        self.search_dirs(root)
            .into_iter()
            .find_map(|d| [d.join(format!("{file}.gz")), d.join(file)].into_iter().find(|p| p.is_file()))
    }
}
