//! The command table and the dispatch pipeline.
//!
//! Every command is one declarative [`Command`] entry (name, arity, flags,
//! key positions, ACL categories, handler) in its family module. The same
//! table drives lookup, arity errors, authentication gating, COMMAND's
//! introspection replies, which shards a command locks, per-command
//! statistics and the slow log; no property of a command is written down
//! anywhere else.
//!
//! Handlers parse their arguments, call store operations and write their
//! reply; errors they return are rendered once, in [`CmdError::text`].

pub mod args;
mod connection;
mod hashes;
mod keys;
mod lists;
mod persistence;
mod pubsub;
mod scripting;
mod server;
mod sets;
mod sort;
mod strings;
pub mod transactions;
mod zsets;

use std::borrow::Cow;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use ferrokv_resp::Reply;

use crate::client::Client;
use crate::persist::aof;
use crate::Server;

/// Command flags, as Redis names them in COMMAND INFO (in Redis's order).
pub mod flags {
    pub const WRITE: u32 = 1 << 0;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 4;
    pub const PUBSUB: u32 = 1 << 5;
    pub const NOSCRIPT: u32 = 1 << 6;
    pub const BLOCKING: u32 = 1 << 7;
    pub const LOADING: u32 = 1 << 8;
    pub const STALE: u32 = 1 << 9;
    pub const SKIP_MONITOR: u32 = 1 << 10;
    pub const SKIP_SLOWLOG: u32 = 1 << 11;
    pub const FAST: u32 = 1 << 13;
    pub const NO_AUTH: u32 = 1 << 14;
    pub const MAY_REPLICATE: u32 = 1 << 15;
    pub const NO_MANDATORY_KEYS: u32 = 1 << 18;
    pub const NO_ASYNC_LOADING: u32 = 1 << 23;
    pub const NO_MULTI: u32 = 1 << 22;
    pub const ALLOW_BUSY: u32 = 1 << 25;
    /// The key positions depend on the arguments (a `numkeys` argument,
    /// as ZUNION or ZMPOP, or SORT's STORE and patterns): COMMAND shows
    /// `movablekeys`, last, as Redis does; the handler finds and locks its
    /// keys itself.
    pub const MOVABLE_KEYS: u32 = 1 << 26;
    /// ferrokv's own: runs on the script thread (see crate::scripting), so
    /// that its event loop can answer BUSY meanwhile. Not shown by COMMAND.
    pub const SCRIPT_THREAD: u32 = 1 << 29;
    /// ferrokv's own: runs with every other command held off (EXEC).
    /// Not shown by COMMAND.
    pub const EXCLUSIVE: u32 = 1 << 30;
    /// ferrokv's own: allowed to a RESP2 client in subscriber mode
    /// ((P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PING, QUIT, RESET). Not shown by
    /// COMMAND.
    pub const SUBSCRIBER: u32 = 1 << 27;
    /// ferrokv's own: runs at once inside MULTI instead of being queued
    /// (MULTI, EXEC, DISCARD, WATCH, QUIT, RESET). Not shown by COMMAND.
    pub const TXN_CONTROL: u32 = 1 << 31;

    /// Names in the order Redis lists them.
    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (PUBSUB, "pubsub"),
        (NOSCRIPT, "noscript"),
        (BLOCKING, "blocking"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (SKIP_MONITOR, "skip_monitor"),
        (SKIP_SLOWLOG, "skip_slowlog"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (MAY_REPLICATE, "may_replicate"),
        (NO_MANDATORY_KEYS, "no_mandatory_keys"),
        (NO_ASYNC_LOADING, "no_async_loading"),
        (NO_MULTI, "no_multi"),
        (ALLOW_BUSY, "allow_busy"),
        (MOVABLE_KEYS, "movablekeys"),
    ];
}

/// ACL categories, in Redis's order. Categories implied by flags (read,
/// write, admin, dangerous, fast, slow, blocking, pubsub) are derived in
/// [`Command::acl_categories`], as Redis derives them.
pub mod acl {
    pub const KEYSPACE: u32 = 1 << 0;
    pub const READ: u32 = 1 << 1;
    pub const WRITE: u32 = 1 << 2;
    pub const SET: u32 = 1 << 3;
    pub const SORTEDSET: u32 = 1 << 4;
    pub const LIST: u32 = 1 << 5;
    pub const HASH: u32 = 1 << 6;
    pub const STRING: u32 = 1 << 7;
    pub const BITMAP: u32 = 1 << 8;
    pub const HYPERLOGLOG: u32 = 1 << 9;
    pub const GEO: u32 = 1 << 10;
    pub const STREAM: u32 = 1 << 11;
    pub const PUBSUB: u32 = 1 << 12;
    pub const ADMIN: u32 = 1 << 13;
    pub const FAST: u32 = 1 << 14;
    pub const SLOW: u32 = 1 << 15;
    pub const BLOCKING: u32 = 1 << 16;
    pub const DANGEROUS: u32 = 1 << 17;
    pub const CONNECTION: u32 = 1 << 18;
    pub const TRANSACTION: u32 = 1 << 19;
    pub const SCRIPTING: u32 = 1 << 20;

