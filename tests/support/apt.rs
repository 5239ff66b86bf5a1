//! A Debian package a test needs, installed with apt-get when missing (CI runs as root, with a package
//! registry). The tests of one binary run at once: one installs while the others wait for it. apt-get waits for
//! another apt-get or dpkg on the machine rather than failing at once: for dpkg's lock by its own timeout, for
//! the package lists' lock (which `apt-get update` takes without waiting) by being tried again.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long apt-get may wait for another apt-get or dpkg.
const LOCK_WAIT: Duration = Duration::from_secs(120);

/// The first of `paths` that exists, once `package` is installed (with apt-get, when none does).
pub fn ensure(package: &str, paths: &[&str]) -> PathBuf {
    static INSTALLING: Mutex<()> = Mutex::new(());
    let _one = INSTALLING.lock().unwrap_or_else(|p| p.into_inner());
    let found = || paths.iter().map(Path::new).find(|p| p.exists()).map(Path::to_path_buf);
    if let Some(p) = found() {
        return p;
    }
    apt_get(package, &["update", "-qq"]);
    apt_get(package, &["install", "-y", "-qq", "--no-install-recommends", package]);
    found().unwrap_or_else(|| panic!("apt-get installed {package}, but none of {paths:?} exists"))
}

fn apt_get(package: &str, args: &[&str]) {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        let status = Command::new("apt-get")
            .args(["-o", &format!("DPkg::Lock::Timeout={}", LOCK_WAIT.as_secs())])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status();
        if status.is_ok_and(|s| s.success()) {
            return;
        }
        assert!(Instant::now() < deadline, "apt-get {args:?} failed: {package} is needed by this test");
        std::thread::sleep(Duration::from_secs(2));
    }
}
