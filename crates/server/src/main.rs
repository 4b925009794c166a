//! The `ferrokv` binary: `ferrokv [config-file] [--directive value ...]`,
//! as redis-server takes them.

use std::process::ExitCode;
use std::sync::Arc;

use ferrokv::config::Config;
use ferrokv::Server;

#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("ferrokv-worker")
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ferrokv: can't start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let server = Server::new(config, threads);
    match runtime.block_on(run(server)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("ferrokv: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(server: Arc<Server>) -> std::io::Result<()> {
    let dir = server.config.get("dir");
    std::env::set_current_dir(&dir)
        .map_err(|e| std::io::Error::new(e.kind(), format!("can't chdir to '{dir}': {e}")))?;
    let listeners = ferrokv::net::bind(&server).await?;
    let addrs: Vec<String> = server.bound.lock().iter().map(|a| a.to_string()).collect();
    tracing::info!(
        "ferrokv {} (Redis {} compatible) ready to accept connections on {} with {} worker thread(s)",
        env!("CARGO_PKG_VERSION"),
        ferrokv::REDIS_VERSION,
        addrs.join(", "),
        server.threads
    );
    let mut tasks = Vec::new();
    for l in listeners {
        tasks.push(tokio::spawn(ferrokv::net::serve(server.clone(), l)));
    }
    let expirer = {
        let server = server.clone();
        std::thread::Builder::new()
            .name("ferrokv-expire".into())
            .spawn(move || ferrokv::store::expire::run(server))?
    };
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut stop = server.shutdown.subscribe();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::warn!("Received SIGINT scheduling shutdown..."),
        _ = sigterm.recv() => tracing::warn!("Received SIGTERM scheduling shutdown..."),
        _ = stop.wait_for(|s| *s) => tracing::warn!("User requested shutdown..."),
    }
    server.request_shutdown();
    for t in tasks {
        let _ = t.await;
    }
    // Connection tasks see the same signal; give in-flight replies a moment.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(500);
    while !server.clients.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let _ = tokio::task::spawn_blocking(move || expirer.join()).await;
    tracing::warn!("ferrokv is now ready to exit, bye bye...");
    Ok(())
}
