//! Rules reload (SPEC §3.6): on SIGHUP and when a file in the rules
//! directory changes. A directory that fails `rules check` is refused with a
//! log line naming every problem, and the running rules stay.

use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::new_debouncer;
use tokio::sync::mpsc;

use super::load_rules;
use crate::api::AppState;

/// Spawns the reload task; it runs until aborted.
pub fn spawn(state: AppState) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (tx, mut rx) = mpsc::channel::<&'static str>(8);
        #[cfg(unix)]
        {
            let tx = tx.clone();
            tokio::spawn(async move {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut hup) = signal(SignalKind::hangup()) else {
                    return;
                };
                while hup.recv().await.is_some() {
                    if tx.send("SIGHUP").await.is_err() {
                        break;
                    }
                }
            });
        }
        // Watch the directory, not the files: editors save by rename.
        let dir = state.config.rules.clone();
        let watcher_tx = tx.clone();
        let debouncer = new_debouncer(Duration::from_millis(300), None, move |res| {
            if let Ok(events) = res {
                let events: Vec<notify_debouncer_full::DebouncedEvent> = events;
                if events.iter().any(|e| !e.kind.is_access()) {
                    let _ = watcher_tx.try_send("file change");
                }
            }
        });
        let _debouncer = match debouncer {
            Ok(mut d) => {
                if dir.exists()
                    && let Err(e) = d.watch(&dir, RecursiveMode::NonRecursive)
                {
                    tracing::warn!(dir = %dir.display(), error = %e, "cannot watch rules directory; SIGHUP still reloads");
                }
                Some(d)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no file watcher; SIGHUP still reloads rules");
                None
            }
        };
        drop(tx);
        while let Some(why) = rx.recv().await {
            reload(&state, why).await;
        }
    })
}

/// Loads and applies the rules directory once; on SIGHUP also re-reads the
/// notice templates (a template that fails to parse keeps the old set).
pub async fn reload(state: &AppState, why: &str) {
    if why == "SIGHUP" {
        match state.channels.templates().reload() {
            Ok(()) => tracing::info!("templates reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "templates reload refused; the previous templates stay")
            }
        }
    }
    match load_rules(&state.config.rules, &state.channels) {
        Ok(rules) => {
            let n = rules.rules.len();
            match state.writer.reload_rules(rules).await {
                Ok(()) => tracing::info!(trigger = why, rules = n, "rules reloaded"),
                Err(e) => tracing::error!(trigger = why, error = %e, "rules reload not stored"),
            }
        }
        Err(e) => {
            tracing::error!(trigger = why, error = %e, "rules reload refused; the previous rules stay")
        }
    }
}
