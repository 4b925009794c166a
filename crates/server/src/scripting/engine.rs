//! The Lua VM: sandbox set-up (prelude.lua), the script cache, function
//! libraries, and running one script or function with `redis.call` wired
//! to the command table.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::ffi::c_int;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Arc;

use ferrokv_resp::{Protocol, Reply};
use mlua::{
    ffi, Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState,
};

use super::{convert, libs, script_flags, Busy, Interrupt};
use crate::client::Client;
use crate::command::{self, flags, CmdError, Ctx};
use crate::Server;

const PRELUDE: &str = include_str!("prelude.lua");
/// How often (in VM instructions) a running script checks for SCRIPT KILL,
/// as Redis's count hook.
const HOOK_EVERY: u32 = 100_000;
pub(super) const KILLED: &str = "ERR Script killed by user with SCRIPT KILL...";
/// Raised in a script that ran too long on an event loop: the run is void
/// (it had no visible effects) and the script runs again on the script
/// thread. Nobody sees this text.
pub(super) const MOVED: &str = "ERR script moved to the script thread";
/// Inline runs in a row that must overrun their budget before a script
/// starts on the script thread from then on. The budget is wall time, so
/// one overrun may only mean that the loop's thread was preempted (likely
/// when the cores are busy); a script sent to the script thread for that
/// alone would pay two thread wake-ups per run for good.
const OVERRUNS_TO_SLOW: u8 = 3;

/// A function registered by a library.
pub struct FunctionInfo {
    pub name: String,
    pub description: Option<Vec<u8>>,
    pub flags: u32,
}

/// A loaded library: its code (for FUNCTION LIST WITHCODE and reloading)
/// and its functions in registration order.
pub struct Library {
    pub code: Vec<u8>,
    pub functions: Vec<FunctionInfo>,
}

/// A library whose code ran and registered its functions, not installed
/// yet.
struct Prepared {
    name: String,
    code: Vec<u8>,
    functions: Vec<(FunctionInfo, Function)>,
}

/// How FUNCTION RESTORE's libraries join the installed ones.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum RestorePolicy {
    /// Delete every installed library first.
    Flush,
    /// Fail if a library of the same name is installed.
    Append,
    /// Replace installed libraries of the same name.
    Replace,
}

/// What runs: an EVAL script (by SHA) or a function, with its keys and
/// arguments.
pub struct Target<'a> {
    /// The SHA1 of a script, or a function's name (for error messages).
    pub name: &'a str,
    pub function: Function,
    pub eval: bool,
    pub read_only: bool,
    pub keys: &'a [&'a [u8]],
    pub args: &'a [&'a [u8]],
}

pub struct Engine {
    lua: Lua,
    /// Shared with prelude.lua: `functions[name]`, the environments and
    /// the per-run state.
    internal: Table,
    /// Handles looked up once instead of by name on every run.
    hot: Hot,
    /// Function name (lower case: names are case-insensitive, as in
    /// Redis) to (library name, flags).
    functions: HashMap<String, (String, u32), ahash::RandomState>,
    /// The script cache: SHA1 to the compiled script and the flags of its
    /// shebang. These maps are read with every script run: hashed with
    /// ahash, not SipHash, whose cost showed in EVALSHA's profile.
    scripts: HashMap<String, (Function, u32), ahash::RandomState>,
    /// Scripts (by SHA1) and functions whose last runs overran the inline
    /// budget (see crate::scripting), with how many did in a row: from
    /// [`OVERRUNS_TO_SLOW`] on they start on the script thread.
    overruns: HashMap<String, u8, ahash::RandomState>,
    pub libraries: BTreeMap<String, Library>,
    /// The reply buffer of `redis.call`, kept from run to run.
    call_reply: Reply,
    /// Scripts or libraries were added or removed since the last
    /// [`take_changed`](Self::take_changed).
    changed: bool,
}

/// What every run uses: prelude.lua's error handler and the table EVAL
/// scripts find KEYS and ARGV in.
struct Hot {
    handler: Function,
    eval_vars: Table,
    /// Registry references of the strings "resp", "KEYS" and "ARGV":
    /// fetched by index, where pushing them would hash them each run.
    names: [c_int; 3],
}

/// What `redis.call` works on while a script runs: set by [`Engine::run`]
/// around its call into Lua on the thread that runs it, empty otherwise.
/// Raw pointers because `redis.call` is made once and outlives any one
/// run; a scoped closure per run (mlua's safe way to lend borrows to Lua)
/// cost more than the rest of a short script.
#[derive(Clone, Copy)]
struct CallSite {
    server: *const Server,
    client: *mut Client,
    busy: *const Busy,
    /// The reply buffer every `redis.call` of the run reuses.
    reply: *mut Reply,
    read_only: bool,
    /// The script's start: the time of every command it calls.
    now_ms: i64,
}

