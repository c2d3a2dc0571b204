//! Rendering notices into e-mail text, HTML and a subject line with
//! minijinja templates from `templates/`.
//!
//! The templates are user-editable, so three things are guarded here rather
//! than trusted to whoever edits them:
//! - **Escaping.** Auto-escape is chosen by extension: `*.html` is
//!   HTML-escaped, `*.txt` is not. Record errors come from third parties.
//! - **One-line subjects.** Whatever `subject.txt` produces is collapsed to
//!   one line (CR, LF and control characters removed) and capped at
//!   [`SUBJECT_MAX_CHARS`], so no input can add a header to an e-mail.
//! - **Always a message.** A template directory may be missing or partial:
//!   each missing file falls back to the built-in copy compiled into the
//!   binary, so `serve` works from any directory. `load`/`reload` render the
//!   example notices with the new set and refuse it when that fails, and a
//!   template that still fails at send time is logged and replaced by the
//!   built-in one: a broken edit must never cost an alert.
//!
//! Templates run with strict undefined checks (a typo is an error, not an
//! empty string) and a fuel limit (a runaway loop stops).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use minijinja::syntax::SyntaxConfig;
use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment, TemplateSource, UndefinedBehavior, path_loader};
use serde::Serialize;
use thiserror::Error;

use crate::model::Timestamp;
use crate::notify::context::NoticeContext;
use crate::notify::format;

/// Longest subject line, in characters.
pub const SUBJECT_MAX_CHARS: usize = 200;

/// Fuel for one template render. The example outage uses about 10 k; a
/// group of 50 large notices stays well below this, an accidental infinite
/// loop does not.
const FUEL: u64 = 5_000_000;

/// The built-in templates, the copies in `templates/` at build time.
const BUILTIN: &[(&str, &str)] = &[
    ("_layout.html", include_str!("../../templates/_layout.html")),
    ("_parts.html", include_str!("../../templates/_parts.html")),
    ("_parts.txt", include_str!("../../templates/_parts.txt")),
    ("firing.html", include_str!("../../templates/firing.html")),
    ("firing.txt", include_str!("../../templates/firing.txt")),
    (
        "reminder.html",
        include_str!("../../templates/reminder.html"),
    ),
    ("reminder.txt", include_str!("../../templates/reminder.txt")),
    (
        "resolved.html",
        include_str!("../../templates/resolved.html"),
    ),
    ("resolved.txt", include_str!("../../templates/resolved.txt")),
    ("grouped.html", include_str!("../../templates/grouped.html")),
    ("grouped.txt", include_str!("../../templates/grouped.txt")),
    ("subject.txt", include_str!("../../templates/subject.txt")),
];

/// A rendered e-mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line, at most [`SUBJECT_MAX_CHARS`] characters.
    pub subject: String,
    pub text: String,
    pub html: String,
}

#[derive(Debug, Error)]
pub enum RenderError {
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
    /// A template set refused by `load`/`reload`; `dir` is empty for the
    /// built-in set.
    #[error("templates in {}: {message}", dir.display())]
    Invalid { dir: PathBuf, message: String },
    #[error("cannot render an empty group of notices")]
    Empty,
}

impl RenderError {
    fn template(name: &str, err: &minijinja::Error) -> Self {
        // The message names the kind of error and the line; the detail says
        // what exactly (which variable, which tag) when it is not in there.
        let mut message = err.to_string();
        if let Some(detail) = err.detail()
            && !message.contains(detail)
        {
            message = format!("{message}: {detail}");
        }
        RenderError::Template {
            name: name.to_owned(),
            message,
        }
    }
}

/// The notice templates: the user's directory over the built-in copies.
pub struct Templates {
    dir: Option<PathBuf>,
    /// Replaced as a whole by [`Templates::reload`]; readers never see a
    /// half-loaded set.
    env: RwLock<Environment<'static>>,
    /// The built-in set, the fallback when a user template fails.
    builtin: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").field("dir", &self.dir).finish()
    }
}

