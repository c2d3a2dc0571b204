//! A tidy check on the source: SQL only through bound parameters. Every
//! statement lives under `src/store/`; where SQL text is assembled
//! (`format!` inside `AssertSqlSafe`, `QueryBuilder::push`), it may only
//! splice in UPPER_CASE constants, never a runtime value — values go
//! through `bind` / `push_bind`.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The text of the call starting at `at` (just after its `(`), up to its
/// matching parenthesis.
fn call_text(src: &str, at: usize) -> &str {
    let mut depth = 1;
    for (i, c) in src[at..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return &src[at..at + i];
                }
            }
            _ => {}
        }
    }
    &src[at..]
}

#[test]
fn sql_is_only_in_the_store_and_splices_in_nothing_but_constants() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    let placeholder = regex::Regex::new(r"\{([^}]*)\}").expect("regex");
    let push = regex::Regex::new(r"(qb|\))\s*\.push\(\s*(\S+)").expect("regex");
    let mut checked = 0;
    for file in files {
        let src = std::fs::read_to_string(&file).expect("source");
        let in_store = file.starts_with(root.join("store"));
        for marker in ["sqlx::query", "QueryBuilder", "AssertSqlSafe"] {
            assert!(
                in_store || !src.contains(marker),
                "{} uses {marker}: SQL lives in src/store/",
                file.display()
            );
        }
        if !in_store {
            continue;
        }
        // Test modules (at the end of a file) may assemble statements from
        // other statements, e.g. `EXPLAIN QUERY PLAN {sql}`; no input reaches
        // them, so only the code above them is held to the rule.
        let src = src.split("#[cfg(test)]").next().unwrap_or_default();
        for opener in ["AssertSqlSafe(format!(", ".push(format!("] {
            for (at, _) in src.match_indices(opener) {
                let call = call_text(src, at + opener.len());
                for cap in placeholder.captures_iter(call) {
                    let name = &cap[1];
                    assert!(
                        !name.is_empty()
                            && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                        "{}: SQL text splices in {{{name}}}; bind values instead",
                        file.display()
                    );
                    checked += 1;
                }
            }
        }
        // `.push(` with anything but a string literal or format! of constants.
        // A tuple is a `Vec` being filled (`entry(..).or_default().push((..))`
        // in `rollups.rs`), never SQL text, so it is not a QueryBuilder call.
        for cap in push.captures_iter(src) {
            let arg = &cap[2];
            if arg.starts_with('(') {
                continue;
            }
            assert!(
                arg.starts_with('"')
                    || arg.starts_with("format!(")
                    || arg
                        .trim_end_matches([')', ';', ','])
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c == '_'),
                "{}: QueryBuilder::push({arg}…): only SQL literals, values via push_bind",
                file.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 5, "the check found the assembled statements");
}
