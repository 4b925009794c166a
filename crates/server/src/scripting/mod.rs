//! Lua scripting: the VM ([`engine`]), the conversions between replies and
//! Lua values ([`convert`]), the libraries scripts get ([`libs`], [`cjson`],
//! [`structlib`]), and how a running script shares the server with other
//! clients (this module). [`fuzz`] lets the fuzzer reach the decoders.
//!
//! # Running a script
//!
//! Scripts and functions run with every other command held off, as in
//! Redis: their table entries carry `flags::EXCLUSIVE`, so they take the
//! exclusive gate (crate::gate) and each `redis.call` inside runs with no
//! other client in between, locking its own keys as usual. Connections
//! that mostly run scripts gather on one event loop (crate::net::Loops),
//! so that scripts follow each other there instead of stalling every loop
//! in turn.
//!
//! They also carry `flags::SCRIPT_THREAD`, which decides where they run:
//! - First on the event loop that received them ([`execute`]), for at most
//!   an inline budget (10 ms, or half of `busy-reply-threshold` if less).
//!   Most scripts are far shorter, and handing each to another thread and
//!   back cost two wake-ups, more than the script itself.
//! - A script that is still running at the end of its budget and has not
//!   yet called anything whose effects others can see (a write, PUBLISH,
//!   ...) gives up: the VM's count hook raises an error that nothing in the
//!   script can get past, the run's reply is dropped, and the command starts
//!   over on one dedicated script thread ([`spawn_thread`]), which holds no
//!   connections: the loop goes back to its clients, who can be told that
//!   the server is busy and can kill the script. Nobody could tell the
//!   first run happened: other clients were held off all along. A script
//!   whose inline runs overran three times in a row starts on the script
//!   thread from then on (once could be the loop's thread being preempted).
//! - A script that has had effects cannot start over, and finishes on its
//!   loop. That loop's other clients wait for it (they are not told BUSY);
//!   clients of the other loops are told BUSY as usual, and new connections
//!   are dealt to the overflow loop (crate::net::Loops) instead of the held
//!   one, so SHUTDOWN NOSAVE can always get through. Such a script could not
//!   be killed anyway (UNKILLABLE).
//!
//! A script inside MULTI/EXEC runs on its loop under EXEC's gate; clients of
//! that one loop then wait for it like for any EXEC.
//!
//! # BUSY
//!
//! [`Busy`] records the running script: when it started, whether it has
//! written, whether SCRIPT KILL asked it to stop. Every command checks it
//! in the dispatch pipeline before taking its gate ([`wait_for_script`]):
//! - no script runs: take the gate as usual;
//! - a script runs for less than `busy-reply-threshold`: wait without
//!   blocking the loop (for the script's end or the threshold);
//! - past the threshold: commands flagged `allow-busy` (SCRIPT KILL,
//!   FUNCTION KILL/STATS, SHUTDOWN NOSAVE, CLIENT, ...) run at once, without
//!   the gate, like Redis runs them from inside its Lua hook; every other
//!   command gets `-BUSY`.
//!
//! Gates are only ever taken with a short timeout by event loops, so a loop
//! that tried just as a script started notices the script within a
//! millisecond and waits asynchronously instead of blocking its thread.
//!
//! SCRIPT KILL and FUNCTION KILL set the kill flag; the VM's count hook
//! (every 100,000 instructions, as Redis) then raises an error at every
//! check, so `pcall` cannot swallow it. The script ends with its error and
//! no lock is left held: locks are only ever held inside one `redis.call`.

mod cjson;
pub mod convert;
mod engine;
mod fuzz;
mod libs;
mod structlib;

use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicUsize,
    Ordering::{Relaxed, SeqCst},
};
use std::sync::{mpsc, Arc, OnceLock};
use std::time::Duration;

use ferrokv_resp::{Protocol, Reply};
use parking_lot::Mutex;
use sha1::{Digest, Sha1};
use tokio::sync::Notify;

use crate::client::{Client, ClientShared};
use crate::command::{self, flags, CmdError, Flow, Resolved};
use crate::gate::Held;
use crate::Server;

pub use engine::{Engine, FunctionInfo, Library, RestorePolicy, Target};
#[doc(hidden)]
pub use fuzz::fuzz_script_libs;