impl Templates {
    /// Loads the templates in `dir`, falling back to the built-in copy for
    /// each file that is missing (or for all when `dir` does not exist).
    /// Fails when a template present in `dir` does not compile or cannot
    /// render the example notices.
    pub fn load(dir: &Path) -> Result<Templates, RenderError> {
        let dir = if dir.is_dir() {
            Some(dir.to_path_buf())
        } else {
            tracing::info!(
                dir = %dir.display(),
                "no template directory; using the built-in templates"
            );
            None
        };
        let env = build_env(dir.as_deref());
        validate(&env, dir.as_deref())?;
        Ok(Templates {
            dir,
            env: RwLock::new(env),
            builtin: build_env(None),
        })
    }

    /// The built-in templates only.
    pub fn builtin() -> Templates {
        Templates {
            dir: None,
            env: RwLock::new(build_env(None)),
            builtin: build_env(None),
        }
    }

    /// Re-reads the directory (SIGHUP, file change). On error the current
    /// templates stay in use and the error says what is wrong.
    pub fn reload(&self) -> Result<(), RenderError> {
        let env = build_env(self.dir.as_deref());
        validate(&env, self.dir.as_deref())?;
        match self.env.write() {
            Ok(mut guard) => *guard = env,
            Err(poisoned) => *poisoned.into_inner() = env,
        }
        Ok(())
    }

    /// The directory templates are read from, when it exists.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Renders one notice.
    pub fn render(&self, ctx: &NoticeContext) -> Result<Rendered, RenderError> {
        self.render_group(std::slice::from_ref(ctx))
    }

    /// Renders notices that go out as one message (SPEC §3.6 grouping). A
    /// group of one is rendered as that notice alone.
    pub fn render_group(&self, ctxs: &[NoticeContext]) -> Result<Rendered, RenderError> {
        let result = {
            let env = match self.env.read() {
                Ok(guard) => guard,
                Err(poisoned) => poisoned.into_inner(),
            };
            render_with(&env, ctxs)
        };
        match result {
            Ok(r) => Ok(r),
            Err(RenderError::Empty) => Err(RenderError::Empty),
            Err(err) if self.dir.is_some() => {
                tracing::warn!(
                    error = %err,
                    dir = %self.dir.as_deref().unwrap_or(Path::new("")).display(),
                    "a notice template failed; sending with the built-in templates instead"
                );
                render_with(&self.builtin, ctxs)
            }
            Err(err) => Err(err),
        }
    }
}

/// An environment reading `dir` (when given) with the built-in copies
/// underneath.
fn build_env(dir: Option<&Path>) -> Environment<'static> {
    let mut env = layered_env(dir, BUILTIN, true);
    // Templates change only through `reload`, which validates them first; a
    // file caught half-saved by a lookup must not go live on its own.
    env.set_auto_reload(false);
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env
}

