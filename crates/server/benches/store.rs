//! Micro-benchmarks of the store's hot path: the lock + set/get sequence
//! every string command performs on small keys, and glob matching as KEYS
//! and SCAN MATCH run it once per key.
//!
//! Defaults are short (small samples, half-second warm-up); pass criterion
//! flags after `--` for longer runs, e.g.
//! `cargo bench -p ferrokv --bench store -- --measurement-time 10`.

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ferrokv::glob;
use ferrokv::store::{Keyspace, Value, ValueRef};

const KEYS: usize = 100_000;

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("key:{i:012}").into_bytes())
        .collect()
}

fn keyspace(c: &mut Criterion) {
    let keys = keys();
    let now = ferrokv::now_ms();
    let mut g = c.benchmark_group("keyspace");
    g.throughput(Throughput::Elements(1));

    // SET of an existing key (the steady state of redis-benchmark -t set -r N).
    let ks = Keyspace::new(16);
    for k in &keys {
        ks.lock(0, &[k], now)
            .set(k, Value::string(b"0123456789"), None);
    }
    let mut i = 0;
    g.bench_function("lock_set_overwrite", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            let k = &keys[i];
            let mut locked = ks.lock(0, &[k], now);
            locked
                .set(black_box(k), Value::string(b"0123456789"), None)
                .is_some()
        })
    });

    g.bench_function("lock_get_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % KEYS;
            let k = &keys[i];
            let mut locked = ks.lock(0, &[k], now);
            match locked.get(black_box(k)).as_deref().map(|e| e.value()) {
                Some(ValueRef::Emb(v)) => v.len(),
                Some(_) => 1,
                None => 0,
            }
        })
    });

    g.bench_function("lock_get_miss", |b| {
        let missing = b"no-such-key:000000";
        b.iter(|| {
            ks.lock(0, &[missing], now)
                .get(black_box(missing))
                .is_none()
        })
    });

    // INCR's shape: read an integer, write it back.
    let counter = b"counter";
    ks.lock(0, &[counter], now)
        .set(counter, Value::Int(0), None);
    g.bench_function("lock_incr", |b| {
        b.iter(|| {
            let mut locked = ks.lock(0, &[counter], now);
            let n = match locked.get(counter).as_deref().map(|e| e.value()) {
                Some(ValueRef::Int(n)) => n,
                _ => 0,
            };
            locked.set(counter, Value::Int(n.wrapping_add(1)), None);
        })
    });

    // MSET of 10 keys: one multi-shard lock, ten inserts.
    g.throughput(Throughput::Elements(10));
    g.bench_function("lock_mset_10", |b| {
        b.iter(|| {
            i = (i + 7919) % (KEYS - 10);
            let batch = &keys[i..i + 10];
            let mut locked = ks.lock(0, batch, now);
            for k in batch {
                locked.set(k, Value::string(b"0123456789"), None);
            }
        })
    });

    // Inserting fresh keys into an empty keyspace, growth and rehash included.
    g.throughput(Throughput::Elements(KEYS as u64));
    g.sample_size(10);
    g.bench_function("insert_100k_fresh", |b| {
        b.iter_batched(
            || Keyspace::new(1),
            |ks| {
                for k in &keys {
                    ks.lock(0, &[k], now)
                        .set(k, Value::string(b"0123456789"), None);
                }
                ks
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn glob_match(c: &mut Criterion) {
    let keys = keys();
    let mut g = c.benchmark_group("glob");
    g.throughput(Throughput::Elements(1000));
    let sample = &keys[..1000];
    let patterns: &[(&str, &[u8], bool)] = &[
        ("star", b"*", false),
        ("prefix", b"key:0000000001*", false),
        ("suffix", b"*99", false),
        ("class_and_any", b"key:0000000[0-4]??[^9]*", false),
        ("nocase", b"KEY:*5*", true),
        ("many_stars", b"*k*e*y*:*0*0*0*1*", false),
    ];
    for (name, pattern, nocase) in patterns {
        g.bench_function(*name, |b| {
            b.iter(|| {
                sample
                    .iter()
                    .filter(|k| glob::matches(black_box(pattern), k, *nocase))
                    .count()
            })
        });
    }
    // A pathological pattern against a long string: bounded by the
    // skip-longer rule, so it must stay cheap.
    g.throughput(Throughput::Elements(1));
    let long = vec![b'a'; 4096];
    let evil = b"a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
    g.bench_function("pathological_stars_4k", |b| {
        b.iter(|| glob::matches(black_box(evil), black_box(&long), false))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(1))
        .configure_from_args()
}

criterion_group! {
    name = benches;
    config = config();
    targets = keyspace, glob_match
}
criterion_main!(benches);