/// Script flags: `#!lua flags=...` and `redis.register_function`'s flags.
pub mod script_flags {
    pub const NO_WRITES: u32 = 1;
    pub const ALLOW_OOM: u32 = 2;
    pub const ALLOW_STALE: u32 = 4;
    pub const NO_CLUSTER: u32 = 8;
    pub const ALLOW_CROSS_SLOT_KEYS: u32 = 16;
    /// An EVAL script without a shebang (Redis's compatibility mode).
    pub const EVAL_COMPAT: u32 = 32;

    /// In the order Redis lists them.
    pub const NAMES: &[(u32, &str)] = &[
        (NO_WRITES, "no-writes"),
        (ALLOW_OOM, "allow-oom"),
        (ALLOW_STALE, "allow-stale"),
        (NO_CLUSTER, "no-cluster"),
        (ALLOW_CROSS_SLOT_KEYS, "allow-cross-slot-keys"),
    ];

    pub fn parse(name: &[u8]) -> Option<u32> {
        NAMES
            .iter()
            .find(|(_, n)| n.as_bytes() == name)
            .map(|(f, _)| *f)
    }
}

/// Lower-case hex SHA1, as Redis names scripts.
pub fn sha1_hex(data: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha1::digest(data);
    let mut s = String::with_capacity(40);
    for b in digest {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 15)]));
    }
    s
}

/// What FUNCTION STATS shows of the running script.
/// Its buffers are reused from script to script: scripts are short and
/// frequent, and this is written for every one.
#[derive(Default)]
pub struct Running {
    pub name: String,
    pub argv: Vec<Vec<u8>>,
    /// Unix ms.
    pub started: i64,
}

/// Arguments longer than this are not kept for the next script's reuse.
const RUNNING_KEEP: usize = 4096;

/// What the VM's count hook of the running script looks at.
#[derive(Default)]
pub struct Interrupt {
    /// SCRIPT KILL / FUNCTION KILL asked the script to stop.
    kill: AtomicBool,
    /// Unix ms after which a script running on an event loop gives up so
    /// that it can run again on the script thread; 0 on the script thread.
    inline_until_ms: AtomicI64,
    /// The script called a command whose effects other clients (or the
    /// AOF) can see: it can no longer be run again from the start.
    effects: AtomicBool,
    /// The hook gave up on the inline run; nothing more may run in it.
    restart: AtomicBool,
}

impl Interrupt {
    /// The error the hook raises, if the script must stop now.
    fn check(&self) -> Option<&'static str> {
        if self.kill.load(Relaxed) {
            return Some(engine::KILLED);
        }
        if self.restart.load(Relaxed) {
            return Some(engine::MOVED);
        }
        let until = self.inline_until_ms.load(Relaxed);
        if until > 0 && !self.effects.load(Relaxed) && crate::now_ms() >= until {
            self.restart.store(true, Relaxed);
            return Some(engine::MOVED);
        }
        None
    }
}

/// The running script, as other clients see it.
#[derive(Default)]
pub struct Busy {
    /// Unix ms at which the running script started; 0 when none runs.
    since_ms: AtomicI64,
    hook: Arc<Interrupt>,
    /// How long a script started on an event loop may run there before it
    /// moves to the script thread (ms; 0: it never moves).
    inline_budget_ms: AtomicI64,
    /// The gate of the event loop that runs the script inline (meaningful
    /// while the hook's inline deadline is set).
    inline_loop: AtomicUsize,
    /// The script has called a write command: it can no longer be killed.
    pub wrote: AtomicBool,
    /// An EVAL script (SCRIPT KILL) rather than a function (FUNCTION KILL).
    eval: AtomicBool,
    done: Notify,
    /// Clients waiting in wait_for_script for `done`.
    waiting: AtomicUsize,
    running: Mutex<Running>,
}

impl Busy {
    fn hook(&self) -> Arc<Interrupt> {
        self.hook.clone()
    }

    fn killed(&self) -> bool {
        self.hook.kill.load(SeqCst)
    }

