//! INFO: the server's state as Redis's `# Section` blocks of `field:value`
//! lines (CRLF-terminated), with Redis's field names so that monitoring
//! tools read it unchanged. Only fields ferrokv actually knows are shown.

use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

use super::super::{acl, flags, CmdError, Command, Ctx};
use crate::Server;

pub const INFO: Command = super::entry(
    "info",
    -1,
    flags::LOADING | flags::STALE,
    acl::DANGEROUS,
    info,
    "server",
    "Get information and statistics about the server",
    "1.0.0",
);

/// A section: its name for selection, its header and its writer.
struct Section {
    name: &'static str,
    header: &'static str,
    /// Part of the sections shown by a bare INFO (and "default").
    default: bool,
    write: fn(&Server, &mut String),
}

/// In output order, which does not depend on the order asked for.
const SECTIONS: &[Section] = &[
    Section {
        name: "server",
        header: "Server",
        default: true,
        write: server,
    },
    Section {
        name: "clients",
        header: "Clients",
        default: true,
        write: clients,
    },
    Section {
        name: "memory",
        header: "Memory",
        default: true,
        write: memory,
    },
    Section {
        name: "persistence",
        header: "Persistence",
        default: true,
        write: persistence,
    },
    Section {
        name: "stats",
        header: "Stats",
        default: true,
        write: stats,
    },
    Section {
        name: "replication",
        header: "Replication",
        default: true,
        write: replication,
    },
    Section {
        name: "cpu",
        header: "CPU",
        default: true,
        write: cpu,
    },
    Section {
        name: "modules",
        header: "Modules",
        default: true,
        write: |_, _| {},
    },
    Section {
        name: "commandstats",
        header: "Commandstats",
        default: false,
        write: commandstats,
    },
    Section {
        name: "errorstats",
        header: "Errorstats",
        default: true,
        write: errorstats,
    },
    Section {
        name: "latencystats",
        header: "Latencystats",
        default: false,
        write: latencystats,
    },
    Section {
        name: "cluster",
        header: "Cluster",
        default: true,
        write: cluster,
    },
    Section {
        name: "keyspace",
        header: "Keyspace",
        default: true,
        write: keyspace,
    },
];

/// INFO [section ...]: a bulk string (verbatim text in RESP3) of the
/// chosen sections; "default" (or nothing) for the usual ones, "all" and
/// "everything" for all of them. Unknown names select nothing.
fn info(ctx: &mut Ctx<'_>, argv: &[&[u8]]) -> Result<(), CmdError> {
    let mut chosen = [false; SECTIONS.len()];
    if argv.len() == 1 {
        mark_default(&mut chosen);
    }
    for arg in &argv[1..] {
        let arg = String::from_utf8_lossy(arg).to_ascii_lowercase();
        match arg.as_str() {
            "default" => mark_default(&mut chosen),
            "all" | "everything" => chosen = [true; SECTIONS.len()],
            name => {
                if let Some(i) = SECTIONS.iter().position(|s| s.name == name) {
                    chosen[i] = true;
                }
            }
        }
    }
    let mut out = String::new();
    for (section, _) in SECTIONS.iter().zip(chosen).filter(|(_, on)| *on) {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let _ = write!(out, "# {}\r\n", section.header);
        (section.write)(ctx.server, &mut out);
    }
    ctx.reply.verbatim(out.as_bytes());
    Ok(())
}

fn mark_default(chosen: &mut [bool]) {
    for (c, s) in chosen.iter_mut().zip(SECTIONS) {
        *c |= s.default;
    }
}

/// Appends `name:value\r\n` lines.
macro_rules! fields {
    ($out:expr, $($name:literal => $value:expr),* $(,)?) => {
        $( let _ = write!($out, concat!($name, ":{}\r\n"), $value); )*
    };
}

