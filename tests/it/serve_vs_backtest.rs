//! `serve` and `backtest` share one engine (SPEC §5): runs posted to a real
//! server in `finished_at` order give the same notices as `backtest`, for
//! rules without wall-clock timers. A property test over random histories
//! and random rules.

use proptest::prelude::*;
use serde_json::{Value, json};
use syncwarden::evaluate::{self, Notice};
use syncwarden::model::{Run, Timestamp};

use crate::helpers::{Opts, spawn_with};

#[derive(Debug, Clone)]
struct RuleParams {
    fire_after: u32,
    resolve_after: u32,
    ratio: Option<f64>,
    flap: Option<(u32, f64, f64)>,
    depends: bool,
}

impl RuleParams {
    fn toml(&self) -> String {
        let mut bad_when = String::from("status = [\"failed\"]");
        if let Some(r) = self.ratio {
            bad_when.push_str(&format!(", failed_ratio_above = {r}"));
        }
        let mut t = format!(
            "[[rule]]\nname = \"r\"\nmatch = {{ sync = \"*\" }}\nbad_when = {{ {bad_when} }}\n\
             fire_after = {}\nresolve_after = {}\n",
            self.fire_after, self.resolve_after
        );
        if let Some((w, high, low)) = self.flap {
            t.push_str(&format!(
                "flap = {{ window = {w}, high = {high}, low = {low} }}\n"
            ));
        }
        if self.depends {
            t.push_str("\n[[sync]]\nid = \"down\"\ndepends_on = [\"up\"]\n");
        }
        t
    }
}

fn rule_params() -> impl Strategy<Value = RuleParams> {
    (
        1u32..4,
        1u32..4,
        prop::option::of(prop::sample::select(vec![0.05, 0.1, 0.5])),
        prop::option::of((3u32..9, prop::sample::select(vec![0.3, 0.5, 0.7]))),
        any::<bool>(),
    )
        .prop_map(
            |(fire_after, resolve_after, ratio, flap, depends)| RuleParams {
                fire_after,
                resolve_after,
                ratio,
                flap: flap.map(|(w, high)| (w, high, high / 2.0)),
                depends,
            },
        )
}

/// (sync index, status index, failed records of 100, gap in minutes)
fn history() -> impl Strategy<Value = Vec<(usize, usize, u64, i64)>> {
    prop::collection::vec((0usize..3, 0usize..3, 0u64..60, 1i64..90), 1..60)
}

fn runs_of(h: &[(usize, usize, u64, i64)]) -> Vec<Value> {
    let syncs = ["up", "down", "other"];
    let statuses = ["success", "failed", "cancelled"];
    // Thirty days ago, whole minutes: well inside the accepted past and
    // nowhere near the 5-minute future limit.
    let mut t = (Timestamp::now().0 / 60_000 - 30 * 24 * 60) * 60_000;
    h.iter()
        .enumerate()
        .map(|(i, &(s, st, failed, gap))| {
            t += gap * 60_000;
            json!({
                "sync_id": syncs[s],
                "run_id": format!("run-{i}"),
                "status": statuses[st],
                "finished_at": Timestamp(t).to_rfc3339(),
                "records": {"processed": 100, "failed": failed},
            })
        })
        .collect()
}

type Row = (String, String, Option<String>, String, String, bool);

fn from_backtest(n: &Notice) -> Row {
    (
        n.at.to_rfc3339(),
        n.kind.as_str().to_string(),
        n.cause.map(|c| c.as_str().to_string()),
        n.rule.clone(),
        n.sync_id.clone(),
        n.held.is_some(),
    )
}

fn from_outbox(v: &Value) -> Row {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    (
        s("at"),
        s("kind"),
        v["cause"].as_str().map(str::to_string),
        s("rule"),
        s("sync_id"),
        v["status"] == "held",
    )
}

fn check(params: RuleParams, h: Vec<(usize, usize, u64, i64)>) -> Result<(), TestCaseError> {
    let rules_text = params.toml();
    let runs = runs_of(&h);
    let rules = evaluate::parse_str("rules.toml", &rules_text).map_err(|p| {
        TestCaseError::fail(format!("generated rules invalid: {p:?}\n{rules_text}"))
    })?;
    let parsed: Vec<Run> = runs
        .iter()
        .map(|v| serde_json::from_value(v.clone()).expect("run"))
        .collect();
    let (expected, _) = evaluate::backtest(rules, parsed, None);
    let mut expected: Vec<Row> = expected.iter().map(from_backtest).collect();

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut got: Vec<Row> = rt.block_on(async {
        let app = spawn_with(Opts {
            rules: Some(rules_text.clone()),
            ..Opts::default()
        })
        .await;
        for r in &runs {
            let (status, body) = app.post_json("/v1/runs", r).await;
            assert_eq!(status, 202, "{body}");
        }
        let (_, body) = app.get("/v1/notifications?limit=5000").await;
        let mut list: Vec<Value> = body["notifications"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        list.reverse();
        list.iter().map(from_outbox).collect()
    });
    // Same-instant notices may come in any order (SPEC §5).
    expected.sort();
    got.sort();
    prop_assert_eq!(got, expected, "rules:\n{}", rules_text);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("SERVE_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(12),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn posting_runs_in_order_gives_the_notices_backtest_gives(
        params in rule_params(),
        h in history(),
    ) {
        crate::helpers::install_crypto();
        check(params, h)?;
    }
}
