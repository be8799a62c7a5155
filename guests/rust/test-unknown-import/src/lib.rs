//! Test-only: a handler that also imports `example:unknown/kv`, which the
//! host does not provide, so that loading it must fail and name the import.

wit_bindgen::generate!({
    inline: "
        package example:unknown;

        interface kv {
            get: func(key: string) -> string;
        }

        world unknown-import {
            import kv;
            export handle: func();
        }
    ",
});

struct UnknownImport;

impl Guest for UnknownImport {
    fn handle() {
        example::unknown::kv::get("key");
    }
}

export!(UnknownImport);
