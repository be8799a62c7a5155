//! Components stored by their SHA-256, under `components/` in the state
//! directory. A component is written to a temporary file, flushed to
//! disk, then renamed into place (and the folder flushed), so that a crash
//! leaves either no file or the whole one; a stored file is checked
//! against its name every time it is read. The catalog's rows point only
//! at components already stored.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::CatalogError;

/// Numbers each upload of this process, so that two uploads of one
/// component at once write two temporary files.
static UPLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The components' folder in the state directory.
const COMPONENTS: &str = "components";

/// A component's SHA-256, as 64 lower-case hex digits.
pub type Digest = String;

/// The stored components. A handle is cheap to clone, so that an upload
/// is hashed and written without holding the catalog.
#[derive(Clone)]
pub struct Blobs {
    dir: PathBuf,
}

/// `bytes`' SHA-256 as hex.
pub fn digest_of(bytes: &[u8]) -> Digest {
    crate::text::hex(&Sha256::digest(bytes))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CatalogError + '_ {
    move |error| CatalogError::Directory {
        path: path.to_owned(),
        error,
    }
}

impl Blobs {
    /// The components of the state directory at `state`.
    pub(crate) fn open(state: &Path) -> Result<Blobs, CatalogError> {
        let dir = state.join(COMPONENTS);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        Ok(Blobs { dir })
    }

    /// The folder the components are stored in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `text` with every stored component's path written as
    /// `sha256:DIGEST`: where the state directory is stays the operator's.
    pub fn redact(&self, text: &str) -> String {
        let prefix = format!("{}/", self.dir.display());
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find(&prefix) {
            out.push_str(&rest[..at]);
            let after = &rest[at + prefix.len()..];
            let digest = after
                .get(..64)
                .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()));
            match digest.and_then(|d| after[64..].strip_prefix(".wasm").map(|tail| (d, tail))) {
                Some((digest, tail)) => {
                    out.push_str("sha256:");
                    out.push_str(digest);
                    rest = tail;
                }
                None => {
                    out.push_str("components/");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }

    fn path_of(&self, digest: &str) -> PathBuf {
        self.dir.join(format!("{digest}.wasm"))
    }

    /// Stores `bytes` (once: a component already there is kept) and
    /// returns its digest.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, CatalogError> {
        let digest = digest_of(bytes);
        let path = self.path_of(&digest);
        if self.get(&digest).is_ok() {
            // Uploaded again: its grace before garbage collection starts
            // anew, so that the deploy it is for finds it.
            let now = std::time::SystemTime::now();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .and_then(|file| file.set_modified(now))
                .map_err(io(&path))?;
            return Ok(digest);
        }
        let partial = self.dir.join(format!(
            "{digest}.part-{}-{}",
            std::process::id(),
            UPLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = std::fs::File::create(&partial)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&partial, &path)?;
            // The rename itself reaches the disk with the folder.
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if let Err(error) = written {
            let _ = std::fs::remove_file(&partial);
            return Err(io(&path)(error));
        }
        Ok(digest)
    }

    /// The file of the component with `digest`, after checking its bytes
    /// against it: what the host compiles from.
    pub fn checked_path(&self, digest: &str) -> Result<PathBuf, CatalogError> {
        self.get(digest)?;
        Ok(self.path_of(digest))
    }

    /// Starts a stored component's garbage-collection grace anew: a
    /// deploy about to use it keeps it.
    pub fn touch(&self, digest: &str) -> Result<(), CatalogError> {
        let path = self.path_of(digest);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .and_then(|file| file.set_modified(std::time::SystemTime::now()))
            .map_err(io(&path))
    }

    /// The component with `digest`, checked against it.
    pub fn get(&self, digest: &str) -> Result<Vec<u8>, CatalogError> {
        if digest.len() != 64
            || !digest
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(CatalogError::Invalid(format!(
                "`{digest}` is not a SHA-256 digest (64 lower-case hex digits)"
            )));
        }
        let path = self.path_of(digest);
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        let found = digest_of(&bytes);
        if found != digest {
            return Err(CatalogError::Corrupt {
                path,
                expected: digest.to_owned(),
                found,
            });
        }
        Ok(bytes)
    }
}

impl crate::StateDir {
    /// Records an upload of a component in the audit log.
    pub fn record_upload(
        &mut self,
        digest: &str,
        size: usize,
        actor: &crate::audit::Actor,
    ) -> Result<(), CatalogError> {
        let db = self.db_error_fn();
        self.write(|transaction| {
            crate::audit::record(
                transaction,
                actor,
                "component.upload",
                &format!("{digest} ({size} bytes)"),
            )
            .map_err(&db)
        })
    }