    pub const NAMES: &[&str] = &[
        "keyspace",
        "read",
        "write",
        "set",
        "sortedset",
        "list",
        "hash",
        "string",
        "bitmap",
        "hyperloglog",
        "geo",
        "stream",
        "pubsub",
        "admin",
        "fast",
        "slow",
        "blocking",
        "dangerous",
        "connection",
        "transaction",
        "scripting",
    ];
}

/// Where a command's keys are: Redis's (first, last, step) triple, with
/// `last` negative counting from the end.
#[derive(Clone, Copy, Debug)]
pub struct Keys {
    pub first: i32,
    pub last: i32,
    pub step: i32,
}

pub const NO_KEYS: Keys = Keys {
    first: 0,
    last: 0,
    step: 0,
};

/// A `keynum` key spec (Redis 7's `find_keys` of type keynum): `argv[numkeys]`
/// counts the keys, which start at `argv[first]`, one every `step`.
pub struct KeyNum {
    pub numkeys: usize,
    pub first: usize,
    pub step: usize,
}

/// The keynum specs of the [`flags::MOVABLE_KEYS`] commands. They live
/// beside the table rather than in each [`Command`] so that the few
/// commands needing one do not add a field to every entry; COMMAND INFO
/// shows such commands with (first, last, step) = (0, 0, 0), as Redis does.
/// Handlers still lock the keys they parse themselves.
pub const KEYNUM_SPECS: &[(&str, KeyNum)] = &[(
    "sintercard",
    KeyNum {
        numkeys: 1,
        first: 2,
        step: 1,
    },
)];

/// A command handler: parses `argv` (argv[0] is the command name), does
/// the work and writes the reply.
pub type Handler = fn(&mut Ctx<'_>, &[&[u8]]) -> Result<(), CmdError>;

/// One entry of the command table.
pub struct Command {
    /// Lower case, as COMMAND reports it.
    pub name: &'static str,
    /// Redis's convention: N exactly, -N at least N (the name included).
    pub arity: i32,
    pub flags: u32,
    pub keys: Keys,
    /// Explicit ACL categories (the family's), flags add the implied ones.
    pub acl: u32,
    pub handler: Handler,
    pub subcommands: &'static [Command],
    pub group: &'static str,
    pub summary: &'static str,
    pub since: &'static str,
}

impl Command {
    pub fn has(&self, flag: u32) -> bool {
        self.flags & flag != 0
    }

    /// All ACL categories, with those implied by the flags added the way
    /// Redis's `setImplicitACLCategories` adds them.
    pub fn acl_categories(&self) -> u32 {
        let mut c = self.acl;
        if self.has(flags::WRITE) {
            c |= acl::WRITE;
        }
        if self.has(flags::READONLY) && c & acl::SCRIPTING == 0 {
            c |= acl::READ;
        }
        if self.has(flags::ADMIN) {
            c |= acl::ADMIN | acl::DANGEROUS;
        }
        if self.has(flags::PUBSUB) {
            c |= acl::PUBSUB;
        }
        if self.has(flags::FAST) {
            c |= acl::FAST;
        }
        if self.has(flags::BLOCKING) {
            c |= acl::BLOCKING;
        }
        if c & acl::FAST == 0 {
            c |= acl::SLOW;
        }
        c
    }

    /// Positions of the keys in `argv`, per the (first, last, step) spec.
    pub fn key_positions(&self, argc: usize) -> impl Iterator<Item = usize> {
        let k = self.keys;
        let (first, step) = (k.first.max(0) as usize, k.step.max(1) as usize);
        let last = if k.first <= 0 {
            0
        } else if k.last < 0 {
            (argc as i64 + k.last as i64).max(0) as usize
        } else {
            (k.last as usize).min(argc.saturating_sub(1))
        };
        let run = k.first > 0 && argc > first;
        (first..=last).step_by(step).filter(move |_| run)
    }

    /// Positions of the keys in `argv`: from the keynum spec for a
    /// MOVABLE_KEYS command (none when its count is not valid), else from
    /// (first, last, step).
    pub fn keys_of(&self, argv: &[&[u8]]) -> Vec<usize> {
        if !self.has(flags::MOVABLE_KEYS) {
            return self.key_positions(argv.len()).collect();
        }
        let Some((_, spec)) = KEYNUM_SPECS.iter().find(|(n, _)| *n == self.name) else {
            return Vec::new();
        };
        let n = argv
            .get(spec.numkeys)
            .and_then(|a| args::parse_i64_exact(a))
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0);
        let last = spec.first + n.saturating_sub(1).saturating_mul(spec.step);
        if n == 0 || last >= argv.len() {
            return Vec::new();
        }
        (spec.first..=last).step_by(spec.step.max(1)).collect()
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        if self.arity >= 0 {
            argc == self.arity as usize
        } else {
            argc >= (-self.arity) as usize
        }
    }
}

/// What the commands of one family share: their ACL category and the group
/// COMMAND DOCS reports.
pub struct Family {
    pub acl: u32,
    pub group: &'static str,
}

impl Family {
    /// An entry of this family, without subcommands. The arguments are the
    /// table's columns, in the order every entry lists them.
    #[allow(clippy::too_many_arguments)]
    pub const fn cmd(
        &self,
        name: &'static str,
        arity: i32,
        flags: u32,
        keys: Keys,
        handler: Handler,
        summary: &'static str,
        since: &'static str,
    ) -> Command {
        Command {
            name,
            arity,
            flags,
            keys,
            acl: self.acl,
            handler,
            subcommands: &[],
            group: self.group,
            summary,
            since,
        }
    }
}

/// Families in the order COMMAND lists them.
const FAMILIES: &[&[Command]] = &[
    strings::COMMANDS,
    sets::COMMANDS,
    keys::COMMANDS,
    lists::COMMANDS,
    hashes::COMMANDS,
    sort::COMMANDS,
    persistence::COMMANDS,
    connection::COMMANDS,
    server::COMMANDS,
    transactions::COMMANDS,
    zsets::COMMANDS,
    scripting::COMMANDS,
    pubsub::COMMANDS,
];

/// Counters kept per command and subcommand for INFO commandstats, and
/// its calls' durations for INFO latencystats.
#[derive(Default)]
pub struct CmdStats {
    pub calls: std::sync::atomic::AtomicU64,
    pub usec: std::sync::atomic::AtomicU64,
    pub rejected: std::sync::atomic::AtomicU64,
    pub failed: std::sync::atomic::AtomicU64,
    pub latency: crate::histogram::Histogram,
}

/// A command or subcommand resolved from a request.
#[derive(Clone)]
pub struct Resolved {
    pub cmd: &'static Command,
    pub parent: Option<&'static Command>,
    /// Index into the table's statistics.
    pub id: usize,
}

impl Resolved {
    /// `get`, or `config|get` for a subcommand.
    pub fn full_name(&self) -> Cow<'static, str> {
        match self.parent {
            Some(p) => Cow::Owned(format!("{}|{}", p.name, self.cmd.name)),
            None => Cow::Borrowed(self.cmd.name),
        }
    }
}

