//! Connection and server commands end to end: protocol switching,
//! authentication, actions across clients (KILL, PAUSE), reply control,
//! configuration round trips and rewrites, and the ways the process stops.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::ServerProcess;

/// A raw RESP connection that returns each reply's exact bytes.
struct Raw {
    reader: BufReader<TcpStream>,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        Raw {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, args: &[&str]) {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        self.reader.get_mut().write_all(&out).expect("write");
    }

    /// Reads one complete reply (any RESP2/RESP3 type), returning its bytes.
    fn read(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("read");
        assert!(
            line.ends_with(b"\r\n"),
            "connection closed mid-reply: {line:?}"
        );
        let n: i64 = std::str::from_utf8(&line[1..line.len() - 2])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut out = line.clone();
        match line[0] {
            b'$' | b'=' | b'!' if n >= 0 => {
                let mut body = vec![0; n as usize + 2];
                self.reader.read_exact(&mut body).expect("read body");
                out.extend(body);
            }
            b'*' | b'~' | b'>' if n > 0 => (0..n).for_each(|_| out.extend(self.read())),
            b'%' if n > 0 => (0..2 * n).for_each(|_| out.extend(self.read())),
            _ => {}
        }
        out
    }

    fn cmd(&mut self, args: &[&str]) -> Vec<u8> {
        self.send(args);
        self.read()
    }

    /// True once the server has closed this connection.
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.reader.read(&mut b), Ok(0) | Err(_))
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn hello_3_switches_to_resp3() {
    let server = ServerProcess::ferrokv(&[]);
    let mut c = Raw::connect(server.port);
    assert_eq!(c.cmd(&["GET", "nosuch"]), b"$-1\r\n");
    let hello = text(&c.cmd(&["HELLO", "3"]));
    assert!(hello.starts_with("%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$6\r\n7.0.15\r\n$5\r\nproto\r\n:3\r\n"), "{hello}");
    assert!(hello.ends_with("$7\r\nmodules\r\n*0\r\n"), "{hello}");
    assert_eq!(c.cmd(&["GET", "nosuch"]), b"_\r\n");
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "hz"]),
        b"%1\r\n$2\r\nhz\r\n$2\r\n10\r\n"
    );
    assert!(
        text(&c.cmd(&["INFO", "cpu"])).starts_with("="),
        "INFO is verbatim text in RESP3"
    );
    assert!(text(&c.cmd(&["CLIENT", "INFO"])).contains(" resp=3\n"));
    assert_eq!(c.cmd(&["RESET"]), b"+RESET\r\n");
    assert_eq!(c.cmd(&["GET", "nosuch"]), b"$-1\r\n");
}