/// The loader both template sets share (notices here, the UI's pages in
/// `ui::page`): a file in `dir` wins, a missing one falls back to its copy
/// in `builtin`; `*.html` is auto-escaped and nothing else is; block tags on
/// their own lines leave no blank lines behind; the filters of
/// [`register_filters`] are installed. Fuel and undefined handling are the
/// caller's, as the two sets differ there.
pub(crate) fn layered_env(
    dir: Option<&Path>,
    builtin: &'static [(&'static str, &'static str)],
    keep_trailing_newline: bool,
) -> Environment<'static> {
    let mut env = Environment::new();
    let from_dir = dir.map(path_loader);
    env.set_loader(move |name| {
        if let Some(load) = &from_dir
            && let Some(source) = load(name)?
        {
            return Ok(Some(source));
        }
        Ok(builtin
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| TemplateSource::new(*s)))
    });
    env.set_auto_escape_callback(|name| {
        if name.ends_with(".html") || name.ends_with(".htm") {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    if let Ok(syntax) = SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .keep_trailing_newline(keep_trailing_newline)
        .build()
    {
        env.set_syntax(syntax);
    }
    register_filters(&mut env);
    env
}

pub(crate) fn register_filters(env: &mut Environment<'static>) {
    env.add_filter("when", |v: Value| -> String {
        match v.as_str().map(Timestamp::parse_rfc3339) {
            Some(Ok(t)) => format::when(t),
            Some(Err(_)) => v.to_string(),
            None if v.is_none() || v.is_undefined() => "—".to_owned(),
            None => v.to_string(),
        }
    });
    env.add_filter("num", |v: Value| -> String {
        match u64::try_from(v.clone()) {
            Ok(n) => format::thousands(n),
            Err(_) if v.is_none() || v.is_undefined() => "—".to_owned(),
            Err(_) => v.to_string(),
        }
    });
    env.add_filter("duration", |ms: i64| format::human_duration(ms));
    env.add_filter("oneline", |v: Value, max: Option<usize>| {
        format::one_line(&display(&v), max.unwrap_or(300))
    });
    env.add_filter("clip", |v: Value, max: usize| {
        format::cap(&display(&v), max)
    });
    env.add_filter("ljust", |v: Value, width: usize| {
        let s = display(&v);
        let pad = width.saturating_sub(s.chars().count());
        format!("{s}{}", " ".repeat(pad))
    });
    env.add_filter("rjust", |v: Value, width: usize| {
        let s = display(&v);
        let pad = width.saturating_sub(s.chars().count());
        format!("{}{s}", " ".repeat(pad))
    });
    env.add_filter("capitalize_first", |v: Value| {
        let s = display(&v);
        let mut chars = s.chars();
        match chars.next() {
            Some(c) => c.to_uppercase().chain(chars).collect(),
            None => String::new(),
        }
    });
    // An attribute-safe http(s) URL for `href`, without the `&#x2f;` the
    // general HTML escaper puts in place of every `/`; anything else
    // becomes `#` (templates check `is http_url` first anyway).
    env.add_filter("href", |v: Value| {
        let url = display(&v);
        if !format::is_http_url(&url) {
            return Value::from_safe_string("#".to_owned());
        }
        let mut out = String::with_capacity(url.len());
        for c in url.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                c => out.push(c),
            }
        }
        Value::from_safe_string(out)
    });
    env.add_test("http_url", |v: Value| {
        v.as_str().is_some_and(format::is_http_url)
    });
}

/// A value as text; `none` prints as an empty string, not as "none".
fn display(v: &Value) -> String {
    if v.is_none() || v.is_undefined() {
        String::new()
    } else {
        v.as_str().map_or_else(|| v.to_string(), str::to_owned)
    }
}

/// The template names a notice uses.
fn names(ctxs: &[NoticeContext]) -> (&'static str, &'static str) {
    if ctxs.len() > 1 {
        return ("grouped.txt", "grouped.html");
    }
    match ctxs.first().map(|c| c.kind.as_str()) {
        Some("resolved") => ("resolved.txt", "resolved.html"),
        Some("reminder") => ("reminder.txt", "reminder.html"),
        _ => ("firing.txt", "firing.html"),
    }
}

fn render_with(
    env: &Environment<'static>,
    ctxs: &[NoticeContext],
) -> Result<Rendered, RenderError> {
    let first = ctxs.first().ok_or(RenderError::Empty)?;
    let views: Vec<serde_json::Value> = ctxs.iter().map(view).collect();
    let notice = views.first().cloned().unwrap_or_default();
    let group = Group::of(ctxs);
    let mut vars = BTreeMap::from([
        ("notice", Value::from(Serde(&notice))),
        ("notices", Value::from(Serde(&views))),
        ("grouped", Value::from(ctxs.len() > 1)),
        ("group", Value::from(Serde(&group))),
    ]);

    let subject = render_one(env, "subject.txt", &vars)?;
    let subject = format::one_line(&subject, SUBJECT_MAX_CHARS);
    let subject = if subject.is_empty() {
        // A subject template that printed nothing still needs a subject.
        format::one_line(
            &format!(
                "[syncwarden] {} {}",
                format::kind_label(&first.kind),
                first.sync_id
            ),
            SUBJECT_MAX_CHARS,
        )
    } else {
        subject
    };
    vars.insert("subject", Value::from(subject.clone()));

    let (text_name, html_name) = names(ctxs);
    let text = tidy_text(&render_one(env, text_name, &vars)?);
    let html = render_one(env, html_name, &vars)?;
    Ok(Rendered {
        subject,
        text,
        html,
    })
}