/// The table built once at start: lookup by name, statistics per entry.
pub struct CommandTable {
    by_name: ahash::HashMap<&'static [u8], usize>,
    /// Every command and subcommand with its parent.
    entries: Vec<(&'static Command, Option<&'static Command>)>,
    /// Per stripe (crate::stats::STRIPES), per entry: each event loop
    /// counts in its own table.
    stats: Box<[Box<[CmdStats]>]>,
}

impl CommandTable {
    pub fn new() -> CommandTable {
        let mut entries = Vec::new();
        let mut by_name = ahash::HashMap::default();
        for family in FAMILIES {
            for cmd in family.iter() {
                by_name.insert(cmd.name.as_bytes(), entries.len());
                entries.push((cmd, None));
                for sub in cmd.subcommands {
                    entries.push((sub, Some(cmd)));
                }
            }
        }
        let stats = (0..crate::stats::STRIPES)
            .map(|_| entries.iter().map(|_| CmdStats::default()).collect())
            .collect();
        CommandTable {
            by_name,
            entries,
            stats,
        }
    }

    /// Top-level commands in table order.
    pub fn commands(&self) -> impl Iterator<Item = &'static Command> + '_ {
        self.entries
            .iter()
            .filter(|(_, p)| p.is_none())
            .map(|(c, _)| *c)
    }