#[test]
fn requirepass_gates_commands_until_auth() {
    let server = ServerProcess::ferrokv(&["--requirepass", "s3cret"]);
    let mut c = Raw::connect(server.port);
    assert_eq!(c.cmd(&["PING"]), b"-NOAUTH Authentication required.\r\n");
    assert!(text(&c.cmd(&["HELLO", "3"])).starts_with("-NOAUTH HELLO must be called"));
    assert_eq!(
        c.cmd(&["AUTH", "wrong"]),
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
    );
    assert_eq!(c.cmd(&["AUTH", "s3cret"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
    // RESET forgets the authentication when a password is required.
    assert_eq!(c.cmd(&["RESET"]), b"+RESET\r\n");
    assert_eq!(c.cmd(&["PING"]), b"-NOAUTH Authentication required.\r\n");
    // HELLO AUTH authenticates and switches protocol at once.
    let hello = text(&c.cmd(&["HELLO", "3", "AUTH", "default", "s3cret", "SETNAME", "me"]));
    assert!(hello.starts_with("%7\r\n"), "{hello}");
    assert_eq!(c.cmd(&["CLIENT", "GETNAME"]), b"$2\r\nme\r\n");
}

#[test]
fn client_kill_closes_the_other_connection() {
    let server = ServerProcess::ferrokv(&[]);
    let mut victim = Raw::connect(server.port);
    let mut killer = Raw::connect(server.port);
    let id = text(&victim.cmd(&["CLIENT", "ID"]));
    let id = id.trim_start_matches(':').trim();
    assert_eq!(killer.cmd(&["CLIENT", "KILL", "ID", id]), b":1\r\n");
    assert!(victim.closed());
    assert_eq!(killer.cmd(&["PING"]), b"+PONG\r\n");
    // The old form may kill the caller itself, after its +OK.
    let me = text(&killer.cmd(&["CLIENT", "INFO"]));
    let addr = me
        .split(' ')
        .find_map(|f| f.strip_prefix("addr="))
        .expect("addr field")
        .to_string();
    assert_eq!(killer.cmd(&["CLIENT", "KILL", &addr]), b"+OK\r\n");
    assert!(killer.closed());
}

#[test]
fn client_pause_write_holds_writes_only() {
    let server = ServerProcess::ferrokv(&[]);
    let mut admin = Raw::connect(server.port);
    let mut c = Raw::connect(server.port);
    assert_eq!(admin.cmd(&["CLIENT", "PAUSE", "600", "WRITE"]), b"+OK\r\n");
    let start = Instant::now();
    assert_eq!(c.cmd(&["GET", "k"]), b"$-1\r\n");
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "GET waited {:?}",
        start.elapsed()
    );
    let start = Instant::now();
    assert_eq!(c.cmd(&["SET", "k", "v"]), b"+OK\r\n");
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "SET waited only {:?}",
        start.elapsed()
    );
    // UNPAUSE releases a waiting writer at once.
    assert_eq!(
        admin.cmd(&["CLIENT", "PAUSE", "10000", "WRITE"]),
        b"+OK\r\n"
    );
    c.send(&["SET", "k", "w"]);
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    assert_eq!(admin.cmd(&["CLIENT", "UNPAUSE"]), b"+OK\r\n");
    assert_eq!(c.read(), b"+OK\r\n");
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn client_reply_off_and_skip() {
    let server = ServerProcess::ferrokv(&[]);
    let mut c = Raw::connect(server.port);
    c.send(&["CLIENT", "REPLY", "OFF"]);
    c.send(&["SET", "a", "1"]);
    c.send(&["GET", "a"]);
    assert_eq!(c.cmd(&["CLIENT", "REPLY", "ON"]), b"+OK\r\n");
    c.send(&["CLIENT", "REPLY", "SKIP"]);
    c.send(&["SET", "b", "2"]);
    assert_eq!(c.cmd(&["GET", "b"]), b"$1\r\n2\r\n");
    assert_eq!(c.cmd(&["GET", "a"]), b"$1\r\n1\r\n");
}

#[test]
fn config_set_get_round_trip_and_atomic_failure() {
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxclients", "123", "timeout", "7"])
        .query(&mut con)
        .unwrap();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg(&["GET", "maxclients"])
        .query(&mut con)
        .unwrap();
    assert_eq!(got, ["maxclients", "123"]);
    let err = redis::cmd("CONFIG")
        .arg(&["SET", "maxclients", "5", "hz", "100000"])
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("argument 'hz'"), "{err}");
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg(&["GET", "maxclients", "timeout"])
        .query(&mut con)
        .unwrap();
    assert_eq!(
        got,
        ["maxclients", "123", "timeout", "7"],
        "a failed CONFIG SET changes nothing"
    );
}

/// Starts ferrokv with a config file and no other arguments.
fn start_with_file(path: &std::path::Path, port: u16) -> std::process::Child {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferrokv"))
        .arg(path)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start ferrokv");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "ferrokv did not start on {port}");
        assert!(
            child.try_wait().ok().flatten().is_none(),
            "ferrokv exited at start-up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

#[test]
fn config_rewrite_writes_a_file_the_server_restarts_from() {
    let dir = std::env::temp_dir().join(format!("ferrokv-rewrite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("ferrokv.conf");
    let port = common::free_port();
    std::fs::write(
        &conf,
        format!(
            "# kept comment\nport {port}\ndir {}\nloglevel warning\nhz 10\n",
            dir.display()
        ),
    )
    .unwrap();
    let mut child = start_with_file(&conf, port);
    let mut c = Raw::connect(port);
    assert_eq!(
        c.cmd(&["CONFIG", "SET", "hz", "20", "maxclients", "77"]),
        b"+OK\r\n"
    );
    assert_eq!(c.cmd(&["CONFIG", "REWRITE"]), b"+OK\r\n");
    let written = std::fs::read_to_string(&conf).unwrap();
    assert!(written.contains("# kept comment"), "{written}");
    let _ = child.kill();
    let _ = child.wait();

    let mut child = start_with_file(&conf, port);
    let mut c = Raw::connect(port);
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "hz"]),
        b"*2\r\n$2\r\nhz\r\n$2\r\n20\r\n"
    );
    assert_eq!(
        c.cmd(&["CONFIG", "GET", "maxclients"]),
        b"*2\r\n$10\r\nmaxclients\r\n$2\r\n77\r\n"
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn shutdown_exits_zero() {
    let mut server = ServerProcess::ferrokv(&[]);
    let mut c = Raw::connect(server.port);
    assert_eq!(
        c.cmd(&["SHUTDOWN", "ABORT"]),
        b"-ERR No shutdown in progress.\r\n"
    );
    c.send(&["SHUTDOWN", "NOSAVE"]);
    assert!(c.closed());
    assert_eq!(server.wait_exit(Duration::from_secs(1)), Some(0));
}

#[test]
fn sigterm_exits_zero() {
    let mut server = ServerProcess::ferrokv(&[]);
    let _c = Raw::connect(server.port);
    // Safety: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(server.pid() as i32, libc::SIGTERM) }, 0);
    assert_eq!(server.wait_exit(Duration::from_secs(1)), Some(0));
}

#[test]
fn slowlog_and_latency_record_slow_commands() {
    let server = ServerProcess::ferrokv(&[]);
    let mut c = Raw::connect(server.port);
    assert_eq!(
        c.cmd(&[
            "CONFIG",
            "SET",
            "slowlog-log-slower-than",
            "0",
            "latency-monitor-threshold",
            "1"
        ]),
        b"+OK\r\n"
    );
    c.cmd(&["SET", "k", "v"]);
    let log = text(&c.cmd(&["SLOWLOG", "GET", "1"]));
    assert!(log.starts_with("*1\r\n*6\r\n"), "{log}");
    assert!(log.contains("$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"), "{log}");
    assert_eq!(c.cmd(&["SLOWLOG", "RESET"]), b"+OK\r\n");
    assert_eq!(
        c.cmd(&["SLOWLOG", "LEN"]),
        b":1\r\n",
        "the RESET itself is logged"
    );
    assert!(text(&c.cmd(&["LATENCY", "DOCTOR"])).contains("no latency spike"));
}

#[test]
fn info_sections_and_commandstats() {
    let server = ServerProcess::ferrokv(&[]);
    let mut c = Raw::connect(server.port);
    c.cmd(&["SET", "k", "v"]);
    let info = text(&c.cmd(&["INFO"]));
    for needle in [
        "# Server\r\nredis_version:7.0.15\r\n",
        "\r\n\r\n# Clients\r\n",
        "connected_clients:1\r\n",
        "db0:keys=1,expires=0,avg_ttl=0\r\n",
        "role:master\r\n",
        "aof_enabled:0\r\n",
    ] {
        assert!(info.contains(needle), "missing {needle:?} in {info}");
    }
    assert!(!info.contains("# Commandstats"));
    let stats = text(&c.cmd(&["INFO", "commandstats"]));
    assert!(stats.contains("cmdstat_set:calls=1,"), "{stats}");
    let all = text(&c.cmd(&["INFO", "everything"]));
    assert!(all.contains("# Commandstats") && all.contains("# Keyspace"));
    assert_eq!(c.cmd(&["CONFIG", "RESETSTAT"]), b"+OK\r\n");
    assert!(!text(&c.cmd(&["INFO", "commandstats"])).contains("cmdstat_set"));

    // Refused for arity (also inside a script) is a rejected call; a
    // script whose reply is an error is a failed one, as in Redis.
    c.cmd(&["GET"]);
    c.cmd(&["EVAL", "return redis.call('get')", "0"]);
    c.cmd(&["EVAL", "return redis.error_reply('MY error')", "0"]);
    c.cmd(&["CONFIG", "GET"]);
    let stats = text(&c.cmd(&["INFO", "commandstats"]));
    for needle in [
        "cmdstat_get:calls=0,usec=0,usec_per_call=0.00,rejected_calls=2,failed_calls=0",
        "rejected_calls=0,failed_calls=2\r\n",
        "cmdstat_config|get:calls=0,usec=0,usec_per_call=0.00,rejected_calls=1,",
    ] {
        assert!(stats.contains(needle), "missing {needle:?} in {stats}");
    }
    let info = text(&c.cmd(&["INFO"]));
    assert!(
        info.contains("total_error_replies:4\r\n")
            && info.contains("# Errorstats\r\nerrorstat_ERR:count=3\r\nerrorstat_MY:count=1\r\n"),
        "{info}"
    );
}

/// One INFO field's value.
fn info_field(c: &mut Raw, section: &str, name: &str) -> String {
    let info = text(&c.cmd(&["INFO", section]));
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .unwrap_or_else(|| panic!("no {name} in {info}"))
        .to_string()
}

fn info_number(c: &mut Raw, section: &str, name: &str) -> f64 {
    let v = info_field(c, section, name);
    v.trim_end_matches('%')
        .parse()
        .unwrap_or_else(|_| panic!("{name}:{v} is not a number"))
}

/// The INFO fields monitoring reads beyond the counters: the run ID, peak
/// memory, what scripting holds, and the per-second rates, each following
/// what the server does.
#[test]
fn info_follows_scripts_memory_and_traffic() {
    let server = ServerProcess::ferrokv(&[]);
    let mut c = Raw::connect(server.port);
    let run_id = info_field(&mut c, "server", "run_id");
    assert!(run_id.len() == 40 && run_id.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(info_field(&mut c, "server", "run_id"), run_id);
    assert_ne!(info_field(&mut c, "replication", "master_replid"), run_id);

    let used = info_number(&mut c, "memory", "used_memory");
    assert!(info_number(&mut c, "memory", "used_memory_peak") >= used);
    assert!(info_number(&mut c, "memory", "total_system_memory") > used);

    assert_eq!(
        info_number(&mut c, "memory", "number_of_cached_scripts"),
        0.0
    );
    c.cmd(&["EVAL", "return 1", "0"]);
    c.cmd(&["SCRIPT", "LOAD", "return 2"]);
    assert_eq!(
        info_number(&mut c, "memory", "number_of_cached_scripts"),
        2.0
    );
    assert!(info_number(&mut c, "memory", "used_memory_lua") > 0.0);
    let scripts = info_number(&mut c, "memory", "used_memory_scripts_eval");
    assert!(scripts > 0.0);
    assert_eq!(c.cmd(&["SCRIPT", "FLUSH"]), b"+OK\r\n");
    assert_eq!(
        info_number(&mut c, "memory", "number_of_cached_scripts"),
        0.0
    );
    assert!(info_number(&mut c, "memory", "used_memory_scripts_eval") < scripts);
    c.cmd(&[
        "FUNCTION",
        "LOAD",
        "#!lua name=lib\nredis.register_function('f1', function() return 1 end)\n\
         redis.register_function('f2', function() return 2 end)",
    ]);
    assert_eq!(info_number(&mut c, "memory", "number_of_functions"), 2.0);
    assert_eq!(info_number(&mut c, "memory", "number_of_libraries"), 1.0);
    assert!(info_number(&mut c, "memory", "used_memory_functions") > 0.0);

    // The rates average the last 1.6 s: busy while a client sends, back to
    // nothing once it has stopped.
    let port = server.port;
    let busy = std::thread::spawn(move || {
        let mut c = Raw::connect(port);
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            for _ in 0..50 {
                c.send(&["PING"]);
            }
            for _ in 0..50 {
                c.read();
            }
        }
    });
    std::thread::sleep(Duration::from_millis(1000));
    assert!(info_number(&mut c, "stats", "instantaneous_ops_per_sec") > 0.0);
    assert!(info_number(&mut c, "stats", "instantaneous_input_kbps") > 0.0);
    busy.join().expect("busy client");
    // Past the window, only this connection's own INFO calls are left.
    std::thread::sleep(Duration::from_millis(2500));
    let idle = info_number(&mut c, "stats", "instantaneous_ops_per_sec");
    assert!(idle < 10.0, "{idle} ops/s after the traffic stopped");
}

#[test]
fn debug_object_and_switches() {
    let server = ServerProcess::ferrokv(&[]);
    let mut c = Raw::connect(server.port);
    assert_eq!(c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "0"]), b"+OK\r\n");
    c.cmd(&["SET", "k", "v"]);
    let obj = text(&c.cmd(&["DEBUG", "OBJECT", "k"]));
    assert!(
        obj.starts_with("+Value at:0x") && obj.contains(" encoding:embstr serializedlength:2 "),
        "{obj}"
    );
    assert_eq!(c.cmd(&["DEBUG", "SET-ACTIVE-EXPIRE", "1"]), b"+OK\r\n");
    assert_eq!(
        c.cmd(&["DEBUG", "OBJECT", "nosuch"]),
        b"-ERR no such key\r\n"
    );
    let start = Instant::now();
    assert_eq!(c.cmd(&["DEBUG", "SLEEP", "0.2"]), b"+OK\r\n");
    assert!(start.elapsed() >= Duration::from_millis(150));
}

/// One INFO section's numeric fields, all from the same reply.
struct Numbers(std::collections::HashMap<String, f64>);

impl Numbers {
    fn of(con: &mut redis::Connection, section: &str) -> Numbers {
        let info: String = redis::cmd("INFO").arg(section).query(con).unwrap();
        Numbers(
            info.lines()
                .filter_map(|l| l.split_once(':'))
                .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> f64 {
        *self
            .0
            .get(name)
            .unwrap_or_else(|| panic!("no number {name}"))
    }
}

fn memory_field(con: &mut redis::Connection, name: &str) -> f64 {
    Numbers::of(con, "memory").get(name)
}

/// Background frees as INFO counts them, the same in both servers: UNLINK
/// of a value that costs more than 64 frees counts one object (a small
/// one is freed at once and counts none), FLUSHDB ASYNC one per key.
#[test]
fn lazyfree_counts_match_redis() {
    common::require_redis_server();
    let mut counts = Vec::new();
    for server in [ServerProcess::redis(&[]), ServerProcess::ferrokv(&[])] {
        let mut con = server.connection();
        let big: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
        let _: () = redis::cmd("SADD")
            .arg("big")
            .arg(&big)
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("SADD")
            .arg("small")
            .arg(&big[..10])
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("UNLINK")
            .arg("big")
            .arg("small")
            .query(&mut con)
            .unwrap();
        for i in 0..50 {
            let _: () = redis::cmd("SET")
                .arg(format!("k{i}"))
                .arg("v")
                .query(&mut con)
                .unwrap();
        }
        let _: () = redis::cmd("FLUSHDB").arg("ASYNC").query(&mut con).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while memory_field(&mut con, "lazyfree_pending_objects") > 0.0 {
            assert!(Instant::now() < deadline, "background frees never finished");
            std::thread::sleep(Duration::from_millis(10));
        }
        counts.push(memory_field(&mut con, "lazyfreed_objects"));
    }
    assert_eq!(counts, [51.0, 51.0]);
}

/// The allocator's figures in INFO memory are jemalloc's and consistent:
/// what the program holds sits in active pages, which are resident, and
/// each ratio is the quotient of the figures it relates.
#[test]
fn info_memory_shows_the_allocators_figures() {
    let server = ServerProcess::ferrokv(&[]);
    let mut con = server.connection();
    let values: Vec<String> = (0..1000).map(|i| format!("{i:0>100}")).collect();
    for (i, v) in values.iter().enumerate() {
        let _: () = redis::cmd("SET").arg(i).arg(v).query(&mut con).unwrap();
    }
    let info = Numbers::of(&mut con, "memory");
    let field = |name: &str| info.get(name);
    let (allocated, active, resident) = (
        field("allocator_allocated"),
        field("allocator_active"),
        field("allocator_resident"),
    );
    assert!(allocated > 100_000.0, "{allocated}");
    assert!(
        allocated <= active && active <= resident,
        "{allocated} {active} {resident}"
    );
    assert_eq!(field("allocator_frag_bytes"), active - allocated);
    assert_eq!(field("allocator_rss_bytes"), resident - active);
    let close = |name: &str, want: f64| {
        assert!(
            (field(name) - want).abs() <= 0.006,
            "{name}: {} vs {want}",
            field(name)
        );
    };
    close("allocator_frag_ratio", active / allocated);
    close("allocator_rss_ratio", resident / active);
    let rss = field("used_memory_rss");
    close("rss_overhead_ratio", rss / resident);
    assert_eq!(field("rss_overhead_bytes"), rss - resident);
}

/// INFO stats counts reads from and writes to clients as Redis does: one
/// each per request and reply of a client that waits for every reply.
#[test]
fn reads_and_writes_processed_match_redis() {
    common::require_redis_server();
    let mut deltas = Vec::new();
    for server in [ServerProcess::redis(&[]), ServerProcess::ferrokv(&[])] {
        let mut con = server.connection();
        let counts = |con: &mut redis::Connection| -> (f64, f64) {
            let info = Numbers::of(con, "stats");
            (
                info.get("total_reads_processed"),
                info.get("total_writes_processed"),
            )
        };
        let before = counts(&mut con);
        for _ in 0..3 {
            let _: String = redis::cmd("PING").query(&mut con).unwrap();
        }
        let after = counts(&mut con);
        deltas.push((after.0 - before.0, after.1 - before.1));
    }
    // Three PINGs and the second INFO read; the first INFO's reply and
    // three PONGs written.
    assert_eq!(deltas, [(4.0, 4.0), (4.0, 4.0)]);
}

/// INFO latencystats as Redis writes it: a line per command called, with
/// its p50, p99 and p99.9 in microseconds as hdr bucket values (three
/// decimals, never decreasing); with `latency-tracking no` nothing is
/// recorded, and CONFIG RESETSTAT empties it. The same requests name the
/// same commands in both servers.
#[test]
fn latencystats_match_redis() {
    common::require_redis_server();
    let names = |con: &mut redis::Connection| -> Vec<String> {
        let info: String = redis::cmd("INFO").arg("latencystats").query(con).unwrap();
        let mut names: Vec<String> = info
            .lines()
            .filter_map(|l| l.strip_prefix("latency_percentiles_usec_"))
            .map(|l| {
                let (name, values) = l.split_once(':').unwrap();
                let mut last = 0.0;
                let labels: Vec<&str> = values
                    .split(',')
                    .map(|kv| {
                        let (label, v) = kv.split_once('=').unwrap();
                        assert_eq!(v.split_once('.').unwrap().1.len(), 3, "{l}");
                        let v: f64 = v.parse().unwrap();
                        assert!(v >= last, "{l}");
                        last = v;
                        label
                    })
                    .collect();
                assert_eq!(labels, ["p50", "p99", "p99.9"]);
                name.to_string()
            })
            .collect();
        names.sort();
        names
    };
    let mut seen = Vec::new();
    for server in [ServerProcess::redis(&[]), ServerProcess::ferrokv(&[])] {
        let mut con = server.connection();
        for i in 0..100 {
            let _: () = redis::cmd("SET").arg("k").arg(i).query(&mut con).unwrap();
            let _: i64 = redis::cmd("GET").arg("k").query(&mut con).unwrap();
        }
        let first = names(&mut con);
        let set = |con: &mut redis::Connection, v: &str| {
            let () = redis::cmd("CONFIG")
                .arg("SET")
                .arg("latency-tracking")
                .arg(v)
                .query(con)
                .unwrap();
        };
        set(&mut con, "no");
        let () = redis::cmd("CONFIG")
            .arg("RESETSTAT")
            .query(&mut con)
            .unwrap();
        let _: i64 = redis::cmd("INCR").arg("n").query(&mut con).unwrap();
        let untracked = names(&mut con);
        set(&mut con, "yes");
        let _: i64 = redis::cmd("INCR").arg("n").query(&mut con).unwrap();
        seen.push((first, untracked, names(&mut con)));
    }
    assert!(seen[1].0.contains(&"set".to_string()) && seen[1].0.contains(&"get".to_string()));
    assert!(seen[1].1.is_empty(), "{:?}", seen[1].1);
    assert_eq!(seen[0], seen[1]);
}

/// LATENCY HISTOGRAM as Redis replies it: the commands named (a
/// container's subcommands with calls, unknown names skipped), each with
/// its calls and cumulative buckets labelled 1, 2, 4, 8, 16, 33, 66 ...
/// microseconds, the last one counting every call.
#[test]
fn latency_histogram_matches_redis() {
    common::require_redis_server();
    let labels: std::collections::BTreeSet<i64> = [1, 2, 4, 8, 16, 33, 66, 132, 264, 528, 1056]
        .into_iter()
        .collect();
    let mut shapes = Vec::new();
    for server in [ServerProcess::redis(&[]), ServerProcess::ferrokv(&[])] {
        let mut con = server.connection();
        for i in 0..50 {
            let _: () = redis::cmd("SET").arg("k").arg(i).query(&mut con).unwrap();
        }
        let _: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("port")
            .query(&mut con)
            .unwrap();
        let reply: redis::Value = redis::cmd("LATENCY")
            .arg("HISTOGRAM")
            .arg("set")
            .arg("nosuch")
            .arg("config")
            .arg("get|x")
            .query(&mut con)
            .unwrap();
        let redis::Value::Array(items) = reply else {
            panic!("not a flat map: {reply:?}");
        };
        let mut shape = Vec::new();
        for pair in items.chunks(2) {
            let redis::Value::BulkString(name) = &pair[0] else {
                panic!("{pair:?}");
            };
            let redis::Value::Array(fields) = &pair[1] else {
                panic!("{pair:?}");
            };
            let calls = match &fields[..] {
                [redis::Value::BulkString(c), redis::Value::Int(calls), redis::Value::BulkString(h), redis::Value::Array(buckets)]
                    if c == b"calls" && h == b"histogram_usec" =>
                {
                    let mut last = 0;
                    for b in buckets.chunks(2) {
                        let [redis::Value::Int(usec), redis::Value::Int(n)] = b else {
                            panic!("{b:?}");
                        };
                        assert!(labels.contains(usec) || *usec > 1056, "{usec}");
                        assert!(*n > last);
                        last = *n;
                    }
                    assert_eq!(last, *calls);
                    *calls
                }
                other => panic!("{other:?}"),
            };
            shape.push((String::from_utf8_lossy(name).into_owned(), calls));
        }
        shapes.push(shape);
    }
    assert_eq!(
        shapes[0],
        [("set".to_string(), 50), ("config|get".to_string(), 1)]
    );
    assert_eq!(shapes[0], shapes[1]);
}
