//! Configuration: one declarative table of directives serving the config
//! file, `--name value` flags, CONFIG GET/SET/REWRITE.
//!
//! Values are kept in canonical text form (what CONFIG GET shows: memory in
//! bytes, booleans as yes/no). Directives read on the hot path are mirrored
//! into atomics by [`Config::apply`], the one place that turns text into
//! effect.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicU64, Ordering::Relaxed};

use parking_lot::RwLock;

/// How a directive's value is checked and normalised.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    /// A byte count that may carry Redis's unit suffixes (k, kb, m, mb, g, gb).
    Memory {
        min: i64,
        max: i64,
    },
    Enum(&'static [&'static str]),
    Str,
    /// One or more words (bind addresses).
    Words,
    /// The `save` schedule: "" or pairs of seconds and changes.
    SavePolicy,
    /// `notify-keyspace-events` flag letters, shown normalised.
    KeyspaceEvents,
    /// `client-output-buffer-limit`: `<class> <hard> <soft> <seconds>`
    /// groups; a change sets only the classes it names.
    BufferLimits,
}

pub struct Directive {
    pub name: &'static str,
    pub kind: Kind,
    pub default: &'static str,
    /// Whether CONFIG SET may change it at run time.
    pub mutable: bool,
}

const fn d(name: &'static str, kind: Kind, default: &'static str, mutable: bool) -> Directive {
    Directive {
        name,
        kind,
        default,
        mutable,
    }
}

const LOGLEVELS: &[&str] = &["debug", "verbose", "notice", "warning"];
const INT: Kind = Kind::Int {
    min: 0,
    max: i32::MAX as i64,
};

/// Every directive ferrokv understands. Only directives that have an effect
/// are listed; anything else is rejected at start-up and by CONFIG SET.
pub const DIRECTIVES: &[Directive] = &[
    d("bind", Kind::Words, "127.0.0.1", false),
    d("port", Kind::Int { min: 0, max: 65535 }, "6379", false),
    d("databases", Kind::Int { min: 1, max: 4096 }, "16", false),
    d(
        "busy-reply-threshold",
        Kind::Int {
            min: 0,
            max: i64::MAX,
        },
        "5000",
        true,
    ),
    d("requirepass", Kind::Str, "", true),
    d("dir", Kind::Str, ".", true),
    d("loglevel", Kind::Enum(LOGLEVELS), "notice", true),
    d("logfile", Kind::Str, "", false),
    d(
        "proto-max-bulk-len",
        Kind::Memory {
            min: 1024 * 1024,
            max: i64::MAX,
        },
        "536870912",
        true,
    ),
    d(
        "client-query-buffer-limit",
        Kind::Memory {
            min: 1024 * 1024,
            max: i64::MAX,
        },
        "1073741824",
        true,
    ),
    d(
        "maxclients",
        Kind::Int {
            min: 1,
            max: u32::MAX as i64,
        },
        "10000",
        true,
    ),
    d("timeout", INT, "0", true),
    d("tcp-keepalive", INT, "300", true),
    d("tcp-backlog", INT, "511", false),
    d("hz", Kind::Int { min: 1, max: 500 }, "10", true),
    d(
        "slowlog-log-slower-than",
        Kind::Int {
            min: -1,
            max: i64::MAX,
        },
        "10000",
        true,
    ),
    d(
        "slowlog-max-len",
        Kind::Int {
            min: 0,
            max: i64::MAX,
        },
        "128",
        true,
    ),
    d(
        "set-max-intset-entries",
        Kind::Int {
            min: 0,
            max: i64::MAX,
        },
        "512",
        true,
    ),
    d(
        "latency-monitor-threshold",
        Kind::Int {
            min: 0,
            max: i64::MAX,
        },
        "0",
        true,
    ),
    d("latency-tracking", Kind::Bool, "yes", true),
    d(
        "server-threads",
        Kind::Int { min: 0, max: 1024 },
        "0",
        false,
    ),
    d("adaptive-loops", Kind::Bool, "yes", false),
    d(
        "list-max-listpack-size",
        Kind::Int {
            min: i32::MIN as i64,
            max: i32::MAX as i64,
        },
        "-2",
        true,
    ),
    d(
        "hash-max-listpack-entries",
        Kind::Int {
            min: 0,
            max: i64::MAX,
        },
        "512",
        true,
    ),
    d(
        "hash-max-listpack-value",
        Kind::Memory {
            min: 0,
            max: i64::MAX,
        },
        "64",
        true,
    ),
    d(
        "zset-max-listpack-entries",
        Kind::Int {
            min: 0,
            max: i64::MAX,
        },
        "128",
        true,
    ),
    d(
        "zset-max-listpack-value",
        Kind::Int {
            min: 0,
            max: i64::MAX,
        },
        "64",
        true,
    ),
    d("notify-keyspace-events", Kind::KeyspaceEvents, "", true),
    d(
        "client-output-buffer-limit",
        Kind::BufferLimits,
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        true,
    ),
    d("save", Kind::SavePolicy, "3600 1 300 100 60 10000", true),
    d("dbfilename", Kind::Str, "dump.rdb", false),
    d("rdbcompression", Kind::Bool, "yes", true),
    d("rdbchecksum", Kind::Bool, "yes", false),
    d("stop-writes-on-bgsave-error", Kind::Bool, "yes", true),
    d(
        "rdb-key-save-delay",
        Kind::Int {
            min: i32::MIN as i64,
            max: i32::MAX as i64,
        },
        "0",
        true,
    ),
    d("appendonly", Kind::Bool, "no", true),
    d(
        "appendfsync",
        Kind::Enum(&["always", "everysec", "no"]),
        "everysec",
        true,
    ),
    d("appendfilename", Kind::Str, "appendonly.aof", false),
    d("appenddirname", Kind::Str, "appendonlydir", false),
    d("aof-load-truncated", Kind::Bool, "yes", true),
    d("aof-use-rdb-preamble", Kind::Bool, "yes", true),
    d("auto-aof-rewrite-percentage", INT, "100", true),
    d(
        "auto-aof-rewrite-min-size",
        Kind::Memory {
            min: 0,
            max: i64::MAX,
        },
        "67108864",
        true,
    ),
];

