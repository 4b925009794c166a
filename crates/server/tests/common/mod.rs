//! Shared test harness: starts a real ferrokv (and, for differential tests,
//! a real redis-server) on free ports, and stops them when dropped.
#![allow(dead_code)]

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A server process listening on `port`, killed on drop.
pub struct ServerProcess {
    pub port: u16,
    child: Child,
    _dir: tempdir::Dir,
}

pub mod tempdir {
    /// A scratch directory removed on drop, so tests leave nothing behind.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Dir {
            let path = std::env::temp_dir().join(format!(
                "ferrokv-test-{tag}-{}-{}",
                std::process::id(),
                super::next_id()
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create a scratch dir");
            Dir(path)
        }

        /// The directory as a `--dir` argument.
        pub fn path(&self) -> &str {
            self.0.to_str().expect("utf-8 temp path")
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn next_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

/// Whether the server on `port` serves commands: redis-server listens
/// while it still loads its files and answers -LOADING until done, so a
/// test that connected at once could see a half-loaded data set. An
/// -NOAUTH reply counts as serving. The probe QUITs and reads to the
/// server's close, so that a test starting afterwards never counts the
/// probe among the server's clients.
fn answers(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut got = Vec::new();
    s.write_all(b"PING\r\nQUIT\r\n").is_ok()
        && s.read_to_end(&mut got).is_ok()
        && (got.starts_with(b"+PONG") || got.starts_with(b"-NOAUTH"))
}

fn wait_ready(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if answers(port) {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited during start-up: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not start listening on port {port}");
}

/// Fails the test with instructions when the reference server is missing:
/// a differential test that silently skipped would prove nothing.
pub fn require_redis_server() {
    let found = Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "redis-server is not installed (or not on PATH). The differential tests compare \
         ferrokv with a real Redis 7.0: install it with `apt-get install redis-server`."
    );
}

/// A field of `INFO persistence`, empty when absent.
pub fn info_field(con: &mut redis::Connection, name: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(con)
        .expect("INFO persistence");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_default()
        .to_string()
}

/// How many connections each event loop serves, from INFO (the overflow
/// loop last).
fn loop_clients(con: &mut redis::Connection) -> Vec<usize> {
    let info: String = redis::cmd("INFO").arg("server").query(con).unwrap();
    let field = info
        .lines()
        .find_map(|l| l.strip_prefix("loop_clients:"))
        .expect("INFO server has loop_clients");
    field.split(',').map(|n| n.parse().unwrap()).collect()
}

/// Polls `loop_clients` until `done` holds for it (moves happen between a
/// client's reads, so the count can lag its last reply a little).
pub fn wait_for_loops(con: &mut redis::Connection, done: impl Fn(&[usize]) -> bool) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let counts = loop_clients(con);
        if done(&counts) || Instant::now() > deadline {
            return counts;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether a Redis tool (redis-check-aof, redis-check-rdb) is installed;
/// when it is not, says why the caller skips its check (CI installs it).
pub fn have_tool(name: &str) -> bool {
    let found = Command::new(name)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        eprintln!("skipped: {name} is not installed (apt-get install redis-tools)");
    }
    found
}

impl ServerProcess {
    /// Starts ferrokv with extra `--directive value` arguments, persistence
    /// off unless they turn it on (as the reference server below). Every
    /// event loop takes connections from the start (`adaptive-loops no`),
    /// so that concurrency tests meet their clients on different loops
    /// however light their load; tests of the adaptive count turn it on.
    pub fn ferrokv(extra: &[&str]) -> ServerProcess {
        let port = free_port();
        let dir = tempdir::Dir::new("ferrokv");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ferrokv"))
            .args(["--port", &port.to_string(), "--dir"])
            .arg(&dir.0)
            .args(["--loglevel", "warning", "--save", ""])
            .args(["--adaptive-loops", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ferrokv");
        wait_ready(port, &mut child, "ferrokv");
        ServerProcess {
            port,
            child,
            _dir: dir,
        }
    }

    /// Starts the reference redis-server (Redis 7.0) with persistence off.
    /// Differential tests need it: install it with `apt-get install redis-server`.
    pub fn redis(extra: &[&str]) -> ServerProcess {
        require_redis_server();
        let port = free_port();
        let dir = tempdir::Dir::new("redis");
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(&dir.0)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start redis-server (apt-get install redis-server)");
        wait_ready(port, &mut child, "redis-server");
        ServerProcess {
            port,
            child,
            _dir: dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("client for a local url")
    }

    pub fn connection(&self) -> redis::Connection {
        self.client().get_connection().expect("connect")
    }

    /// Waits for the process to exit by itself, returning its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