    pub fn get(&self, name: &[u8]) -> Option<&'static Command> {
        let id = self.lookup_id(name)?;
        Some(self.entries[id].0)
    }

    fn lookup_id(&self, name: &[u8]) -> Option<usize> {
        let mut buf = [0u8; 32];
        if name.len() > buf.len() {
            return None;
        }
        let lower = &mut buf[..name.len()];
        lower.copy_from_slice(name);
        lower.make_ascii_lowercase();
        self.by_name.get(&*lower).copied()
    }

    /// The full name (`get`, `config|get`) of the entry with statistics
    /// index `id`, as CLIENT LIST shows the last command.
    pub fn full_name(&self, id: usize) -> Option<Cow<'static, str>> {
        let (cmd, parent) = self.entries.get(id)?;
        Some(match parent {
            Some(p) => Cow::Owned(format!("{}|{}", p.name, cmd.name)),
            None => Cow::Borrowed(cmd.name),
        })
    }

    /// Every entry's name and its [calls, usec, rejected, failed] summed
    /// over the stripes, for INFO commandstats.
    pub fn with_stats(&self) -> impl Iterator<Item = (String, [u64; 4])> + '_ {
        self.entries.iter().enumerate().map(|(id, (c, p))| {
            let name = match p {
                Some(p) => format!("{}|{}", p.name, c.name),
                None => c.name.to_string(),
            };
            let mut sum = [0u64; 4];
            for table in self.stats.iter() {
                let s = &table[id];
                for (total, c) in sum
                    .iter_mut()
                    .zip([&s.calls, &s.usec, &s.rejected, &s.failed])
                {
                    *total = total.wrapping_add(c.load(Relaxed));
                }
            }
            (name, sum)
        })
    }

    /// Every entry's name and its calls' durations summed over the
    /// stripes, for INFO latencystats.
    pub fn with_latencies(
        &self,
    ) -> impl Iterator<Item = (Cow<'static, str>, crate::histogram::Summed)> + '_ {
        (0..self.entries.len()).filter_map(|id| Some((self.full_name(id)?, self.latency(id))))
    }

    /// The calls' durations of entry `id`, summed over the stripes.
    pub fn latency(&self, id: usize) -> crate::histogram::Summed {
        crate::histogram::Summed::of(self.stats.iter().map(|table| &table[id].latency))
    }

    /// How many commands and subcommands the table has.
    pub fn entry_count(&self) -> usize {
        self.entries.len()
    }

    /// The entries LATENCY HISTOGRAM reports for `name`: the command
    /// (`get`) or subcommand (`config|get`) it names, and every
    /// subcommand of a container; none for a name Redis would not find.
    pub fn entries_named(&self, name: &[u8]) -> Vec<usize> {
        let (head, sub) = match name.iter().position(|&b| b == b'|') {
            Some(i) => (&name[..i], Some(&name[i + 1..])),
            None => (name, None),
        };
        let Some(id) = self.lookup_id(head) else {
            return Vec::new();
        };
        let subs = self.entries[id].0.subcommands;
        match sub {
            Some(s) => subs
                .iter()
                .position(|c| c.name.as_bytes().eq_ignore_ascii_case(s))
                .map(|i| vec![id + 1 + i])
                .unwrap_or_default(),
            None => (id..=id + subs.len()).collect(),
        }
    }

    /// The calling thread's counters of entry `id`.
    pub fn stats(&self, id: usize) -> &CmdStats {
        &self.stats[crate::stats::stripe()][id]
    }

    /// CONFIG RESETSTAT's part.
    pub fn reset_stats(&self) {
        for s in self.stats.iter().flat_map(|t| t.iter()) {
            for c in [&s.calls, &s.usec, &s.rejected, &s.failed] {
                c.store(0, Relaxed);
            }
            s.latency.reset();
        }
    }

    /// Counts a call of the command `argv` names that was refused for its
    /// arity (Redis's rejected_calls); nothing when no command, or no
    /// subcommand of a container, has that name.
    pub fn note_rejected(&self, argv: &[&[u8]]) {
        let Some(id) = argv.first().and_then(|name| self.lookup_id(name)) else {
            return;
        };
        let cmd = self.entries[id].0;
        let id = match argv.get(1) {
            Some(sub) if !cmd.subcommands.is_empty() => {
                let found = cmd
                    .subcommands
                    .iter()
                    .position(|s| sub.eq_ignore_ascii_case(s.name.as_bytes()));
                match found {
                    Some(pos) => id + 1 + pos,
                    None => return,
                }
            }
            _ => id,
        };
        self.stats(id).rejected.fetch_add(1, Relaxed);
    }

    /// Finds the command (and subcommand) named by `argv` and checks its
    /// arity; the error is the reply Redis gives.
    pub fn resolve(&self, argv: &[&[u8]]) -> Result<Resolved, CmdError> {
        let Some(id) = self.lookup_id(argv[0]) else {
            return Err(CmdError::UnknownCommand(unknown_command_text(argv)));
        };
        let cmd = self.entries[id].0;
        if !cmd.subcommands.is_empty() && argv.len() >= 2 {
            let pos = cmd
                .subcommands
                .iter()
                .position(|s| argv[1].eq_ignore_ascii_case(s.name.as_bytes()));
            let Some(pos) = pos else {
                return Err(CmdError::Owned(format!(
                    "ERR unknown subcommand '{}'. Try {} HELP.",
                    truncate_lossy(argv[1], 128),
                    cmd.name.to_uppercase()
                )));
            };
            let sub = &cmd.subcommands[pos];
            let r = Resolved {
                cmd: sub,
                parent: Some(cmd),
                id: id + 1 + pos,
            };
            if !sub.arity_ok(argv.len()) {
                return Err(CmdError::WrongArity(r.full_name().into_owned()));
            }
            return Ok(r);
        }
        if !cmd.arity_ok(argv.len()) {
            return Err(CmdError::WrongArity(cmd.name.to_string()));
        }
        Ok(Resolved {
            cmd,
            parent: None,
            id,
        })
    }
}

impl Default for CommandTable {
    fn default() -> Self {
        Self::new()
    }
}

fn truncate_lossy(b: &[u8], max: usize) -> String {
    String::from_utf8_lossy(&b[..b.len().min(max)]).into_owned()
}

/// Redis: "unknown command 'x', with args beginning with: 'a' 'b' ", the
/// argument list cut off once it reaches 128 characters.
fn unknown_command_text(argv: &[&[u8]]) -> String {
    let mut args = String::new();
    for a in &argv[1..] {
        if args.len() >= 128 {
            break;
        }
        let room = 128 - args.len();
        args.push('\'');
        args.push_str(&truncate_lossy(a, room));
        args.push_str("' ");
    }
    format!(
        "ERR unknown command '{}', with args beginning with: {}",
        truncate_lossy(argv[0], 128),
        args
    )
}