/// Directives CONFIG GET shows only when asked for by their exact name,
/// never through a pattern (Redis's HIDDEN_CONFIG: testing aids).
const HIDDEN: &[&str] = &["rdb-key-save-delay"];

/// Old names Redis still accepts.
const ALIASES: &[(&str, &str)] = &[("lua-time-limit", "busy-reply-threshold")];

fn find(name: &str) -> Option<usize> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| alias.eq_ignore_ascii_case(name))
        .map_or(name, |(_, real)| real);
    DIRECTIVES
        .iter()
        .position(|d| d.name.eq_ignore_ascii_case(name))
}

/// Parses a memory value the way Redis's `memtoull` does.
pub fn parse_memory(s: &str) -> Option<i64> {
    let lower = s.to_ascii_lowercase();
    let (num, mul) = [
        ("gb", 1024 * 1024 * 1024),
        ("g", 1000 * 1000 * 1000),
        ("mb", 1024 * 1024),
        ("m", 1000 * 1000),
        ("kb", 1024),
        ("k", 1000),
        ("b", 1),
    ]
    .iter()
    .find_map(|(suffix, mul)| lower.strip_suffix(suffix).map(|n| (n, *mul)))
    .unwrap_or((lower.as_str(), 1));
    let n: i64 = num.parse().ok()?;
    n.checked_mul(mul)
}

/// Client classes of `client-output-buffer-limit`, in the order CONFIG GET
/// shows them.
const BUFFER_CLASSES: [&str; 3] = ["normal", "slave", "pubsub"];

/// Applies `client-output-buffer-limit` groups to the current value, as
/// Redis's setConfigClientOutputBufferLimitOption does.
fn buffer_limits(words: &[String], current: &str) -> Result<String, String> {
    let mut limits: Vec<[u64; 3]> = BUFFER_CLASSES.iter().map(|_| [0; 3]).collect();
    let cur: Vec<&str> = current.split_whitespace().collect();
    for group in cur.chunks_exact(4) {
        if let Some(i) = BUFFER_CLASSES.iter().position(|c| *c == group[0]) {
            for (slot, v) in limits[i].iter_mut().zip(&group[1..]) {
                *slot = v.parse().unwrap_or(0);
            }
        }
    }
    if !words.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".into());
    }
    for group in words.chunks_exact(4) {
        let class = match group[0].to_ascii_lowercase().as_str() {
            "normal" => 0,
            "slave" | "replica" => 1,
            "pubsub" => 2,
            _ => {
                return Err("Invalid client class specified in buffer limit configuration.".into())
            }
        };
        let bad = || "Error in hard, soft or soft_seconds setting in buffer limit configuration.";
        let mem = |s: &str| parse_memory(s).filter(|n| *n >= 0).ok_or_else(bad);
        let hard = mem(&group[1])?;
        let soft = mem(&group[2])?;
        let secs: i64 = group[3].parse().ok().filter(|n| *n >= 0).ok_or_else(bad)?;
        limits[class] = [hard as u64, soft as u64, secs as u64];
    }
    Ok(BUFFER_CLASSES
        .iter()
        .zip(&limits)
        .map(|(c, [h, s, t])| format!("{c} {h} {s} {t}"))
        .collect::<Vec<_>>()
        .join(" "))
}

