//! The on-disk cache of compiled components.
//!
//! Compiling a component takes from a few milliseconds to seconds (an
//! interpreter such as CPython is tens of megabytes of code); loading the
//! machine code wasmtime produced takes a fraction of that. An entry is
//! keyed by the SHA-256 of the component's bytes and of the engine's
//! compilation settings, so a changed component or a changed engine never
//! finds a stale entry.
//!
//! Loading machine code is only sound when the bytes are exactly what
//! wasmtime wrote, so every entry carries the SHA-256 of its payload and is
//! checked before use. An entry that is truncated, corrupted, from another
//! format, or that wasmtime itself rejects is recompiled and replaced,
//! never trusted. The folder must be as trusted as the host binary: it is
//! created private to the user, and a folder that others may write to is
//! refused.

use std::fmt;
use std::fs;
use std::hash::{Hash as _, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The first bytes of every entry: the format and its version.
const MAGIC: &[u8; 8] = b"swcc\x00\x00\x00\x01";
/// An entry: magic, the payload's SHA-256, then the payload.
const HEADER_LEN: usize = MAGIC.len() + 32;

/// Why the cache folder cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The folder does not exist and cannot be created.
    #[error("cannot create the compile cache folder {path}: {source}")]
    Create {
        /// The folder.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Other users could replace entries with code of their choosing.
    #[error(
        "the compile cache folder {path} is writable by other users (mode {mode:o}); \
         run `chmod go-w {path}` or choose another folder with --cache-dir"
    )]
    NotPrivate {
        /// The folder.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

/// What the cache did for one component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheOutcome {
    /// A valid entry was loaded; nothing was compiled.
    Hit,
    /// There was no entry; the component was compiled and stored.
    Miss,
    /// The entry was unusable (the reason says why); the component was
    /// compiled again and the entry replaced.
    Replaced(String),
    /// The host runs without a compile cache; the component was compiled.
    Uncached,
}

impl fmt::Display for CacheOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CacheOutcome::Hit => f.write_str("loaded from the compile cache"),
            CacheOutcome::Miss => f.write_str("compiled and cached"),
            CacheOutcome::Replaced(reason) => {
                write!(f, "recompiled: the cache entry was unusable ({reason})")
            }
            CacheOutcome::Uncached => f.write_str("compiled (no compile cache)"),
        }
    }
}

/// A folder of compiled components.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// How large the cache may grow before the least recently used entries go:
/// enough for many interpreters' worth of machine code.
pub const DEFAULT_CACHE_MAX_BYTES: u64 = 4 << 30;