/// An error reply. Texts are Redis 7.0's, rendered in one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdError {
    Syntax,
    WrongType,
    NotInteger,
    NotFloat,
    Overflow,
    NoSuchKey,
    WrongArity(String),
    UnknownCommand(String),
    NoAuth,
    /// A complete error text, including its code.
    Static(&'static str),
    Owned(String),
    /// A script's error that repeats one already counted in INFO
    /// errorstats (a failed `redis.call`): the reply, not counted again.
    Counted(String),
}

impl CmdError {
    pub fn text(&self) -> Cow<'_, str> {
        match self {
            CmdError::Syntax => "ERR syntax error".into(),
            CmdError::WrongType => {
                "WRONGTYPE Operation against a key holding the wrong kind of value".into()
            }
            CmdError::NotInteger => "ERR value is not an integer or out of range".into(),
            CmdError::NotFloat => "ERR value is not a valid float".into(),
            CmdError::Overflow => "ERR increment or decrement would overflow".into(),
            CmdError::NoSuchKey => "ERR no such key".into(),
            CmdError::WrongArity(name) => {
                format!("ERR wrong number of arguments for '{name}' command").into()
            }
            CmdError::UnknownCommand(text) => text.as_str().into(),
            CmdError::NoAuth => "NOAUTH Authentication required.".into(),
            CmdError::Static(s) => (*s).into(),
            CmdError::Owned(s) | CmdError::Counted(s) => s.as_str().into(),
        }
    }
}

/// What the connection must do after a command, beyond sending its reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Send the pending replies, then close (QUIT, CLIENT KILL of oneself).
    Close,
    /// Pause this client before it goes on (DEBUG SLEEP).
    Sleep(Duration),
    /// Stop the server (SHUTDOWN).
    Shutdown,
    /// The command registered a wait (see crate::blocking); the connection
    /// waits for it to be served, or for the timeout.
    Block {
        timeout: Option<Duration>,
        on_timeout: crate::blocking::TimeoutReply,
    },
    /// A script started on an event loop ran past its inline budget
    /// without visible effects: nothing was replied, and it runs again on
    /// the script thread (see crate::scripting).
    Offload,
}

/// Everything a handler may use: the server, its own client, its reply
/// buffer, and the time at which the command started (Redis uses one
/// timestamp per command so that expiry decisions agree within it).
pub struct Ctx<'a> {
    pub server: &'a Server,
    pub client: &'a mut Client,
    pub reply: &'a mut Reply,
    pub now_ms: i64,
    pub flow: Flow,
    /// The command is being re-run for a blocked client by a writer: it
    /// must not register a new wait.
    serving: bool,
    /// The command runs inside EXEC: it must not block.
    in_transaction: bool,
    /// The command called the write hook: it is propagated.
    dirty: std::cell::Cell<bool>,
    /// Its place in the propagation order (see persist::aof), taken at the
    /// first write while the keys are still locked.
    ticket: std::cell::Cell<Option<u64>>,
    /// Keys its lookups found expired and deleted: propagated as DEL
    /// before the command itself, as Redis's deleteExpiredKeyAndPropagate.
    expired_dels: Vec<crate::persist::aof::Propagated>,
}