    /// The inline run gave up: its outcome is void and it must run again
    /// on the script thread.
    fn moved(&self) -> bool {
        self.hook.restart.load(SeqCst)
    }

    /// Records that the script called a command with visible effects.
    fn effects(&self) {
        self.hook.effects.store(true, SeqCst);
    }

    // The fields are set with relaxed stores and published by the
    // sequentially consistent store of `since_ms` (read first by every
    // other thread): one fence per script instead of one per field.
    fn start(&self, name: &str, argv: &[&[u8]], eval: bool, now_ms: i64) {
        let h = &self.hook;
        h.kill.store(false, Relaxed);
        h.effects.store(false, Relaxed);
        h.restart.store(false, Relaxed);
        let budget = self.inline_budget_ms.load(Relaxed);
        let until = if budget > 0 { now_ms + budget } else { 0 };
        h.inline_until_ms.store(until, Relaxed);
        self.wrote.store(false, Relaxed);
        self.eval.store(eval, Relaxed);
        {
            let mut r = self.running.lock();
            if r.argv.iter().any(|a| a.capacity() > RUNNING_KEEP) {
                r.argv = Vec::new();
            }
            r.name.clear();
            r.name.push_str(name);
            r.argv.resize_with(argv.len(), Vec::new);
            for (kept, a) in r.argv.iter_mut().zip(argv) {
                kept.clear();
                kept.extend_from_slice(a);
            }
            r.started = now_ms;
        }
        self.since_ms.store(now_ms.max(1), SeqCst);
    }

    fn finish(&self) {
        self.since_ms.store(0, SeqCst);
        self.hook.kill.store(false, Relaxed);
        self.hook.restart.store(false, Relaxed);
        self.hook.inline_until_ms.store(0, Relaxed);
        // Pairs with wait_for_script: it counts itself before it reads
        // `since_ms`, this reads the count after clearing `since_ms`, so
        // one of the two sees the other.
        if self.waiting.load(SeqCst) > 0 {
            self.done.notify_waiters();
        }
    }

    /// Whether the script ran past its inline budget. Read once after
    /// every script, so from the coarse clock (a few ms of resolution,
    /// plenty against a 10 ms budget; see [`coarse_now_ms`]).
    fn past_inline_deadline(&self) -> bool {
        let until = self.hook.inline_until_ms.load(Relaxed);
        until > 0 && coarse_now_ms() >= until
    }

    /// Whether event loop `index` is held by a script that has run there
    /// past its inline budget (and so will not move): new connections
    /// then go elsewhere.
    pub fn holds_loop(&self, index: usize) -> bool {
        self.inline_loop.load(SeqCst) == index && self.past_inline_deadline()
    }

    /// When the running script started, if one runs.
    pub fn since(&self) -> Option<i64> {
        match self.since_ms.load(SeqCst) {
            0 => None,
            t => Some(t),
        }
    }

    /// Runs `f` with the running script, if one runs. `running` is only
    /// written by `start` under its lock, before `since_ms` says a script
    /// runs; so holding the lock, a set `since_ms` means `running` is the
    /// current script's, and no later one can overwrite it meanwhile.
    pub fn with_running<R>(&self, f: impl FnOnce(Option<&Running>) -> R) -> R {
        let r = self.running.lock();
        f(self.since().is_some().then_some(&*r))
    }

    /// The BUSY error other commands get, naming the right KILL command.
    pub fn error(&self) -> CmdError {
        if self.eval.load(SeqCst) {
            CmdError::Static(
                "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
            )
        } else {
            CmdError::Static(
                "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.",
            )
        }
    }

    /// SCRIPT KILL (`eval`) or FUNCTION KILL: Redis's checks and replies.
    pub fn kill(&self, eval: bool) -> Result<(), CmdError> {
        if self.since().is_none() {
            return Err(CmdError::Static(
                "NOTBUSY No scripts in execution right now.",
            ));
        }
        if self.wrote.load(SeqCst) {
            return Err(CmdError::Static(
                "UNKILLABLE Sorry the script already executed write commands against the dataset. You can either wait the script termination or kill the server in a hard way using the SHUTDOWN NOSAVE command.",
            ));
        }
        let running_eval = self.eval.load(SeqCst);
        if eval && !running_eval {
            return Err(CmdError::Static(
                "BUSY Redis is busy running a script. You can only call FUNCTION KILL or SHUTDOWN NOSAVE.",
            ));
        }
        if !eval && running_eval {
            return Err(CmdError::Static(
                "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.",
            ));
        }
        self.hook.kill.store(true, SeqCst);
        Ok(())
    }
}

