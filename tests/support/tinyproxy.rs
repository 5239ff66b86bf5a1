//! Debian's tinyproxy as a real HTTP CONNECT proxy for the tests: installed with apt-get when missing
//! (`apt.rs`), started in the foreground on a free port with a configuration of the test's, stopped when
//! dropped. Its log (LogLevel Connect) names every request it was asked to relay.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "apt.rs"]
mod apt;

pub fn ensure_tinyproxy() -> PathBuf {
    apt::ensure("tinyproxy", &["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"])
}

pub struct Tinyproxy {
    child: Child,
    port: u16,
    log: PathBuf,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Tinyproxy {
    /// Starts tinyproxy with `extra` configuration lines (BasicAuth, ConnectPort...) in `dir`.
    pub fn start(dir: &Path, extra: &str) -> Tinyproxy {
        let bin = ensure_tinyproxy();
        std::fs::create_dir_all(dir).unwrap();
        let port = free_port();
        let log = dir.join("tinyproxy.log");
        let _ = std::fs::remove_file(&log);
        let conf = dir.join("tinyproxy.conf");
        std::fs::write(
            &conf,
            format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Connect\nPidFile \"{}\"\n\
                 MaxClients 50\nAllow 127.0.0.1\n{extra}\n",
                log.display(),
                dir.join("tinyproxy.pid").display()
            ),
        )
        .unwrap();
        let child = Command::new(bin)
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tinyproxy starts");
        let proxy = Tinyproxy { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tinyproxy did not start: {}", proxy.log_text());
            std::thread::sleep(Duration::from_millis(20));
        }
        proxy
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`, with `userinfo@` when given.
    pub fn url(&self, userinfo: Option<&str>) -> String {
        match userinfo {
            Some(u) => format!("http://{u}@127.0.0.1:{}", self.port),
            None => format!("http://127.0.0.1:{}", self.port),
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The request lines tinyproxy was asked to relay ("CONNECT 127.0.0.1:443 HTTP/1.1").
    pub fn requests(&self) -> Vec<String> {
        self.log_text()
            .lines()
            .filter_map(|l| l.split_once("]: Request (file descriptor ").map(|(_, r)| r))
            .filter_map(|r| r.split_once("): ").map(|(_, line)| line.trim().to_string()))
            .collect()
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