thread_local! {
    static SITE: Cell<Option<CallSite>> = const { Cell::new(None) };
}

// SAFETY: the VM is built without mlua's `send` feature, whose internal
// mutex and atomic reference counts cost a lock on every VM call. Its
// handles (the `Lua`, tables, functions) use plain `Rc`s, which is sound to
// move between threads as long as only one thread touches them at a time
// and none escape: the engine lives in `Scripting`'s mutex, every handle
// made from it stays inside it or on the stack of the thread that holds
// the lock, and mlua keeps no thread-local state.
unsafe impl Send for Engine {}

fn err_table(lua: &Lua, text: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", format!("ERR {text}"))?;
    Ok(Value::Table(t))
}

/// Pushes a Lua array of byte strings (KEYS, ARGV).
///
/// # Safety
/// `state` needs two free stack slots.
unsafe fn push_sequence(state: *mut ffi::lua_State, items: &[&[u8]]) {
    ffi::lua_createtable(state, c_int::try_from(items.len()).unwrap_or(0), 0);
    for (i, item) in items.iter().enumerate() {
        ffi::lua_pushlstring(state, item.as_ptr().cast(), item.len());
        ffi::lua_rawseti(state, -2, (i + 1) as ffi::lua_Integer);
    }
}

impl Engine {
    /// A VM whose count hook stops scripts as `interrupt` says.
    pub fn new(interrupt: Arc<Interrupt>) -> mlua::Result<Engine> {
        let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::DEBUG;
        // SAFETY: mlua calls `debug` unsafe because Lua code holding it can
        // break memory safety; prelude.lua keeps it in the error handler's
        // upvalue only and removes it from the globals before any script
        // runs.
        let lua = unsafe { Lua::unsafe_new_with(libs, LuaOptions::default()) };
        let internal = lua.create_table()?;
        internal.raw_set("functions", lua.create_table()?)?;
        for (name, raise) in [("call", true), ("pcall", false)] {
            // SAFETY: pushes one C closure over the three values pushed as
            // its upvalues.
            let f: Function = unsafe {
                lua.exec_raw((&internal, "resp", raise), |state| {
                    ffi::lua_pushcclosure(state, redis_call, 3);
                })?
            };
            internal.raw_set(name, f)?;
        }
        let rust = libs::rust_table(&lua)?;
        let debug: Table = lua.globals().raw_get("debug")?;
        lua.load(PRELUDE)
            .set_name("=redis")
            .call::<()>((debug, rust, internal.clone()))?;
        lua.gc_collect()?;
        lua.set_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_, _| match interrupt.check() {
                Some(text) => Err(mlua::Error::runtime(text)),
                None => Ok(VmState::Continue),
            },
        );
        let mut names: [c_int; 3] = [0; 3];
        // SAFETY: pushes each string and moves it into the registry, which
        // keeps it for the VM's life; the stack is left as it was.
        unsafe {
            lua.exec_raw::<()>((), |state| {
                for (slot, name) in names.iter_mut().zip([c"resp", c"KEYS", c"ARGV"]) {
                    ffi::lua_pushstring(state, name.as_ptr());
                    *slot = ffi::luaL_ref(state, ffi::LUA_REGISTRYINDEX);
                }
            })?;
        }
        let hot = Hot {
            handler: internal.raw_get("handler")?,
            eval_vars: internal.raw_get("eval_vars")?,
            names,
        };
        Ok(Engine {
            lua,
            internal,
            hot,
            functions: HashMap::default(),
            scripts: HashMap::default(),
            overruns: HashMap::default(),
            libraries: BTreeMap::new(),
            call_reply: Reply::new(Protocol::Resp2),
            changed: true,
        })
    }

    fn table(&self, name: &str) -> mlua::Result<Table> {
        self.internal.raw_get(name)
    }

    /// The compiled script with this SHA and its flags, if cached.
    pub fn script(&self, sha: &str) -> Option<(Function, u32)> {
        self.scripts.get(sha).cloned()
    }

    /// Compiles and caches a script body under its SHA; the error is
    /// Redis's compile error reply.
    pub fn load_script(&mut self, sha: &str, body: &[u8]) -> Result<(Function, u32), CmdError> {
        if let Some(found) = self.script(sha) {
            return Ok(found);
        }
        let flags = eval_flags(body)?;
        let env: Table = self.table("eval_env").map_err(internal_error)?;
        let f = self
            .lua
            .load(&*strip_shebang(body))
            .set_name("@user_script")
            .set_environment(env)
            .into_function()
            .map_err(|e| {
                CmdError::Owned(format!(
                    "ERR Error compiling script (new function): {}",
                    lua_message(&e)
                ))
            })?;
        self.scripts.insert(sha.to_string(), (f.clone(), flags));
        self.changed = true;
        Ok((f, flags))
    }

    /// SCRIPT FLUSH: forgets every cached script.
    pub fn flush_scripts(&mut self) {
        self.scripts.clear();
        self.overruns.clear();
        self.changed = true;
        // Redis starts a new VM: the cjson settings are back to defaults.
        super::cjson::reset(&self.lua);
        let _ = self.lua.gc_collect();
    }

    /// Whether scripts or libraries changed since the last call.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Refreshes the figures FUNCTION STATS and INFO memory show.
    pub fn figures(&self, out: &super::Figures) {
        out.libraries.store(self.libraries.len(), Relaxed);
        out.functions.store(
            self.libraries.values().map(|l| l.functions.len()).sum(),
            Relaxed,
        );
        out.vm_bytes.store(self.lua.used_memory(), Relaxed);
        out.scripts.store(self.scripts.len(), Relaxed);
        let entry = std::mem::size_of::<(String, (Function, u32))>();
        out.scripts_bytes.store(
            self.scripts.capacity() * entry + self.scripts.len() * SHA_LEN,
            Relaxed,
        );
        let functions: usize = self
            .libraries
            .iter()
            .map(|(name, l)| {
                name.len()
                    + l.code.capacity()
                    + l.functions
                        .iter()
                        .map(|f| {
                            std::mem::size_of::<FunctionInfo>()
                                + f.name.len()
                                + f.description.as_ref().map_or(0, Vec::len)
                        })
                        .sum::<usize>()
            })
            .sum();
        out.functions_bytes.store(functions, Relaxed);
    }

    /// A function by name with its flags.
    pub fn function(&self, name: &str) -> Option<(Function, u32)> {
        let key = name.to_ascii_lowercase();
        let (_, flags) = self.functions.get(&key)?;
        let f = self.table("functions").ok()?.raw_get(key).ok()?;
        Some((f, *flags))
    }

    /// FUNCTION LOAD: runs the library code (with `redis.register_function`
    /// available) and, if it registered functions that do not clash,
    /// installs the library, replacing one of the same name if `replace`.
    /// Returns the library's name.
    pub fn load_library(&mut self, code: &[u8], replace: bool) -> Result<String, CmdError> {
        let name = library_name(code)?;
        if !replace && self.libraries.contains_key(&name) {
            return Err(CmdError::Owned(format!(
                "ERR Library '{name}' already exists"
            )));
        }
        let lib = self.prepare(name, code)?;
        // The functions of the library it replaces do not clash.
        self.check_clashes(&lib, |owner| owner == lib.name)?;
        let name = lib.name.clone();
        self.install(lib)?;
        Ok(name)
    }

    /// FUNCTION RESTORE: the libraries of a payload, in order (an error
    /// stops reading where it was met), are first prepared among
    /// themselves, as Redis loads them into a context of their own; then
    /// `policy` decides how they join the installed ones. Nothing changes
    /// unless all of them are installed.
    pub fn restore_libraries(
        &mut self,
        codes: impl IntoIterator<Item = Result<Vec<u8>, CmdError>>,
        policy: RestorePolicy,
    ) -> Result<(), CmdError> {
        let mut staged: Vec<Prepared> = Vec::new();
        for code in codes {
            let code = code?;
            let name = library_name(&code)?;
            if staged.iter().any(|l| l.name == name) {
                return Err(CmdError::Owned(format!(
                    "ERR Library '{name}' already exists"
                )));
            }
            let lib = self.prepare(name, &code)?;
            for (f, _) in &lib.functions {
                let clash = staged
                    .iter()
                    .flat_map(|l| &l.functions)
                    .any(|(g, _)| g.name.eq_ignore_ascii_case(&f.name));
                if clash {
                    return Err(CmdError::Owned(format!(
                        "ERR Function {} already exists",
                        f.name
                    )));
                }
            }
            staged.push(lib);
        }
        match policy {
            RestorePolicy::Flush => self.flush_functions(),
            RestorePolicy::Append | RestorePolicy::Replace => {
                let replace = policy == RestorePolicy::Replace;
                if let Some(lib) = staged
                    .iter()
                    .find(|l| !replace && self.libraries.contains_key(&l.name))
                {
                    return Err(CmdError::Owned(format!(
                        "ERR Library {} already exists",
                        lib.name
                    )));
                }
                for lib in &staged {
                    self.check_clashes(lib, |owner| staged.iter().any(|l| l.name == owner))?;
                }
            }
        }
        staged.into_iter().try_for_each(|lib| self.install(lib))
    }

    /// Runs a library's code and collects the functions it registers.
    fn prepare(&mut self, name: String, code: &[u8]) -> Result<Prepared, CmdError> {
        let functions = self.run_library(code)?;
        if functions.is_empty() {
            return Err(CmdError::Static("ERR No functions registered"));
        }
        Ok(Prepared {
            name,
            code: code.to_vec(),
            functions,
        })
    }

    /// The error for a function of `lib` whose name an installed library
    /// already uses, unless that library is about to go (`leaving`).
    fn check_clashes(
        &self,
        lib: &Prepared,
        leaving: impl Fn(&str) -> bool,
    ) -> Result<(), CmdError> {
        for (f, _) in &lib.functions {
            if let Some((owner, _)) = self.functions.get(&f.name.to_ascii_lowercase()) {
                if !leaving(owner) {
                    return Err(CmdError::Owned(format!(
                        "ERR Function {} already exists",
                        f.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// Installs a prepared library in place of any of the same name.
    fn install(&mut self, lib: Prepared) -> Result<(), CmdError> {
        self.delete_library(&lib.name);
        let table = self.table("functions").map_err(internal_error)?;
        let mut infos = Vec::with_capacity(lib.functions.len());
        for (info, callback) in lib.functions {
            let key = info.name.to_ascii_lowercase();
            table
                .raw_set(key.as_str(), callback)
                .map_err(internal_error)?;
            self.functions.insert(key, (lib.name.clone(), info.flags));
            infos.push(info);
        }
        self.libraries.insert(
            lib.name,
            Library {
                code: lib.code,
                functions: infos,
            },
        );
        self.changed = true;
        Ok(())
    }

    fn run_library(&mut self, code: &[u8]) -> Result<Vec<(FunctionInfo, Function)>, CmdError> {
        let env: Table = self.table("function_env").map_err(internal_error)?;
        let chunk = self
            .lua
            .load(&*strip_shebang(code))
            .set_name("@user_function")
            .set_environment(env)
            .into_function()
            .map_err(|e| {
                CmdError::Owned(format!("ERR Error compiling function: {}", lua_message(&e)))
            })?;
        let mut registered: Vec<(FunctionInfo, Function)> = Vec::new();
        let result = self.lua.scope(|scope| {
            let register =
                scope.create_function_mut(|lua, args: MultiValue| match register_args(&args) {
                    Ok((info, f)) => {
                        if registered
                            .iter()
                            .any(|(r, _)| r.name.eq_ignore_ascii_case(&info.name))
                        {
                            return Ok((
                                false,
                                err_table(lua, "Function already exists in the library")?,
                            ));
                        }
                        registered.push((info, f));
                        Ok((true, Value::Nil))
                    }
                    Err(msg) => Ok((false, err_table(lua, msg)?)),
                })?;
            self.internal.raw_set("register", register)?;
            self.internal.raw_set("loading", true)?;
            let run: Function = self.internal.raw_get("run")?;
            let out = run.call::<(bool, Value)>(chunk);
            self.internal.raw_set("loading", Value::Nil)?;
            self.internal.raw_set("register", Value::Nil)?;
            out
        });
        match result {
            Ok((true, _)) => Ok(registered),
            Ok((false, err)) => Err(CmdError::Owned(format!(
                "ERR Error registering functions: {}",
                error_field(&err)
            ))),
            Err(e) => Err(internal_error(e)),
        }
    }

    /// Removes a library and its functions; false if there is none.
    pub fn delete_library(&mut self, name: &str) -> bool {
        let Some(lib) = self.libraries.remove(name) else {
            return false;
        };
        self.changed = true;
        if let Ok(table) = self.table("functions") {
            for f in &lib.functions {
                let key = f.name.to_ascii_lowercase();
                let _ = table.raw_set(key.as_str(), Value::Nil);
                self.functions.remove(&key);
            }
        }
        true
    }

    /// Whether `name` starts on the script thread.
    pub fn is_slow(&self, name: &str) -> bool {
        !self.overruns.is_empty()
            && self
                .overruns
                .get(name)
                .is_some_and(|&n| n >= OVERRUNS_TO_SLOW)
    }

    /// Records whether an inline run of `name` overran its budget.
    pub fn note_inline_run(&mut self, name: &str, overran: bool) {
        if overran {
            let n = self.overruns.entry(name.to_string()).or_default();
            *n = n.saturating_add(1);
        } else if !self.overruns.is_empty() {
            self.overruns.remove(name);
        }
    }

    /// FUNCTION FLUSH.
    pub fn flush_functions(&mut self) {
        let names: Vec<String> = self.libraries.keys().cloned().collect();
        for name in names {
            self.delete_library(&name);
        }
        let _ = self.lua.gc_collect();
    }

    /// Runs a script or function for `ctx`'s client and writes its reply.
    /// The script's commands run through the command table as a client of
    /// their own (SELECT inside a script does not leak to the caller).
    pub fn run(&mut self, ctx: &mut Ctx<'_>, busy: &Busy, t: Target<'_>) -> Result<(), CmdError> {
        let server = ctx.server;
        let mut client = Client::on_behalf_of(ctx.client.shared.clone(), ctx.client.db);
        let hot = &self.hot;
        let reply = &mut *ctx.reply;
        SITE.set(Some(CallSite {
            server,
            client: &mut client,
            busy,
            reply: &mut self.call_reply,
            read_only: t.read_only,
            now_ms: ctx.now_ms,
        }));
        let (keys, args, eval, names) = (t.keys, t.args, t.eval, hot.names);
        // SAFETY: the closure runs in protected mode on the stack exec_raw
        // made: 1 error handler, 2 script, 3 eval_vars, 4 internal, 5
        // "resp", 6 "KEYS", 7 "ARGV". It checks for the room it uses, and
        // holds no value with a destructor, so a Lua error (out of memory)
        // may jump out of it. It leaves (true) or (false, error) for
        // exec_raw to return. The script is called straight from here with
        // the handler as the message handler: Redis's own way, and a Lua
        // call or two less than a Lua-side xpcall.
        let outcome = unsafe {
            self.lua.exec_raw::<(bool, Value)>(
                (&hot.handler, &t.function, &hot.eval_vars, &self.internal),
                |state| {
                    ffi::lua_settop(state, 4);
                    if ffi::lua_checkstack(state, 10) == 0 {
                        ffi::lua_settop(state, 0);
                        ffi::lua_pushboolean(state, 0);
                        ffi::lua_pushnil(state);
                        return;
                    }
                    for name in names {
                        ffi::lua_rawgeti(state, ffi::LUA_REGISTRYINDEX, name.into());
                    }
                    // redis.setresp lasts for one run.
                    ffi::lua_pushvalue(state, 5);
                    ffi::lua_pushinteger(state, 2);
                    ffi::lua_rawset(state, 4);
                    ffi::lua_pushvalue(state, 2);
                    let nargs = if eval {
                        for (name, items) in [(6, keys), (7, args)] {
                            ffi::lua_pushvalue(state, name);
                            push_sequence(state, items);
                            ffi::lua_rawset(state, 3);
                        }
                        0
                    } else {
                        push_sequence(state, keys);
                        push_sequence(state, args);
                        2
                    };
                    // The script's value, or what the handler made of its
                    // error, lands at 8. A returned error table fails the
                    // script as a raised one does (Redis counts both as
                    // failed calls), only without the script's position.
                    let ok =
                        ffi::lua_pcall(state, nargs, 1, 1) == 0 && !convert::is_error(state, 8);
                    if eval {
                        for name in [6, 7] {
                            ffi::lua_pushvalue(state, name);
                            ffi::lua_pushnil(state);
                            ffi::lua_rawset(state, 3);
                        }
                    }
                    if ok && !busy.moved() {
                        ffi::lua_pushvalue(state, 5);
                        ffi::lua_rawget(state, 4);
                        let resp3 = ffi::lua_tointeger(state, -1) == 3;
                        ffi::lua_pop(state, 1);
                        convert::write_lua(state, 8, reply, resp3);
                    }
                    if ok {
                        ffi::lua_settop(state, 0);
                        ffi::lua_pushboolean(state, 1);
                    } else {
                        // (false, error) down to 1 and 2.
                        ffi::lua_replace(state, 2);
                        ffi::lua_pushboolean(state, 0);
                        ffi::lua_replace(state, 1);
                        ffi::lua_settop(state, 2);
                    }
                },
            )
        };
        SITE.set(None);
        if self.call_reply.buf.capacity() > CALL_REPLY_KEEP {
            self.call_reply.buf = Vec::new();
        }
        // The script's writes are propagated by EVAL/FCALL as one group.
        ctx.client.propagated.append(&mut client.propagated);
        if busy.moved() {
            ctx.flow = command::Flow::Offload;
            return Ok(());
        }
        match outcome {
            Ok((true, _)) => Ok(()),
            Ok((false, err)) => {
                let text = failure(&err, t.name, busy.killed());
                let counted = match &err {
                    Value::Table(t) => t.raw_get::<bool>(convert::COUNTED).unwrap_or(false),
                    _ => false,
                };
                Err(if counted {
                    CmdError::Counted(text)
                } else {
                    CmdError::Owned(text)
                })
            }
            Err(e) => Err(internal_error(e)),
        }
    }
}

/// A script's key in the cache: its SHA1 in hex.
const SHA_LEN: usize = 40;

/// A `redis.call` reply buffer larger than this is not kept for the next
/// run.
const CALL_REPLY_KEEP: usize = 64 * 1024;

/// The error reply of a script that raised `err` (a table made by the
/// error handler): the message, then where it happened, as Redis prints it.
fn failure(err: &Value, name: &str, killed: bool) -> String {
    let Value::Table(t) = err else {
        return format!("ERR Error running script {name}, execution failure");
    };
    let msg = if killed {
        KILLED.to_string()
    } else {
        error_field(err)
    };
    let source = t.raw_get::<Option<String>>("source").ok().flatten();
    let line = t.raw_get::<Option<i64>>("line").ok().flatten();
    match (source, line) {
        (Some(source), Some(line)) => format!("{msg} script: {name}, on {source}:{line}."),
        _ => msg,
    }
}

/// The `err` field of an error table, as text.
fn error_field(err: &Value) -> String {
    match err {
        Value::Table(t) => match t.raw_get::<Value>("err") {
            Ok(Value::String(s)) => convert::error_text(&s.as_bytes()),
            _ => "ERR unknown error".to_string(),
        },
        _ => "ERR unknown error".to_string(),
    }
}

/// `redis.call` and `redis.pcall`: runs one command and returns its reply
/// as a Lua value; a failure (Redis's error reply, or a call Redis
/// refuses) is an `{err=...}` table, which redis.call raises and
/// redis.pcall returns. Upvalues: prelude's internal table and "resp"
/// (where redis.setresp leaves the protocol for the command's reply), and
/// whether to raise.
///
/// Plain C API instead of an mlua callback: arguments are read where they
/// lie on the stack and the reply is built there, with no reference slots,
/// no value conversions and no closure made per call, which cost more than
/// a short command.
unsafe extern "C-unwind" fn redis_call(state: *mut ffi::lua_State) -> c_int {
    let n = ffi::lua_gettop(state);
    // Numbers become strings in place (Lua's own `%.14g`) before any Rust
    // value with a destructor exists: converting may raise out of memory.
    for i in 1..=n {
        if ffi::lua_type(state, i) == ffi::LUA_TNUMBER {
            ffi::lua_tolstring(state, i, std::ptr::null_mut());
        }
    }
    let raise = ffi::lua_toboolean(state, ffi::lua_upvalueindex(3)) != 0;
    if ffi::lua_checkstack(state, 8) == 0 {
        push_err(
            state,
            "Lua stack overflow calling Redis command from script",
        );
        return fail(state, raise);
    }
    ffi::lua_pushvalue(state, ffi::lua_upvalueindex(2));
    ffi::lua_rawget(state, ffi::lua_upvalueindex(1));
    let resp3 = ffi::lua_tointeger(state, -1) == 3;
    ffi::lua_pop(state, 1);
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run_call(state, n, resp3)))
            .unwrap_or(Err("Internal error running Redis command from script"));
    match outcome {
        Ok((data, len)) => {
            // SAFETY: the reply buffer of the run's call site, which
            // nothing touches until this call returns.
            let reply = std::slice::from_raw_parts(data, len);
            convert::push_reply(state, reply);
            if reply.first() == Some(&b'-') {
                return fail(state, raise);
            }
            1
        }
        Err(text) => {
            push_err(state, text);
            fail(state, raise)
        }
    }
}

/// Ends [`redis_call`] with the error table on top: raised as is (no
/// position: the error handler finds the script line) or returned. No Rust
/// value with a destructor lives in the frames Lua's error jump leaves.
unsafe fn fail(state: *mut ffi::lua_State, raise: bool) -> c_int {
    if raise {
        ffi::lua_error(state);
    }
    1
}

/// Pushes {err="ERR " .. text} for a call Redis refuses, counted in INFO
/// errorstats here as Redis counts it.
unsafe fn push_err(state: *mut ffi::lua_State, text: &str) {
    if let Some(site) = SITE.get() {
        (*site.server).stats.count_error("ERR");
    }
    ffi::lua_createtable(state, 0, 2);
    ffi::lua_pushlstring(state, c"err".as_ptr(), 3);
    ffi::lua_pushlstring(state, c"ERR ".as_ptr(), 4);
    ffi::lua_pushlstring(state, text.as_ptr().cast(), text.len());
    ffi::lua_concat(state, 2);
    ffi::lua_rawset(state, -3);
    convert::mark_counted(state);
}

/// The Rust part of [`redis_call`]: runs the command named by stack slots
/// 1..=n and returns where its reply lies (in the call site's buffer), or
/// the error text for a call Redis refuses.
unsafe fn run_call(
    state: *mut ffi::lua_State,
    n: c_int,
    resp3: bool,
) -> Result<(*const u8, usize), &'static str> {
    if n == 0 {
        return Err("Please specify at least one argument for this redis lib call");
    }
    let Some(site) = SITE.get() else {
        return Err("redis.call is only available while a script runs");
    };
    let mut argv: smallvec::SmallVec<[&[u8]; 8]> = smallvec::SmallVec::new();
    for i in 1..=n {
        if ffi::lua_type(state, i) != ffi::LUA_TSTRING {
            return Err("Lua redis lib command arguments must be strings or integers");
        }
        let mut len = 0;
        let data = ffi::lua_tolstring(state, i, &mut len);
        // SAFETY: the string stays on the stack until this call returns.
        argv.push(std::slice::from_raw_parts(data.cast(), len));
    }
    // SAFETY: Engine::run set the site to values that outlive its call
    // into Lua and clears it before they go; this runs inside that call, on
    // its thread. The site is taken while the command runs, so a nested
    // call (none can happen: commands do not run Lua) would find it empty
    // rather than make a second `&mut`.
    SITE.set(None);
    let out = run_command(&site, &argv, resp3);
    SITE.set(Some(site));
    out
}

/// Runs one command for `redis.call` after Redis's checks.
unsafe fn run_command(
    site: &CallSite,
    argv: &[&[u8]],
    resp3: bool,
) -> Result<(*const u8, usize), &'static str> {
    let (server, client, busy) = (&*site.server, &mut *site.client, &*site.busy);
    if busy.moved() {
        // The inline run is void; running more of it could leak effects.
        return Err(MOVED.trim_start_matches("ERR "));
    }
    let r = match server.commands.resolve(argv) {
        Ok(r) => r,
        Err(CmdError::WrongArity(_)) => {
            server.commands.note_rejected(argv);
            return Err("Wrong number of args calling Redis command from script");
        }
        Err(_) => return Err("Unknown Redis command called from script"),
    };
    if r.cmd.has(flags::NOSCRIPT) {
        return Err("This Redis command is not allowed from script");
    }
    if r.cmd.has(flags::WRITE) {
        if site.read_only {
            return Err("Write commands are not allowed from read-only scripts.");
        }
        busy.wrote.store(true, SeqCst);
    }
    if r.cmd.flags & (flags::WRITE | flags::MAY_REPLICATE | flags::PUBSUB | flags::ADMIN) != 0 {
        busy.effects();
    }
    let reply = &mut *site.reply;
    reply.buf.clear();
    reply.proto = if resp3 {
        Protocol::Resp3
    } else {
        Protocol::Resp2
    };
    command::run_in_script(server, client, reply, &r, argv, site.now_ms);
    Ok((reply.buf.as_ptr(), reply.buf.len()))
}

/// Reads redis.register_function's arguments: positional (name, callback)
/// or one table {function_name=, callback=, flags=, description=}.
fn register_args(args: &MultiValue) -> Result<(FunctionInfo, Function), &'static str> {
    let (name, callback, flags, description) = match args.len() {
        1 => {
            let Some(Value::Table(t)) = args.front() else {
                return Err("calling redis.register_function with a single argument is only applicable to Lua table (representing named arguments).");
            };
            let (mut name, mut callback, mut flags, mut description) = (None, None, None, None);
            for pair in t.pairs::<Value, Value>() {
                let (k, v) =
                    pair.map_err(|_| "unknown argument given to redis.register_function")?;
                let key =
                    match &k {
                        Value::String(s) => s.as_bytes().to_vec(),
                        _ => return Err(
                            "named argument key given to redis.register_function is not a string",
                        ),
                    };
                match key.as_slice() {
                    b"function_name" => name = Some(v),
                    b"callback" => callback = Some(v),
                    b"flags" => flags = Some(v),
                    b"description" => description = Some(v),
                    _ => return Err("unknown argument given to redis.register_function"),
                }
            }
            (name, callback, flags, description)
        }
        2 => (args.front().cloned(), args.get(1).cloned(), None, None),
        _ => return Err("wrong number of arguments to redis.register_function"),
    };
    let name = match name {
        Some(Value::String(s)) => s.to_string_lossy(),
        None => return Err("redis.register_function must get a function name argument"),
        _ => {
            return Err("function_name argument given to redis.register_function must be a string")
        }
    };
    let callback = match callback {
        Some(Value::Function(f)) => f,
        None => return Err("redis.register_function must get a callback argument"),
        _ if args.len() == 2 => {
            return Err("second argument to redis.register_function must be a function")
        }
        _ => return Err("callback argument given to redis.register_function must be a function"),
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err("Library names can only contain letters, numbers, or underscores(_) and must be at least one character long");
    }
    let description = match description {
        None => None,
        Some(Value::String(s)) => Some(s.as_bytes().to_vec()),
        _ => return Err("description argument given to redis.register_function must be a string"),
    };
    let flags = match flags {
        None => 0,
        Some(Value::Table(t)) => {
            let mut bits = 0;
            for v in t.sequence_values::<Value>() {
                let Ok(Value::String(s)) = v else {
                    return Err("unknown flag given");
                };
                bits |= script_flags::parse(&s.as_bytes()).ok_or("unknown flag given")?;
            }
            bits
        }
        _ => return Err(
            "flags argument to redis.register_function must be a table representing function flags",
        ),
    };
    Ok((
        FunctionInfo {
            name,
            description,
            flags,
        },
        callback,
    ))
}

/// The library name from a `#!lua name=<lib>` first line, with Redis's
/// errors.
fn library_name(code: &[u8]) -> Result<String, CmdError> {
    if !code.starts_with(b"#!") {
        return Err(CmdError::Static("ERR Missing library metadata"));
    }
    let Some(end) = code.iter().position(|&b| b == b'\n') else {
        return Err(CmdError::Static("ERR Invalid library metadata"));
    };
    let line = String::from_utf8_lossy(&code[2..end]);
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or_default();
    if !engine.eq_ignore_ascii_case("lua") {
        return Err(CmdError::Owned(format!("ERR Engine '{engine}' not found")));
    }
    let mut name = None;
    for part in parts {
        match part.strip_prefix("name=") {
            Some(n) => name = Some(n.to_string()),
            None => {
                return Err(CmdError::Owned(format!(
                    "ERR Invalid metadata value given: {part}"
                )))
            }
        }
    }
    let name = name.ok_or(CmdError::Static("ERR Library name was not given"))?;
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(CmdError::Static("ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long"));
    }
    Ok(name)
}

