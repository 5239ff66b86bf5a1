//! Shared by tests/c_harness.rs and tests/firmware_loop.rs (included with `#[path]`): where the built
//! library is, scratch directories, compiling C with gcc, and running a C program against a realer-sim
//! with only its `REALER_*` variables (optionally under valgrind).
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use realer_sim::Sim;

/// The system libraries librealer.a needs, as `cargo rustc --lib --features capi -- --print native-static-libs`
/// prints them on glibc Linux (deduplicated). The same list is in c_examples/Makefile.
pub const NATIVE_STATIC_LIBS: &[&str] = &["-lgcc_s", "-lutil", "-lrt", "-lpthread", "-lm", "-ldl", "-lc"];

/// The flags every C file of the project builds with.
pub const C_FLAGS: &[&str] = &["-std=c99", "-g", "-O1", "-Wall", "-Wextra", "-Werror"];

/// Variables that point TLS stacks at a CA bundle: the programs must pass without them.
const CA_VARIABLES: &[&str] = &["SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"];

/// A program gets this long (valgrind makes the harness about 20 times slower).
const RUN_TIMEOUT: Duration = Duration::from_secs(600);

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// target/<profile>/, where the C library's build (`cargo build --workspace --features capi`, run by
/// scripts/test through scripts/header) put librealer.so and librealer.a.
pub fn lib_dir() -> PathBuf {
    // target/<profile>/deps/<test>-<hash> -> target/<profile>
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe.parent().and_then(Path::parent).expect("target/<profile>/").to_path_buf();
    for lib in ["librealer.so", "librealer.a"] {
        assert!(
            dir.join(lib).exists(),
            "{} is missing: run `bash scripts/header --workspace` first (scripts/test does)",
            dir.join(lib).display()
        );
    }
    dir
}

/// An empty directory for one test's files, under cargo's target/tmp; kept after the test for inspection
/// (the program's stdout.txt and stderr.txt are there), emptied when the test runs again.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// The shared library's SONAME, by cargo-c's rule that build.rs applies: librealer.so.MAJOR.MINOR before 1.0
/// (the ABI may change with the minor version), librealer.so.MAJOR from 1.0 on.
pub fn soname() -> String {
    let (major, minor) = (env!("CARGO_PKG_VERSION_MAJOR"), env!("CARGO_PKG_VERSION_MINOR"));
    if major == "0" {
        format!("librealer.so.{major}.{minor}")
    } else {
        format!("librealer.so.{major}")
    }
}

/// librealer.so carries its SONAME (see `soname`), which cargo does not create: a program linked with it looks
/// for that name at run time. This puts that link in `dir` (the program's run path).
pub fn soname_link(dir: &Path) {
    let link = dir.join(soname());
    let _ = fs::remove_file(&link);
    std::os::unix::fs::symlink(lib_dir().join("librealer.so"), &link)
        .unwrap_or_else(|e| panic!("{}: {e}", link.display()));
}

/// Runs a build command, failing the test with its output when it fails.
pub fn build(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The C harness's files, relative to the repository: every tests/c/harness*.c (one program, split by concept;
/// .ci/cross-aarch64 compiles the same glob), in name order.
pub fn harness_sources() -> Vec<String> {
    let dir = repo().join("tests/c");
    let mut sources: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a tests/c entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("harness") && name.ends_with(".c"))
        .map(|name| format!("tests/c/{name}"))
        .collect();
    sources.sort();
    assert!(sources.iter().any(|s| s == "tests/c/harness.c"), "tests/c/harness.c is missing: {sources:?}");
    sources
}