/// A command handed to the script thread.
struct Job {
    argv: Vec<Vec<u8>>,
    shared: Arc<ClientShared>,
    db: usize,
    proto: Protocol,
    done: tokio::sync::oneshot::Sender<(Vec<u8>, Flow)>,
}

/// Scripting state shared by the server.
#[derive(Default)]
pub struct Scripting {
    /// Created on first use, so servers that never script pay nothing.
    engine: Mutex<Option<Engine>>,
    pub busy: Busy,
    /// What FUNCTION STATS and INFO memory show, readable while a script
    /// runs: refreshed when scripts or libraries change, and the VM's heap
    /// by the cron.
    pub figures: Figures,
    thread: OnceLock<mpsc::Sender<Job>>,
}

/// What scripting holds, in counts and bytes.
#[derive(Default)]
pub struct Figures {
    pub libraries: AtomicUsize,
    pub functions: AtomicUsize,
    /// The Lua VM's heap: compiled scripts and libraries, their data.
    pub vm_bytes: AtomicUsize,
    pub scripts: AtomicUsize,
    /// The script cache outside the VM: its table and the SHA1s.
    pub scripts_bytes: AtomicUsize,
    /// The libraries outside the VM: their code (kept for FUNCTION DUMP,
    /// RDB and AOF) and function descriptions.
    pub functions_bytes: AtomicUsize,
}

impl Scripting {
    /// Runs `f` with the VM, creating it on first use.
    pub fn with_engine<R>(
        &self,
        f: impl FnOnce(&mut Engine) -> Result<R, CmdError>,
    ) -> Result<R, CmdError> {
        let mut guard = self.engine.lock();
        if guard.is_none() {
            let engine = Engine::new(self.busy.hook())
                .map_err(|e| CmdError::Owned(format!("ERR can't start Lua: {e}")))?;
            *guard = Some(engine);
        }
        match guard.as_mut() {
            Some(engine) => {
                let r = f(engine);
                if engine.take_changed() {
                    engine.figures(&self.figures);
                }
                r
            }
            None => Err(CmdError::Static("ERR Lua is not available")),
        }
    }

    /// Refreshes INFO's figures of the VM (its heap changes with every
    /// run), unless a script is running: then they stay as they were.
    pub fn refresh_figures(&self) {
        if let Some(guard) = self.engine.try_lock() {
            if let Some(engine) = guard.as_ref() {
                engine.figures(&self.figures);
            }
        }
    }

    /// Every library's code, in FUNCTION LIST's order (what FUNCTION DUMP
    /// and RDB files carry), without starting Lua when nothing ever did.
    pub fn library_codes(&self) -> Vec<Vec<u8>> {
        self.engine.lock().as_ref().map_or_else(Vec::new, |e| {
            e.libraries.values().map(|l| l.code.clone()).collect()
        })
    }

    /// Runs a script or function for the client of `ctx`, marking it busy
    /// for the other clients while it runs.
    pub fn run(
        &self,
        ctx: &mut command::Ctx<'_>,
        engine: &mut Engine,
        argv: &[&[u8]],
        target: Target<'_>,
    ) -> Result<(), CmdError> {
        let budget = self.busy.inline_budget_ms.load(Relaxed);
        if budget < 0 || (budget > 0 && engine.is_slow(target.name)) {
            ctx.flow = command::Flow::Offload;
            return Ok(());
        }
        let name = target.name;
        self.busy.start(name, argv, target.eval, ctx.now_ms);
        let result = engine.run(ctx, &self.busy, target);
        if budget > 0 {
            engine.note_inline_run(name, self.busy.past_inline_deadline());
        }
        self.busy.finish();
        result
    }