fn render_one(
    env: &Environment<'static>,
    name: &str,
    vars: &BTreeMap<&str, Value>,
) -> Result<String, RenderError> {
    let template = env
        .get_template(name)
        .map_err(|e| RenderError::template(name, &e))?;
    template
        .render(Value::from(Serde(vars)))
        .map_err(|e| RenderError::template(name, &e))
}

/// The notice as templates see it: the context plus derived fields, so
/// templates need no arithmetic (documented in templates/README.md).
fn view(ctx: &NoticeContext) -> serde_json::Value {
    let mut v = serde_json::to_value(ctx).unwrap_or_default();
    let duration_ms = match (&ctx.totals, ctx.kind.as_str()) {
        (Some(t), "resolved") => t.duration_ms,
        _ => ctx.at.0 - ctx.since.0,
    };
    let error_records: u64 = ctx.error_classes.iter().map(|c| c.count).sum();
    if let Some(obj) = v.as_object_mut() {
        obj.insert("label".into(), format::kind_label(&ctx.kind).into());
        obj.insert(
            "cause_text".into(),
            format::cause_text(&ctx.kind, ctx.cause.as_deref()).into(),
        );
        obj.insert("duration_ms".into(), duration_ms.into());
        obj.insert(
            "duration".into(),
            format::human_duration(duration_ms).into(),
        );
        obj.insert("error_records".into(), error_records.into());
        if let Some(classes) = obj.get_mut("error_classes").and_then(|c| c.as_array_mut()) {
            for (json, class) in classes.iter_mut().zip(&ctx.error_classes) {
                if let Some(c) = json.as_object_mut() {
                    c.insert("headline".into(), class.headline().into());
                }
            }
        }
    }
    v
}

/// Counts for a grouped message's heading.
#[derive(Debug, Serialize)]
struct Group {
    count: usize,
    firing: usize,
    reminder: usize,
    resolved: usize,
    /// `2 firing, 1 resolved`.
    breakdown: String,
    /// Distinct sync ids, in notice order.
    syncs: Vec<String>,
}

impl Group {
    fn of(ctxs: &[NoticeContext]) -> Group {
        let (firing, reminder, resolved, breakdown) =
            format::group_breakdown(ctxs.iter().map(|c| c.kind.as_str()));
        let mut syncs: Vec<String> = Vec::new();
        for c in ctxs {
            if !syncs.contains(&c.sync_id) {
                syncs.push(c.sync_id.clone());
            }
        }
        Group {
            count: ctxs.len(),
            firing,
            reminder,
            resolved,
            breakdown,
            syncs,
        }
    }
}