/// Compiles C files of the repository (one program) against include/realer.h and librealer: shared (with the
/// SONAME link next to the program and the run path $ORIGIN) or static.
pub fn compile_c<S: AsRef<str>>(sources: &[S], out_dir: &Path, name: &str, static_link: bool) -> PathBuf {
    let exe = out_dir.join(name);
    let lib = lib_dir();
    let mut cmd = Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()));
    cmd.args(C_FLAGS).arg("-I").arg(repo().join("include")).arg("-o").arg(&exe);
    cmd.args(sources.iter().map(|source| repo().join(source.as_ref())));
    if static_link {
        cmd.arg(lib.join("librealer.a")).args(NATIVE_STATIC_LIBS);
    } else {
        soname_link(out_dir);
        cmd.arg("-L").arg(&lib).arg("-lrealer").arg("-pthread").arg("-Wl,-rpath,$ORIGIN");
    }
    build(&mut cmd);
    exe
}

/// A sim's coordinates for a device, as the `REALER_*` variables the C programs read.
pub fn sim_env(sim: &Sim, dir: &Path, device_id: &str, client_id: &str, client_secret: &str) -> Vec<(String, String)> {
    let ca = dir.join("sim-ca.pem");
    fs::write(&ca, sim.ca_pem()).unwrap_or_else(|e| panic!("{}: {e}", ca.display()));
    vec![
        ("REALER_BASE_URL".into(), sim.base_url()),
        ("REALER_DEVICE_ID".into(), device_id.into()),
        ("REALER_CLIENT_ID".into(), client_id.into()),
        ("REALER_CLIENT_SECRET".into(), client_secret.into()),
        ("REALER_CA_FILE".into(), ca.display().to_string()),
    ]
}

/// Whether `REALER_VALGRIND=1` asks for the C programs to run under valgrind.
pub fn valgrind_requested() -> bool {
    std::env::var("REALER_VALGRIND").is_ok_and(|v| v == "1")
}

/// What a program did.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Both streams, for a failure message or the test's output.
    pub fn output(&self) -> String {
        format!("--- stdout ---\n{}--- stderr ---\n{}", self.stdout, self.stderr)
    }
}

/// Runs `exe` with only the given `REALER_*` variables (inherited ones and CA-bundle variables removed), under
/// valgrind when `REALER_VALGRIND=1`, within [`RUN_TIMEOUT`].
pub fn run_program(exe: &Path, env: &[(String, String)], dir: &Path) -> Run {
    run_program_with_args(exe, &[], env, dir)
}

/// [`run_program`] with command-line arguments.
pub fn run_program_with_args(exe: &Path, args: &[&str], env: &[(String, String)], dir: &Path) -> Run {
    let mut cmd = if valgrind_requested() {
        let mut c = Command::new("valgrind");
        c.arg("--leak-check=full")
            .arg("--errors-for-leak-kinds=definite,indirect")
            .arg("--error-exitcode=1")
            .arg(format!("--suppressions={}", repo().join("tests/c/valgrind.supp").display()))
            .arg(exe);
        c
    } else {
        Command::new(exe)
    };
    cmd.args(args);
    for (k, _) in std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v))) {
        if k.starts_with("REALER_") || CA_VARIABLES.contains(&k.as_str()) {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    // Output goes to files, so a chatty program cannot block on a full pipe while we wait for it.
    let (out_path, err_path) = (dir.join("stdout.txt"), dir.join("stderr.txt"));
    let out = fs::File::create(&out_path).expect("stdout file");
    let err = fs::File::create(&err_path).expect("stderr file");
    cmd.stdin(Stdio::null()).stdout(out).stderr(err).current_dir(dir);
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the program") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let run = Run {
        code: status.and_then(|s| s.code()),
        stdout: fs::read_to_string(&out_path).unwrap_or_default(),
        stderr: fs::read_to_string(&err_path).unwrap_or_default(),
    };
    assert!(status.is_some(), "{} did not finish within {RUN_TIMEOUT:?}\n{}", exe.display(), run.output());
    // Valgrind's own verdict, also for a program that is expected to fail (its exit code would hide it).
    assert!(
        !valgrind_requested() || run.stderr.contains("ERROR SUMMARY: 0 errors"),
        "valgrind found errors in {}\n{}",
        exe.display(),
        run.output()
    );
    run
}
