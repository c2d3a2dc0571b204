//! Engine benchmarks: `backtest` over the `fleet-30d` history (target: under
//! 0.5 s) and raw verdict throughput of the core (target: ≥ 2 million
//! verdicts per second).
//!
//! `cargo bench --bench engine`. The fleet is read from `../shared`; when it
//! is absent the backtest benchmark is skipped with a note.
//!
//! Timings on a shared machine are noisy; instruction counts are not. With
//! `ENGINE_ONCE=core` (or `backtest`) the binary runs one pass of that
//! workload and exits, for `valgrind --tool=callgrind`:
//!
//! ```text
//! cargo bench --bench engine --no-run
//! ENGINE_ONCE=core valgrind --tool=callgrind target/release/deps/engine-<hash>
//! callgrind_annotate --inclusive=yes callgrind.out.<pid> | grep -E 'on_run|commit'
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use syncwarden::evaluate::{self, Engine, backtest};
use syncwarden::model::{RecordCounts, Run, RunStatus, Timestamp};

fn fleet() -> Option<(evaluate::RuleSet, Vec<Run>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/scenarios/fleet-30d");
    let rules = evaluate::load_dir(std::path::Path::new(&format!("{dir}/rules"))).ok()?;
    let text = std::fs::read_to_string(format!("{dir}/runs.ndjson")).ok()?;
    let runs = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| evaluate::parse_line(i + 1, l))
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some((rules, runs))
}

fn bench_backtest(c: &mut Criterion) {
    let Some((rules, runs)) = fleet() else {
        eprintln!("fleet-30d not found beside the repository: backtest benchmark skipped");
        return;
    };
    let mut g = c.benchmark_group("backtest");
    g.throughput(Throughput::Elements(runs.len() as u64));
    g.sample_size(20);
    g.bench_function("fleet-30d", |b| {
        b.iter(|| {
            let (notices, _) = backtest(rules.clone(), black_box(runs.clone()), None);
            black_box(notices.len())
        })
    });
    g.finish();
}

/// Runs for `syncs` syncs, each failing now and then, one minute apart.
fn synthetic(n: usize, syncs: usize) -> Vec<Run> {
    (0..n)
        .map(|i| {
            let failed = (i * 7919) % 13 == 0;
            Run {
                sync_id: format!("sync-{}", i % syncs),
                run_id: format!("r{i}"),
                status: if failed {
                    RunStatus::Failed
                } else {
                    RunStatus::Success
                },
                finished_at: Some(Timestamp(1_770_000_000_000 + i as i64 * 60_000)),
                started_at: None,
                records: RecordCounts {
                    processed: Some(1000),
                    failed: Some((i % 50) as u64),
                    ..RecordCounts::default()
                },
                error: None,
                record_errors: Vec::new(),
                url: None,
                source: None,
                labels: Default::default(),
            }
        })
        .collect()
}

fn core_rules() -> evaluate::RuleSet {
    evaluate::parse_str(
        "bench.toml",
        r#"
[[rule]]
name = "sync-broken"
match = { sync = "*" }
bad_when = { status = ["failed"], failed_ratio_above = 0.10 }
fire_after = 2
resolve_after = 2
flap = { window = 21, high = 0.45, low = 0.2 }
"#,
    )
    .expect("bench rules")
}

fn bench_core(c: &mut Criterion) {
    let rules = core_rules();
    let runs = synthetic(200_000, 1_000);
    let mut g = c.benchmark_group("core");
    g.throughput(Throughput::Elements(runs.len() as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("on_run (1,000 syncs, flap on)", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let mut engine = Engine::new(rules.clone());
                let start = Instant::now();
                for r in &runs {
                    black_box(engine.on_run(r));
                    // serve commits after every batch; the journal is part
                    // of the cost.
                    engine.commit();
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.finish();
}

/// One pass of a workload, without criterion, for instruction counting
/// (see the module documentation).
fn once(which: &str) {
    match which {
        "core" => {
            let rules = core_rules();
            let runs = synthetic(200_000, 1_000);
            let mut engine = Engine::new(rules);
            let mut notices = 0;
            for r in &runs {
                notices += black_box(engine.on_run(r)).len();
                engine.commit();
            }
            eprintln!("core: {} runs, {notices} notices", runs.len());
        }
        "backtest" => {
            let (rules, runs) = fleet().expect("fleet-30d beside the repository");
            let n = runs.len();
            let (notices, _) = backtest(rules, runs, None);
            eprintln!("backtest: {n} runs, {} notices", notices.len());
        }
        other => panic!("ENGINE_ONCE={other}: expected core or backtest"),
    }
}

criterion_group!(benches, bench_backtest, bench_core);

fn main() {
    if let Ok(which) = std::env::var("ENGINE_ONCE") {
        once(&which);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