fn server(s: &Server, out: &mut String) {
    let uptime = s.started.elapsed().as_secs();
    let now_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0);
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let config_file = s
        .config
        .file
        .as_ref()
        .map(|p| {
            std::fs::canonicalize(p)
                .unwrap_or_else(|_| p.clone())
                .display()
                .to_string()
        })
        .unwrap_or_default();
    let hz = s.config.hz.load(Relaxed);
    let port = s.bound.lock().first().map(|a| a.port()).unwrap_or(0);
    let loop_clients = s
        .loop_clients
        .iter()
        .map(|n| n.load(Relaxed).to_string())
        .collect::<Vec<_>>()
        .join(",");
    fields!(out,
        "redis_version" => crate::REDIS_VERSION,
        // What Redis shows when it was not built from a git checkout.
        "redis_git_sha1" => "00000000",
        "redis_git_dirty" => 0,
        "ferrokv_version" => env!("CARGO_PKG_VERSION"),
        "redis_mode" => "standalone",
        "os" => os_name(),
        "arch_bits" => usize::BITS,
        "monotonic_clock" => "POSIX clock_gettime",
        "multiplexing_api" => "epoll",
        "process_id" => std::process::id(),
        "process_supervised" => "no",
        "run_id" => s.run_id,
        "tcp_port" => port,
        "server_time_usec" => now_us,
        "uptime_in_seconds" => uptime,
        "uptime_in_days" => uptime / 86400,
        "hz" => hz,
        "configured_hz" => hz,
        "lru_clock" => crate::store::lru_clock(crate::now_ms()),
        "executable" => exe,
        "config_file" => config_file,
        "io_threads_active" => 0,
        "server_threads" => s.threads,
        "loop_clients" => loop_clients,
        "loops_active" => s.scaling.active(),
    );
}

/// `uname -srm`, as Redis shows it.
fn os_name() -> String {
    // Safety: uname fills the struct we pass; its fields are NUL-terminated.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return String::new();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!(
        "{} {} {}",
        field(&u.sysname),
        field(&u.release),
        field(&u.machine)
    )
}

fn clients(s: &Server, out: &mut String) {
    fields!(out,
        "connected_clients" => s.clients.len(),
        "cluster_connections" => 0,
        "maxclients" => s.config.maxclients.load(Relaxed),
        "blocked_clients" => s.blocking.len(),
        "tracking_clients" => 0,
    );
}

/// Redis's bytesToHuman: B, K, M, G ... with two decimals.
fn human(n: u64) -> String {
    let d = n as f64;
    const UNITS: &[(f64, &str)] = &[
        (1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0, "P"),
        (1024.0 * 1024.0 * 1024.0 * 1024.0, "T"),
        (1024.0 * 1024.0 * 1024.0, "G"),
        (1024.0 * 1024.0, "M"),
        (1024.0, "K"),
    ];
    for (size, unit) in UNITS {
        if d >= *size {
            return format!("{:.2}{unit}", d / size);
        }
    }
    format!("{n}B")
}

/// Allocator and kernel figures, and what scripting holds. Scripts and
/// functions share one Lua VM here (Redis has one each), so the VM is
/// shown as the EVAL one and as the total, and there is no
/// used_memory_vm_functions.
/// A ratio as Redis prints it, with two decimals (0 when undefined).
fn ratio(num: u64, den: u64) -> String {
    if den == 0 {
        return "0.00".to_string();
    }
    format!("{:.2}", num as f64 / den as f64)
}

fn memory(s: &Server, out: &mut String) {
    let heap = crate::stats::allocator();
    let used = s.stats.note_memory(heap.allocated);
    let peak = s.stats.peak_memory.load(Relaxed);
    let rss = crate::stats::rss_bytes();
    let system = crate::stats::system_memory();
    let f = &s.scripting.figures;
    let vm = f.vm_bytes.load(Relaxed) as u64;
    let (scripts_bytes, functions_bytes) = (
        f.scripts_bytes.load(Relaxed) as u64,
        f.functions_bytes.load(Relaxed) as u64,
    );
    fields!(out,
        "used_memory" => used,
        "used_memory_human" => human(used),
        "used_memory_rss" => rss,
        "used_memory_rss_human" => human(rss),
        "used_memory_peak" => peak,
        "used_memory_peak_human" => human(peak),
        "used_memory_peak_perc" => format!("{:.2}%", used as f64 * 100.0 / peak.max(1) as f64),
        "allocator_allocated" => heap.allocated,
        "allocator_active" => heap.active,
        "allocator_resident" => heap.resident,
        "total_system_memory" => system,
        "total_system_memory_human" => human(system),
        "used_memory_lua" => vm,
        "used_memory_vm_eval" => vm,
        "used_memory_lua_human" => human(vm),
        "used_memory_scripts_eval" => scripts_bytes,
        "number_of_cached_scripts" => f.scripts.load(Relaxed),
        "number_of_functions" => f.functions.load(Relaxed),
        "number_of_libraries" => f.libraries.load(Relaxed),
        "used_memory_vm_total" => vm,
        "used_memory_vm_total_human" => human(vm),
        "used_memory_functions" => functions_bytes,
        "used_memory_scripts" => scripts_bytes + functions_bytes,
        "used_memory_scripts_human" => human(scripts_bytes + functions_bytes),
        "maxmemory" => 0,
        "maxmemory_human" => "0B",
        "maxmemory_policy" => "noeviction",
        "allocator_frag_ratio" => ratio(heap.active, heap.allocated),
        "allocator_frag_bytes" => heap.active as i64 - heap.allocated as i64,
        "allocator_rss_ratio" => ratio(heap.resident, heap.active),
        "allocator_rss_bytes" => heap.resident as i64 - heap.active as i64,
        "rss_overhead_ratio" => ratio(rss, heap.resident),
        "rss_overhead_bytes" => rss as i64 - heap.resident as i64,
        "mem_fragmentation_ratio" => ratio(rss, used),
        "mem_fragmentation_bytes" => rss as i64 - used as i64,
        "mem_allocator" => "jemalloc",
        "lazyfree_pending_objects" => crate::store::lazyfree::pending(),
        "lazyfreed_objects" => crate::store::lazyfree::freed(),
    );
}

