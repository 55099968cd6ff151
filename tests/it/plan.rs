//! `reaper plan FILE` as an operator runs it: the binary against the in-process simulator
//! (strict, with an inventory of named jobs), with no broker and no ledger. It validates each
//! line, applies the protect file and the job-name globs, checks each EM target with a GET,
//! never sends a DELETE, and writes the plan as JSON or CSV.

use crate::binary::reaper_bin;
use crate::common::em_http::start_sim;
use crate::common::*;
use reaper::request::RequestWire;
use reaper::sim::{Inventory, InventoryJob, SimConfig, SimHandle};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

fn include(id: &str, j: &InventoryJob, include_id: &str) -> RequestWire {
    RequestWire {
        request_id: Some(id.into()),
        target: serde_json::json!({"type": "em.job_include", "job_id": j.id.to_string(),
            "include_id": include_id}),
        ..Default::default()
    }
}

fn jobs_path(j: &InventoryJob) -> String {
    format!("/api/jobs/{}", j.id)
}

/// One line of the request file: its JSON, its request id, the verdict it must get.
type Case = (String, String, &'static str);

fn case(request: RequestWire, verdict: &'static str) -> Case {
    let id = request.request_id.clone().unwrap();
    (serde_json::to_string(&request).unwrap(), id, verdict)
}

/// Three jobs the simulator knows (one named `PROD-…`), a fourth the protect file names, and
/// ids it does not know.
struct Jobs {
    prod: InventoryJob,
    free: InventoryJob,
    parent: InventoryJob,
    by_id: InventoryJob,
    gone: String,
    gone_include: String,
}

impl Jobs {
    fn new() -> Self {
        let (prod, free, parent, by_id) = (
            named_job("PROD-db"),
            named_job("free"),
            named_job("parent"),
            named_job("x"),
        );
        let (gone, gone_include) = (guid(), guid());
        Jobs {
            prod,
            free,
            parent,
            by_id,
            gone,
            gone_include,
        }
    }

    /// A request file with one line of each kind.
    fn cases(&self) -> Vec<Case> {
        let id = |j: &InventoryJob| j.id.to_string();
        let parent_include = self.parent.includes[0].to_string();
        let elsewhere = RequestWire {
            endpoint: Some("em-2".into()),
            ..job_request("elsewhere", &id(&self.free))
        };
        let bad = r#"{"request_id": "bad", "target": {"type": "em.job", "job_id": "../x"}}"#;
        vec![
            case(job_request("by-id", &id(&self.by_id)), "protected"),
            case(job_request("by-name", &id(&self.prod)), "protected"),
            case(job_request("job", &id(&self.free)), "would_delete"),
            case(
                include("include", &self.parent, &parent_include),
                "would_delete",
            ),
            case(job_request("gone-job", &self.gone), "absent"),
            case(
                include("gone-inc", &self.free, &self.gone_include),
                "absent",
            ),
            (bad.to_string(), "bad".to_string(), "invalid"),
            case(dcs_request("dcs", "p", "i", &task_id()), "unchecked"),
            case(elsewhere, "unchecked"),
        ]
    }

    /// The GETs the checks of [`Jobs::cases`] cost, per path: one per name read and one per
    /// check of a target; none twice.
    fn gets(&self) -> BTreeMap<String, u64> {
        let includes = |j: &InventoryJob, i: &str| format!("{}/includes/{i}", jobs_path(j));
        let parent_include = self.parent.includes[0].to_string();
        let gets = [
            (jobs_path(&self.prod), 1),
            (jobs_path(&self.free), 2), // `job` (the name read is its check) and `gone-inc`
            (jobs_path(&self.parent), 1),
            (includes(&self.parent, &parent_include), 1),
            (format!("/api/jobs/{}", self.gone), 1), // the name read's 404: not read again
            (includes(&self.free, &self.gone_include), 1),
        ];
        gets.into_iter().collect()
    }
}

/// A simulator knowing [`Jobs`], the protect file, and what the plan must find.
struct Setup {
    sim: SimHandle,
    dir: tempfile::TempDir,
    protect: PathBuf,
    cases: Vec<Case>,
    gets: BTreeMap<String, u64>,
}

async fn setup() -> Setup {
    let jobs = Jobs::new();
    let inventory = vec![
        jobs.prod.clone(),
        jobs.free.clone(),
        jobs.parent.clone(),
        jobs.by_id.clone(),
    ];
    let sim = start_sim(SimConfig {
        inventory: Some(Inventory { jobs: inventory }),
        dcs_static_token: Some("dcs-token".into()),
        ..SimConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let protect = dir.path().join("protect.txt");
    std::fs::write(&protect, format!("# never\n{}\n", jobs.by_id.id)).unwrap();
    Setup {
        sim,
        dir,
        protect,
        cases: jobs.cases(),
        gets: jobs.gets(),
    }
}

/// Runs `reaper plan ARGS` against `sim` (EM with its default credentials, DCS with a static
/// token), with `protect` as the protect file and `prod-*` as the job-name glob.
async fn plan(sim: &SimHandle, protect: &Path, args: &[&str]) -> Output {
    let mut c = reaper_bin();
    c.arg("plan")
        .args(args)
        .env("REAPER_EM_URL", sim.base_url())
        .env("REAPER_EM_USERNAME", "reaper")
        .env("REAPER_EM_PASSWORD", "reaper")
        .env("REAPER_DCS_URL", sim.base_url())
        .env("REAPER_DCS_TOKEN", "dcs-token")
        .env("REAPER_PROTECT_FILE", protect)
        .env("REAPER_PROTECT_JOB_NAMES", "prod-*");
    // The simulator runs on this test's runtime: wait for the child without blocking it.
    tokio::process::Command::from(c).output().await.unwrap()
}

/// The simulator saw no DELETE but the plan's log-off, and exactly `want` GETs.
fn assert_calls(sim: &SimHandle, want: &BTreeMap<String, u64>) {
    let stats = sim.stats();
    assert_eq!(stats.logoffs, 1, "the EM session was logged off: {stats:?}");
    assert_eq!(
        stats.count_method("DELETE"),
        stats.count("DELETE /api/logonSessions/{id}"),
        "no DELETE but the log-off: {stats:?}"
    );
    assert_eq!(&stats.gets, want, "one GET per check, none twice");
    assert_eq!(stats.count_method("GET"), want.values().sum::<u64>());
}

#[tokio::test]
async fn plan_checks_each_line_against_the_rails_and_the_simulator_without_deleting() {
    let s = setup().await;
    let file = s.dir.path().join("batch.jsonl");
    let lines: Vec<&str> = s.cases.iter().map(|c| c.0.as_str()).collect();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = plan(
        &s.sim,
        &s.protect,
        &[file.to_str().unwrap(), "--format", "json"],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is one JSON object ({e}): {stderr}"));
    let summary = serde_json::json!({"would_delete": 2, "absent": 2, "protected": 2,
        "invalid": 1, "unchecked": 2});
    assert_eq!(v["summary"], summary, "{v:#}");
    let items = v["items"].as_array().unwrap();
    for (n, (item, (_, id, verdict))) in items.iter().zip(&s.cases).enumerate() {
        assert_eq!(item["line"], n + 1, "one item per line, in order: {item}");
        assert_eq!(item["request_id"], *id, "{item}");
        assert_eq!(item["verdict"], *verdict, "{item}");
    }
    assert_eq!(items.len(), s.cases.len());
    let detail = |n: usize| items[n]["detail"].as_str().unwrap();
    assert!(
        detail(0).contains("REAPER_PROTECT_FILE line 2"),
        "{}",
        detail(0)
    );
    assert!(
        detail(1).contains("prod-*"),
        "the glob is named: {}",
        detail(1)
    );
    assert!(detail(6).contains("job_id"), "what is wrong: {}", detail(6));
    assert!(detail(7).contains("DCS has no GET"), "{}", detail(7));
    assert!(
        detail(8).contains("unknown endpoint `em-2`"),
        "{}",
        detail(8)
    );
    assert!(stderr.contains("2 would_delete"), "the summary: {stderr}");
    assert_calls(&s.sim, &s.gets);
}

/// The first six cases (all EM jobs and includes) as a CSV request file.
fn csv_requests(cases: &[Case]) -> String {
    let mut csv = String::from("request_id,type,job_id,include_id\n");
    for (line, id, _) in &cases[..6] {
        let r: RequestWire = serde_json::from_str(line).unwrap();
        let field = |k: &str| r.target[k].as_str().unwrap_or_default().to_string();
        let (kind, job, include) = (field("type"), field("job_id"), field("include_id"));
        csv += &format!("{id},{kind},{job},{include}\n");
    }
    csv
}

/// (line, request_id, verdict) of each row of a CSV plan, after checking its header.
fn plan_rows(path: &Path) -> Vec<(String, String, String)> {
    let mut rows = csv::Reader::from_path(path).unwrap();
    let header = rows.headers().unwrap().clone();
    assert_eq!(header, vec!["line", "request_id", "verdict", "detail"]);
    rows.records()
        .map(|r| r.unwrap())
        .map(|r| (r[0].to_string(), r[1].to_string(), r[2].to_string()))
        .collect()
}

#[tokio::test]
async fn plan_of_a_csv_file_writes_a_csv_plan_to_output_and_the_summary_to_stdout() {
    let s = setup().await;
    let file = s.dir.path().join("batch.csv");
    std::fs::write(&file, csv_requests(&s.cases)).unwrap();
    let output = s.dir.path().join("plan.csv");
    let (file_arg, output_arg) = (file.to_str().unwrap(), output.to_str().unwrap());
    let args = [file_arg, "--format", "csv", "--output", output_arg];
    let out = plan(&s.sim, &s.protect, &args).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = "2 would_delete, 2 absent, 2 protected, 0 invalid, 0 unchecked";
    assert!(stdout.contains(summary), "{stdout}");
    assert!(stdout.contains(output_arg), "where the plan went: {stdout}");
    // A CSV file's line numbers count its header: the first request is line 2.
    let want: Vec<(String, String, String)> = s.cases[..6]
        .iter()
        .enumerate()
        .map(|(n, (_, id, verdict))| ((n + 2).to_string(), id.to_string(), verdict.to_string()))
        .collect();
    assert_eq!(plan_rows(&output), want);
    assert_calls(&s.sim, &s.gets);
}

#[tokio::test]
async fn plan_of_a_file_that_cannot_be_read_exits_2_naming_it() {
    let s = setup().await;
    let missing = s.dir.path().join("missing.jsonl");
    for file in [missing.as_path(), s.dir.path()] {
        let out = plan(&s.sim, &s.protect, &[file.to_str().unwrap()]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", file.display());
        assert!(
            stderr.contains(file.to_str().unwrap()),
            "the file is named: {stderr}"
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.is_empty(), "no plan: {stdout}");
    }
    assert_eq!(s.sim.stats().logons, 0, "nothing was called");
}