    /// Deletes the stored components that no version uses and the
    /// partial files a crash left, once they are older than `grace` (an
    /// upload waits that long for its deploy). Returns how many went.
    pub fn collect_garbage(&self, grace: std::time::Duration) -> Result<usize, CatalogError> {
        let db = self.db_error_fn();
        let mut statement = self
            .connection
            .prepare("SELECT DISTINCT digest FROM versions")
            .map_err(&db)?;
        let used = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(&db)?
            .collect::<Result<std::collections::HashSet<_>, _>>()
            .map_err(&db)?;
        let dir = &self.blobs().dir;
        let mut removed = 0;
        for entry in std::fs::read_dir(dir).map_err(io(dir))? {
            let entry = entry.map_err(io(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let unused = match name.strip_suffix(".wasm") {
                Some(digest) => !used.contains(digest),
                // A `.part-PID` file of an upload that never finished.
                None => name.contains(".part-"),
            };
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|at| at.elapsed().ok())
                .is_some_and(|age| age >= grace);
            if unused && old && std::fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_is_stored_once_by_its_digest_and_checked_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let digest = blobs.put(b"\0asm component").unwrap();
        assert_eq!(digest, digest_of(b"\0asm component"));
        assert_eq!(blobs.put(b"\0asm component").unwrap(), digest);
        assert_eq!(blobs.get(&digest).unwrap(), b"\0asm component");
        let files: Vec<_> = std::fs::read_dir(dir.path().join(COMPONENTS))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(files, [std::ffi::OsString::from(format!("{digest}.wasm"))]);
        // A file changed behind the catalog's back is refused.
        std::fs::write(blobs.path_of(&digest), b"\0asm tampered").unwrap();
        let error = blobs.get(&digest).unwrap_err().to_string();
        assert!(error.contains("does not match its digest"), "{error}");
        // And storing the component again repairs it.
        blobs.put(b"\0asm component").unwrap();
        assert_eq!(blobs.get(&digest).unwrap(), b"\0asm component");
        assert!(blobs.get("../../etc/passwd").is_err());
    }

    #[test]
    fn components_no_version_uses_are_collected_after_their_grace() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = crate::StateDir::open(dir.path()).unwrap();
        let actor = crate::audit::Actor::local();
        let kept = state.blobs().put(b"\0asm kept").unwrap();
        let unused = state.blobs().put(b"\0asm unused").unwrap();
        let routes = ["GET /a".to_owned()];
        state
            .deploy(
                &crate::apps::Deploy {
                    namespace: "default",
                    app: "a",
                    digest: &kept,
                    spec: "",
                    routes: &routes,
                    activate: true,
                    keep: 1,
                },
                &actor,
            )
            .unwrap();
        let partial = dir.path().join(COMPONENTS).join("x.part-1");
        std::fs::write(&partial, b"half").unwrap();
        assert_eq!(
            state
                .collect_garbage(std::time::Duration::from_secs(3600))
                .unwrap(),
            0,
            "young files wait"
        );
        // Uploaded again an hour later, a component waits anew.
        let file = dir.path().join(COMPONENTS).join(format!("{unused}.wasm"));
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
        state.blobs().put(b"\0asm unused").unwrap();
        assert_eq!(
            state
                .collect_garbage(std::time::Duration::from_secs(3600))
                .unwrap(),
            0,
            "the upload's grace started again"
        );
        assert_eq!(state.collect_garbage(std::time::Duration::ZERO).unwrap(), 2);
        assert!(state.blobs().get(&kept).is_ok());
        assert!(state.blobs().get(&unused).is_err());
        assert!(!partial.exists());
    }

    #[test]
    fn uploads_of_one_component_at_once_each_store_it_whole() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let bytes: Vec<u8> = (0..16u32 << 20).map(|i| (i % 251) as u8).collect();
        let expected = digest_of(&bytes);
        let start = std::sync::Barrier::new(8);
        std::thread::scope(|scope| {
            let uploads: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        blobs.put(&bytes)
                    })
                })
                .collect();
            for upload in uploads {
                assert_eq!(upload.join().unwrap().unwrap(), expected);
            }
        });
        assert_eq!(blobs.get(&expected).unwrap(), bytes);
    }

    #[test]
    fn messages_name_stored_components_by_digest_not_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(dir.path()).unwrap();
        let digest = "ab".repeat(32);
        let text = format!(
            "app `x` ({}): no `handle`; also {}/other",
            blobs.path_of(&digest).display(),
            blobs.dir().display()
        );
        assert_eq!(
            blobs.redact(&text),
            format!("app `x` (sha256:{digest}): no `handle`; also components/other")
        );
    }
}