/// RDB and AOF state in Redis's field names. There is no fork, so the
/// copy-on-write figures are what a snapshot holds beside the data set:
/// `current_cow_*` for the one being written (always current, hence an
/// age of 0), `rdb_last_cow_size` and `aof_last_cow_size` the peaks of the
/// last BGSAVE and AOF rewrite; ferrokv's own `rdb_last_kept_keys` counts
/// the keys writers kept records of. `aof_last_rewrite_time_sec` is -1
/// until a rewrite succeeded.
fn persistence(s: &Server, out: &mut String) {
    let p = &s.persist;
    let ok = |b: bool| if b { "ok" } else { "err" };
    let (rewriting, scheduled) = crate::persist::aof::rewrite_state(s);
    let rewrites = p.aof.rewrites.load(Relaxed);
    let last_rewrite = match rewrites {
        0 => -1,
        _ => p.aof.last_rewrite_secs.load(Relaxed) as i64,
    };
    let current = p.current_save();
    let perc = if current.total > 0 {
        current.processed as f64 * 100.0 / current.total as f64
    } else {
        0.0
    };
    fields!(out,
        "loading" => 0,
        "async_loading" => 0,
        "current_cow_peak" => current.peak,
        "current_cow_size" => current.held,
        "current_cow_size_age" => 0,
        "current_fork_perc" => format!("{perc:.2}"),
        "current_save_keys_processed" => current.processed,
        "current_save_keys_total" => current.total,
        "rdb_changes_since_last_save" => p.changes_since_save(s),
        "rdb_bgsave_in_progress" => p.bgsave_in_progress() as u8,
        "rdb_last_save_time" => p.last_save.load(Relaxed),
        "rdb_last_bgsave_status" => ok(p.last_bgsave_ok.load(Relaxed)),
        "rdb_last_bgsave_time_sec" => p.last_bgsave_secs.load(Relaxed),
        "rdb_current_bgsave_time_sec" => p.current_bgsave_secs(),
        "rdb_saves" => p.saves.load(Relaxed),
        "rdb_last_cow_size" => p.last_peak_frozen.load(Relaxed),
        "rdb_last_kept_keys" => p.last_kept_keys.load(Relaxed),
        "rdb_last_load_keys_expired" => p.loaded_expired.load(Relaxed),
        "rdb_last_load_keys_loaded" => p.loaded_keys.load(Relaxed),
        "aof_enabled" => p.aof.enabled() as u8,
        "aof_rewrite_in_progress" => rewriting.is_some() as u8,
        "aof_rewrite_scheduled" => scheduled as u8,
        "aof_last_rewrite_time_sec" => last_rewrite,
        "aof_current_rewrite_time_sec" => rewriting.map_or(-1, |t| t.elapsed().as_secs() as i64),
        "aof_last_bgrewrite_status" => ok(!p.aof.last_rewrite_failed.load(Relaxed)),
        "aof_rewrites" => rewrites,
        "aof_last_write_status" => ok(!p.aof.enabled() || p.aof.last_write_ok.load(Relaxed)),
        "aof_last_cow_size" => p.last_rewrite_peak_frozen.load(Relaxed),
    );
    if p.aof.enabled() {
        fields!(out,
            "aof_current_size" => p.aof.current_size.load(Relaxed),
            "aof_base_size" => p.aof.base_size.load(Relaxed),
        );
    }
}