/// Feeds `Hash` output into SHA-256, so that the engine's settings give a
/// key that is the same in every run of the same binary.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    fn finish(&self) -> u64 {
        // Only the digest is used; `finish` is required by the trait.
        0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl CompileCache {
    /// Opens `dir`, creating it (private to this user) when missing.
    pub fn open(dir: impl Into<PathBuf>) -> Result<CompileCache, CacheError> {
        let dir = dir.into();
        let create = |source| CacheError::Create {
            path: dir.clone(),
            source,
        };
        let mut builder = fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&dir).map_err(create)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&dir).map_err(create)?.permissions().mode() & 0o777;
            if mode & 0o022 != 0 {
                return Err(CacheError::NotPrivate { path: dir, mode });
            }
        }
        Ok(CompileCache {
            dir,
            max_bytes: DEFAULT_CACHE_MAX_BYTES,
        })
    }

    /// Caps the folder at `max_bytes`: after each new entry, the least
    /// recently used ones are removed until the rest fit.
    pub fn with_max_bytes(mut self, max_bytes: u64) -> CompileCache {
        self.max_bytes = max_bytes;
        self
    }

    /// The folder holding the entries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the entry for `wasm` compiled by `engine` lives.
    fn entry_path(&self, engine: &Engine, wasm: &[u8]) -> PathBuf {
        let mut settings = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut settings);
        let settings = settings.0.finalize();
        let content = Sha256::digest(wasm);
        self.dir
            .join(format!("{}-{}.cwasm", hex(&content), hex(&settings[..8])))
    }

    /// The compiled `wasm`: from a valid entry when there is one, else
    /// compiled and stored. Failing to store is not an error: the next start
    /// compiles again.
    pub fn load_or_compile<C: Compiled>(
        &self,
        engine: &Engine,
        wasm: &[u8],
    ) -> wasmtime::Result<(C, CacheOutcome)> {
        let path = self.entry_path(engine, wasm);
        let rejected = match fs::read(&path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
            Err(error) => Some(format!("cannot read it: {error}")),
            Ok(entry) => match Self::load(engine, &entry) {
                Ok(component) => {
                    // Marks the entry as recently used, for eviction.
                    let _ = fs::File::options()
                        .write(true)
                        .open(&path)
                        .and_then(|file| file.set_modified(std::time::SystemTime::now()));
                    return Ok((component, CacheOutcome::Hit));
                }
                Err(reason) => Some(reason),
            },
        };
        let component = C::compile(engine, wasm)?;
        if let Err(error) = self.store(&path, &component) {
            tracing::warn!(
                entry = %path.display(),
                "cannot write the compile cache entry: {error}"
            );
        }
        self.evict(&path);
        let outcome = match rejected {
            None => CacheOutcome::Miss,
            Some(reason) => CacheOutcome::Replaced(reason),
        };
        Ok((component, outcome))
    }

    /// Removes the least recently used entries (never `keep`) until the
    /// folder fits in `max_bytes`.
    fn evict(&self, keep: &Path) {
        let Ok(listing) = fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(std::time::SystemTime, u64, PathBuf)> = listing
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|e| e == "cwasm"))
            .filter_map(|entry| {
                let metadata = entry.metadata().ok()?;
                Some((metadata.modified().ok()?, metadata.len(), entry.path()))
            })
            .collect();
        let mut total: u64 = entries.iter().map(|(_, len, _)| len).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if path != keep && fs::remove_file(&path).is_ok() {
                tracing::info!(entry = %path.display(), "compile cache: removed the least recently used entry");
                total -= len;
            }
        }
    }

    /// Checks an entry's framing and digest, then hands the payload to
    /// wasmtime, which checks its own version and settings.
    fn load<C: Compiled>(engine: &Engine, entry: &[u8]) -> Result<C, String> {
        if entry.len() < HEADER_LEN || &entry[..MAGIC.len()] != MAGIC {
            return Err("not an entry of this cache format".to_owned());
        }
        let (digest, payload) = entry[MAGIC.len()..].split_at(32);
        if Sha256::digest(payload).as_slice() != digest {
            return Err("its checksum does not match: truncated or corrupted".to_owned());
        }
        // SAFETY: `deserialize` requires bytes produced by `serialize` of
        // the same kind. This payload is byte for byte what `store` wrote
        // from `serialize` (its SHA-256 matches the digest stored beside
        // it), in a folder only this user may write to; the entry's name
        // holds the SHA-256 of the input bytes, and a core module's bytes
        // are never a component's; and wasmtime rejects a payload of the
        // other kind, from another version or with other compilation
        // settings.
        unsafe { C::deserialize(engine, payload) }
            .map_err(|error| format!("wasmtime rejected it: {error:#}"))
    }

    /// Writes an entry through a temporary file and a rename, so that a
    /// reader never sees half an entry, even with two hosts starting at
    /// once.
    fn store<C: Compiled>(&self, path: &Path, component: &C) -> Result<(), String> {
        let payload = component
            .serialize()
            .map_err(|error| format!("{error:#}"))?;
        let digest = Sha256::digest(&payload);
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        let mut file = fs::File::create(&temporary).map_err(|error| error.to_string())?;
        let written = file
            .write_all(MAGIC)
            .and_then(|()| file.write_all(&digest))
            .and_then(|()| file.write_all(&payload))
            .and_then(|()| file.sync_all());
        if let Err(error) = written.and_then(|()| fs::rename(&temporary, path)) {
            let _ = fs::remove_file(&temporary);
            return Err(error.to_string());
        }
        Ok(())
    }
}

