//! `deploy/kubernetes/` cannot be applied here (no cluster), so its shape is checked instead:
//! every file is valid YAML, kustomize lists the manifests, and every StatefulSet is a shard
//! as the README describes it — one replica, the ledger on its own volume, health and
//! readiness probed where reaper serves them, time to stop gracefully, secrets as files from
//! mounted Secrets, and an environment that reaper's own config loader accepts.

use reaper::config::{Config, KNOWN_KEYS};
use serde::Deserialize;
use serde_norway::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The example's directory.
fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/kubernetes")
}

/// Every document of every `.yaml` file in the directory, with its file's name.
fn documents() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_norway::Deserializer::from_str(&text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}"));
            docs.push((name.clone(), value));
        }
    }
    docs
}

/// The documents of one `kind`, with their files' names.
fn of_kind(kind: &str) -> Vec<(String, Value)> {
    let docs: Vec<_> = documents()
        .into_iter()
        .filter(|(_, d)| d["kind"].as_str() == Some(kind))
        .collect();
    assert!(!docs.is_empty(), "no {kind} in deploy/kubernetes");
    docs
}

/// The shards: every StatefulSet, by name.
fn shards() -> Vec<(String, Value)> {
    of_kind("StatefulSet")
        .into_iter()
        .map(|(_, s)| (text(&s["metadata"]["name"]).to_string(), s))
        .collect()
}

/// A string field, which must be there.
fn text(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, found {v:?}"))
}

/// A list field, which must be there.
fn list(v: &Value) -> &Vec<Value> {
    v.as_sequence()
        .unwrap_or_else(|| panic!("expected a list, found {v:?}"))
}

/// A shard's one container (reaper).
fn container(shard: &Value) -> &Value {
    let containers = list(&shard["spec"]["template"]["spec"]["containers"]);
    assert_eq!(containers.len(), 1, "one container");
    &containers[0]
}

/// A shard's environment as written: name → the entry (`value` or `valueFrom`).
fn env_entries(shard: &Value) -> BTreeMap<String, Value> {
    list(&container(shard)["env"])
        .iter()
        .map(|e| (text(&e["name"]).to_string(), e.clone()))
        .collect()
}

/// The plain value of a shard's variable `key`, which must be set.
fn plain(shard: &Value, key: &str) -> String {
    let entries = env_entries(shard);
    let entry = entries.get(key).unwrap_or_else(|| panic!("{key} is set"));
    text(&entry["value"]).to_string()
}

/// The example Secrets' placeholders: (Secret name, key) → value.
fn example_secrets() -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    for (file, secret) in of_kind("Secret") {
        assert_eq!(file, "secret.example.yaml", "Secrets only in the example");
        let name = text(&secret["metadata"]["name"]).to_string();
        let data = secret["stringData"].as_mapping().expect("stringData");
        for (k, v) in data {
            out.insert((name.clone(), text(k).to_string()), text(v).to_string());
        }
    }
    out
}

/// The Secret and key a variable's `valueFrom.secretKeyRef` names, if it has one.
fn secret_ref(entry: &Value) -> Option<(String, String)> {
    let r = &entry["valueFrom"]["secretKeyRef"];
    r.is_mapping()
        .then(|| (text(&r["name"]).to_string(), text(&r["key"]).to_string()))
}

/// The Secret and key that the file at `path` comes from: the Secret volume mounted over it.
fn secret_file(shard: &Value, path: &str) -> Option<(String, String)> {
    let mounts = list(&container(shard)["volumeMounts"]);
    let volumes = list(&shard["spec"]["template"]["spec"]["volumes"]);
    mounts.iter().find_map(|m| {
        let key = path.strip_prefix(&format!("{}/", text(&m["mountPath"])))?;
        let volume = volumes.iter().find(|v| v["name"] == m["name"])?;
        let secret = volume["secret"]["secretName"].as_str()?;
        Some((secret.to_string(), key.to_string()))
    })
}