/// The flags of an EVAL script: from its `#!lua flags=...` line, or
/// compatibility mode without one. Errors are Redis's.
fn eval_flags(body: &[u8]) -> Result<u32, CmdError> {
    if !body.starts_with(b"#!") {
        return Ok(script_flags::EVAL_COMPAT);
    }
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    let line = String::from_utf8_lossy(&body[..end]);
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let engine = parts.next().unwrap_or_default();
    if engine != "#!lua" {
        return Err(CmdError::Owned(format!(
            "ERR Unexpected engine in script shebang: {engine}"
        )));
    }
    let mut flags = 0;
    for part in parts {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(CmdError::Owned(format!(
                "ERR Unknown lua shebang option: {part}"
            )));
        };
        for name in list.split(',').filter(|n| !n.is_empty()) {
            flags |= script_flags::parse(name.as_bytes()).ok_or_else(|| {
                CmdError::Owned(format!("ERR Unexpected flag in script shebang: {name}"))
            })?;
        }
    }
    Ok(flags)
}

/// A `#!` first line is not Lua: it is blanked so that line numbers stay
/// those of the source.
fn strip_shebang(body: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if !body.starts_with(b"#!") {
        return body.into();
    }
    let end = body.iter().position(|&b| b == b'\n').unwrap_or(body.len());
    body[end..].to_vec().into()
}

/// The message Lua gave for a compile error, without mlua's decoration.
fn lua_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

fn internal_error(e: mlua::Error) -> CmdError {
    CmdError::Owned(format!(
        "ERR {}",
        lua_message(&e).replace(['\r', '\n'], " ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One overrun (the loop's thread preempted, say) does not send a
    /// script to the script thread for good; overruns in a row do, and a
    /// run within the budget starts the count again.
    #[test]
    fn a_script_starts_on_the_script_thread_after_overruns_in_a_row() {
        let mut engine = Engine::new(Arc::default()).expect("engine");
        for _ in 0..5 {
            engine.note_inline_run("a", true);
            engine.note_inline_run("a", false);
        }
        assert!(!engine.is_slow("a"));
        for _ in 1..OVERRUNS_TO_SLOW {
            engine.note_inline_run("a", true);
        }
        assert!(!engine.is_slow("a"));
        engine.note_inline_run("a", true);
        assert!(engine.is_slow("a"));
        assert!(!engine.is_slow("b"));
        engine.flush_scripts();
        assert!(!engine.is_slow("a"));
    }
}
