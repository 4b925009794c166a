//! The `ferrokv` binary: `ferrokv [config-file] [--directive value ...]`,
//! as redis-server takes them.

use std::process::ExitCode;
use std::sync::Arc;

use ferrokv::config::Config;
use ferrokv::Server;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's `malloc_conf`, read when it starts: thread caches four times
/// jemalloc's default size for small objects (at most 1000 per size class).
/// Lua's collector frees thousands of small objects at once; with the
/// default caches most of those went back to the arenas and came out again
/// on the slow path, which profiles showed as about 9% of a short script's
/// CPU time (3.5% with this). `_RJEM_MALLOC_CONF` still overrides it.
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);

// SAFETY: the pointer is to a static, immutable, NUL-terminated string.
unsafe impl Sync for MallocConf {}

#[used]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: MallocConf =
    MallocConf(c"tcache_nslots_small_max:1000,lg_tcache_nslots_mul:2".as_ptr());

/// Turns `--port 7000 --bind a b` into directive lines, as redis-server
/// does: each `--name` starts a new line, the words after it are its values.
fn cli_directives(args: &[String]) -> String {
    let mut out = String::new();
    for arg in args {
        if let Some(name) = arg.strip_prefix("--") {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(name);
        } else {
            out.push(' ');
            out.push_str(&quote(arg));
        }
    }
    out
}

