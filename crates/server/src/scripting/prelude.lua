-- The sandbox, built once per VM by scripting::engine with the standard
-- libraries loaded. Runs with the real globals table; everything a script
-- can reach afterwards goes through the read-only proxies made here.
-- Arguments: the debug library (kept for the error handler only), the
-- table of Rust-implemented functions, and the `internal` table shared
-- with Rust (compiled scripts, functions, per-run state).
local dbg, rust, internal = ...
local G = _G
local error, type, tostring, setmetatable, getmetatable, rawset, select, unpack =
    error, type, tostring, setmetatable, getmetatable, rawset, select, unpack

-- Redis's __redis__err__handler: every error becomes a table carrying the
-- position of the script code that raised it. Frames of C functions and of
-- this prelude are skipped, so that an error raised by redis.call points
-- at its caller as in Redis.
local function handler(err)
  local level = 2
  local i = dbg.getinfo(level, 'nSl')
  while i and (i.what == 'C' or i.source == '=redis') do
    level = level + 1
    i = dbg.getinfo(level, 'nSl')
  end
  if type(err) ~= 'table' then
    err = {err = 'ERR ' .. tostring(err)}
  end
  if i then
    err['source'] = i.source
    err['line'] = i.currentline
  end
  return err
end

local protected = setmetatable({}, {__mode = 'k'})

local function readonly(t, missing)
  local proxy = setmetatable({}, {
    __index = missing and function(_, k)
      local v = t[k]
      if v == nil then
        error(missing .. tostring(k) .. "'", 2)
      end
      return v
    end or t,
    __newindex = function() error('Attempt to modify a readonly table', 2) end,
    __metatable = false,
  })
  protected[proxy] = true
  return proxy
end

local function guard(f)
  return function(t, ...)
    if protected[t] then
      error('Attempt to modify a readonly table', 0)
    end
    return f(t, ...)
  end
end

local function pack(...)
  return {n = select('#', ...), ...}
end

-- Rust functions return true and their results, or false and an error;
-- rust.lift wraps them in a C function that raises the error. The library
-- tables (bit, cjson, cmsgpack, struct) come wrapped already.
local lift = rust.lift

local function err_table(msg)
  return {err = 'ERR ' .. msg}
end

local redis = {
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
  REDIS_VERSION = rust.version, REDIS_VERSION_NUM = rust.version_num,
}

-- C functions made by scripting::engine (redis.call raises what
-- redis.pcall returns).
redis.call = internal.call
redis.pcall = internal.pcall

redis.sha1hex = lift(rust.sha1hex)
redis.log = lift(rust.log)

redis.setresp = lift(function(...)
  if select('#', ...) ~= 1 then
    return false, err_table('redis.setresp() requires one argument.')
  end
  local v = ...
  if v ~= 2 and v ~= 3 then
    return false, err_table('RESP version must be 2 or 3.')
  end
  internal.resp = v
  return true
end)

-- Redis's redis.error_reply and redis.status_reply.
redis.error_reply = function(...)
  local e = ...
  if select('#', ...) ~= 1 or type(e) ~= 'string' then
    return err_table('wrong number or type of arguments')
  end
  if e:sub(1, 1) ~= '-' then
    e = '-' .. e
  end
  local code, msg = e:match('^%-(%S*) (.*)$')
  if not code then
    code, msg = 'ERR', e:sub(2)
  end
  msg = msg:gsub('^[\r\n]+', ''):gsub('[\r\n]+$', '')
  return {err = code .. ' ' .. msg}
end

redis.status_reply = function(...)
  local s = ...
  if select('#', ...) ~= 1 or type(s) ~= 'string' then
    return err_table('wrong number or type of arguments')
  end
  return {ok = s}
end

-- Effects replication is the only mode since Redis 7.0: these remain for
-- old scripts.
redis.replicate_commands = function() return true end
redis.set_repl = lift(function(...)
  if select('#', ...) ~= 1 then
    return false, err_table('redis.set_repl() requires two arguments.')
  end
  local flags = ...
  if type(flags) ~= 'number' or flags < 0 or flags > 3 or flags % 1 ~= 0 then
    return false, err_table('Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.')
  end
  return true
end)
redis.breakpoint = function() return false end
redis.debug = function() end

-- What library code sees as `redis` while FUNCTION LOAD runs it.
local library_api = {
  register_function = lift(function(...) return internal.register(...) end),
  log = redis.log,
  setresp = redis.setresp,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REDIS_VERSION = rust.version, REDIS_VERSION_NUM = rust.version_num,
}

-- Redis's pcall hands scripts the message of an {err=...} error, not
-- the table.
local raw_pcall = pcall
G.pcall = function(...)
  local r = pack(raw_pcall(...))
  if not r[1] and type(r[2]) == 'table' then
    local e = r[2].err
    if type(e) == 'string' or type(e) == 'number' then
      r[2] = e
    end
  end
  return unpack(r, 1, r.n)
end
G.setmetatable = guard(setmetatable)
G.rawset = guard(rawset)
G.bit = rust.bit
G.cjson = rust.cjson
G.cmsgpack = rust.cmsgpack
G.struct = rust.struct
G.__redis__err__handler = handler

-- Redis 7.0 leaves these out of the scripting environment.
for _, name in ipairs({'print', 'dofile', 'loadfile', 'require', 'module',
    'setfenv', 'getfenv', 'newproxy', 'debug', 'os', 'io', 'package'}) do
  G[name] = nil
end

local globals = {}
for k, v in pairs(G) do
  globals[k] = v
end
for _, name in ipairs({'string', 'table', 'math', 'coroutine', 'bit', 'cjson',
    'cmsgpack', 'struct'}) do
  globals[name] = readonly(G[name])
end
getmetatable('').__index = globals.string
globals.redis = readonly(redis)
local missing = 'Script attempted to access nonexistent global variable \''
local loading_redis = readonly(library_api, missing)

-- The two environments: EVAL scripts see KEYS and ARGV, functions do not;
-- while a library loads, `redis` is the library API.
--
-- An environment is an empty proxy, so that every assignment reaches
-- __newindex and fails. Its reads go to `lookup`, a table holding the
-- globals (and, for EVAL, KEYS and ARGV): a global costs one table hit,
-- not a Lua call. Only what `lookup` lacks reaches its __index function.
-- Functions' `lookup` leaves `redis` out, since what it means depends on
-- whether a library is loading.
local function environment(for_eval)
  local env = {}
  local lookup = {}
  for k, v in pairs(globals) do
    lookup[k] = v
  end
  lookup._G = env
  if not for_eval then
    lookup.redis = nil
  end
  setmetatable(lookup, {
    __index = function(_, k)
      if k == 'redis' then
        return internal.loading and loading_redis or globals.redis
      end
      error(missing .. tostring(k) .. "'", 2)
    end,
  })
  setmetatable(env, {
    __index = lookup,
    __newindex = function() error('Attempt to modify a readonly table', 2) end,
    __metatable = false,
  })
  protected[env] = true
  return env, lookup
end

internal.eval_env, internal.eval_vars = environment(true)
internal.function_env = environment(false)
internal.handler = handler

-- Runs a library's code with the error handler; the results are (true) or
-- (false, error table). Scripts and functions get the handler from Rust.
internal.run = function(f)
  return xpcall(f, handler)
end
