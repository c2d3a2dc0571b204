//! The request side of ingest, without HTTP or SQLite: a 100-run batch of
//! the `ingest_http` shape (5 record errors each, one run in 50 failed)
//! decoded and validated (`validate::parse_body`), then its derived columns
//! computed (`store::runs::Derived`: error classes, so a `signature` per
//! record error, and the JSON columns) — what a `POST /v1/runs` costs in CPU
//! before it queues for the writer. Criterion, so the figure holds on a
//! shared machine.
//!
//! `cargo bench --bench ingest_decode`.

mod support;

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use support::RunGen;
use syncwarden::ingest::{classes, validate};
use syncwarden::model::Timestamp;
use syncwarden::store::runs::Derived;

fn bench_decode(c: &mut Criterion) {
    let gen_ = RunGen::new(1_000);
    let body = gen_.batch_json(0, 100);
    let now = Timestamp::now();
    let runs = validate::parse_body(body.as_bytes(), now).expect("valid batch");
    let messages: Vec<String> = runs
        .iter()
        .flat_map(|r| r.record_errors.iter().map(|e| e.message.clone()))
        .collect();

    let mut g = c.benchmark_group("ingest_decode");
    g.throughput(Throughput::Elements(100));
    g.bench_function("parse_body, 100 runs", |b| {
        b.iter(|| validate::parse_body(black_box(body.as_bytes()), now).expect("valid"))
    });
    g.bench_function("parse_body + Derived, 100 runs", |b| {
        b.iter(|| {
            let runs = validate::parse_body(black_box(body.as_bytes()), now).expect("valid");
            runs.iter()
                .map(|r| Derived::of(r).expect("derived"))
                .collect::<Vec<_>>()
        })
    });
    g.throughput(Throughput::Elements(messages.len() as u64));
    g.bench_function("signature, 500 record errors", |b| {
        b.iter(|| {
            messages
                .iter()
                .map(|m| classes::signature(black_box(m)))
                .collect::<Vec<_>>()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_decode);

fn main() {
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