/// Quotes a value so the config reader sees it as one word.
fn quote(s: &str) -> String {
    if !s.is_empty()
        && !s.contains(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == '\\')
    {
        return s.to_string();
    }
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-v" || a == "--version") {
        println!(
            "ferrokv v={} (redis_version {})",
            env!("CARGO_PKG_VERSION"),
            ferrokv::REDIS_VERSION
        );
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("Usage: ferrokv [/path/to/ferrokv.conf] [--directive value ...]");
        println!("Example: ferrokv --port 7000 --bind 127.0.0.1 ::1 --requirepass s3cret");
        return ExitCode::SUCCESS;
    }
    let (file, rest) = match args.first() {
        Some(first) if !first.starts_with("--") => {
            (Some(std::path::PathBuf::from(first)), &args[1..])
        }
        _ => (None, &args[..]),
    };
    if let Some(stray) = rest.first().filter(|a| !a.starts_with("--")) {
        eprintln!("ferrokv: unexpected argument '{stray}' (directives are given as --name value)");
        return ExitCode::from(1);
    }
    let file_text = match &file {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!(
                    "Fatal error, can't open config file '{}': {e}",
                    path.display()
                );
                return ExitCode::from(1);
            }
        },
        None => String::new(),
    };
    let config = match Config::load(file, &file_text, &cli_directives(rest)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let _log_guard = match ferrokv::logging::init(&config) {
        Ok(g) => g,
        Err(e) => {
            eprintln!("ferrokv: can't open the log file: {e}");
            return ExitCode::from(1);
        }
    };
    let threads = match config.get_i64("server-threads") {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n as usize,
    };
    let server = Server::new(config, threads);
    if let Err(e) = ferrokv::scripting::spawn_thread(server.clone()) {
        eprintln!("ferrokv: can't start the script thread: {e}");
        return ExitCode::from(1);
    }
    let (loops, mut incoming) = ferrokv::net::Loops::new(threads);
    let loops = Arc::new(loops);
    // The overflow loop runs here, beside the accepting task; the event
    // loops get threads of their own.
    let overflow = incoming.len() - 1;
    let overflow_incoming = incoming.remove(overflow);
    let mut loop_threads = Vec::new();
    for (i, rx) in incoming.into_iter().enumerate() {
        let server = server.clone();
        let loops = loops.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("ferrokv-loop-{i}"))
            .spawn(move || match ferrokv::pass::runtime() {
                Ok(rt) => rt.block_on(ferrokv::net::event_loop(server, i, loops, rx)),
                Err(e) => eprintln!("ferrokv: can't start an event loop: {e}"),
            });
        match spawned {
            Ok(t) => loop_threads.push(t),
            Err(e) => {
                eprintln!("ferrokv: can't start an event loop thread: {e}");
                return ExitCode::from(1);
            }
        }
    }
    let rt = match ferrokv::pass::runtime() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferrokv: can't start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = rt.block_on(async {
        let main_loop = tokio::spawn(ferrokv::net::event_loop(
            server.clone(),
            overflow,
            loops.clone(),
            overflow_incoming,
        ));
        let result = run(server.clone(), loops).await;
        server.request_shutdown();
        let _ = main_loop.await;
        result
    });
    // Loops finish their replies within half a second of the shutdown; one
    // held by a script that SHUTDOWN NOSAVE cut short never does, and the
    // process exits without it, as Redis exits from inside its script hook.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while !loop_threads.iter().all(|t| t.is_finished()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ferrokv: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(server: Arc<Server>, loops: Arc<ferrokv::net::Loops>) -> std::io::Result<()> {
    // Handlers first: a signal that arrives once clients can connect must
    // shut down cleanly, not kill the process with the default action.
    use tokio::signal::unix::{signal, SignalKind};
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let dir = server.config.get("dir");
    std::env::set_current_dir(&dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("can't chdir to '{dir}': {e}")))?;
    // Before listening: no client may see a half-loaded data set, and a
    // damaged file stops the server here.
    ferrokv::persist::aof::load_at_start(&server).map_err(std::io::Error::other)?;
    let listeners = ferrokv::net::bind(&server).await?;
    let addrs: Vec<String> = server.bound.lock().iter().map(|a| a.to_string()).collect();
    tracing::info!(
        "ferrokv {} (Redis {} compatible) ready to accept connections on {} with {} event loop(s)",
        env!("CARGO_PKG_VERSION"),
        ferrokv::REDIS_VERSION,
        addrs.join(", "),
        server.threads
    );
    let mut tasks = Vec::new();
    for l in listeners {
        tasks.push(tokio::spawn(ferrokv::net::serve(
            server.clone(),
            l,
            loops.clone(),
        )));
    }
    let expirer = {
        let server = server.clone();
        std::thread::Builder::new()
            .name("ferrokv-expire".into())
            .spawn(move || ferrokv::store::expire::run(server))?
    };
    let saver = {
        let server = server.clone();
        std::thread::Builder::new()
            .name("ferrokv-save".into())
            .spawn(move || ferrokv::persist::run(server))?
    };
    let aof_sync = {
        let server = server.clone();
        std::thread::Builder::new()
            .name("ferrokv-aof-sync".into())
            .spawn(move || ferrokv::persist::aof::sync_thread(server))?
    };
    let mut stop = server.shutdown.subscribe();
    let signalled = tokio::select! {
        _ = sigint.recv() => {
            tracing::warn!("Received SIGINT scheduling shutdown...");
            true
        }
        _ = sigterm.recv() => {
            tracing::warn!("Received SIGTERM scheduling shutdown...");
            true
        }
        _ = stop.wait_for(|s| *s) => false,
    };
    server.request_shutdown();
    for t in tasks {
        let _ = t.await;
    }
    // On a signal, save as a no-argument SHUTDOWN would (SHUTDOWN itself
    // has saved already).
    let mut result = Ok(());
    if signalled && !server.config.get("save").is_empty() {
        let s = server.clone();
        let saved = tokio::task::spawn_blocking(move || {
            let _all = s.gates.exclusive();
            ferrokv::persist::save_for_shutdown(&s)
        })
        .await;
        if let Ok(Err(e)) = saved {
            result = Err(std::io::Error::other(format!(
                "Error trying to save the DB on shutdown: {e:?}"
            )));
        }
    }
    let _ = tokio::task::spawn_blocking(move || {
        let _ = expirer.join();
        let _ = saver.join();
        let _ = aof_sync.join();
    })
    .await;
    result?;
    tracing::warn!("ferrokv is now ready to exit, bye bye...");
    Ok(())
}
