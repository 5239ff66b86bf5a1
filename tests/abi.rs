//! The shared library's surface: only `realer_` symbols are exported, the SONAME is librealer.so.0.2
//! (cargo-c's rule for 0.x: the ABI may change with the minor version), and the checked-in header declares
//! every exported function. Needs the C library's build (`--features capi`) to have made target/*/librealer.so:
//! scripts/test makes it.

use std::path::PathBuf;
use std::process::Command;

fn built_lib(name: &str) -> PathBuf {
    // target/<profile>/deps/abi-<hash> -> target/<profile>/
    let dir = std::env::current_exe().unwrap().parent().unwrap().parent().unwrap().to_path_buf();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/header --workspace` first (scripts/test does)",
        path.display()
    );
    path
}

fn tool(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(out.status.success(), "{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn exported_functions() -> Vec<String> {
    let so = built_lib("librealer.so");
    let mut names: Vec<String> = tool("nm", &["-D", "--defined-only", so.to_str().unwrap()])
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    names.sort();
    names
}

#[test]
fn only_realer_symbols_are_exported() {
    let names = exported_functions();
    assert!(names.len() > 30, "{names:?}");
    let foreign: Vec<&String> = names.iter().filter(|n| !n.starts_with("realer_")).collect();
    assert!(foreign.is_empty(), "exported symbols without the realer_ prefix: {foreign:?}");
}

#[test]
fn soname_carries_the_minor_version_before_1_0() {
    let so = built_lib("librealer.so");
    let dynamic = tool("readelf", &["-d", so.to_str().unwrap()]);
    // Written out rather than computed: a change of this rule must change this test (and the CHANGELOG).
    assert_eq!(env!("CARGO_PKG_VERSION_MAJOR"), "0");
    let soname = format!("librealer.so.0.{}", env!("CARGO_PKG_VERSION_MINOR"));
    assert!(dynamic.contains(&format!("Library soname: [{soname}]")), "{dynamic}");
}

#[test]
fn the_header_declares_every_export() {
    let header = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/realer.h")).unwrap();
    for name in exported_functions() {
        assert!(
            header.contains(&format!(" {name}(")) || header.contains(&format!("*{name}(")),
            "{name} is not in realer.h"
        );
    }
}