    /// Hands a `SCRIPT_THREAD` command to the script thread and waits for
    /// its reply; None when there is no script thread (the caller then runs
    /// it in place).
    async fn offload(&self, client: &Client, argv: &[&[u8]], reply: &mut Reply) -> Option<Flow> {
        let tx = self.thread.get()?;
        let (done, rx) = tokio::sync::oneshot::channel();
        let job = Job {
            argv: argv.iter().map(|a| a.to_vec()).collect(),
            shared: client.shared.clone(),
            db: client.db,
            proto: reply.proto,
            done,
        };
        tx.send(job).ok()?;
        match rx.await {
            Ok((bytes, flow)) => {
                reply.raw(&bytes);
                Some(flow)
            }
            Err(_) => {
                reply.error("ERR the script thread has stopped");
                Some(Flow::Continue)
            }
        }
    }
}

/// Starts the script thread that runs EVAL/FCALL off the event loops.
pub fn spawn_thread(server: Arc<Server>) -> std::io::Result<()> {
    let (tx, rx) = mpsc::channel::<Job>();
    if server.scripting.thread.set(tx).is_err() {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("ferrokv-scripts".into())
        .spawn(move || {
            for job in rx {
                let argv: Vec<&[u8]> = job.argv.iter().map(|a| a.as_slice()).collect();
                let mut reply = Reply::new(job.proto);
                let flow = match server.commands.resolve(&argv) {
                    Ok(r) => {
                        let mut client = Client::on_behalf_of(job.shared, job.db);
                        let flow = {
                            let _all = server.gates.exclusive();
                            command::execute(&server, &mut client, &mut reply, &r, &argv)
                        };
                        // The caller's connection sends this reply as is.
                        crate::persist::aof::before_reply_blocking(&server, &client);
                        flow
                    }
                    Err(e) => {
                        reply.error(&e.text());
                        Flow::Continue
                    }
                };
                let _ = job.done.send((reply.buf, flow));
            }
        })?;
    Ok(())
}

/// How long an event loop blocks on a gate before it checks again whether
/// a script holds it.
const GATE_WAIT: Duration = Duration::from_millis(1);

/// Runs a resolved command the way the pipeline does once admitted: under
/// its gate, on the script thread for scripts, honouring a running script
/// (see the module docs).
pub async fn execute(
    server: &Server,
    client: &mut Client,
    r: &Resolved,
    argv: &[&[u8]],
    reply: &mut Reply,
) -> Result<Flow, CmdError> {
    loop {
        if wait_for_script(server, r).await? {
            // Past the threshold, allow-busy commands run beside the script.
            return Ok(command::execute(server, client, reply, r, argv));
        }
        let flow = {
            let mut held = Held::Nothing;
            let exclusive = needs_exclusive(server, client, r);
            if !server
                .gates
                .hold(&mut held, client.gate, exclusive, GATE_WAIT)
            {
                continue;
            }
            client.mix.note(crate::net::gathers(server, r, exclusive));
            run_held(server, client, r, argv, reply)
        };
        if flow != Flow::Offload {
            return Ok(flow);
        }
        if let Some(flow) = server.scripting.offload(client, argv, reply).await {
            return Ok(flow);
        }
    }
}

/// [`execute`] without waiting: runs the command under `held` (taking
/// what it lacks) unless a script is running, the gate is not free, or
/// the command is a script that must move to the script thread. None means
/// nothing happened and the caller must go through [`execute`].
pub fn try_execute<'a>(
    server: &'a Server,
    client: &mut Client,
    r: &Resolved,
    argv: &[&[u8]],
    reply: &mut Reply,
    held: &mut Held<'a>,
) -> Option<Flow> {
    if server.scripting.busy.since().is_some() {
        return None;
    }
    let exclusive = needs_exclusive(server, client, r);
    if !server.gates.hold(held, client.gate, exclusive, GATE_WAIT) {
        return None;
    }
    client.mix.note(crate::net::gathers(server, r, exclusive));
    // A script may have started (on the script thread) before the gate
    // was ours; then it has ended, as it held every gate.
    match run_held(server, client, r, argv, reply) {
        Flow::Offload => None,
        flow => Some(flow),
    }
}

