//! The EM client over real HTTPS against the simulator, with certificates made at test time:
//! a private CA signs the simulator's certificate for 127.0.0.1 / localhost. Default trust
//! refuses it, `ca_file` or the explicit `insecure_tls` opt-in accept it, a CA file that is not
//! PEM stops start-up, and the request timeout is a transient error.

use reaper::cli::harness::em_settings;
use reaper::config::{Config, EmSettings};
use reaper::em::codec::{Format, TaskState};
use reaper::em::{DeleteAnswer, EmClient, ErrorClass, Poll, Presence};
use reaper::health::EndpointHealth;
use reaper::http::HttpSettings;
use reaper::limit::{Budget, Limiter};
use reaper::sim::{SimConfig, SimHandle, SimTls};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::common::em_http::start_sim as sim;

const JOB: &str = "5b89dae5-6f08-45ec-b068-08f0bd08394a";

/// A private CA and a server certificate it signed, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
            IsCa, KeyPair, KeyUsagePurpose,
        };
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "reaper test CA");
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();

        let mut leaf =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "reaper test EM");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().unwrap();
        let cert = leaf.signed_by(&key, &ca).unwrap();

        let pki = Pki {
            dir: tempfile::tempdir().unwrap(),
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        std::fs::write(pki.ca_path(), &pki.ca_pem).unwrap();
        std::fs::write(pki.dir.path().join("em.pem"), &pki.cert_pem).unwrap();
        std::fs::write(pki.dir.path().join("em.key"), &pki.key_pem).unwrap();
        pki
    }

    fn ca_path(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn tls(&self) -> SimTls {
        SimTls::from_pem(self.cert_pem.clone(), self.key_pem.clone())
    }
}

fn fast(pki: &Pki) -> SimConfig {
    SimConfig {
        task_duration: (Duration::from_millis(150), Duration::from_millis(150)),
        tls: Some(pki.tls()),
        ..SimConfig::default()
    }
}

fn client(sim: &SimHandle, http: HttpSettings) -> EmClient {
    let budget = Budget {
        rate_per_sec: 0.0,
        burst: 1,
        max_in_flight: 16,
    };
    let settings = EmSettings {
        http,
        ..em_settings(sim, Format::Xml, budget)
    };
    let limiter = Arc::new(Limiter::new(settings.budget));
    let health = Arc::new(EndpointHealth::detached("em"));
    EmClient::new(&settings, limiter, health).unwrap()
}

fn delete_calls(sim: &SimHandle) -> u64 {
    let stats = sim.stats();
    let routed: u64 = stats
        .calls
        .iter()
        .filter(|(k, _)| k.starts_with("DELETE "))
        .map(|(_, n)| n)
        .sum();
    routed + stats.deletes.values().sum::<u64>()
}