impl<'a> Ctx<'a> {
    /// Locks the shards of `keys` in the client's database. The guard
    /// borrows the server, not the context, so replies can be written
    /// while it is held.
    pub fn lock<K: AsRef<[u8]>>(&self, keys: &[K]) -> crate::store::Locked<'a> {
        self.server.keyspace.lock(self.client.db, keys, self.now_ms)
    }

    /// Whether the command runs inside EXEC.
    pub fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    /// The write hook: every command that changes a key calls it once per
    /// key, so that statistics (and later WATCH, notifications, blocked
    /// clients and propagation) see every change.
    pub fn modified(&self, key: &[u8]) {
        self.modified_in(self.client.db, key);
    }

    /// Like [`modified`](Self::modified) for a key of another database.
    pub fn modified_in(&self, db: usize, key: &[u8]) {
        self.wrote();
        self.server.stats.dirty.add(1);
        self.server.watches.touch(db, key);
        self.server.blocking.signal(db, key);
    }

    /// The write hook of FUNCTION LOAD, DELETE, FLUSH and RESTORE: one
    /// change to the data set (Redis's `server.dirty++`), which propagates
    /// the command, so the AOF keeps the libraries.
    pub fn modified_functions(&self) {
        self.wrote();
        self.server.stats.dirty.add(1);
    }

    /// Marks the command for propagation and, outside EXEC and scripts
    /// (whose group is ordered at its end), takes its ticket now, while
    /// the changed keys are locked.
    fn wrote(&self) {
        self.dirty.set(true);
        self.take_ticket();
    }

    /// Takes the command's place in the propagation order now, unless it
    /// has one (or its EXEC or script takes it): call it while holding the
    /// locks of the keys whose changes are propagated, or before taking
    /// them.
    pub fn take_ticket(&self) {
        if !self.in_transaction && self.ticket.get().is_none() {
            self.ticket.set(self.server.persist.aof.ticket());
        }
    }

    /// A read lookup (Redis's lookupKeyRead) found its key: a keyspace hit.
    pub fn read_hit(&self) {
        self.server.stats.hit(true);
    }

    /// A read lookup (Redis's lookupKeyRead) of `key` done through
    /// `locked`: a keyspace hit or miss and, for a miss, the `keymiss`
    /// notification. A key the lookup found expired gets its `expired`
    /// notification first, as Redis deletes it inside the lookup.
    pub fn read_lookup(&mut self, locked: &mut crate::store::Locked<'_>, key: &[u8], found: bool) {
        self.server.stats.hit(found);
        if !found {
            let db = locked.db();
            let expired = std::mem::take(&mut locked.expired);
            self.expired(db, &expired);
            self.notify_in(db, crate::pubsub::events::KEY_MISS, "keymiss", key);
        }
    }

    /// Publishes the keyspace notification `event` of `class` (a
    /// crate::pubsub::events bit) for `key`, where Redis calls
    /// notifyKeyspaceEvent; a no-op unless `notify-keyspace-events`
    /// enables the class and someone is subscribed.
    pub fn notify(&mut self, class: u32, event: &str, key: &[u8]) {
        self.notify_in(self.client.db, class, event, key);
    }

    /// Like [`notify`](Self::notify) for a key of another database.
    pub fn notify_in(&mut self, db: usize, class: u32, event: &str, key: &[u8]) {
        let flags = self.server.config.notify_flags.load(Relaxed);
        if flags & class == 0 {
            return;
        }
        self.server.pubsub.keyspace_event(
            flags,
            self.server.config.pubsub_limits(),
            class,
            db,
            event,
            key,
            Some((self.client.shared.id, &mut *self.reply)),
        );
    }

    /// The `new` notification of a key a write created, when the store's
    /// `set` found no previous value (`old`).
    pub fn notify_new<T>(&mut self, old: &Option<T>, key: &[u8]) {
        if old.is_none() {
            self.notify(crate::pubsub::events::NEW, "new", key);
        }
    }

    /// Blocks the client on `keys` until a write makes one of them ready or
    /// `timeout` passes. Call it while still holding the keys' locks, after
    /// finding nothing to do; write no reply.
    pub fn block(
        &mut self,
        keys: &[&[u8]],
        argv: &[&[u8]],
        timeout: Option<Duration>,
        on_timeout: crate::blocking::TimeoutReply,
    ) {
        if self.in_transaction {
            // Inside MULTI/EXEC a blocking command times out at once.
            match on_timeout {
                crate::blocking::TimeoutReply::NullArray => self.reply.null_array(),
                crate::blocking::TimeoutReply::NullBulk => self.reply.null(),
            }
            return;
        }
        self.flow = Flow::Block {
            timeout,
            on_timeout,
        };
        if self.serving {
            return;
        }
        self.client.wait = Some(self.server.blocking.register(
            self.client.shared.clone(),
            self.client.db,
            keys.iter().map(|k| k.to_vec()).collect(),
            argv.iter().map(|a| a.to_vec()).collect(),
            self.reply.proto,
        ));
    }

    /// Watched keys of `db` that exist now. A whole-database change
    /// (FLUSHDB, FLUSHALL, SWAPDB) invalidates exactly these, as Redis
    /// does; collect them before the change.
    pub fn watched_existing(&self, db: usize) -> Vec<Vec<u8>> {
        self.server
            .watches
            .keys_in(db)
            .into_iter()
            .filter(|k| self.server.keyspace.lock(db, &[k], self.now_ms).exists(k))
            .collect()
    }

    /// The write hook of commands that change whole databases at once
    /// (FLUSHDB, FLUSHALL, SWAPDB): `touched` are the watched keys found by
    /// [`watched_existing`](Self::watched_existing) per database, `changes`
    /// is what Redis adds to its dirty counter.
    pub fn modified_dbs(&self, touched: &[(usize, Vec<Vec<u8>>)], changes: u64) {
        self.wrote();
        self.server.stats.dirty.add(changes);
        for (db, keys) in touched {
            for key in keys {
                self.server.watches.touch(*db, key);
            }
        }
    }

    /// Runs `f` with the shards of `keys` locked, then releases them
    /// through [`finish`](Self::finish) whatever `f` returned.
    pub fn with_keys<K: AsRef<[u8]>, T>(
        &mut self,
        keys: &[K],
        f: impl FnOnce(&mut Ctx<'a>, &mut crate::store::Locked<'a>) -> Result<T, CmdError>,
    ) -> Result<T, CmdError> {
        let mut locked = self.lock(keys);
        let result = f(self, &mut locked);
        self.finish(locked);
        result
    }

    /// Releases a command's locks and reports the keys its lookups found
    /// expired (they were deleted: statistics and watchers must know).
    pub fn finish(&mut self, locked: crate::store::Locked<'_>) {
        if locked.found_expired() {
            // The deletions are ordered while their keys are still locked.
            self.take_ticket();
        }
        for (db, entries) in locked.into_expired() {
            self.expired(db, &entries);
        }
    }

    /// Records keys found expired and deleted, whether by a `Locked` or
    /// elsewhere (RANDOMKEY's picks), sends their `expired` notifications
    /// and propagates their deletion. The command must have taken its
    /// ticket while the keys were locked ([`take_ticket`](Self::take_ticket)).
    pub fn expired(&mut self, db: usize, entries: &[crate::store::Entry]) {
        if !entries.is_empty() {
            if self.server.persist.aof.enabled() {
                self.expired_dels.extend(
                    entries
                        .iter()
                        .map(|e| (db, vec![b"DEL".to_vec(), e.key().to_vec()])),
                );
            }
            self.server.stats.expired_keys.add(entries.len() as u64);
            for e in entries {
                self.server.watches.touch(db, e.key());
                self.notify_in(db, crate::pubsub::events::EXPIRED, "expired", e.key());
            }
        }
    }
}

