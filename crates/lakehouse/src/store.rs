//! Object storage: the warehouse root, a local directory here (S3 comes
//! behind the same trait). Keys are `/`-separated and built by `zones::layout`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
}

pub trait Store: Send + Sync + std::fmt::Debug {
    /// Objects whose key starts with `prefix`, sorted by key.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// Writes the whole object; readers see the old object or the new one, never a part.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;
    /// Writes only if no object has this key; returns false if one exists.
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool>;
    fn delete(&self, key: &str) -> Result<()>;
    /// A human-readable location of `key`, for messages (`/path/to/key`, `s3://b/k`).
    fn url(&self, key: &str) -> String;
}

/// A local directory standing in for an S3 bucket.
#[derive(Debug)]
pub struct LocalStore {
    root: PathBuf,
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl LocalStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LocalStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `key`, refusing any key that could leave the root or
    /// alias another key: absolute, empty, or with an empty, `.` or `..`
    /// segment. Keys are built by `zones::layout` from validated run ids, so
    /// a refusal here is a bug of ours, caught before it touches a file.
    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    /// The directory a listing of `prefix` starts from (the deepest one the prefix names).
    fn list_dir(&self, prefix: &str) -> Result<PathBuf> {
        match prefix.rsplit_once('/') {
            Some((dir, _)) => self.path(dir),
            None => Ok(self.root.clone()),
        }
    }

    /// Writes `bytes` to a new hidden temp file beside `path` (skipped by
    /// `list`) and syncs it; on failure the temp file is removed.
    fn write_temp(&self, path: &Path, bytes: &[u8]) -> Result<PathBuf> {
        use std::io::Write;
        let dir = path.parent().expect("keys have a parent");
        create_dirs(dir)?;
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = path
            .file_name()
            .expect("keys name a file")
            .to_string_lossy();
        let temp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        let written = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .and_then(|mut f| {
                f.write_all(bytes)?;
                f.sync_all()
            });
        match written {
            Ok(()) => Ok(temp),
            Err(e) => {
                let _ = fs::remove_file(&temp);
                Err(Error::io("writing", &temp)(e))
            }
        }
    }

    fn walk(&self, dir: &Path, out: &mut Vec<ObjectInfo>) -> Result<()> {
        let entries = match fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::io("listing", dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(Error::io("listing", dir))?;
            let path = entry.path();
            let meta = entry
                .metadata()
                .map_err(Error::io("reading metadata of", &path))?;
            if meta.is_dir() {
                self.walk(&path, out)?;
            } else if !entry.file_name().to_string_lossy().starts_with('.') {
                let key = path
                    .strip_prefix(&self.root)
                    .expect("walk stays under the root")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push(ObjectInfo {
                    key,
                    size: meta.len(),
                });
            }
        }
        Ok(())
    }
}

impl Store for LocalStore {
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>> {
        let mut out = Vec::new();
        self.walk(&self.list_dir(prefix)?, &mut out)?;
        out.retain(|o| o.key.starts_with(prefix));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path(key)?;
        fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                store: self.url(""),
                key: key.to_string(),
            },
            _ => Error::io("reading", &path)(e),
        })
    }

    /// Durable and atomic: the bytes go to a hidden temp file in the same
    /// directory, which is synced, renamed over the key, and the directory
    /// synced, so after a crash or power loss the key holds the old bytes or
    /// the new ones. A failed write removes its temp file.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        let temp = self.write_temp(&path, bytes)?;
        if let Err(e) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(Error::io("renaming into", &path)(e));
        }
        sync_dir(path.parent().expect("keys have a parent"))
    }

    /// Atomic with its content: the temp file is complete and synced before a
    /// hard link gives it the key's name, which fails if the name exists. No
    /// reader, and no crash, ever leaves the key empty or half written.
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        let path = self.path(key)?;
        let temp = self.write_temp(&path, bytes)?;
        let linked = fs::hard_link(&temp, &path);
        let _ = fs::remove_file(&temp);
        match linked {
            Ok(()) => {
                sync_dir(path.parent().expect("keys have a parent"))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io("linking", &path)(e)),
        }
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("deleting", &path)(e))
            }
            _ => Ok(()),
        }
    }

    fn url(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }
}

/// See [`LocalStore::path`].
fn check_key(key: &str) -> Result<()> {
    let reason = if key.is_empty() {
        "it is empty"
    } else if key.starts_with('/') {
        "it is absolute"
    } else if key.split('/').any(str::is_empty) {
        "it has an empty segment"
    } else if key.split('/').any(|s| s == "." || s == "..") {
        "it has a `.` or `..` segment"
    } else if key.contains('\0') {
        "it contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(Error::InvalidKey {
        key: key.to_string(),
        reason,
    })
}

/// Creates `dir` and its missing parents, syncing the parent of each
/// directory created, so that the new entries survive a power loss.
fn create_dirs(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = vec![dir];
    while let Some(parent) = missing.last().and_then(|d| d.parent()) {
        if parent.as_os_str().is_empty() || parent.is_dir() {
            break;
        }
        missing.push(parent);
    }
    fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
    for created in missing.iter().rev() {
        if let Some(parent) = created.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

/// Syncs a directory, so that a rename or a link in it is durable.
fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("syncing", dir))
}