/// Keeps [`Compiled`] to the two types this module implements it for: its
/// `deserialize` is only sound for their own `serialize` output.
mod sealed {
    pub trait Sealed {}
    impl Sealed for wasmtime::component::Component {}
    impl Sealed for wasmtime::Module {}
}

/// What the cache holds: compiled components, and core modules of the
/// serverless-wasm ABI.
pub trait Compiled: Sized + sealed::Sealed {
    /// Compiles `wasm`.
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self>;
    /// The machine code, for an entry.
    fn serialize(&self) -> wasmtime::Result<Vec<u8>>;
    /// Loads what [`Compiled::serialize`] wrote.
    ///
    /// # Safety
    ///
    /// `payload` must come from `serialize` of the same type.
    unsafe fn deserialize(engine: &Engine, payload: &[u8]) -> wasmtime::Result<Self>;
}

impl Compiled for Component {
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self> {
        Component::new(engine, wasm)
    }

    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        Component::serialize(self)
    }

    unsafe fn deserialize(engine: &Engine, payload: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: passed on from the caller.
        unsafe { Component::deserialize(engine, payload) }
    }
}

impl Compiled for wasmtime::Module {
    fn compile(engine: &Engine, wasm: &[u8]) -> wasmtime::Result<Self> {
        wasmtime::Module::new(engine, wasm)
    }

    fn serialize(&self) -> wasmtime::Result<Vec<u8>> {
        wasmtime::Module::serialize(self)
    }