/// Checks a value for a directive and returns its canonical form;
/// `current` is its value so far (for directives a change only amends).
fn normalise(dir: &Directive, words: &[String], current: &str) -> Result<String, String> {
    let joined = words.join(" ");
    let single = || -> Result<&str, String> {
        match words {
            [w] => Ok(w.as_str()),
            _ => Err("wrong number of arguments".into()),
        }
    };
    match dir.kind {
        Kind::Bool => match single()?.to_ascii_lowercase().as_str() {
            "yes" => Ok("yes".into()),
            "no" => Ok("no".into()),
            _ => Err("argument must be 'yes' or 'no'".into()),
        },
        Kind::Int { min, max } => {
            let n: i64 = single()?
                .parse()
                .map_err(|_| "argument couldn't be parsed into an integer".to_string())?;
            if n < min || n > max {
                return Err(format!(
                    "argument must be between {min} and {max} inclusive"
                ));
            }
            Ok(n.to_string())
        }
        Kind::Memory { min, max } => {
            // Redis reads memory values with memtoull: no sign allowed.
            let v = single()?;
            let n = parse_memory(v)
                .filter(|_| !v.starts_with('-'))
                .ok_or("argument must be a memory value")?;
            if n < min || n > max {
                return Err(format!(
                    "argument must be between {min} and {max} inclusive"
                ));
            }
            Ok(n.to_string())
        }
        Kind::Enum(allowed) => {
            let v = single()?.to_ascii_lowercase();
            if allowed.contains(&v.as_str()) {
                Ok(v)
            } else {
                Err(format!(
                    "argument(s) must be one of the following: {}",
                    allowed.join(", ")
                ))
            }
        }
        Kind::Str => Ok(single()?.to_string()),
        Kind::Words => {
            if words.is_empty() {
                return Err("wrong number of arguments".into());
            }
            Ok(joined)
        }
        Kind::SavePolicy => {
            let parts: Vec<&str> = joined.split_whitespace().collect();
            if !parts.len().is_multiple_of(2) || parts.iter().any(|p| p.parse::<u32>().is_err()) {
                return Err("Invalid save parameters".into());
            }
            Ok(parts.join(" "))
        }
        Kind::KeyspaceEvents => crate::pubsub::events::parse(single()?)
            .map(crate::pubsub::events::canonical)
            .ok_or_else(|| "Invalid event class character. Use 'Ag$lshzxeKEtmdn'.".into()),
        Kind::BufferLimits => {
            let words: Vec<String> = joined.split_whitespace().map(String::from).collect();
            buffer_limits(&words, current)
        }
    }
}

/// A start-up configuration error, printed the way redis-server prints it.
#[derive(Debug)]
pub struct StartupError {
    pub line: usize,
    pub text: String,
    pub reason: String,
}

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "\n*** FATAL CONFIG FILE ERROR (ferrokv {}) ***\nReading the configuration file, at line {}\n>>> '{}'\n{}",
            env!("CARGO_PKG_VERSION"),
            self.line,
            self.text,
            self.reason
        )
    }
}

/// Live configuration.
pub struct Config {
    values: RwLock<Vec<String>>,
    /// The file given at start-up, for CONFIG REWRITE.
    pub file: Option<PathBuf>,
    // Hot-path mirrors, kept in step by `apply`.
    pub proto_max_bulk_len: AtomicU64,
    pub query_buffer_limit: AtomicU64,
    pub maxclients: AtomicU64,
    pub timeout_secs: AtomicU64,
    pub hz: AtomicU64,
    pub slowlog_slower_than: AtomicI64,
    /// `busy-reply-threshold` (ms), read for every script.
    pub busy_reply_threshold: AtomicI64,
    pub slowlog_max_len: AtomicU64,
    pub latency_threshold_ms: AtomicU64,
    /// `latency-tracking`: whether calls go into INFO latencystats.
    pub latency_tracking: AtomicBool,
    pub set_max_intset_entries: AtomicU64,
    pub hash_max_listpack_entries: AtomicU64,
    pub hash_max_listpack_value: AtomicU64,
    pub requirepass_set: AtomicBool,
    /// `appendfsync always`, checked before every reply of a write.
    pub fsync_always: AtomicBool,
    /// Node size of lists: negative = bytes (-2 = 8 KB), positive = elements.
    pub list_max_listpack_size: AtomicI64,
    /// `notify-keyspace-events` as crate::pubsub::events bits.
    pub notify_flags: AtomicU32,
    /// The pubsub class of `client-output-buffer-limit`: hard, soft, seconds.
    pubsub_limits: [AtomicU64; 3],
    pub zset_max_listpack_entries: AtomicU64,
    pub zset_max_listpack_value: AtomicU64,
}

