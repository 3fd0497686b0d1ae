//! Object storage: the warehouse root, a local directory here (S3 comes
//! behind the same trait). Keys are `/`-separated and built by `zones::layout`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    /// Bytes (0 for an entry that is not a regular file).
    pub size: u64,
    /// When the object was last written, epoch milliseconds (S3's
    /// `LastModified`; locally the entry's modification time).
    pub modified_ms: u64,
    /// An opaque token that changes when the object's content does, quoted
    /// as S3 quotes it: S3's `ETag`; locally `"<size>-<modification time
    /// in nanoseconds>"` in hex (an MD5 would mean reading every object).
    pub etag: String,
    /// Why this listed entry must not be read, when it must not: locally,
    /// an entry that is not a regular file (a symlink is never followed; a
    /// named pipe would block a read; a device never ends) or whose name is
    /// not valid UTF-8 (its key is then the lossy name, which names no
    /// object). Always None on S3.
    pub unreadable: Option<Unreadable>,
}

/// Why a listed entry is not read (see [`ObjectInfo::unreadable`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unreadable {
    /// Not a regular file; the kind, e.g. "a symbolic link".
    NotARegularFile(&'static str),
    /// The name is not valid UTF-8.
    InvalidName,
}

/// What kind of entry a file type is, for messages.
fn kind_of(file_type: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a named pipe";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            return "a device";
        }
    }
    if file_type.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

pub trait Store: Send + Sync + std::fmt::Debug {
    /// Objects whose key starts with `prefix`, sorted by key.
    fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>>;
    fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// Reads the object in order, handing `each` one piece at a time (of
    /// at most about [`READ_CHUNK`] bytes; pieces may be smaller and are
    /// cut anywhere), so the object is never held whole. The default reads
    /// it whole and hands it over in pieces.
    fn read_chunks(&self, key: &str, each: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        self.get(key)?.chunks(READ_CHUNK).try_for_each(each)
    }
    /// Writes the whole object; readers see the old object or the new one, never a part.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()>;
    /// Writes only if no object has this key; returns false if one exists.
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool>;
    /// Deletes the object; deleting an absent one succeeds.
    fn delete(&self, key: &str) -> Result<()>;
    /// Deletes every key (absent ones succeed), in batches where the store
    /// has them (S3: `DeleteObjects`, 1000 keys a request).
    fn delete_many(&self, keys: &[String]) -> Result<()> {
        keys.iter().try_for_each(|key| self.delete(key))
    }

    /// The object's bytes and a token of the version read, for
    /// [`Store::put_if_unchanged`]: on S3 the ETag; by default (a local
    /// directory) the object's length and CRC32C.
    fn get_versioned(&self, key: &str) -> Result<(Vec<u8>, String)> {
        let bytes = self.get(key)?;
        let version = content_version(&bytes);
        Ok((bytes, version))
    }

    /// Replaces the object only if it is still the version `version` read
    /// by [`Store::get_versioned`]; false (nothing written) if it changed or
    /// is gone. On S3 a conditional put (`If-Match`); by default the object
    /// is read again and compared just before the atomic put (a writer
    /// that lands in between is not seen: a local directory has no
    /// conditional write, and no delivery stream writes into one).
    fn put_if_unchanged(&self, key: &str, bytes: &[u8], version: &str) -> Result<bool> {
        match self.get(key) {
            Ok(now) if content_version(&now) == version => {
                self.put(key, bytes)?;
                Ok(true)
            }
            Ok(_) | Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Deletes every stored version of `key` but the current one, and
    /// returns how many (S3 with versioning: ListObjectVersions, then
    /// DeleteObjects by VersionId). A store without versions has none: 0.
    fn delete_noncurrent_versions(&self, key: &str) -> Result<u64> {
        let _ = key;
        Ok(0)
    }

    /// A human-readable location of `key`, for messages (`/path/to/key`, `s3://b/k`).
    fn url(&self, key: &str) -> String;

    /// Where the warehouse is as S3 names its objects (Step Functions'
    /// S3 integrations: a Distributed Map's ItemReader and ResultWriter).
    /// By default, a local directory: the bucket [`LOCAL_BUCKET`], whose
    /// keys are the store's.
    fn bucket_location(&self) -> BucketLocation {
        BucketLocation {
            bucket: LOCAL_BUCKET.to_string(),
            prefix: String::new(),
        }
    }
}

/// The bucket a local directory warehouse stands for when the local runner
/// serves Step Functions' S3 calls from it.
pub const LOCAL_BUCKET: &str = "local";

/// A warehouse as S3 names its objects: a bucket, and the prefix of the
/// warehouse's keys in it (empty, or ending in `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketLocation {
    pub bucket: String,
    pub prefix: String,
}

impl BucketLocation {
    /// The store key of the object `key` of `bucket`: the key without the
    /// warehouse's prefix; None for an object outside the warehouse.
    pub fn store_key<'k>(&self, bucket: &str, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(self.prefix.as_str())
            .filter(|_| bucket == self.bucket)
    }

