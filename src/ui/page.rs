//! The UI's templates: minijinja files under `<templates>/ui/`, each with a
//! built-in copy compiled in, the way `notify/render.rs` loads notice
//! templates. A missing file falls back to its built-in copy; a file that
//! fails to render is logged and the built-in copy is used instead, so an
//! edit can never take the status page down with it.
//!
//! `*.html` is auto-escaped: record-error messages, run ids and labels come
//! from third parties. The only markup a template receives unescaped is the
//! SVG [`super::svg`] draws from numbers, and paths built by
//! [`super::seg`].

use std::path::Path;

use minijinja::value::Value;
use minijinja::{Environment, UndefinedBehavior};

/// Fuel for one page: a fleet of thousands of rows stays below it, an
/// accidental infinite loop in an edited template does not.
const FUEL: u64 = 50_000_000;

const BUILTIN: &[(&str, &str)] = &[
    ("_base.html", include_str!("../../templates/ui/_base.html")),
    (
        "_ui_parts.html",
        include_str!("../../templates/ui/_ui_parts.html"),
    ),
    ("fleet.html", include_str!("../../templates/ui/fleet.html")),
    ("sync.html", include_str!("../../templates/ui/sync.html")),
    ("run.html", include_str!("../../templates/ui/run.html")),
    (
        "incidents.html",
        include_str!("../../templates/ui/incidents.html"),
    ),
    (
        "silences.html",
        include_str!("../../templates/ui/silences.html"),
    ),
    ("login.html", include_str!("../../templates/ui/login.html")),
    ("error.html", include_str!("../../templates/ui/error.html")),
];

/// The UI templates: the user's `ui/` directory over the built-in copies.
pub struct UiTemplates {
    /// Set when the directory exists; `None` means built-ins only.
    user: Option<Environment<'static>>,
    builtin: Environment<'static>,
}

impl UiTemplates {
    /// Loads from `dir` (usually `<templates>/ui`); a missing directory
    /// means the built-in templates.
    pub fn load(dir: &Path) -> UiTemplates {
        UiTemplates {
            user: dir.is_dir().then(|| build_env(Some(dir))),
            builtin: build_env(None),
        }
    }

    pub fn render(&self, name: &str, ctx: Value) -> Result<String, minijinja::Error> {
        if let Some(env) = &self.user {
            match env.get_template(name).and_then(|t| t.render(&ctx)) {
                Ok(html) => return Ok(html),
                Err(e) => tracing::warn!(
                    error = %e,
                    template = name,
                    "a UI template failed; using the built-in copy"
                ),
            }
        }
        self.builtin.get_template(name)?.render(&ctx)
    }
}

fn build_env(dir: Option<&Path>) -> Environment<'static> {
    let mut env = crate::notify::render::layered_env(dir, BUILTIN, false);
    // A page reads optional fields (`sync.source`, `a.since`) without a
    // guard around each; undefined is empty here, where the notice
    // templates treat it as a typo.
    env.set_undefined_behavior(UndefinedBehavior::Chainable);
    env.set_fuel(Some(FUEL));
    env.add_filter("path", path_filter);
    env.add_filter("pct", pct);
    env.add_function("sparkline", |points: Vec<Value>| {
        let pts: Vec<Option<f64>> = points.iter().map(as_f64).collect();
        Value::from_safe_string(super::svg::sparkline(&pts))
    });
    env.add_function("chart", |points: Vec<Value>| {
        let pts: Vec<super::svg::ChartPoint> = points
            .iter()
            .filter_map(|p| {
                Some(super::svg::ChartPoint {
                    at_ms: as_f64(&p.get_item(&Value::from(0)).ok()?)? as i64,
                    processed: as_f64(&p.get_item(&Value::from(1)).ok()?)? as u64,
                    failed: as_f64(&p.get_item(&Value::from(2)).ok()?)? as u64,
                })
            })
            .collect();
        Value::from_safe_string(super::svg::chart(&pts))
    });
    env
}

fn as_f64(v: &Value) -> Option<f64> {
    if v.is_none() || v.is_undefined() {
        return None;
    }
    f64::try_from(v.clone()).ok()
}

/// A same-origin path (`/syncs/…`) for an `href`, as built by
/// [`super::seg`]: it holds no character HTML treats specially, so it goes
/// out unchanged; anything else becomes `#`.
fn path_filter(v: Value) -> Value {
    let s = v.as_str().unwrap_or_default();
    let ok = s.starts_with('/')
        && !s.starts_with("//")
        && !s
            .chars()
            .any(|c| matches!(c, '"' | '\'' | '<' | '>' | '&' | '\\') || c.is_whitespace());
    Value::from_safe_string(if ok { s.to_owned() } else { "#".to_owned() })
}

/// A ratio as a percentage: `0.0123` → `1.2%`; none → `—`.
fn pct(v: Value) -> String {
    match as_f64(&v) {
        Some(r) if r > 0.0 && r < 0.001 => "<0.1%".to_owned(),
        Some(r) if (0.999..1.0).contains(&r) => ">99.9%".to_owned(),
        Some(r) => format!("{:.1}%", r * 100.0),
        None => "—".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_page_parses() {
        let env = build_env(None);
        for (name, _) in BUILTIN {
            env.get_template(name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn only_plain_same_origin_paths_pass_the_path_filter() {
        let f = |s: &str| path_filter(Value::from(s)).to_string();
        assert_eq!(f("/syncs/census:1"), "/syncs/census:1");
        assert_eq!(f("//evil.example"), "#");
        assert_eq!(f("javascript:alert(1)"), "#");
        assert_eq!(f("/x\" onclick=\"y"), "#");
    }

    #[test]
    fn percentages_read_well_at_the_edges() {
        assert_eq!(pct(Value::from(0.0)), "0.0%");
        assert_eq!(pct(Value::from(0.0004)), "<0.1%");
        assert_eq!(pct(Value::from(0.25)), "25.0%");
        assert_eq!(pct(Value::from(1.0)), "100.0%");
        assert_eq!(pct(Value::from(())), "—");
    }
}