/// A shard's environment as the pod would see it, with each secret replaced by its example's
/// placeholder: a `secretKeyRef` by its value, a `*_FILE` path by a file (in `tmp`) holding it.
fn resolved_env(shard: &Value, tmp: &Path) -> BTreeMap<String, String> {
    let secrets = example_secrets();
    let mut env = BTreeMap::new();
    for (key, entry) in env_entries(shard) {
        let value = if let Some(id) = secret_ref(&entry) {
            secrets
                .get(&id)
                .unwrap_or_else(|| panic!("{key}: {id:?} in the example"))
                .clone()
        } else if key.ends_with("_FILE") {
            let id = secret_file(shard, text(&entry["value"]))
                .unwrap_or_else(|| panic!("{key} lies under a mounted Secret volume"));
            let placeholder = secrets.get(&id).unwrap_or_else(|| panic!("{key}: {id:?}"));
            let file = tmp.join(format!("{}-{}", id.0, id.1));
            std::fs::write(&file, placeholder).unwrap();
            file.to_string_lossy().into_owned()
        } else {
            text(&entry["value"]).to_string()
        };
        env.insert(key, value);
    }
    env
}

/// A shard's configuration, as `Config::from_vars` reads its resolved environment.
fn config(name: &str, shard: &Value) -> Config {
    let tmp = tempfile::tempdir().unwrap();
    let env = resolved_env(shard, tmp.path());
    Config::from_vars(env).unwrap_or_else(|e| panic!("{name}: the environment parses: {e}"))
}

#[test]
fn kustomize_lists_every_manifest_but_the_secret_example() {
    let (_, k) = of_kind("Kustomization").remove(0);
    let listed: BTreeSet<String> = list(&k["resources"])
        .iter()
        .map(|r| text(r).to_string())
        .collect();
    let files: BTreeSet<String> = documents()
        .into_iter()
        .map(|(file, _)| file)
        .filter(|f| f != "kustomization.yaml" && !f.ends_with(".example.yaml"))
        .collect();
    assert_eq!(listed, files);
}

#[test]
fn every_shard_is_one_replica_with_its_ledger_on_a_volume_of_its_own() {
    let headless: BTreeSet<String> = of_kind("Service")
        .into_iter()
        .filter(|(_, s)| s["spec"]["clusterIP"].as_str() == Some("None"))
        .map(|(_, s)| text(&s["metadata"]["name"]).to_string())
        .collect();
    for (name, shard) in shards() {
        let spec = &shard["spec"];
        assert_eq!(spec["replicas"].as_u64(), Some(1), "{name}: replicas");
        assert!(
            headless.contains(text(&spec["serviceName"])),
            "{name}: service"
        );
        let labels = spec["template"]["metadata"]["labels"].as_mapping().unwrap();
        for (k, v) in spec["selector"]["matchLabels"].as_mapping().unwrap() {
            assert_eq!(
                labels.get(k),
                Some(v),
                "{name}: the selector matches its pods"
            );
        }
        let claims = list(&spec["volumeClaimTemplates"]);
        let ledger = plain(&shard, "REAPER_LEDGER");
        let mount = list(&container(&shard)["volumeMounts"])
            .iter()
            .find(|m| ledger.starts_with(&format!("{}/", text(&m["mountPath"]))))
            .unwrap_or_else(|| panic!("{name}: REAPER_LEDGER lies under a mount"));
        let claim = claims
            .iter()
            .find(|c| c["metadata"]["name"] == mount["name"])
            .unwrap_or_else(|| panic!("{name}: the ledger's mount is a claim template"));
        let modes = list(&claim["spec"]["accessModes"]);
        assert!(
            modes
                .iter()
                .all(|m| m == "ReadWriteOnce" || m == "ReadWriteOncePod"),
            "{name}: the ledger's volume is mounted by one node ({modes:?})"
        );
    }
}

#[test]
fn every_shard_probes_health_and_readiness_where_reaper_serves_them() {
    for (name, shard) in shards() {
        let c = container(&shard);
        let addr = config(&name, &shard).metrics_addr.expect("metrics served");
        assert!(
            addr.ip().is_unspecified(),
            "{name}: the kubelet can reach {addr}"
        );
        let port_of = |probe: &Value| match &probe["httpGet"]["port"] {
            Value::Number(n) => n.as_u64(),
            Value::String(named) => list(&c["ports"])
                .iter()
                .find(|p| p["name"].as_str() == Some(named))
                .and_then(|p| p["containerPort"].as_u64()),
            other => panic!("{name}: a probe's port is {other:?}"),
        };
        for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
            let p = &c[probe];
            assert_eq!(p["httpGet"]["path"].as_str(), Some(path), "{name}: {probe}");
            assert_eq!(port_of(p), Some(u64::from(addr.port())), "{name}: {probe}");
        }
    }
}

