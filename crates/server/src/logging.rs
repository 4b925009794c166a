//! Logging through `tracing`, with Redis's level names (`loglevel`) and
//! destination (`logfile`: empty for standard output).

use tracing_subscriber::filter::LevelFilter;

use crate::config::Config;

/// Keeps the log writer alive; dropping it flushes the log.
pub type Guard = Option<tracing_appender::non_blocking::WorkerGuard>;

pub fn init(config: &Config) -> std::io::Result<Guard> {
    let level = match config.get("loglevel").as_str() {
        "debug" => LevelFilter::DEBUG,
        "verbose" => LevelFilter::INFO,
        "notice" => LevelFilter::INFO,
        "warning" => LevelFilter::WARN,
        _ => LevelFilter::OFF,
    };
    let logfile = config.get("logfile");
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false)
        .with_ansi(false);
    if logfile.is_empty() {
        let _ = builder.try_init();
        return Ok(None);
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&logfile)?;
    let (writer, guard) = tracing_appender::non_blocking(file);
    let _ = builder.with_writer(writer).try_init();
    Ok(Some(guard))
}
