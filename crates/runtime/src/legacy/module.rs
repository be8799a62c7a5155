//! A core module checked against the ABI at load, so that every mistake
//! in it is a startup error that names the import or export, and a request
//! only instantiates.

use std::fmt;
use std::sync::Arc;

use wasmtime::{
    Engine, Extern, ExternType, Instance, Linker, Memory, MemoryType, Module, Store, ValType,
};

use crate::state::InstanceState;

/// The memory import a module may have instead of its own memory.
const MEMORY: &str = "memory";

/// A wasm value type of the ABI.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wasm {
    I32,
    I64,
}

impl Wasm {
    fn name(self) -> &'static str {
        match self {
            Wasm::I32 => "i32",
            Wasm::I64 => "i64",
        }
    }
}

/// The `env` functions the host provides: name, parameters, results.
const FUNCTIONS: [(&str, &[Wasm], &[Wasm]); 8] = [
    ("log", &[Wasm::I32, Wasm::I64], &[]),
    (
        "response_set_status_line",
        &[Wasm::I32, Wasm::I32, Wasm::I64],
        &[],
    ),
    (
        "response_set_header",
        &[Wasm::I32, Wasm::I64, Wasm::I32, Wasm::I64],
        &[],
    ),
    ("response_set_body", &[Wasm::I32, Wasm::I64], &[]),
    ("tcp_connect", &[Wasm::I32, Wasm::I64], &[Wasm::I32]),
    ("tcp_read", &[Wasm::I32, Wasm::I32, Wasm::I64], &[Wasm::I64]),
    (
        "tcp_write",
        &[Wasm::I32, Wasm::I32, Wasm::I64],
        &[Wasm::I64],
    ),
    (
        "db_get",
        &[Wasm::I32, Wasm::I64, Wasm::I32, Wasm::I64],
        &[Wasm::I64],
    ),
];

/// `(i32, i64) -> i64` for messages.
fn signature(params: &[Wasm], results: &[Wasm]) -> String {
    let list = |types: &[Wasm]| {
        types
            .iter()
            .map(|t| t.name())
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(params), list(results))
}

/// The same for a type found in a module.
fn found_signature(ty: &wasmtime::FuncType) -> String {
    let list = |types: &mut dyn Iterator<Item = ValType>| {
        types.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
    };
    format!(
        "({}) -> ({})",
        list(&mut ty.params()),
        list(&mut ty.results())
    )
}

fn matches(ty: &wasmtime::FuncType, params: &[Wasm], results: &[Wasm]) -> bool {
    let same = |found: &mut dyn ExactSizeIterator<Item = ValType>, wanted: &[Wasm]| {
        found.len() == wanted.len()
            && found.zip(wanted).all(|(found, wanted)| match wanted {
                Wasm::I32 => matches!(found, ValType::I32),
                Wasm::I64 => matches!(found, ValType::I64),
            })
    };
    same(&mut ty.params(), params) && same(&mut ty.results(), results)
}

/// What is wrong with a core module taken for the serverless-wasm ABI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegacyProblem {
    /// An import the ABI does not have.
    UnknownImport {
        /// The import's module.
        module: String,
        /// The import's name.
        name: String,
    },
    /// An `env` function imported with other types than the ABI's.
    ImportType {
        /// The function.
        name: String,
        /// The ABI's signature.
        expected: String,
        /// The module's.
        found: String,
    },
    /// `env.memory` imported as something else than a 32-bit memory.
    MemoryImportKind {
        /// What the module imports under that name.
        found: String,
    },
    /// The memory the module imports or defines is larger from the start
    /// than the app may use.
    MemoryTooLarge {
        /// Whether it is the `env.memory` import (else the module's own).
        imported: bool,
        /// Its minimum size in bytes.
        minimum: u64,
        /// The app's `max_memory`.
        max_memory: u64,
    },
    /// The module uses the ABI's functions but has no memory they can
    /// reach.
    NoMemory,
    /// The module has more than one memory (imported or its own): the ABI's
    /// pointers name one.
    SeveralMemories(u32),
    /// The function to call is not exported.
    MissingFunction {
        /// Its name (`handle` or the app's `function`).
        function: String,
        /// Whether the app's `function` key named it.
        configured: bool,
        /// The functions the module exports.
        exported: Vec<String>,
    },
    /// The function to call takes or returns something.
    FunctionType {
        /// Its name.
        function: String,
        /// Its signature.
        found: String,
    },
}