#[test]
fn every_shard_has_more_time_to_stop_than_its_shutdown_grace() {
    for (name, shard) in shards() {
        let grace = config(&name, &shard).shutdown_grace;
        let kill_after = shard["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
            .as_u64()
            .unwrap_or_else(|| panic!("{name}: terminationGracePeriodSeconds is set"));
        // The in-flight calls get the grace; logging off and flushing the outbox come after.
        assert!(
            kill_after >= grace.as_secs() + 10,
            "{name}: {kill_after}s leaves no room after a grace of {grace:?}"
        );
    }
}

#[test]
fn every_shard_sets_only_keys_reaper_reads_and_secrets_only_from_secrets() {
    let secrets = example_secrets();
    for (name, shard) in shards() {
        for (key, entry) in env_entries(&shard) {
            assert!(
                key == "RUST_LOG" || KNOWN_KEYS.contains(&key.as_str()),
                "{name} sets {key}, which reaper would refuse as unknown"
            );
            let secret = ["PASSWORD", "TOKEN", "SECRET"]
                .iter()
                .any(|s| key.contains(s));
            if let Some(id) = secret_ref(&entry) {
                assert!(secrets.contains_key(&id), "{name}: {key} from {id:?}");
            } else if secret || key == "REAPER_AMQP_URL" {
                assert!(
                    key.ends_with("_FILE"),
                    "{name}: {key} is given as a plain value"
                );
                let path = text(&entry["value"]);
                let id = secret_file(&shard, path)
                    .unwrap_or_else(|| panic!("{name}: {key} lies under a Secret volume"));
                assert!(secrets.contains_key(&id), "{name}: {key} from {id:?}");
            }
        }
    }
}

#[test]
fn every_shard_environment_is_a_reaper_configuration_for_its_own_endpoint() {
    for (name, shard) in shards() {
        let cfg = config(&name, &shard);
        assert!(cfg.topology.route_by_endpoint, "{name}: routes by endpoint");
        let endpoints: Vec<&str> = cfg.em.iter().map(|e| e.name.as_str()).collect();
        let shard_label = text(&shard["metadata"]["labels"]["app.kubernetes.io/instance"]);
        assert_eq!(endpoints, [shard_label], "{name}: one EM, the shard's");
        assert!(cfg.em[0].url.starts_with("https://"), "{name}: EM over TLS");
        assert_eq!(
            cfg.worker_name, shard_label,
            "{name}: events name the shard"
        );
        assert!(
            cfg.em[0].password.path().is_some(),
            "{name}: a password file"
        );
    }
}

#[test]
fn the_shards_serve_distinct_endpoints_with_distinct_ledgers_and_secrets() {
    let shards = shards();
    assert!(shards.len() >= 2, "the example shows sharding");
    let distinct = |what: &str, of: &dyn Fn(&str, &Value) -> String| {
        let all: Vec<String> = shards.iter().map(|(n, s)| of(n, s)).collect();
        let set: BTreeSet<&String> = all.iter().collect();
        assert_eq!(set.len(), all.len(), "each shard its own {what}: {all:?}");
    };
    distinct("endpoint", &|_, s| plain(s, "REAPER_EM_NAME"));
    distinct("pods", &|_, s| format!("{:?}", s["spec"]["selector"]));
    // A claim is named `<template>-<StatefulSet>-<ordinal>`: distinct StatefulSet names, so
    // distinct volumes.
    distinct("ledger claim", &|n, s| {
        let claim = &list(&s["spec"]["volumeClaimTemplates"])[0];
        format!("{}-{n}-0", text(&claim["metadata"]["name"]))
    });
    distinct("EM password", &|_, s| {
        let path = plain(s, "REAPER_EM_PASSWORD_FILE");
        format!("{:?}", secret_file(s, &path))
    });
}

#[test]
fn every_shard_runs_unprivileged_on_a_read_only_root_within_a_memory_limit() {
    for (name, shard) in shards() {
        let pod = &shard["spec"]["template"]["spec"];
        let c = container(&shard);
        assert_eq!(
            pod["securityContext"]["runAsNonRoot"].as_bool(),
            Some(true),
            "{name}"
        );
        let sc = &c["securityContext"];
        assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true), "{name}");
        assert_eq!(
            sc["allowPrivilegeEscalation"].as_bool(),
            Some(false),
            "{name}"
        );
        assert!(
            c["resources"]["limits"]["memory"].is_string(),
            "{name}: memory limit"
        );
        assert_eq!(
            list(&c["args"])[0].as_str(),
            Some("run"),
            "{name}: the worker"
        );
    }
}
