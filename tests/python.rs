//! Runs the Python binding's unittest suite (tests/python/) against an in-process realer-sim, with the
//! librealer.so that the C library's build (`--features capi`, scripts/test) made for this profile. The
//! CA goes through `REALER_CA_FILE` only: the environment's `SSL_CERT_FILE` and the like are removed so the
//! suite cannot lean on them.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use realer_sim::{builtin, Flavour, Sim, SimOptions};

/// The whole suite takes about a second; this only bounds a hang.
const SUITE_TIMEOUT: Duration = Duration::from_secs(300);

/// Variables that point TLS stacks at a CA bundle: the suite must pass without them.
const CA_VARIABLES: &[&str] = &["SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"];

fn built_lib() -> PathBuf {
    // target/<profile>/deps/python-<hash> -> target/<profile>/librealer.so
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe.parent().and_then(Path::parent).expect("target/<profile>/").join("librealer.so");
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/header --workspace` first (with --release for a release test run)",
        path.display()
    );
    path
}

/// A file removed when dropped, also when the test fails.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos();
        let path = std::env::temp_dir().join(format!("realer-python-{}-{nanos}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn read_all(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The count of "Ran N tests" in unittest's summary.
fn tests_run(output: &str) -> Option<u32> {
    output.lines().find_map(|l| l.strip_prefix("Ran ")?.split_whitespace().next()?.parse().ok())
}

#[test]
fn python_binding_suite() {
    let lib = built_lib();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let sim =
        Sim::start(SimOptions { quiet: true, flavour: Flavour::V2, ..Default::default() }).expect("realer-sim starts");
    let ca = TempFile::new("ca.pem", &sim.ca_pem());

    let mut cmd = Command::new("python3");
    cmd.args(["-m", "unittest", "discover", "-s", "tests/python", "-v"]).current_dir(root);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("REALER_") {
            cmd.env_remove(&name);
        }
    }
    for name in CA_VARIABLES {
        cmd.env_remove(name);
    }
    cmd.env("REALER_LIB", &lib)
        .env("REALER_HEADER", root.join("include/realer.h"))
        .env("PYTHONPATH", root.join("python"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("REALER_BASE_URL", sim.base_url())
        .env("REALER_CA_FILE", &ca.0)
        .env("REALER_DEVICE_ID", builtin::DEVICE_ID)
        .env("REALER_CLIENT_ID", builtin::CLIENT_ID)
        .env("REALER_CLIENT_SECRET", builtin::CLIENT_SECRET)
        .env("REALER_OTHER_DEVICE_ID", builtin::OTHER_DEVICE_ID)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());

    let mut child = cmd.spawn().expect("python3 runs (is it installed?)");
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for python3") {
            break Some(status);
        }
        if started.elapsed() > SUITE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (stdout.join().unwrap_or_default(), stderr.join().unwrap_or_default());
    println!("{stdout}{stderr}");

    let status = status.unwrap_or_else(|| panic!("the Python suite did not finish within {SUITE_TIMEOUT:?}"));
    assert!(status.success(), "the Python suite failed ({status})");
    let ran = tests_run(&stderr).expect("unittest's \"Ran N tests\" line");
    assert!(ran > 0, "no Python test ran");
    let verdict = stderr.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default();
    assert_eq!(verdict.trim(), "OK", "every Python test must run here, none skipped");
}