fn stats(s: &Server, out: &mut String) {
    let st = &s.stats;
    let rates = st.instantaneous();
    fields!(out,
        "total_connections_received" => st.connections_received.load(Relaxed),
        "total_commands_processed" => st.commands.get(),
        "instantaneous_ops_per_sec" => rates.ops,
        "total_net_input_bytes" => st.net_input_bytes.get(),
        "total_net_output_bytes" => st.net_output_bytes.get(),
        "instantaneous_input_kbps" => format!("{:.2}", rates.input_kbps),
        "instantaneous_output_kbps" => format!("{:.2}", rates.output_kbps),
        "rejected_connections" => st.rejected_connections.load(Relaxed),
        "expired_keys" => st.expired_keys.get(),
        "expired_stale_perc" => format!("{:.2}", st.expired_stale_perc()),
        "expired_time_cap_reached_count" => st.expire_time_cap_reached.load(Relaxed),
        "expire_cycle_cpu_milliseconds" => st.expire_cycle_usec.load(Relaxed) / 1000,
        "evicted_keys" => 0,
        "keyspace_hits" => st.keyspace_hits.get(),
        "keyspace_misses" => st.keyspace_misses.get(),
        "pubsub_channels" => s.pubsub.len(crate::pubsub::Kind::Channel),
        "pubsub_patterns" => s.pubsub.len(crate::pubsub::Kind::Pattern),
        "pubsubshard_channels" => s.pubsub.len(crate::pubsub::Kind::Shard),
        "latest_fork_usec" => 0,
        "total_forks" => 0,
        "total_error_replies" => st.error_replies.load(Relaxed),
        "total_reads_processed" => st.reads_processed.get(),
        "total_writes_processed" => st.writes_processed.get(),
    );
}

fn replication(s: &Server, out: &mut String) {
    fields!(out,
        "role" => "master",
        "connected_slaves" => 0,
        "master_failover_state" => "no-failover",
        "master_replid" => s.replid,
        "master_replid2" => "0000000000000000000000000000000000000000",
        "master_repl_offset" => 0,
        "second_repl_offset" => -1,
        "repl_backlog_active" => 0,
    );
}

fn cpu(_s: &Server, out: &mut String) {
    let (user, sys) = crate::stats::cpu_times();
    fields!(out,
        "used_cpu_sys" => format!("{sys:.6}"),
        "used_cpu_user" => format!("{user:.6}"),
        "used_cpu_sys_children" => "0.000000",
        "used_cpu_user_children" => "0.000000",
    );
}

fn commandstats(s: &Server, out: &mut String) {
    for (name, st) in s.commands.with_stats() {
        let [calls, usec, rejected, failed] = st;
        if calls == 0 && rejected == 0 && failed == 0 {
            continue;
        }
        let per_call = if calls > 0 {
            usec as f64 / calls as f64
        } else {
            0.0
        };
        let _ = write!(
            out,
            "cmdstat_{name}:calls={calls},usec={usec},usec_per_call={per_call:.2},rejected_calls={rejected},failed_calls={failed}\r\n"
        );
    }
}

fn errorstats(s: &Server, out: &mut String) {
    for (code, count) in s.stats.errors() {
        let _ = write!(out, "errorstat_{code}:count={count}\r\n");
    }
}

/// Redis's `latency-tracking-info-percentiles` default, and the labels
/// its `%f`-then-trimmed formatting gives them.
const PERCENTILES: [(f64, &str); 3] = [(50.0, "p50"), (99.0, "p99"), (99.9, "p99.9")];

fn latencystats(s: &Server, out: &mut String) {
    for (name, h) in s.commands.with_latencies() {
        if h.total() == 0 {
            continue;
        }
        let _ = write!(out, "latency_percentiles_usec_{name}:");
        for (i, (p, label)) in PERCENTILES.iter().enumerate() {
            let sep = if i + 1 < PERCENTILES.len() { "," } else { "" };
            let _ = write!(out, "{label}={:.3}{sep}", h.percentile_usec(*p));
        }
        out.push_str("\r\n");
    }
}

fn cluster(_s: &Server, out: &mut String) {
    fields!(out, "cluster_enabled" => 0);
}

/// `dbN:keys=…,expires=…,avg_ttl=…` for each non-empty database; avg_ttl
/// is the active expiry cycle's running estimate, as in Redis.
fn keyspace(s: &Server, out: &mut String) {
    for i in 0..s.keyspace.len() {
        let db = s.keyspace.db(i);
        let (keys, expires) = db.counts();
        if keys > 0 || expires > 0 {
            let avg_ttl = db.avg_ttl();
            let _ = write!(
                out,
                "db{i}:keys={keys},expires={expires},avg_ttl={avg_ttl}\r\n"
            );
        }
    }
}