/// Whether `r` takes every gate: EXEC (unless it can lock just its keys,
/// see command::transactions) and the like, and scripts when they can
/// start on their loop.
fn needs_exclusive(server: &Server, client: &Client, r: &Resolved) -> bool {
    if r.cmd.has(flags::EXCLUSIVE) {
        return r.cmd.name != "exec" || command::transactions::exec_needs_gate(server, client);
    }
    r.cmd.has(flags::SCRIPT_THREAD) && server.scripting.thread.get().is_some()
}

/// Runs `r` with its gate held: a script inline within its budget
/// (Flow::Offload when it must start over on the script thread), anything
/// else as is.
fn run_held(
    server: &Server,
    client: &mut Client,
    r: &Resolved,
    argv: &[&[u8]],
    reply: &mut Reply,
) -> Flow {
    if !(r.cmd.has(flags::SCRIPT_THREAD) && server.scripting.thread.get().is_some()) {
        return command::execute(server, client, reply, r, argv);
    }
    let busy = &server.scripting.busy;
    // The overflow loop also accepts connections: a script that could
    // hold it runs on the script thread.
    let budget = if client.gate < server.threads {
        inline_budget(server)
    } else {
        -1
    };
    // Relaxed: the script that reads these runs on this thread, and other
    // threads only read `inline_loop` as a hint (Busy::holds_loop).
    busy.inline_budget_ms.store(budget, Relaxed);
    busy.inline_loop.store(client.gate, Relaxed);
    let flow = command::execute(server, client, reply, r, argv);
    busy.inline_budget_ms.store(0, Relaxed);
    flow
}

/// How long a script may run on the event loop that received it (ms; 0:
/// to the end). Past this, a script that has had no visible effects yet
/// gives up and runs again from the start on the script thread, so that
/// it can be told BUSY apart, killed, and outlived by its loop's other
/// clients; a script that has written must finish where it is.
fn inline_budget(server: &Server) -> i64 {
    match server.config.busy_reply_threshold.load(Relaxed) {
        t if t <= 0 => 0,
        t => (t / 2).clamp(1, INLINE_BUDGET_MS),
    }
}

/// Short scripts, the common case, run inline: handing each to another
/// thread and back costs two wake-ups, more than the script itself.
const INLINE_BUDGET_MS: i64 = 10;

/// Waits while a script runs below the busy threshold. Returns false when
/// no script runs, true when one runs past the threshold and the command
/// may run beside it (allow-busy), and the BUSY error otherwise.
async fn wait_for_script(server: &Server, r: &Resolved) -> Result<bool, CmdError> {
    let busy = &server.scripting.busy;
    if busy.since().is_none() {
        return Ok(false);
    }
    busy.waiting.fetch_add(1, SeqCst);
    let _counted = Waiting(&busy.waiting);
    loop {
        let done = busy.done.notified();
        tokio::pin!(done);
        done.as_mut().enable();
        let Some(since) = busy.since() else {
            return Ok(false);
        };
        let threshold = server.config.busy_reply_threshold.load(Relaxed);
        let elapsed = crate::now_ms() - since;
        if threshold > 0 && elapsed >= threshold {
            if r.cmd.has(flags::ALLOW_BUSY) {
                return Ok(true);
            }
            return Err(busy.error());
        }
        let wait = if threshold > 0 {
            Duration::from_millis((threshold - elapsed).max(1) as u64)
        } else {
            Duration::from_secs(3600)
        };
        tokio::select! {
            _ = done => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Uncounts a client from [`Busy::waiting`] however its wait ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// Unix ms from CLOCK_REALTIME_COARSE: the time of the last tick, read
/// without touching the clock source.
fn coarse_now_ms() -> i64 {
    match crate::read_clock(libc::CLOCK_REALTIME_COARSE) {
        Some((s, ns)) => s * 1000 + ns / 1_000_000,
        None => crate::now_ms(),
    }
}

/// The BUSY error, if a script runs past the threshold now (SHUTDOWN
/// without NOSAVE refuses then).
pub fn busy_error(server: &Server) -> Option<CmdError> {
    let since = server.scripting.busy.since()?;
    let threshold = server.config.busy_reply_threshold.load(Relaxed);
    (threshold > 0 && crate::now_ms() - since >= threshold).then(|| server.scripting.busy.error())
}