impl fmt::Display for LegacyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let abi = FUNCTIONS
            .iter()
            .map(|(name, _, _)| format!("env.{name}"))
            .collect::<Vec<_>>()
            .join(", ");
        match self {
            LegacyProblem::UnknownImport { module, name } => {
                write!(
                    f,
                    "the core module imports `{module}.{name}`, which the serverless-wasm ABI does not provide; a core module may import only {abi} and env.memory"
                )?;
                if module.starts_with("wasi") {
                    f.write_str(
                        " (a module built for WASI is not a serverless-wasm module: build it for wasm32-unknown-unknown, or build a component for wasm32-wasip2)",
                    )?;
                }
                Ok(())
            }
            LegacyProblem::ImportType {
                name,
                expected,
                found,
            } => write!(
                f,
                "the core module imports `env.{name}` as {found}, but the serverless-wasm ABI's `{name}` is {expected}"
            ),
            LegacyProblem::MemoryImportKind { found } => write!(
                f,
                "the core module imports `env.memory` as {found}; the host provides a 32-bit, unshared linear memory there"
            ),
            LegacyProblem::MemoryTooLarge {
                imported,
                minimum,
                max_memory,
            } => write!(
                f,
                "the core module {} with at least {minimum} bytes ({} pages), more than the app's max_memory of {max_memory} bytes; raise max_memory or link the module with a smaller --initial-memory",
                if *imported {
                    "imports `env.memory`"
                } else {
                    "starts its memory"
                },
                minimum / 65536
            ),
            LegacyProblem::NoMemory => f.write_str(
                "the core module calls the serverless-wasm ABI but neither exports its memory as `memory` nor imports `env.memory`, so the host could not read what it passes; export the memory (rustc does by default) or link with --import-memory",
            ),
            LegacyProblem::SeveralMemories(count) => write!(
                f,
                "the core module has {count} memories; the serverless-wasm ABI's pointers reach one, so a module has one memory, its own (exported as `memory`) or `env.memory`"
            ),
            LegacyProblem::MissingFunction {
                function,
                configured,
                exported,
            } => {
                let exported = if exported.is_empty() {
                    "no functions".to_owned()
                } else {
                    exported
                        .iter()
                        .map(|name| format!("`{name}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                if *configured {
                    write!(
                        f,
                        "function = \"{function}\" names no function the core module exports; it exports {exported}"
                    )
                } else {
                    write!(
                        f,
                        "the core module exports no `handle` function to call; it exports {exported}: name the one to call with function = \"...\""
                    )
                }
            }
            LegacyProblem::FunctionType { function, found } => write!(
                f,
                "the core module's `{function}` is {found}; the function a route calls takes and returns nothing, () -> ()"
            ),
        }
    }
}

impl std::error::Error for LegacyProblem {}