/// Checks whether a resolved command may run for this client now; the
/// error is the rejection Redis replies. Queued and executed commands pass
/// through here alike, so a rejection is counted once, in one place.
pub fn admit(server: &Server, client: &Client, r: &Resolved) -> Result<(), CmdError> {
    let rejected = if !client.authenticated && !r.cmd.has(flags::NO_AUTH) {
        Some(CmdError::NoAuth)
    } else if client.multi.is_some() && r.cmd.has(flags::NO_MULTI) {
        Some(CmdError::Static(
            "ERR Command not allowed inside a transaction",
        ))
    } else if !r.cmd.has(flags::SUBSCRIBER)
        && client.shared.pubsub.active()
        && client.shared.resp.load(Relaxed) == 2
    {
        // With RESP3 pushes and replies can share the connection.
        Some(CmdError::Owned(format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET \
             are allowed in this context",
            r.full_name()
        )))
    } else if (r.cmd.has(flags::WRITE) || r.cmd.name == "ping")
        && server.persist.writes_denied(server)
    {
        // PING too, as Redis does, so that a monitor pinging notices.
        Some(CmdError::Static(crate::persist::MISCONF))
    } else {
        None
    };
    match rejected {
        Some(e) => {
            server.commands.stats(r.id).rejected.fetch_add(1, Relaxed);
            Err(e)
        }
        None => Ok(()),
    }
}

/// Writes an error reply, counted in INFO errorstats: every error a
/// client is sent goes through here, or through a command's failure.
pub fn error_reply(server: &Server, reply: &mut Reply, text: &str) {
    server.stats.count_error(text);
    reply.error(text);
}

/// Runs an admitted command: the handler, then the statistics and slow
/// log, then any blocked clients its writes made ready. Errors are
/// written as replies.
pub fn execute(
    server: &Server,
    client: &mut Client,
    reply: &mut Reply,
    r: &Resolved,
    argv: &[&[u8]],
) -> Flow {
    let flow = run(server, client, reply, r, argv, false, false, None);
    serve_blocked(server);
    flow
}

/// Runs one command inside EXEC or a script (blocked clients are served
/// once the whole transaction or script is done; blocking commands do not
/// block there).
pub fn run_in_transaction(
    server: &Server,
    client: &mut Client,
    reply: &mut Reply,
    r: &Resolved,
    argv: &[&[u8]],
) -> Flow {
    run(server, client, reply, r, argv, false, true, None)
}

/// Runs one command for `redis.call`. Its time is the script's: as in
/// Redis, a key cannot expire in the middle of a script, so a script sees
/// (and propagates) one consistent data set.
pub fn run_in_script(
    server: &Server,
    client: &mut Client,
    reply: &mut Reply,
    r: &Resolved,
    argv: &[&[u8]],
    script_now_ms: i64,
) -> Flow {
    run(
        server,
        client,
        reply,
        r,
        argv,
        false,
        true,
        Some(script_now_ms),
    )
}

#[allow(clippy::too_many_arguments)]
fn run(
    server: &Server,
    client: &mut Client,
    reply: &mut Reply,
    r: &Resolved,
    argv: &[&[u8]],
    serving: bool,
    in_transaction: bool,
    fixed_now_ms: Option<i64>,
) -> Flow {
    let stats = server.commands.stats(r.id);
    let start_us = crate::now_us();
    let (db, mark) = (client.db, reply.buf.len());
    let mut ctx = Ctx {
        server,
        client,
        reply,
        now_ms: fixed_now_ms.unwrap_or(start_us / 1000),
        flow: Flow::Continue,
        serving,
        in_transaction,
        dirty: std::cell::Cell::new(false),
        ticket: std::cell::Cell::new(None),
        expired_dels: Vec::new(),
    };
    let result = (r.cmd.handler)(&mut ctx, argv);
    let flow = ctx.flow;
    let (now_ms, dirty, ticket) = (ctx.now_ms, ctx.dirty.get(), ctx.ticket.get());
    let expired_dels = std::mem::take(&mut ctx.expired_dels);
    propagate(
        server,
        client,
        r,
        argv,
        (db, now_ms, &reply.buf[mark..]),
        in_transaction,
        (dirty, ticket, expired_dels),
    );
    if let Err(e) = result {
        stats.failed.fetch_add(1, Relaxed);
        match e {
            CmdError::Counted(text) => reply.error(&text),
            e => error_reply(server, reply, &e.text()),
        }
    }
    if matches!(flow, Flow::Block { .. } | Flow::Offload) {
        // Counted when it is served (or run again), as Redis does.
        return flow;
    }
    // A wall-clock step back must not make a huge duration.
    let usec = (crate::now_us() - start_us).max(0) as u64;
    stats.calls.fetch_add(1, Relaxed);
    stats.usec.fetch_add(usec, Relaxed);
    if server.config.latency_tracking.load(Relaxed) {
        stats.latency.record(usec);
    }
    server.stats.commands.add(1);
    if !r.cmd.has(flags::SKIP_SLOWLOG) {
        server.slowlog.record(server, client, argv, usec);
    }
    let event = if r.cmd.has(flags::FAST) {
        "fast-command"
    } else {
        "command"
    };
    server
        .latency
        .add_if_needed(&server.config, event, usec / 1000);
    flow
}

