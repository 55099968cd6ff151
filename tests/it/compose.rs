//! `docker-compose.yml` cannot run here (no Docker engine), so its shape is checked instead:
//! valid YAML, the services it needs, and a worker environment that reaper's own config
//! loader accepts and points at the compose network's broker and simulator.

use std::collections::BTreeMap;

fn compose() -> serde_norway::Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .unwrap();
    serde_norway::from_str(&text).expect("docker-compose.yml is valid YAML")
}

#[test]
fn the_compose_file_has_a_broker_a_simulator_and_a_worker() {
    let c = compose();
    let services = c["services"].as_mapping().expect("services");
    for name in ["rabbitmq", "em-simulator", "reaper"] {
        assert!(services.contains_key(name), "service {name}");
    }
    assert_eq!(c["services"]["reaper"]["command"][0].as_str(), Some("run"));
    assert_eq!(
        c["services"]["em-simulator"]["command"][0].as_str(),
        Some("simulate")
    );
    assert_eq!(
        c["services"]["reaper"]["depends_on"]["rabbitmq"]["condition"].as_str(),
        Some("service_healthy")
    );
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    assert!(dockerfile.contains("ENTRYPOINT [\"reaper\"]"));
}

#[test]
fn the_compose_worker_environment_is_a_valid_reaper_configuration() {
    let c = compose();
    let env: BTreeMap<String, String> =
        serde_norway::from_value(c["services"]["reaper"]["environment"].clone()).unwrap();
    let cfg =
        reaper::config::Config::from_vars(env.clone()).expect("the compose environment parses");
    assert!(cfg.amqp_url.expose().contains("@rabbitmq:5672"));
    let em = cfg.em.into_iter().next().expect("an EM endpoint");
    assert_eq!(em.url, "http://em-simulator:9398");
    assert_eq!(cfg.ledger, std::path::PathBuf::from("/data/reaper.db"));
    assert!(
        env.keys()
            .all(|k| k.starts_with("REAPER_") || k == "RUST_LOG")
    );
}

#[test]
fn every_reaper_key_of_every_compose_service_is_one_reaper_reads() {
    let c = compose();
    let services = c["services"].as_mapping().expect("services");
    for (name, service) in services {
        let env: BTreeMap<String, String> = match &service["environment"] {
            serde_norway::Value::Null => continue,
            e => serde_norway::from_value(e.clone()).expect("an environment map"),
        };
        for key in env.keys().filter(|k| k.starts_with("REAPER_")) {
            assert!(
                reaper::config::KNOWN_KEYS.contains(&key.as_str()),
                "{name:?} sets {key}, which reaper would refuse as unknown"
            );
        }
    }
}