    /// The object key, in the bucket, of the store key `key`.
    pub fn bucket_key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }
}

/// The piece size of [`Store::read_chunks`] for local files: 4 MiB, large
/// enough that a read costs one system call per few thousand lines, small
/// beside an object of hundreds of MB. (S3 bodies arrive in the pieces the
/// connection delivers.)
pub const READ_CHUNK: usize = 4 << 20;

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
    /// `list`), synced if `durable`; on failure the temp file is removed.
    fn write_temp(&self, path: &Path, bytes: &[u8], durable: bool) -> Result<PathBuf> {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let dir = path.parent().expect("keys have a parent");
        fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = path
            .file_name()
            .expect("keys name a file")
            .to_string_lossy();
        let temp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        // Secrets (`_secrets/`) are readable by their owner only.
        #[cfg(unix)]
        if path.starts_with(self.root.join("_secrets")) {
            options.mode(0o600);
        }
        let written = options.open(&temp).and_then(|mut f| {
            f.write_all(bytes)?;
            if durable { f.sync_all() } else { Ok(()) }
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
            // The entry itself (lstat): a symbolic link is never followed.
            let meta = entry
                .metadata()
                .map_err(Error::io("reading metadata of", &path))?;
            let file_type = meta.file_type();
            if file_type.is_dir() {
                self.walk(&path, out)?;
            } else if !entry.file_name().to_string_lossy().starts_with('.') {
                let relative = path
                    .strip_prefix(&self.root)
                    .expect("walk stays under the root");
                let key = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                let unreadable = if relative.to_str().is_none() {
                    Some(Unreadable::InvalidName)
                } else if !file_type.is_file() {
                    Some(Unreadable::NotARegularFile(kind_of(&file_type)))
                } else {
                    None
                };
                let size = if unreadable.is_some() { 0 } else { meta.len() };
                let modified_ns = meta
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                out.push(ObjectInfo {
                    key,
                    size,
                    modified_ms: (modified_ns / 1_000_000) as u64,
                    etag: format!("\"{size:x}-{modified_ns:x}\""),
                    unreadable,
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

    fn read_chunks(&self, key: &str, each: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        use std::io::Read;
        let path = self.path(key)?;
        let mut file = fs::File::open(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NotFound {
                store: self.url(""),
                key: key.to_string(),
            },
            _ => Error::io("reading", &path)(e),
        })?;
        // A small file needs no 4 MiB buffer (one more byte sees its end).
        let size = file.metadata().map_or(READ_CHUNK as u64, |m| m.len());
        let mut buffer = vec![0; READ_CHUNK.min(size as usize + 1)];
        loop {
            match file.read(&mut buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => each(&buffer[..n])?,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::io("reading", &path)(e)),
            }
        }
    }

    /// Atomic: the bytes go to a hidden temp file in the same directory,
    /// which is renamed over the key, so a reader sees the old bytes or the
    /// new ones. Durable at the next [`Store::put_if_absent`], the commit
    /// point of every protocol here (a catalog version, a run record), which
    /// first flushes the file system: syncing each part as it was written
    /// cost 3.7 ms a part, a fifth of a 20x run's wall time.
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let path = self.path(key)?;
        let temp = self.write_temp(&path, bytes, false)?;
        if let Err(e) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(Error::io("renaming into", &path)(e));
        }
        Ok(())
    }

    /// A commit point: first makes every earlier write durable (a `syncfs`
    /// of the warehouse's file system, which covers other processes' writes
    /// too), then creates the key atomically with its content (a synced temp
    /// file hard-linked into place, which fails if the name exists) and
    /// syncs its directory. No reader, and no crash, ever sees the key empty
    /// or half written.
    fn put_if_absent(&self, key: &str, bytes: &[u8]) -> Result<bool> {
        let path = self.path(key)?;
        let dir = path.parent().expect("keys have a parent");
        fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        sync_file_system(dir)?;
        let temp = self.write_temp(&path, bytes, true)?;
        let linked = fs::hard_link(&temp, &path);
        let _ = fs::remove_file(&temp);
        match linked {
            Ok(()) => {
                sync_dir(dir)?;
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
                return Err(Error::io("deleting", &path)(e));
            }
            _ => {}
        }
        // As on S3, a folder exists only while it holds an object: remove
        // the folders this deletion emptied (a folder still holding
        // something, or written to meanwhile, stays).
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != self.root && d.starts_with(&self.root)) {
            if fs::remove_dir(d).is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    fn url(&self, key: &str) -> String {
        self.root.join(key).display().to_string()
    }
}

/// The default version token of an object's content: its length and CRC32C.
pub fn content_version(bytes: &[u8]) -> String {
    format!("{}-{:08x}", bytes.len(), crc32c::crc32c(bytes))
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

/// Flushes every write to the file system that holds `dir` to stable storage.
fn sync_file_system(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| rustix::fs::syncfs(&d).map_err(std::io::Error::from))
        .map_err(Error::io("syncing the file system of", dir))
}

/// Syncs a directory, so that a rename or a link in it is durable.
fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("syncing", dir))
}
