//! The deployment examples in `examples/deploy/` stay valid: the Kubernetes
//! manifest parses, its embedded config and rules load with syncwarden's own
//! loaders, every secret the config names is in the Secret, and the probes
//! hit the real health routes; the systemd unit passes
//! `systemd-analyze verify` (skipped where systemd-analyze is missing).

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_norway::Value;

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/deploy")
}

fn documents() -> Vec<Value> {
    let text = std::fs::read_to_string(deploy_dir().join("kubernetes.yaml")).expect("manifest");
    serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).expect("YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} in the manifest"))
}

fn s<'a>(v: &'a Value, what: &str) -> &'a str {
    v.as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v:?}"))
}

#[test]
fn the_kubernetes_manifest_is_consistent_with_syncwarden() {
    let docs = documents();
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        ["ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment"]
    );

    // The config and rules in the ConfigMap load with the real loaders.
    let cm = of_kind(&docs, "ConfigMap");
    let secret = of_kind(&docs, "Secret");
    let secret_keys: Vec<&str> = secret["stringData"]
        .as_mapping()
        .expect("stringData")
        .keys()
        .filter_map(Value::as_str)
        .collect();
    let toml_text = s(&cm["data"]["syncwarden.toml"], "syncwarden.toml");
    let mut asked = Vec::new();
    let asked_cell = std::cell::RefCell::new(&mut asked);
    let config = syncwarden::config::Config::from_toml(
        toml_text,
        Path::new("syncwarden.toml"),
        &|var: &str| {
            asked_cell.borrow_mut().push(var.to_string());
            Some(match var {
                "SMTP_URL" => "smtp://user:pw@smtp.example.com:587".to_string(),
                "SLACK_WEBHOOK_URL" => "https://hooks.slack.com/services/T/B/X".to_string(),
                _ => "x".to_string(),
            })
        },
    )
    .expect("the ConfigMap's syncwarden.toml loads");
    config.check().expect("the config passes its checks");
    assert!(!asked.is_empty());
    for var in &asked {
        assert!(
            secret_keys.contains(&var.as_str()),
            "config reads env:{var}, which the Secret does not provide"
        );
    }
    assert_eq!(config.listen.port(), 8686);

    let rules_dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        rules_dir.path().join("rules.toml"),
        s(&cm["data"]["rules.toml"], "rules.toml"),
    )
    .expect("write rules");
    let rules = syncwarden::evaluate::load_dir(rules_dir.path()).unwrap_or_else(|problems| {
        panic!(
            "the ConfigMap's rules do not load: {:?}",
            problems.iter().map(|p| p.to_string()).collect::<Vec<_>>()
        )
    });
    for rule in &rules.rules {
        for ch in &rule.notify {
            let (kind, name) = ch.split_once(':').expect("kind:name");
            let configured = match kind {
                "email" => config.channels.email.contains_key(name),
                "slack" => config.channels.slack.contains_key(name),
                "webhook" => config.channels.webhook.contains_key(name),
                _ => false,
            };
            assert!(
                configured,
                "rule {} notifies unknown channel {ch}",
                rule.name
            );
        }
    }

    // The sidecar: native sidecar, probes on the health routes, data volume
    // where the config puts the database, config mounted where args say.
    let deployment = of_kind(&docs, "Deployment");
    assert_eq!(deployment["spec"]["replicas"].as_u64(), Some(1));
    assert_eq!(
        s(&deployment["spec"]["strategy"]["type"], "strategy"),
        "Recreate"
    );
    let pod = &deployment["spec"]["template"]["spec"];
    let sidecar = pod["initContainers"]
        .as_sequence()
        .expect("initContainers")
        .iter()
        .find(|c| c["name"].as_str() == Some("syncwarden"))
        .expect("syncwarden sidecar");
    assert_eq!(s(&sidecar["restartPolicy"], "restartPolicy"), "Always");
    let port = &sidecar["ports"][0];
    assert_eq!(port["containerPort"].as_u64(), Some(8686));
    let port_name = s(&port["name"], "port name");
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/readyz"),
    ] {
        assert_eq!(s(&sidecar[probe]["httpGet"]["path"], probe), path);
        assert_eq!(s(&sidecar[probe]["httpGet"]["port"], probe), port_name);
    }
    let mounts: Vec<(&str, &str)> = sidecar["volumeMounts"]
        .as_sequence()
        .expect("volumeMounts")
        .iter()
        .map(|m| (s(&m["name"], "name"), s(&m["mountPath"], "mountPath")))
        .collect();
    let db_dir = Path::new(&config.database).parent().expect("db dir");
    assert!(
        mounts
            .iter()
            .any(|(n, p)| *n == "data" && Path::new(p) == db_dir),
        "{mounts:?}"
    );
    let args: Vec<&str> = sidecar["args"]
        .as_sequence()
        .expect("args")
        .iter()
        .map(|a| s(a, "arg"))
        .collect();
    let config_path = args[args
        .iter()
        .position(|a| *a == "--config")
        .expect("--config")
        + 1];
    assert!(mounts.iter().any(|(_, p)| *p == config_path), "{mounts:?}");
    let env_from = s(&sidecar["envFrom"][0]["secretRef"]["name"], "secretRef");
    assert_eq!(env_from, s(&secret["metadata"]["name"], "secret name"));
    let pvc = of_kind(&docs, "PersistentVolumeClaim");
    let claim = pod["volumes"]
        .as_sequence()
        .expect("volumes")
        .iter()
        .find(|v| v["name"].as_str() == Some("data"))
        .expect("data volume");
    assert_eq!(
        s(&claim["persistentVolumeClaim"]["claimName"], "claimName"),
        s(&pvc["metadata"]["name"], "pvc name")
    );
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(deploy_dir().join("syncwarden.service")).expect("unit");
    assert!(unit.contains("ExecStart=/usr/local/bin/syncwarden"));
    assert!(unit.contains("NoNewPrivileges=yes"));
    assert!(unit.contains("ProtectSystem=strict"));
    let Ok(status) = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
    else {
        eprintln!("systemd-analyze not installed: skipping `systemd-analyze verify`");
        return;
    };
    assert!(status.status.success());
    // Verify against the binary just built (the installed path need not exist).
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("syncwarden.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/syncwarden",
            env!("CARGO_BIN_EXE_syncwarden"),
        ),
    )
    .expect("write unit");
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains(path.to_string_lossy().as_ref()),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn the_dockerfile_builds_a_static_binary_into_a_distroless_nonroot_image() {
    let text = std::fs::read_to_string(deploy_dir().join("Dockerfile")).expect("Dockerfile");
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "{froms:?}");
    assert!(froms[1].contains("distroless/static"), "{froms:?}");
    assert!(text.contains("--target x86_64-unknown-linux-musl"));
    assert!(text.contains("USER 65532"));
    assert!(text.contains("ENTRYPOINT [\"/usr/local/bin/syncwarden\""));
}
