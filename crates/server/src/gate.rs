//! The exclusive gate: how scripts, and transactions that cannot lock just
//! their keys (crate::command::transactions), run with every other command
//! held off, on all cores, without a global lock on the hot path.
//!
//! Every event loop (and the expiry thread) has its own reader-writer lock,
//! each on its own cache line. An ordinary command takes its own loop's
//! lock for reading, which nothing else touches, so it costs an uncontended
//! atomic. An exclusive command takes every lock for writing, in index
//! order, so it waits for the commands running on other loops to finish and
//! keeps new ones out until it is done: the same isolation Redis's single
//! thread gives a transaction.
//!
//! A connection keeps what it took ([`Held`]) across the requests of one
//! read, as Redis runs a client's whole query buffer before it looks at
//! another: a pipeline of 16 scripts then waits for the other loops once,
//! not 16 times, and ordinary commands pay no atomic each.

use std::time::Duration;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

#[repr(align(128))]
struct Padded(RwLock<()>);

pub struct Gates {
    gates: Box<[Padded]>,
}

/// Holds off exclusive commands while an ordinary command runs.
pub type Shared<'a> = RwLockReadGuard<'a, ()>;

/// Holds off every other command while an exclusive one runs.
pub struct Exclusive<'a> {
    // Inline: taken for every script and most transactions.
    _guards: smallvec::SmallVec<[RwLockWriteGuard<'a, ()>; 8]>,
}

/// What a connection holds while it runs the requests of one read.
#[derive(Default)]
pub enum Held<'a> {
    #[default]
    Nothing,
    Shared(Shared<'a>),
    Exclusive(Exclusive<'a>),
}

impl Gates {
    /// Makes `held` cover a command on loop `index` that needs the gate
    /// exclusively or not, taking (within `wait`) what is missing. An
    /// exclusive hold covers ordinary commands too. False when the gate was
    /// not free in time; `held` is then empty.
    pub fn hold<'a>(
        &'a self,
        held: &mut Held<'a>,
        index: usize,
        exclusive: bool,
        wait: Duration,
    ) -> bool {
        match (&*held, exclusive) {
            (Held::Exclusive(_), _) | (Held::Shared(_), false) => return true,
            _ => {}
        }
        // Ours first: taking every gate while holding our own for reading
        // would wait for ourselves.
        *held = Held::Nothing;
        *held = if exclusive {
            match self.try_exclusive_for(wait) {
                Some(all) => Held::Exclusive(all),
                None => return false,
            }
        } else {
            match self.try_shared_for(index, wait) {
                Some(mine) => Held::Shared(mine),
                None => return false,
            }
        };
        true
    }

    /// `n` gates: one per event loop plus one per background task that
    /// touches the keyspace.
    pub fn new(n: usize) -> Gates {
        Gates {
            gates: (0..n.max(1)).map(|_| Padded(RwLock::new(()))).collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.gates.len()
    }

    pub fn is_empty(&self) -> bool {
        self.gates.is_empty()
    }

    pub fn shared(&self, index: usize) -> Shared<'_> {
        self.gates[index % self.gates.len()].0.read()
    }

    /// Like [`shared`](Self::shared), giving up after `wait`.
    pub fn try_shared_for(&self, index: usize, wait: Duration) -> Option<Shared<'_>> {
        self.gates[index % self.gates.len()].0.try_read_for(wait)
    }

    /// Like [`exclusive`](Self::exclusive), giving up (and releasing what
    /// it took) when a gate is not free within `wait`.
    pub fn try_exclusive_for(&self, wait: Duration) -> Option<Exclusive<'_>> {
        let mut guards = smallvec::SmallVec::new();
        for g in self.gates.iter() {
            guards.push(g.0.try_write_for(wait)?);
        }
        Some(Exclusive { _guards: guards })
    }

    pub fn exclusive(&self) -> Exclusive<'_> {
        Exclusive {
            _guards: self.gates.iter().map(|g| g.0.write()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(5);

    #[test]
    fn a_shared_hold_is_upgraded_for_an_exclusive_command() {
        let gates = Gates::new(3);
        let mut held = Held::Nothing;
        assert!(gates.hold(&mut held, 0, false, WAIT));
        assert!(matches!(held, Held::Shared(_)));
        // Another loop still runs beside a shared hold.
        assert!(gates.try_shared_for(1, Duration::ZERO).is_some());
        assert!(gates.hold(&mut held, 0, true, WAIT));
        assert!(matches!(held, Held::Exclusive(_)));
        assert!(gates.try_shared_for(1, Duration::ZERO).is_none());
        // An exclusive hold covers the ordinary commands that follow.
        assert!(gates.hold(&mut held, 0, false, WAIT));
        assert!(matches!(held, Held::Exclusive(_)));
        held = Held::Nothing;
        assert!(gates.try_shared_for(1, Duration::ZERO).is_some());
        drop(held);
    }

    #[test]
    fn an_exclusive_hold_not_free_in_time_leaves_nothing_held() {
        let gates = Gates::new(3);
        let other = gates.shared(1);
        let mut held = Held::Nothing;
        assert!(gates.hold(&mut held, 0, false, WAIT));
        assert!(!gates.hold(&mut held, 0, true, WAIT));
        assert!(matches!(held, Held::Nothing));
        // Nothing half-taken is left behind: our own gate is free again.
        assert!(gates.try_exclusive_for(Duration::ZERO).is_none());
        drop(other);
        assert!(gates.try_exclusive_for(Duration::ZERO).is_some());
    }
}
