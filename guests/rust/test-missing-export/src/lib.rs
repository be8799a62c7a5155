//! Test-only: a component that exports `run` instead of `handle`, so that
//! loading it must fail and name the missing export.

wit_bindgen::generate!({
    inline: "
        package example:missing-export;

        world missing-export {
            export run: func();
        }
    ",
});

struct MissingExport;

impl Guest for MissingExport {
    fn run() {}
}

export!(MissingExport);