/// The propagation hook (see persist::aof): a command that changed the
/// data set is recorded in its deterministic form, after the deletions of
/// the expired keys it came across; inside EXEC or a script it joins the
/// client's group, which the outer command records wrapped in MULTI ...
/// EXEC under one ticket. Like Redis, a command recorded after deletions
/// is wrapped in MULTI ... EXEC with them.
fn propagate(
    server: &Server,
    client: &mut Client,
    r: &Resolved,
    argv: &[&[u8]],
    (db, now_ms, reply): (usize, i64, &[u8]),
    in_transaction: bool,
    (dirty, ticket, expired_dels): (bool, Option<u64>, Vec<aof::Propagated>),
) {
    let log = &server.persist.aof;
    if ticket.is_none() && !log.enabled() {
        return;
    }
    let rewritten = || {
        aof::rewrite(&r.full_name(), argv, now_ms, reply)
            .into_iter()
            .map(|c| (db, c))
    };
    if in_transaction {
        client.propagated.extend(expired_dels);
        if dirty {
            client.propagated.extend(rewritten());
        }
        return;
    }
    let wrap = dirty && !expired_dels.is_empty();
    let mut records: Vec<aof::Propagated> = Vec::new();
    if wrap {
        // In the database of what follows, so no SELECT splits the pair
        // from its first command (Redis selects before MULTI too).
        records.push((expired_dels[0].0, vec![b"MULTI".to_vec()]));
    }
    records.extend(expired_dels);
    if dirty {
        records.extend(rewritten());
    }
    if wrap {
        let last = records.last().map_or(db, |r| r.0);
        records.push((last, vec![b"EXEC".to_vec()]));
    }
    let group = std::mem::take(&mut client.propagated);
    if !group.is_empty() {
        records.push((db, vec![b"MULTI".to_vec()]));
        records.extend(group);
        records.push((db, vec![b"EXEC".to_vec()]));
    }
    let ticket = match ticket {
        None if records.is_empty() => None,
        None => log.ticket(),
        t => t,
    };
    if let Some(t) = ticket {
        // A ticket taken for deletions that did not happen (RANDOMKEY)
        // holds nothing the client's reply must wait for.
        if !records.is_empty() {
            client.aof_ticket = client.aof_ticket.max(t + 1);
        }
        log.fill(t, records);
    }
}

/// Serves clients blocked on keys that writes have made ready, oldest
/// first, re-running each one's command on its behalf. Commands run this
/// way may make other keys ready (BLMOVE pushes), so it loops until no key
/// is pending.
fn serve_blocked(server: &Server) {
    loop {
        let ready = server.blocking.take_ready();
        if ready.is_empty() {
            return;
        }
        for (db, key) in ready {
            for waiter in server.blocking.waiters_of(db, &key) {
                let argv: Vec<&[u8]> = waiter.argv.iter().map(|a| a.as_slice()).collect();
                let Ok(r) = server.commands.resolve(&argv) else {
                    continue;
                };
                server.blocking.try_serve(&waiter, || {
                    let mut client = Client::on_behalf_of(waiter.client.clone(), waiter.db);
                    let mut reply = Reply::new(waiter.proto);
                    match run(
                        server,
                        &mut client,
                        &mut reply,
                        &r,
                        &argv,
                        true,
                        false,
                        None,
                    ) {
                        Flow::Block { .. } => None,
                        _ => Some(reply.buf),
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::flags::*;

    /// Families add flags independently; two sharing a bit would make a
    /// gate fire on the wrong commands.
    #[test]
    fn flag_bits_are_distinct() {
        let all = [
            WRITE,
            READONLY,
            DENYOOM,
            ADMIN,
            PUBSUB,
            NOSCRIPT,
            BLOCKING,
            LOADING,
            STALE,
            SKIP_MONITOR,
            SKIP_SLOWLOG,
            FAST,
            NO_AUTH,
            MAY_REPLICATE,
            NO_MANDATORY_KEYS,
            NO_MULTI,
            ALLOW_BUSY,
            MOVABLE_KEYS,
            SCRIPT_THREAD,
            EXCLUSIVE,
            SUBSCRIBER,
            TXN_CONTROL,
        ];
        let mut seen = 0u32;
        for f in all {
            assert_eq!(f.count_ones(), 1);
            assert_eq!(seen & f, 0, "flag bit {f:#x} used twice");
            seen |= f;
        }
    }
}