/// At most one blank line in a row and no trailing spaces, whatever the
/// template's whitespace; the `-- ` signature separator keeps its space.
fn tidy_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut blank_run = 0;
    for line in s.lines() {
        let line = if line == "-- " { line } else { line.trim_end() };
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 || out.is_empty() {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

/// Compiles every template and renders the example notices, so a broken
/// edit is reported when it is loaded, not when the next outage happens.
fn validate(env: &Environment<'static>, dir: Option<&Path>) -> Result<(), RenderError> {
    let invalid = |e: RenderError| RenderError::Invalid {
        dir: dir.map(Path::to_path_buf).unwrap_or_default(),
        message: e.to_string(),
    };
    for (name, _) in BUILTIN {
        env.get_template(name)
            .map_err(|e| invalid(RenderError::template(name, &e)))?;
    }
    let firing = NoticeContext::example_outage();
    let reminder = NoticeContext {
        kind: "reminder".to_owned(),
        key: format!("{}:reminder:1", firing.incident_id),
        ..firing.clone()
    };
    let resolved = NoticeContext::example_recovery();
    let minimal = NoticeContext::example_minimal();
    let minimal_resolved = NoticeContext {
        kind: "resolved".to_owned(),
        cause: None,
        reason: Some("rule_removed".to_owned()),
        ..minimal.clone()
    };
    let cases: [&[NoticeContext]; 6] = [
        std::slice::from_ref(&firing),
        std::slice::from_ref(&reminder),
        std::slice::from_ref(&resolved),
        std::slice::from_ref(&minimal),
        std::slice::from_ref(&minimal_resolved),
        &[firing.clone(), resolved.clone(), minimal.clone()],
    ];
    for case in cases {
        render_with(env, case).map_err(invalid)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::notify::context::RunSummary;

    fn builtin_templates() -> Templates {
        Templates::load(Path::new("/nonexistent/syncwarden-templates")).expect("built-ins load")
    }

    fn hostile_notice() -> NoticeContext {
        NoticeContext::example_hostile()
    }

    #[test]
    fn the_firing_notice_renders_as_snapshotted() {
        let r = builtin_templates()
            .render(&NoticeContext::example_outage())
            .expect("renders");
        insta::assert_snapshot!("firing_subject", r.subject);
        insta::assert_snapshot!("firing_text", r.text);
        insta::assert_snapshot!("firing_html", r.html);
    }

    #[test]
    fn the_resolved_notice_renders_as_snapshotted() {
        let r = builtin_templates()
            .render(&NoticeContext::example_recovery())
            .expect("renders");
        insta::assert_snapshot!("resolved_subject", r.subject);
        insta::assert_snapshot!("resolved_text", r.text);
        insta::assert_snapshot!("resolved_html", r.html);
    }

    #[test]
    fn a_group_renders_as_snapshotted() {
        let group = [
            NoticeContext::example_outage(),
            NoticeContext::example_minimal(),
            NoticeContext::example_recovery(),
        ];
        let r = builtin_templates().render_group(&group).expect("renders");
        insta::assert_snapshot!("grouped_subject", r.subject);
        insta::assert_snapshot!("grouped_text", r.text);
        // Every notice of the group is there in full, in both parts.
        for part in [&r.text, &r.html] {
            assert!(part.contains("nightly_export"));
            assert!(part.contains("INVALID_EMAIL_ADDRESS"));
            assert!(part.contains("Records failed"));
        }
    }

    #[test]
    fn the_firing_notice_carries_everything_spec_3_7_asks_for() {
        let ctx = NoticeContext::example_outage();
        let r = builtin_templates().render(&ctx).expect("renders");
        for part in [&r.text, &r.html] {
            for needle in [
                "orders_to_salesforce",        // the sync
                "sync-broken",                 // the rule
                "2 bad runs in a row",         // the condition with values
                "2026-03-02 10:00 UTC",        // since when
                "1,200",                       // processed
                "788",                         // succeeded
                "398",                         // failed
                "Too many records rejected",   // run-level error
                "INVALID_EMAIL_ADDRESS",       // error class
                "512",                         // its count
                "0035e00000AbCdE",             // an example record id
                "hubspot_contacts",            // downstream
                "http://localhost:8686/runs/", // link to the run
                "http://localhost:8686/syncs/orders_to_salesforce",
                "https://app.getcensus.com/syncs/4812/sync-history/1042",
                "syncwarden silence add --sync",
            ] {
                // HTML escapes `'` and `/`; compare on unescaped text.
                let plain = part.replace("&#x2f;", "/").replace("&#x27;", "'");
                assert!(plain.contains(needle), "missing {needle:?} in\n{part}");
            }
        }
        // Every error class shows its headline in the text part.
        for class in &ctx.error_classes {
            assert!(r.text.contains(&class.headline()), "{}", class.headline());
        }
    }

    #[test]
    fn hostile_input_is_escaped_in_html_and_cannot_break_the_subject() {
        let r = builtin_templates()
            .render(&hostile_notice())
            .expect("renders");
        // HTML: no live tag or handler from the input survives.
        for bad in [
            "<script",
            "<b>bold",
            "<b>CODE",
            "<img",
            "<svg",
            "<i>growth",
            "javascript:",
            "\"><script",
        ] {
            assert!(!r.html.contains(bad), "{bad:?} leaked into the HTML");
        }
        assert!(
            r.html
                .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
        );
        assert!(r.html.contains("&lt;b&gt;bold&lt;&#x2f;b&gt;"));
        // Text: the message as sent (harmless: the text part is a body).
        assert!(r.text.contains("<script>alert(1)</script> <b>bold</b>"));
        assert!(
            !r.text.contains("javascript:"),
            "no link from a javascript: URL"
        );
        // Subject: one line, the injection flattened into harmless text.
        assert!(!r.subject.contains(['\r', '\n']));
        assert!(r.subject.contains("Bcc: evil@x"));
        assert!(r.subject.chars().count() <= SUBJECT_MAX_CHARS);
    }

    #[test]
    fn subjects_are_one_capped_line_whatever_the_input() {
        let mut ctx = NoticeContext::example_outage();
        ctx.sync_id = "census:1\r\nBcc: evil@x".to_owned();
        ctx.condition = format!("{}\n{}", "x".repeat(300), "Subject: injected");
        let r = builtin_templates().render(&ctx).expect("renders");
        assert_eq!(r.subject.lines().count(), 1);
        assert!(!r.subject.contains(['\r', '\n']));
        assert!(
            r.subject
                .starts_with("[syncwarden] FIRING (critical) census:1 Bcc: evil@x")
        );
        assert_eq!(r.subject.chars().count(), SUBJECT_MAX_CHARS);
        assert!(r.subject.ends_with('…'));
    }

    #[test]
    fn a_notice_with_nothing_optional_still_renders() {
        let templates = builtin_templates();
        let r = templates
            .render(&NoticeContext::example_minimal())
            .expect("renders");
        assert!(r.text.contains("no recent runs (stale)"));
        assert!(r.text.contains("no finished run for 4h"));
        assert!(!r.text.contains("Bad runs"));
        assert!(!r.html.contains(">none<"), "a null printed as `none`");
        assert!(!r.text.contains("none"), "a null printed as `none`");
    }

    #[test]
    fn reminders_say_how_long_it_has_been_broken() {
        let ctx = NoticeContext {
            kind: "reminder".to_owned(),
            at: Timestamp::parse_rfc3339("2026-03-03T10:00:00Z").expect("ts"),
            ..NoticeContext::example_outage()
        };
        let r = builtin_templates().render(&ctx).expect("renders");
        assert!(r.subject.contains("STILL FIRING"), "{}", r.subject);
        assert!(r.subject.contains("for 1d"), "{}", r.subject);
        assert!(r.text.contains("failing for 1d"));
        assert!(r.html.contains("still broken"));
    }

    #[test]
    fn long_lists_are_cut_with_a_count_of_the_rest() {
        let mut ctx = NoticeContext::example_outage();
        let run = ctx.bad_runs[0].clone();
        ctx.bad_runs = (0..25)
            .map(|i| RunSummary {
                run_id: format!("r{i}"),
                ..run.clone()
            })
            .collect();
        let r = builtin_templates().render(&ctx).expect("renders");
        assert!(r.text.contains("… and 15 more"));
        assert!(r.text.contains("r9"));
        assert!(!r.text.contains("r10 "));
    }

    #[test]
    fn a_missing_file_falls_back_to_the_built_in_copy() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(
            dir.path().join("firing.txt"),
            "Custom: {{ notice.sync_id }} {% for c in notice.error_classes %}{{ c.headline }}{% endfor %}\n",
        )
        .expect("write");
        let templates = Templates::load(dir.path()).expect("loads");
        let r = templates
            .render(&NoticeContext::example_outage())
            .expect("renders");
        assert!(
            r.text
                .starts_with("Custom: orders_to_salesforce 512 × INVALID_EMAIL")
        );
        // firing.html and subject.txt came from the built-in set.
        assert!(r.html.contains("<!DOCTYPE html>"));
        assert!(r.subject.starts_with("[syncwarden] FIRING"));
    }

    #[test]
    fn a_broken_template_is_refused_at_load_and_reload_keeps_the_working_set() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("firing.txt");
        fs::write(&path, "{{ notice.nope }}").expect("write");
        let err = Templates::load(dir.path()).expect_err("strict undefined");
        assert!(err.to_string().contains("firing.txt"), "{err}");

        fs::write(&path, "v1 {{ notice.sync_id }}").expect("write");
        let templates = Templates::load(dir.path()).expect("loads");
        fs::write(&path, "{% for x in %}").expect("write");
        let err = templates.reload().expect_err("syntax error");
        assert!(err.to_string().contains("firing.txt"), "{err}");
        let r = templates
            .render(&NoticeContext::example_outage())
            .expect("renders");
        assert!(r.text.starts_with("v1 orders_to_salesforce"));

        fs::write(&path, "v2 {{ notice.sync_id }}").expect("write");
        templates.reload().expect("reloads");
        let r = templates
            .render(&NoticeContext::example_outage())
            .expect("renders");
        assert!(r.text.starts_with("v2 orders_to_salesforce"));
    }

    #[test]
    fn a_template_failing_at_send_time_falls_back_to_the_built_in_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(
            dir.path().join("firing.txt"),
            "{% if notice.sync_id == 'odd' %}{{ notice.nope }}{% endif %}ok\n",
        )
        .expect("write");
        let templates = Templates::load(dir.path()).expect("passes the examples");
        let ctx = NoticeContext {
            sync_id: "odd".to_owned(),
            ..NoticeContext::example_outage()
        };
        let r = templates.render(&ctx).expect("falls back");
        assert!(r.text.contains("FIRING (critical): odd"), "{}", r.text);
    }

    #[test]
    fn a_runaway_template_runs_out_of_fuel() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(
            dir.path().join("firing.txt"),
            "{% for a in range(10000) %}{% for b in range(10000) %}{% endfor %}{% endfor %}",
        )
        .expect("write");
        let err = Templates::load(dir.path()).expect_err("fuel");
        assert!(err.to_string().contains("fuel"), "{err}");
    }

    /// Checks that every element opened is closed in order (void elements
    /// aside): mail clients repair broken HTML each in their own way.
    fn assert_balanced(html: &str) {
        const VOID: [&str; 4] = ["meta", "br", "img", "hr"];
        let mut stack: Vec<String> = Vec::new();
        let mut rest = html;
        while let Some(start) = rest.find('<') {
            rest = &rest[start + 1..];
            let end = rest.find('>').expect("tag closes");
            let tag = &rest[..end];
            rest = &rest[end + 1..];
            if tag.starts_with('!') {
                continue;
            }
            let (closing, name) = match tag.strip_prefix('/') {
                Some(t) => (true, t),
                None => (false, tag),
            };
            let name: String = name
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            if VOID.contains(&name.as_str()) {
                continue;
            }
            if closing {
                assert_eq!(stack.pop().as_deref(), Some(name.as_str()), "at </{name}>");
            } else {
                stack.push(name);
            }
        }
        assert!(stack.is_empty(), "unclosed: {stack:?}");
    }

    #[test]
    fn every_html_notice_is_well_formed() {
        let templates = builtin_templates();
        let reminder = NoticeContext {
            kind: "reminder".to_owned(),
            ..NoticeContext::example_outage()
        };
        let cases: Vec<Vec<NoticeContext>> = vec![
            vec![NoticeContext::example_outage()],
            vec![NoticeContext::example_recovery()],
            vec![NoticeContext::example_minimal()],
            vec![reminder],
            vec![hostile_notice()],
            vec![
                NoticeContext::example_outage(),
                hostile_notice(),
                NoticeContext::example_recovery(),
            ],
        ];
        for ctxs in cases {
            let r = templates.render_group(&ctxs).expect("renders");
            assert_balanced(&r.html);
            assert!(!r.html.contains("<script"), "no script, ever");
            assert!(!r.html.contains("<link"), "no external assets");
            assert!(!r.html.contains("<img"), "no images");
            assert!(!r.html.contains("<style"), "inline CSS only");
        }
    }

    #[test]
    fn the_repository_templates_are_the_built_in_ones() {
        // `templates/` is what the binary embeds; loading it must give the
        // same output as the built-ins.
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let from_dir = Templates::load(&dir).expect("loads");
        let ctx = NoticeContext::example_outage();
        assert_eq!(
            from_dir.render(&ctx).expect("renders"),
            builtin_templates().render(&ctx).expect("renders")
        );
    }
}