/// What to pass for one of a module's imports.
#[derive(Clone)]
enum Import {
    /// A fresh memory of this type, made for the request.
    Memory(MemoryType),
    /// The host function of this name.
    Function(&'static str),
}

/// A core module checked against the ABI, ready to instantiate per
/// request; cheap to clone.
#[derive(Clone)]
pub(crate) struct LegacyPre {
    module: Module,
    /// What to pass for each import, in the module's order.
    imports: Arc<[Import]>,
    /// The export each request calls.
    function: Arc<str>,
    /// The linker that holds the `env` functions.
    linker: Arc<Linker<InstanceState>>,
}

/// Checks that `module` exports `function` as `() -> ()`; `configured`
/// when the app's `function` key named it.
fn check_function(module: &Module, function: &str, configured: bool) -> Result<(), LegacyProblem> {
    match module.get_export(function) {
        Some(ExternType::Func(ty)) if matches(&ty, &[], &[]) => Ok(()),
        Some(ExternType::Func(ty)) => Err(LegacyProblem::FunctionType {
            function: function.to_owned(),
            found: found_signature(&ty),
        }),
        _ => Err(LegacyProblem::MissingFunction {
            function: function.to_owned(),
            configured,
            exported: module
                .exports()
                .filter(|export| matches!(export.ty(), ExternType::Func(_)))
                .map(|export| export.name().to_owned())
                .collect(),
        }),
    }
}

impl LegacyPre {
    /// Checks `module`'s imports and exports against the ABI: only `env`
    /// functions of the ABI's types and `env.memory` within `max_memory`,
    /// and `function` exported as `() -> ()`.
    pub(crate) fn new(
        module: Module,
        function: Option<&str>,
        max_memory: u64,
        linker: Arc<Linker<InstanceState>>,
    ) -> Result<LegacyPre, LegacyProblem> {
        let mut imports = Vec::new();
        let mut calls_the_abi = false;
        let own = module.resources_required();
        let memories = own.num_memories
            + module
                .imports()
                .filter(|import| matches!(import.ty(), ExternType::Memory(_)))
                .count() as u32;
        if memories > 1 {
            return Err(LegacyProblem::SeveralMemories(memories));
        }
        // The module's own memory, exported or not, starts within the
        // app's limit too (in 64 KiB pages; custom page sizes are not
        // enabled).
        if let Some(pages) = own.max_initial_memory_size {
            let minimum = pages.saturating_mul(65536);
            if minimum > max_memory {
                return Err(LegacyProblem::MemoryTooLarge {
                    imported: false,
                    minimum,
                    max_memory,
                });
            }
        }
        let mut has_memory = matches!(module.get_export(MEMORY), Some(ExternType::Memory(_)));
        for import in module.imports() {
            let unknown = || LegacyProblem::UnknownImport {
                module: import.module().to_owned(),
                name: import.name().to_owned(),
            };
            if import.module() != "env" {
                return Err(unknown());
            }
            if import.name() == MEMORY {
                let ExternType::Memory(ty) = import.ty() else {
                    return Err(LegacyProblem::MemoryImportKind {
                        found: describe(&import.ty()),
                    });
                };
                if ty.is_64() || ty.is_shared() {
                    return Err(LegacyProblem::MemoryImportKind {
                        found: describe(&import.ty()),
                    });
                }
                let minimum = ty.minimum().saturating_mul(ty.page_size());
                if minimum > max_memory {
                    return Err(LegacyProblem::MemoryTooLarge {
                        imported: true,
                        minimum,
                        max_memory,
                    });
                }
                has_memory = true;
                imports.push(Import::Memory(ty));
                continue;
            }
            let Some(&(name, params, results)) =
                FUNCTIONS.iter().find(|(name, _, _)| *name == import.name())
            else {
                return Err(unknown());
            };
            match import.ty() {
                ExternType::Func(ty) if matches(&ty, params, results) => {}
                other => {
                    return Err(LegacyProblem::ImportType {
                        name: name.to_owned(),
                        expected: signature(params, results),
                        found: match &other {
                            ExternType::Func(ty) => found_signature(ty),
                            other => describe(other),
                        },
                    });
                }
            }
            calls_the_abi = true;
            imports.push(Import::Function(name));
        }
        if calls_the_abi && !has_memory {
            return Err(LegacyProblem::NoMemory);
        }
        let (function, configured) = match function {
            Some(function) => (function, true),
            None => ("handle", false),
        };
        check_function(&module, function, configured)?;
        Ok(LegacyPre {
            module,
            imports: imports.into(),
            function: function.into(),
            linker,
        })
    }

    /// The engine the module was compiled for.
    pub(crate) fn engine(&self) -> &Engine {
        self.module.engine()
    }

    /// A fresh instance in `store`, with a fresh memory when the module
    /// imports one.
    pub(crate) async fn instantiate(
        &self,
        store: &mut Store<InstanceState>,
    ) -> wasmtime::Result<Instance> {
        let mut externs: Vec<Extern> = Vec::with_capacity(self.imports.len());
        for import in self.imports.iter() {
            externs.push(match import {
                Import::Memory(ty) => {
                    let memory = Memory::new(&mut *store, ty.clone())?;
                    store.data_mut().legacy.memory = Some(memory);
                    memory.into()
                }
                Import::Function(name) => self.linker.get(&mut *store, "env", name)?,
            });
        }
        let instance = Instance::new_async(&mut *store, &self.module, &externs).await?;
        // Found once, not by name at every call.
        if let Some(memory) = instance.get_memory(&mut *store, MEMORY) {
            store.data_mut().legacy.memory = Some(memory);
        }
        Ok(instance)
    }

    /// Calls the route's function in `instance`.
    pub(crate) async fn call(
        &self,
        instance: Instance,
        store: &mut Store<InstanceState>,
    ) -> wasmtime::Result<()> {
        instance
            .get_typed_func::<(), ()>(&mut *store, &self.function)?
            .call_async(&mut *store, ())
            .await
    }
}

/// What an import is, for messages.
fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(ty) => format!("a function {}", found_signature(ty)),
        ExternType::Memory(ty) if ty.is_64() => "a 64-bit memory".to_owned(),
        ExternType::Memory(ty) if ty.is_shared() => "a shared memory".to_owned(),
        ExternType::Memory(_) => "a memory".to_owned(),
        ExternType::Global(_) => "a global".to_owned(),
        ExternType::Table(_) => "a table".to_owned(),
        ExternType::Tag(_) => "a tag".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn linker(engine: &Engine) -> Arc<Linker<InstanceState>> {
        let mut linker = Linker::new(engine);
        super::super::add_to_linker(&mut linker).unwrap();
        Arc::new(linker)
    }