impl Config {
    /// Builds the configuration from a config file's text and command-line
    /// directives (`--port 7000` style, already joined into lines).
    pub fn load(
        file: Option<PathBuf>,
        file_text: &str,
        cli_text: &str,
    ) -> Result<Config, StartupError> {
        let mut values: Vec<String> = DIRECTIVES.iter().map(|d| d.default.to_string()).collect();
        let mut saves_seen = false;
        for (i, line) in file_text.lines().chain(cli_text.lines()).enumerate() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let mut words = Vec::new();
            if !crate::split_words(trimmed.as_bytes(), &mut words) {
                return Err(StartupError {
                    line: i + 1,
                    text: trimmed.into(),
                    reason: "Unbalanced quotes in configuration line".into(),
                });
            }
            let words: Vec<String> = words
                .iter()
                .map(|w| String::from_utf8_lossy(w).into_owned())
                .collect();
            let fail = |reason: String| StartupError {
                line: i + 1,
                text: trimmed.into(),
                reason,
            };
            let Some(idx) = find(&words[0]) else {
                return Err(fail("Bad directive or wrong number of arguments".into()));
            };
            let value = normalise(&DIRECTIVES[idx], &words[1..], &values[idx]).map_err(fail)?;
            // Each `save` line adds a save point; the first one replaces
            // the defaults, and `save ""` clears them, as in redis.conf.
            if DIRECTIVES[idx].name == "save" && !value.is_empty() && saves_seen {
                values[idx] = format!("{} {value}", values[idx]).trim().to_string();
            } else {
                values[idx] = value;
            }
            saves_seen |= DIRECTIVES[idx].name == "save";
        }
        let config = Config {
            values: RwLock::new(values),
            file,
            proto_max_bulk_len: AtomicU64::new(0),
            query_buffer_limit: AtomicU64::new(0),
            maxclients: AtomicU64::new(0),
            timeout_secs: AtomicU64::new(0),
            hz: AtomicU64::new(0),
            slowlog_slower_than: AtomicI64::new(0),
            busy_reply_threshold: AtomicI64::new(0),
            slowlog_max_len: AtomicU64::new(0),
            latency_threshold_ms: AtomicU64::new(0),
            latency_tracking: AtomicBool::new(true),
            set_max_intset_entries: AtomicU64::new(0),
            hash_max_listpack_entries: AtomicU64::new(0),
            hash_max_listpack_value: AtomicU64::new(0),
            requirepass_set: AtomicBool::new(false),
            fsync_always: AtomicBool::new(false),
            list_max_listpack_size: AtomicI64::new(0),
            notify_flags: AtomicU32::new(0),
            pubsub_limits: Default::default(),
            zset_max_listpack_entries: AtomicU64::new(0),
            zset_max_listpack_value: AtomicU64::new(0),
        };
        config.apply();
        Ok(config)
    }

    pub fn get(&self, name: &str) -> String {
        find(name)
            .map(|i| self.values.read()[i].clone())
            .unwrap_or_default()
    }

    pub fn get_i64(&self, name: &str) -> i64 {
        self.get(name).parse().unwrap_or(0)
    }

    /// CONFIG GET: every directive matching any of the glob patterns, in
    /// table order, each once.
    pub fn matching(&self, patterns: &[&[u8]]) -> Vec<(&'static str, String)> {
        let values = self.values.read();
        DIRECTIVES
            .iter()
            .zip(values.iter())
            .filter(|(d, _)| {
                patterns.iter().any(|p| {
                    if HIDDEN.contains(&d.name) {
                        p.eq_ignore_ascii_case(d.name.as_bytes())
                    } else {
                        crate::glob::matches(p, d.name.as_bytes(), true)
                    }
                })
            })
            .map(|(d, v)| {
                let shown = match d.kind {
                    // Kept losslessly; shown the way Redis prints it.
                    Kind::KeyspaceEvents => crate::pubsub::events::parse(v)
                        .map(crate::pubsub::events::render)
                        .unwrap_or_default(),
                    _ => v.clone(),
                };
                (d.name, shown)
            })
            .collect()
    }

    /// CONFIG SET of several pairs, all or nothing. The error is Redis's
    /// reply text.
    pub fn set(&self, pairs: &[(&[u8], &[u8])]) -> Result<(), String> {
        // Names first, as Redis checks them all before any value; errors
        // found here quote the name as the client wrote it, value errors
        // the directive's own name.
        let mut named: Vec<(usize, String)> = Vec::new();
        for (name, value) in pairs {
            let name = String::from_utf8_lossy(name).into_owned();
            let Some(idx) = find(&name) else {
                return Err(format!(
                    "ERR Unknown option or number of arguments for CONFIG SET - '{name}'"
                ));
            };
            let failed = |reason: &str| {
                format!("ERR CONFIG SET failed (possibly related to argument '{name}') - {reason}")
            };
            if !DIRECTIVES[idx].mutable {
                return Err(failed("can't set immutable config"));
            }
            if named.iter().any(|(i, _)| *i == idx) {
                return Err(failed("duplicate parameter"));
            }
            named.push((idx, String::from_utf8_lossy(value).into_owned()));
        }
        let mut staged: Vec<(usize, String)> = Vec::new();
        for (idx, value) in named {
            let dir = &DIRECTIVES[idx];
            let words: Vec<String> = match dir.kind {
                Kind::Words | Kind::SavePolicy | Kind::BufferLimits => {
                    value.split_whitespace().map(String::from).collect()
                }
                _ => vec![value.clone()],
            };
            let current = self.get(dir.name);
            let canonical = normalise(dir, &words, &current).map_err(|reason| {
                format!(
                    "ERR CONFIG SET failed (possibly related to argument '{}') - {reason}",
                    dir.name
                )
            })?;
            if dir.name == "dir" && !std::path::Path::new(&canonical).is_dir() {
                return Err(
                    "ERR CONFIG SET failed (possibly related to argument 'dir') - No such file or directory".into(),
                );
            }
            staged.push((idx, canonical));
        }
        // The one effect that can fail happens before anything is stored,
        // so a failure leaves the whole configuration as it was.
        if let Some((_, d)) = staged.iter().find(|(i, _)| DIRECTIVES[*i].name == "dir") {
            std::env::set_current_dir(d).map_err(|e| {
                format!("ERR CONFIG SET failed (possibly related to argument 'dir') - {e}")
            })?;
        }
        {
            let mut values = self.values.write();
            for (idx, v) in staged {
                values[idx] = v;
            }
        }
        self.apply();
        Ok(())
    }

    /// Mirrors the hot-path directives into their atomics.
    fn apply(&self) {
        let v = self.values.read();
        let num = |name: &str| -> i64 { find(name).and_then(|i| v[i].parse().ok()).unwrap_or(0) };
        self.proto_max_bulk_len
            .store(num("proto-max-bulk-len") as u64, Relaxed);
        self.query_buffer_limit
            .store(num("client-query-buffer-limit") as u64, Relaxed);
        self.maxclients.store(num("maxclients") as u64, Relaxed);
        self.timeout_secs.store(num("timeout") as u64, Relaxed);
        self.hz.store(num("hz") as u64, Relaxed);
        self.slowlog_slower_than
            .store(num("slowlog-log-slower-than"), Relaxed);
        self.busy_reply_threshold
            .store(num("busy-reply-threshold"), Relaxed);
        self.slowlog_max_len
            .store(num("slowlog-max-len") as u64, Relaxed);
        self.latency_threshold_ms
            .store(num("latency-monitor-threshold") as u64, Relaxed);
        self.list_max_listpack_size
            .store(num("list-max-listpack-size"), Relaxed);
        self.hash_max_listpack_entries
            .store(num("hash-max-listpack-entries") as u64, Relaxed);
        self.hash_max_listpack_value
            .store(num("hash-max-listpack-value") as u64, Relaxed);
        self.zset_max_listpack_entries
            .store(num("zset-max-listpack-entries") as u64, Relaxed);
        self.zset_max_listpack_value
            .store(num("zset-max-listpack-value") as u64, Relaxed);
        self.set_max_intset_entries
            .store(num("set-max-intset-entries") as u64, Relaxed);
        let pass = find("requirepass")
            .map(|i| !v[i].is_empty())
            .unwrap_or(false);
        self.requirepass_set.store(pass, Relaxed);
        let tracking = find("latency-tracking").is_some_and(|i| v[i] == "yes");
        self.latency_tracking.store(tracking, Relaxed);
        let always = find("appendfsync").is_some_and(|i| v[i] == "always");
        self.fsync_always.store(always, Relaxed);
        let events = find("notify-keyspace-events")
            .and_then(|i| crate::pubsub::events::parse(&v[i]))
            .unwrap_or(0);
        self.notify_flags.store(events, Relaxed);
        if let Some(i) = find("client-output-buffer-limit") {
            let words: Vec<&str> = v[i].split_whitespace().collect();
            for group in words.chunks_exact(4).filter(|g| g[0] == "pubsub") {
                for (slot, n) in self.pubsub_limits.iter().zip(&group[1..]) {
                    slot.store(n.parse().unwrap_or(0), Relaxed);
                }
            }
        }
    }

    /// The output limits of subscribers.
    pub fn pubsub_limits(&self) -> crate::pubsub::Limits {
        let [hard, soft, secs] = &self.pubsub_limits;
        crate::pubsub::Limits {
            hard: hard.load(Relaxed),
            soft: soft.load(Relaxed),
            soft_secs: secs.load(Relaxed),
        }
    }

    /// CONFIG REWRITE: rewrites the start-up file in place, keeping comments
    /// and order, updating directives that changed and appending those that
    /// differ from their defaults and were not in the file.
    pub fn rewrite(&self) -> Result<(), String> {
        let Some(path) = &self.file else {
            return Err("ERR The server is running without a config file".into());
        };
        let old = std::fs::read_to_string(path).unwrap_or_default();
        let values = self.values.read().clone();
        let mut written = vec![false; DIRECTIVES.len()];
        let mut out = String::new();
        for line in old.lines() {
            let mut words = Vec::new();
            let known = crate::split_words(line.trim().as_bytes(), &mut words)
                .then(|| {
                    words
                        .first()
                        .and_then(|w| find(&String::from_utf8_lossy(w)))
                })
                .flatten();
            match known {
                Some(idx) if written[idx] => {}
                Some(idx) => {
                    written[idx] = true;
                    out.push_str(&render(idx, &values[idx]));
                }
                None => {
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        for (idx, dir) in DIRECTIVES.iter().enumerate() {
            if !written[idx] && values[idx] != dir.default {
                out.push_str(&render(idx, &values[idx]));
            }
        }
        let tmp = path.with_extension("rewrite.tmp");
        std::fs::write(&tmp, out)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|e| format!("ERR Rewriting config file: {e}"))
    }
}

fn render(idx: usize, value: &str) -> String {
    let name = DIRECTIVES[idx].name;
    match DIRECTIVES[idx].kind {
        Kind::Words | Kind::SavePolicy | Kind::BufferLimits if !value.is_empty() => {
            format!("{name} {value}\n")
        }
        _ => format!(
            "{name} \"{}\"\n",
            value.replace('\\', "\\\\").replace('"', "\\\"")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_file_then_flags() {
        let c = Config::load(
            None,
            "port 7000\n# comment\nmaxclients 5\n",
            "port 7001\nbind 127.0.0.1 ::1",
        )
        .unwrap();
        assert_eq!(c.get("port"), "7001");
        assert_eq!(c.get("bind"), "127.0.0.1 ::1");
        assert_eq!(c.get("maxclients"), "5");
    }

    #[test]
    fn rejects_unknown_and_malformed() {
        let e = Config::load(None, "", "nosuch 1").err().unwrap();
        assert!(e.reason.contains("Bad directive"));
        let e = Config::load(None, "", "port abc").err().unwrap();
        assert!(e.reason.contains("integer"));
    }

    #[test]
    fn set_is_all_or_nothing() {
        let c = Config::load(None, "", "").unwrap();
        assert!(c.set(&[(b"maxclients", b"7"), (b"hz", b"100000")]).is_err());
        assert_eq!(c.get("maxclients"), "10000");
        c.set(&[(b"maxclients", b"7"), (b"proto-max-bulk-len", b"2mb")])
            .unwrap();
        assert_eq!(c.get("proto-max-bulk-len"), "2097152");
    }
}