/// Logon, `DELETE /api/jobs/{id}`, task polling to success, and the job is gone.
async fn delete_a_job_end_to_end(c: &EmClient) {
    let path = format!("/api/jobs/{JOB}");
    let DeleteAnswer::Task { task, session, .. } = c.delete(&path).await.unwrap() else {
        panic!("expected a task")
    };
    assert!(
        task.href
            .as_deref()
            .unwrap_or_default()
            .starts_with("https://"),
        "the simulator links over HTTPS: {:?}",
        task.href
    );
    let mut done = None;
    for _ in 0..100 {
        match c.get_task(&task.task_id, &session).await.unwrap() {
            Poll::Task(t) if t.state.is_terminal() => {
                done = Some(t);
                break;
            }
            Poll::Task(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            Poll::SessionLost => panic!("session lost"),
        }
    }
    let done = done.expect("the task finished");
    assert_eq!(done.state, TaskState::Finished);
    assert!(done.finished_result().unwrap().success);
    assert_eq!(c.presence(&path).await.unwrap(), Presence::Absent);
}

#[tokio::test]
async fn default_trust_refuses_a_privately_signed_certificate_and_deletes_nothing() {
    let pki = Pki::new();
    let s = sim(fast(&pki)).await;
    assert!(s.base_url().starts_with("https://127.0.0.1:"));
    let c = client(&s, HttpSettings::default());
    let e = c.delete(&format!("/api/jobs/{JOB}")).await.unwrap_err();
    assert_eq!(
        e.class,
        ErrorClass::Unavailable,
        "the endpoint is down: {e}"
    );
    assert_eq!(e.status, None, "a transport error: {e}");
    assert!(
        e.message.to_lowercase().contains("certificate"),
        "the error names the certificate: {e}"
    );
    let stats = s.stats();
    assert_eq!(delete_calls(&s), 0, "{stats:?}");
    assert_eq!(stats.logons, 0, "{stats:?}");
    assert_eq!(stats.total_calls, 0, "no request got through: {stats:?}");
    s.shutdown().await;
}

#[tokio::test]
async fn a_private_ca_file_makes_logon_delete_and_polling_work() {
    let pki = Pki::new();
    let s = sim(fast(&pki)).await;
    let c = client(
        &s,
        HttpSettings {
            ca_file: Some(pki.ca_path()),
            ..HttpSettings::default()
        },
    );
    delete_a_job_end_to_end(&c).await;
    let stats = s.stats();
    assert_eq!(stats.logons, 1);
    assert_eq!(stats.deletes.get(&format!("/api/jobs/{JOB}")), Some(&1));
    s.shutdown().await;
}

#[tokio::test]
async fn insecure_tls_opt_in_accepts_the_certificate_without_a_ca_file() {
    let pki = Pki::new();
    let s = sim(fast(&pki)).await;
    let c = client(
        &s,
        HttpSettings {
            insecure_tls: true,
            ..HttpSettings::default()
        },
    );
    delete_a_job_end_to_end(&c).await;
    assert_eq!(s.stats().logons, 1);
    s.shutdown().await;
}

#[tokio::test]
async fn the_simulator_reads_its_certificate_from_files() {
    let pki = Pki::new();
    let d = pki.dir.path();
    let tls = SimTls::from_files(&d.join("em.pem"), &d.join("em.key")).unwrap();
    let s = sim(SimConfig {
        tls: Some(tls),
        ..fast(&pki)
    })
    .await;
    let c = client(
        &s,
        HttpSettings {
            ca_file: Some(pki.ca_path()),
            ..HttpSettings::default()
        },
    );
    delete_a_job_end_to_end(&c).await;
    s.shutdown().await;

    let e = SimTls::from_files(&d.join("em.pem"), &pki.ca_path()).unwrap_err();
    assert!(format!("{e:#}").contains("private key"), "{e:#}");
}

fn config_with(pairs: &[(&str, &Path)]) -> Result<Config, reaper::config::ConfigError> {
    let mut vars = vec![
        (
            "REAPER_EM_URL".to_string(),
            "https://127.0.0.1:9398".to_string(),
        ),
        ("REAPER_EM_USERNAME".to_string(), "reaper".to_string()),
        ("REAPER_EM_PASSWORD".to_string(), "reaper".to_string()),
    ];
    for (k, p) in pairs {
        vars.push((k.to_string(), p.display().to_string()));
    }
    Config::from_vars(vars)
}

#[test]
fn a_ca_file_that_is_not_pem_stops_start_up_naming_its_key() {
    let pki = Pki::new();
    let junk = pki.dir.path().join("junk.pem");
    std::fs::write(&junk, "this is not a certificate\n").unwrap();
    let broken = pki.dir.path().join("broken.pem");
    std::fs::write(
        &broken,
        "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let key_only = pki.dir.path().join("em.key");
    for bad in [&junk, &broken, &key_only] {
        let e = config_with(&[("REAPER_EM_CA_FILE", bad)]).unwrap_err();
        assert_eq!(e.key, "REAPER_EM_CA_FILE", "{e}");
        assert!(e.to_string().contains("REAPER_EM_CA_FILE"), "{e}");

        let mut vars = vec![
            (
                "REAPER_DCS_URL".to_string(),
                "https://dcs.example.com".to_string(),
            ),
            ("REAPER_DCS_TOKEN".to_string(), "t".to_string()),
        ];
        vars.push(("REAPER_DCS_CA_FILE".into(), bad.display().to_string()));
        let e = Config::from_vars(vars).unwrap_err();
        assert_eq!(e.key, "REAPER_DCS_CA_FILE", "{e}");
    }

    let c = config_with(&[("REAPER_EM_CA_FILE", &pki.ca_path())]).unwrap();
    assert_eq!(c.em[0].http.ca_file, Some(pki.ca_path()));
}

#[tokio::test]
async fn the_request_timeout_makes_the_endpoint_unavailable() {
    let pki = Pki::new();
    let s = sim(SimConfig {
        latency: Duration::from_secs(2),
        ..fast(&pki)
    })
    .await;
    let c = client(
        &s,
        HttpSettings {
            ca_file: Some(pki.ca_path()),
            request_timeout: Duration::from_millis(200),
            ..HttpSettings::default()
        },
    );
    let e = c.delete(&format!("/api/jobs/{JOB}")).await.unwrap_err();
    assert_eq!(
        e.class,
        ErrorClass::Unavailable,
        "the endpoint is down: {e}"
    );
    assert_eq!(e.status, None, "{e}");
    assert!(e.message.contains("timed out"), "{e}");
    assert_eq!(delete_calls(&s), 0, "the logon never finished");
    s.shutdown().await;
}