    unsafe fn deserialize(engine: &Engine, payload: &[u8]) -> wasmtime::Result<Self> {
        // SAFETY: passed on from the caller.
        unsafe { wasmtime::Module::deserialize(engine, payload) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        Engine::new(&config).unwrap()
    }

    fn wasm() -> Vec<u8> {
        guest_artifacts::HELLO.to_vec()
    }

    fn only_entry(cache: &CompileCache) -> PathBuf {
        let entries: Vec<PathBuf> = fs::read_dir(cache.dir())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries[0].clone()
    }

    #[test]
    fn a_second_load_is_a_hit() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path().join("cache")).unwrap();
        let engine = engine();
        let (_, first) = cache
            .load_or_compile::<Component>(&engine, &wasm())
            .unwrap();
        assert_eq!(first, CacheOutcome::Miss);
        let (_, second) = cache
            .load_or_compile::<Component>(&engine, &wasm())
            .unwrap();
        assert_eq!(second, CacheOutcome::Hit);
        assert!(only_entry(&cache).extension().is_some_and(|e| e == "cwasm"));
    }

    #[test]
    fn a_corrupted_entry_is_recompiled_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        let engine = engine();
        cache
            .load_or_compile::<Component>(&engine, &wasm())
            .unwrap();
        let entry = only_entry(&cache);
        let mut bytes = fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        fs::write(&entry, &bytes).unwrap();
        let (_, outcome) = cache
            .load_or_compile::<Component>(&engine, &wasm())
            .unwrap();
        assert!(
            matches!(&outcome, CacheOutcome::Replaced(reason) if reason.contains("checksum")),
            "{outcome:?}"
        );
        let (_, again) = cache
            .load_or_compile::<Component>(&engine, &wasm())
            .unwrap();
        assert_eq!(again, CacheOutcome::Hit, "the entry was rewritten");
    }

    #[test]
    fn truncated_and_foreign_entries_are_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        let engine = engine();
        cache
            .load_or_compile::<Component>(&engine, &wasm())
            .unwrap();
        let entry = only_entry(&cache);
        let bytes = fs::read(&entry).unwrap();
        fs::write(&entry, &bytes[..bytes.len() / 2]).unwrap();
        let (_, truncated) = cache
            .load_or_compile::<Component>(&engine, &wasm())
            .unwrap();
        assert!(
            matches!(&truncated, CacheOutcome::Replaced(r) if r.contains("checksum")),
            "{truncated:?}"
        );
        fs::write(&entry, b"\x7fELF and anything else").unwrap();
        let (_, foreign) = cache
            .load_or_compile::<Component>(&engine, &wasm())
            .unwrap();
        assert!(
            matches!(&foreign, CacheOutcome::Replaced(r) if r.contains("format")),
            "{foreign:?}"
        );
    }

    #[test]
    fn a_valid_frame_around_a_bad_payload_is_rejected_by_wasmtime() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        let engine = engine();
        cache
            .load_or_compile::<Component>(&engine, &wasm())
            .unwrap();
        let entry = only_entry(&cache);
        let payload = b"not machine code".to_vec();
        let mut forged = MAGIC.to_vec();
        forged.extend_from_slice(&Sha256::digest(&payload));
        forged.extend_from_slice(&payload);
        fs::write(&entry, forged).unwrap();
        let (_, outcome) = cache
            .load_or_compile::<Component>(&engine, &wasm())
            .unwrap();
        assert!(
            matches!(&outcome, CacheOutcome::Replaced(r) if r.contains("wasmtime rejected")),
            "{outcome:?}"
        );
    }

    #[test]
    fn other_engine_settings_or_other_bytes_use_other_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache::open(dir.path()).unwrap();
        let engine = engine();
        cache
            .load_or_compile::<Component>(&engine, &wasm())
            .unwrap();
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true).consume_fuel(true);
        let fuel_engine = Engine::new(&config).unwrap();
        let (_, outcome) = cache
            .load_or_compile::<Component>(&fuel_engine, &wasm())
            .unwrap();
        assert_eq!(outcome, CacheOutcome::Miss);
        let (_, outcome) = cache
            .load_or_compile::<Component>(&engine, guest_artifacts::ECHO)
            .unwrap();
        assert_eq!(outcome, CacheOutcome::Miss);
        assert_eq!(fs::read_dir(cache.dir()).unwrap().count(), 3);
    }

    #[test]
    fn past_its_size_the_least_recently_used_entries_go() {
        let dir = tempfile::tempdir().unwrap();
        let engine = engine();
        let probe = CompileCache::open(dir.path().join("probe")).unwrap();
        probe
            .load_or_compile::<Component>(&engine, &wasm())
            .unwrap();
        let one = fs::metadata(only_entry(&probe)).unwrap().len();
        // Room for two entries, not three.
        let cache = CompileCache::open(dir.path().join("cache"))
            .unwrap()
            .with_max_bytes(one * 5 / 2);
        let first = wasm();
        let mut second = wasm();
        second.extend_from_slice(b"\0\x02\x01x"); // a custom section named `x`
        let mut third = wasm();
        third.extend_from_slice(b"\0\x02\x01y");
        cache.load_or_compile::<Component>(&engine, &first).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache
            .load_or_compile::<Component>(&engine, &second)
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Using the first makes the second the least recently used.
        assert_eq!(
            cache
                .load_or_compile::<Component>(&engine, &first)
                .unwrap()
                .1,
            CacheOutcome::Hit
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
        cache.load_or_compile::<Component>(&engine, &third).unwrap();
        assert_eq!(fs::read_dir(cache.dir()).unwrap().count(), 2);
        assert_eq!(
            cache
                .load_or_compile::<Component>(&engine, &first)
                .unwrap()
                .1,
            CacheOutcome::Hit
        );
        assert_eq!(
            cache
                .load_or_compile::<Component>(&engine, &second)
                .unwrap()
                .1,
            CacheOutcome::Miss
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_folder_others_may_write_to_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let error = CompileCache::open(dir.path()).unwrap_err().to_string();
        assert!(error.contains("chmod go-w"), "{error}");
    }
}
