//! The slow log: commands that ran longer than `slowlog-log-slower-than`
//! microseconds, newest first, at most `slowlog-max-len` of them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use parking_lot::Mutex;

use crate::client::Client;
use crate::Server;

/// Redis keeps at most this many arguments and bytes per argument.
const MAX_ARGS: usize = 32;
const MAX_ARG_LEN: usize = 128;

pub struct Entry {
    pub id: u64,
    pub time: i64,
    pub usec: u64,
    pub args: Vec<Vec<u8>>,
    pub peer: String,
    pub name: Vec<u8>,
}

#[derive(Default)]
pub struct SlowLog {
    entries: Mutex<VecDeque<Entry>>,
    next_id: AtomicU64,
}

impl SlowLog {
    pub fn record(&self, server: &Server, client: &Client, argv: &[&[u8]], usec: u64) {
        let threshold = server.config.slowlog_slower_than.load(Relaxed);
        if threshold < 0 || (usec as i64) < threshold {
            return;
        }
        let keep = if argv.len() > MAX_ARGS {
            MAX_ARGS - 1
        } else {
            argv.len()
        };
        let mut args: Vec<Vec<u8>> = argv[..keep]
            .iter()
            .map(|a| {
                if a.len() > MAX_ARG_LEN {
                    let mut v = a[..MAX_ARG_LEN].to_vec();
                    v.extend_from_slice(
                        format!("... ({} more bytes)", a.len() - MAX_ARG_LEN).as_bytes(),
                    );
                    v
                } else {
                    a.to_vec()
                }
            })
            .collect();
        if argv.len() > MAX_ARGS {
            args.push(format!("... ({} more arguments)", argv.len() - keep).into_bytes());
        }
        let entry = Entry {
            id: self.next_id.fetch_add(1, Relaxed),
            time: crate::now_ms() / 1000,
            usec,
            args,
            peer: client.shared.addr.to_string(),
            name: client.shared.name(),
        };
        let max = server.config.slowlog_max_len.load(Relaxed) as usize;
        let mut entries = self.entries.lock();
        entries.push_front(entry);
        entries.truncate(max);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn reset(&self) {
        self.entries.lock().clear();
    }

    /// Calls `f` on the newest `count` entries.
    pub fn newest(&self, count: usize, mut f: impl FnMut(&Entry)) -> usize {
        let entries = self.entries.lock();
        let n = count.min(entries.len());
        entries.iter().take(n).for_each(&mut f);
        n
    }
}
