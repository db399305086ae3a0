//! `kefu serve` as a child process of a test: started the way an operator starts it, its
//! address read from what it prints, killed when the test ends however it ends.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A child process killed when dropped.
pub struct Running(pub Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Running {
    /// Sends SIGTERM, as a service manager stopping it does.
    #[cfg(unix)]
    pub fn terminate(&self) {
        let sent = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(sent.success());
    }

    /// Waits up to `secs` seconds for it to exit; its status.
    pub fn wait_exit(&mut self, secs: u64) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "kefu serve did not stop within {secs} s"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// `kefu serve --listen 127.0.0.1:0` in `dir`, with `config` if given (else the embedded
/// defaults: SQLite in `dir/data`); the server and its address (`127.0.0.1:PORT`).
pub fn serve(dir: &Path, config: Option<&Path>) -> (Running, String) {
    serve_with_env(dir, config, &[])
}

/// [`serve`] with environment variables set (secrets named by `secret_env`).
pub fn serve_with_env(
    dir: &Path,
    config: Option<&Path>,
    env: &[(&str, &str)],
) -> (Running, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kefu"));
    command.current_dir(dir);
    command.envs(env.iter().copied());
    if let Some(config) = config {
        command.arg("--config").arg(config);
    }
    let mut child = command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env_remove("KEFU_LOG")
        .env_remove("KEFU_DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kefu serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("a first line").unwrap();
    let addr = first
        .strip_prefix("kefu is serving on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    let second = lines.next().expect("a second line").unwrap();
    assert_eq!(
        second.trim(),
        format!("web chat: open http://{addr}/chat in a browser"),
        "the web chat's URL is printed"
    );
    // Keep reading its output so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (Running(child), addr)
}