    fn check(wat: &str, function: Option<&str>, max_memory: u64) -> Result<(), LegacyProblem> {
        let engine = Engine::default();
        let module = Module::new(&engine, wat).unwrap();
        LegacyPre::new(module, function, max_memory, linker(&engine)).map(drop)
    }

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_module_of_the_abi_loads_with_either_memory() {
        let exported = r#"(module
            (import "env" "log" (func (param i32 i64)))
            (memory (export "memory") 1)
            (func (export "handle")))"#;
        assert_eq!(check(exported, None, MIB), Ok(()));
        let imported = r#"(module
            (import "env" "memory" (memory 18))
            (import "env" "db_get" (func (param i32 i64 i32 i64) (result i64)))
            (func (export "hello")))"#;
        assert_eq!(check(imported, Some("hello"), 2 * MIB), Ok(()));
    }

    #[test]
    fn every_import_and_export_mistake_is_named() {
        let wasi = r#"(module
            (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
            (func (export "handle")))"#;
        assert_eq!(
            check(wasi, None, MIB),
            Err(LegacyProblem::UnknownImport {
                module: "wasi_snapshot_preview1".into(),
                name: "fd_write".into()
            })
        );
        let unknown = r#"(module (import "env" "sleep" (func)) (func (export "handle")))"#;
        assert_eq!(
            check(unknown, None, MIB),
            Err(LegacyProblem::UnknownImport {
                module: "env".into(),
                name: "sleep".into()
            })
        );
        let typed = r#"(module (import "env" "log" (func (param i32 i32))) (memory (export "memory") 1) (func (export "handle")))"#;
        assert_eq!(
            check(typed, None, MIB),
            Err(LegacyProblem::ImportType {
                name: "log".into(),
                expected: "(i32, i64) -> ()".into(),
                found: "(i32, i32) -> ()".into()
            })
        );
        let big = r#"(module (import "env" "memory" (memory 32)) (func (export "handle")))"#;
        assert_eq!(
            check(big, None, MIB),
            Err(LegacyProblem::MemoryTooLarge {
                imported: true,
                minimum: 32 * 65536,
                max_memory: MIB
            })
        );
        let own = r#"(module (memory (export "memory") 17) (func (export "handle")))"#;
        assert_eq!(
            check(own, None, MIB),
            Err(LegacyProblem::MemoryTooLarge {
                imported: false,
                minimum: 17 * 65536,
                max_memory: MIB
            })
        );
        let no_memory =
            r#"(module (import "env" "log" (func (param i32 i64))) (func (export "handle")))"#;
        assert_eq!(check(no_memory, None, MIB), Err(LegacyProblem::NoMemory));
        let two = r#"(module (memory (export "memory") 1) (func (export "hello")) (func (export "bonjour")))"#;
        assert_eq!(
            check(two, None, MIB),
            Err(LegacyProblem::MissingFunction {
                function: "handle".into(),
                configured: false,
                exported: vec!["hello".into(), "bonjour".into()]
            })
        );
        assert_eq!(
            check(two, Some("hola"), MIB),
            Err(LegacyProblem::MissingFunction {
                function: "hola".into(),
                configured: true,
                exported: vec!["hello".into(), "bonjour".into()]
            })
        );
        let twice = r#"(module (import "env" "memory" (memory 1)) (import "env" "memory" (memory 1)) (func (export "handle")))"#;
        assert_eq!(
            check(twice, None, MIB),
            Err(LegacyProblem::SeveralMemories(2))
        );
        let hidden = r#"(module (memory 17) (func (export "handle")))"#;
        assert_eq!(
            check(hidden, None, MIB),
            Err(LegacyProblem::MemoryTooLarge {
                imported: false,
                minimum: 17 * 65536,
                max_memory: MIB
            })
        );
        let typed_export = r#"(module (func (export "handle") (param i32)))"#;
        assert_eq!(
            check(typed_export, None, MIB),
            Err(LegacyProblem::FunctionType {
                function: "handle".into(),
                found: "(i32) -> ()".into()
            })
        );
    }
}
