//! Compiles the SQLite the outbox uses (third_party/sqlite3/) with the options chosen here and, for the C
//! library (the `capi` feature), gives the shared library its SONAME and generates the C header from the C ABI
//! in src/ffi/ (cbindgen, settings in cbindgen.toml) into OUT_DIR. It writes only into OUT_DIR, so the build
//! works from a read-only source tree. The header is checked in as include/realer.h: `scripts/header` (part of
//! scripts/test) refreshes it from OUT_DIR, and CI fails when that changes the committed one.

use std::env;
use std::path::{Path, PathBuf};

fn main() {
    let crate_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed=build.rs");

    sqlite(&crate_dir);

    // Without `capi` the library exports nothing: no SONAME, no header (and cbindgen is not even built).
    #[cfg(feature = "capi")]
    c_library(&crate_dir);
}

/// The SONAME, and the C header from the exports in src/ffi/ with cbindgen.toml's settings into
/// OUT_DIR/realer.h: a build writes nothing in the source tree (Cargo's rule for build scripts; a read-only
/// checkout builds). `scripts/header` (run by scripts/test) copies it over the checked-in include/realer.h,
/// which CI compares with the committed one.
#[cfg(feature = "capi")]
fn c_library(crate_dir: &Path) {
    let major = env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the version");
    let minor = env::var("CARGO_PKG_VERSION_MINOR").expect("cargo sets the version");
    let patch = env::var("CARGO_PKG_VERSION_PATCH").expect("cargo sets the version");

    // Pre-1.0 the ABI may change with the minor version, so the SONAME carries it (librealer.so.0.2), from
    // 1.0 on the major alone: cargo-c's rule, so `cargo build` and `cargo cinstall` make the same library.
    let soname_version = if major == "0" { format!("{major}.{minor}") } else { major.clone() };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librealer.so.{soname_version}");

    // The header follows the sources (without `capi` nothing here reads them: an edit does not rerun this).
    println!("cargo:rerun-if-changed=src");
    let settings = crate_dir.join("cbindgen.toml");
    println!("cargo:rerun-if-changed={}", settings.display());
    let mut config = cbindgen::Config::from_file(&settings).expect("cbindgen.toml");
    // The one setting cbindgen.toml cannot hold: the version macros, from Cargo.toml's version.
    config.after_includes = Some(format!(
        "\n#define REALER_VERSION_MAJOR {major}\n#define REALER_VERSION_MINOR {minor}\n#define REALER_VERSION_PATCH {patch}\n#define REALER_VERSION_STRING \"{major}.{minor}.{patch}\""
    ));
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate realer.h");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("realer.h");
    // Writes only when the text changed, so an unchanged header keeps its timestamp.
    bindings.write_to_file(out);
}

/// SQLite for the outbox. With `bundled-sqlite` (the default), libsqlite3-sys runs with `in_gecko` (bindings
/// only, no linking) and the amalgamation it ships (copied to third_party/sqlite3/, the bindings' version) is
/// compiled here, so the options live in the package: a build started from anywhere, `--manifest-path` from
/// outside the tree as Yocto's cargo class does, makes the same library (they lived in .cargo/config.toml,
/// which cargo reads only when it starts inside the tree). With `system-sqlite` nothing is compiled: alone,
/// libsqlite3-sys links the system's library itself; beside `bundled-sqlite` (in_gecko), it is linked here.
fn sqlite(crate_dir: &Path) {
    let dir = crate_dir.join("third_party/sqlite3");
    println!("cargo:rerun-if-changed={}", dir.display());
    let bundled = env::var_os("CARGO_FEATURE_BUNDLED_SQLITE").is_some();
    if env::var_os("CARGO_FEATURE_SYSTEM_SQLITE").is_some() {
        if bundled {
            println!("cargo:rustc-link-lib=dylib=sqlite3");
        }
        return;
    }
    if !bundled {
        return; // libsqlite3-sys links the system's SQLite, as without either feature
    }
    let mut build = cc::Build::new();
    build.file(dir.join("sqlite3.c")).include(&dir).warnings(false);
    // SQLite is compiled for size: the outbox is bound by fsync, not by SQLite's code.
    if env::var("OPT_LEVEL").is_ok_and(|level| level != "0") {
        build.opt_level_str("s");
    }
    for define in SQLITE_DEFINES {
        match define.split_once('=') {
            Some((name, value)) => build.define(name, value),
            None => build.define(define, None),
        };
    }
    if env::var("CARGO_CFG_TARGET_FAMILY").is_ok_and(|family| family == "unix") {
        build.define("HAVE_LOCALTIME_R", None);
    }
    build.compile("sqlite3");
}

/// What libsqlite3-sys's bundled build defines (less the extensions it turns on: full-text search, R-tree,
/// JSON, statistics, extension loading...), then everything the outbox does not use left out, which saves
/// about half of SQLite's code. The outbox needs threads (rusqlite checks), WAL and plain SQL.
const SQLITE_DEFINES: &[&str] = &[
    "SQLITE_CORE",
    "SQLITE_DEFAULT_FOREIGN_KEYS=1",
    "SQLITE_ENABLE_API_ARMOR",
    "SQLITE_ENABLE_MEMORY_MANAGEMENT",
    "SQLITE_THREADSAFE=1",
    "SQLITE_USE_URI",
    "HAVE_USLEEP=1",
    "HAVE_ISNAN",
    "_POSIX_THREAD_SAFE_FUNCTIONS",
    "SQLITE_OMIT_LOAD_EXTENSION",
    "SQLITE_OMIT_JSON",
    "SQLITE_OMIT_DEPRECATED",
    "SQLITE_OMIT_SHARED_CACHE",
    "SQLITE_OMIT_PROGRESS_CALLBACK",
    "SQLITE_OMIT_AUTHORIZATION",
    "SQLITE_OMIT_COMPLETE",
    "SQLITE_OMIT_GET_TABLE",
    "SQLITE_OMIT_TCL_VARIABLE",
    "SQLITE_OMIT_UTF16",
    "SQLITE_OMIT_EXPLAIN",
    "SQLITE_OMIT_INTROSPECTION_PRAGMAS",
    "SQLITE_OMIT_DATETIME_FUNCS",
    "SQLITE_OMIT_COMPILEOPTION_DIAGS",
    "SQLITE_OMIT_DECLTYPE",
    "SQLITE_OMIT_INCRBLOB",
    "SQLITE_OMIT_TRACE",
    "SQLITE_OMIT_AUTOMATIC_INDEX",
    "SQLITE_DEFAULT_MEMSTATUS=0",
    "SQLITE_DQS=0",
];
