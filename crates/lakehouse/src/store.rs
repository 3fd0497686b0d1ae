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

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
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
        // Walk from the deepest directory the prefix names, then filter.
        let dir_part = prefix.rsplit_once('/').map_or("", |(d, _)| d);
        let mut out = Vec::new();
        self.walk(&self.path(dir_part), &mut out)?;
        out.retain(|o| o.key.starts_with(prefix));
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let path = self.path(key);
        fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                store: self.url(""),
                key: key.to_string(),
            },
            _ => Error::io("reading", &path)(e),
        })
    }

    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key);
        let dir = path.parent().expect("keys have a parent");
        fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        // Hidden temp name (skipped by `list`), then an atomic rename.
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = path
            .file_name()
            .expect("keys name a file")
            .to_string_lossy();
        let temp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        fs::write(&temp, bytes).map_err(Error::io("writing", &temp))?;
        fs::rename(&temp, &path).map_err(Error::io("renaming into", &path))
    }

    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        use std::io::Write;
        let path = self.path(key);
        let dir = path.parent().expect("keys have a parent");
        fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        match fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(bytes).map_err(Error::io("writing", &path))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(Error::io("creating", &path)(e)),
        }
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("deleting", &path)(e))
            }
            _ => Ok(()),
        }
    }

    fn url(&self, key: &str) -> String {
        self.path(key).display().to_string()
    }
}
