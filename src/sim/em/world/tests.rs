//! Rules of `World`, with time passed in.

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::*;
use crate::sim::em::inventory::{Inventory, InventoryJob, index};

const SEC: Duration = Duration::from_secs(1);

fn world_with_session(inventory: Option<&Inventory>) -> (World, Instant) {
    let mut w = World::new(Duration::from_secs(60), inventory.map(index));
    let now = Instant::now();
    w.logon("tok".into(), now);
    (w, now)
}

#[test]
fn a_job_is_gone_only_after_its_task_succeeds() {
    let (mut w, t0) = world_with_session(None);
    let job = ResourceKey::job(Uuid::new_v4());
    let task = w.delete_resource("tok", job, t0, SEC, true).unwrap();
    assert_eq!(task.task_id, "task-1");
    assert!(task.result.is_none());
    assert!(w.get_resource(&job, t0).is_ok());
    assert_eq!(
        w.delete_resource("tok", job, t0, SEC, true)
            .unwrap_err()
            .status,
        404
    );
    let done = w.get_task("tok", "task-1", t0 + SEC).unwrap();
    assert_eq!(done.result, Some((true, "Ok".into())));
    assert_eq!(w.get_resource(&job, t0 + SEC).unwrap_err().status, 404);
}

#[test]
fn a_failed_task_leaves_the_resource_deletable_again() {
    let (mut w, t0) = world_with_session(None);
    let job = ResourceKey::job(Uuid::new_v4());
    w.delete_resource("tok", job, t0, SEC, false).unwrap();
    let t1 = t0 + SEC;
    assert!(!w.get_task("tok", "task-1", t1).unwrap().result.unwrap().0);
    let again = w.delete_resource("tok", job, t1, SEC, true).unwrap();
    assert_eq!(again.task_id, "task-2");
}

#[test]
fn stopping_a_running_task_cancels_the_deletion() {
    let (mut w, t0) = world_with_session(None);
    let job = ResourceKey::job(Uuid::new_v4());
    w.delete_resource("tok", job, t0, SEC, true).unwrap();
    assert!(
        w.delete_task("tok", "task-1", t0).unwrap(),
        "it was running"
    );
    assert!(w.get_resource(&job, t0 + 2 * SEC).is_ok());
    assert_eq!(w.get_task("tok", "task-1", t0).unwrap_err().status, 404);
    w.delete_resource("tok", job, t0, SEC, true).unwrap();
    let finished = w.delete_task("tok", "task-2", t0 + SEC).unwrap();
    assert!(!finished, "a finished task is removed, not stopped");
    assert_eq!(w.get_resource(&job, t0 + SEC).unwrap_err().status, 404);
}

#[test]
fn jobs_are_named_by_the_inventory_or_after_their_guid() {
    let (named, unnamed) = (Uuid::new_v4(), Uuid::new_v4());
    let inv = Inventory {
        jobs: vec![
            InventoryJob {
                id: named,
                name: Some("prod-crm".into()),
                ..InventoryJob::default()
            },
            InventoryJob {
                id: unnamed,
                ..InventoryJob::default()
            },
        ],
    };
    let (w, _) = world_with_session(Some(&inv));
    assert_eq!(w.job_name(named), "prod-crm");
    assert_eq!(w.job_name(unnamed), "job-2");
    let (open, _) = world_with_session(None);
    let id = Uuid::parse_str("5b89dae5-6f08-45ec-b068-08f0bd08394a").unwrap();
    assert_eq!(open.job_name(id), "job-5b89dae5");
}

#[test]
fn task_ids_are_counted_per_session() {
    let (mut w, t0) = world_with_session(None);
    w.logon("other".into(), t0);
    let a = w.delete_resource("tok", ResourceKey::job(Uuid::new_v4()), t0, SEC, true);
    let b = w.delete_resource("other", ResourceKey::job(Uuid::new_v4()), t0, SEC, true);
    assert_eq!(a.unwrap().task_id, "task-1");
    assert_eq!(b.unwrap().task_id, "task-1");
}

#[test]
fn an_idle_session_expires() {
    let (mut w, t0) = world_with_session(None);
    assert!(w.authorize(Some("tok"), t0 + 30 * SEC).is_ok());
    assert!(w.authorize(Some("tok"), t0 + 80 * SEC).is_ok());
    assert_eq!(
        w.authorize(Some("tok"), t0 + 150 * SEC).unwrap_err().status,
        401
    );
    assert_eq!(w.authorize(None, t0).unwrap_err().status, 401);
}

#[test]
fn strict_mode_knows_only_its_inventory_and_keeps_the_last_include() {
    let (job, a, b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    let inv = Inventory {
        jobs: vec![InventoryJob {
            id: job,
            includes: vec![a, b],
            ..InventoryJob::default()
        }],
    };
    let (mut w, t0) = world_with_session(Some(&inv));
    let unknown = ResourceKey::job(Uuid::new_v4());
    assert_eq!(w.get_resource(&unknown, t0).unwrap_err().status, 404);
    let inc = |item| ResourceKey::child(ResourceKind::Include, job, item);
    assert_eq!(
        w.get_resource(&inc(Uuid::new_v4()), t0).unwrap_err().status,
        404
    );
    w.delete_resource("tok", inc(a), t0, SEC, true).unwrap();
    assert_eq!(
        w.delete_resource("tok", inc(b), t0, SEC, true)
            .unwrap_err()
            .status,
        400
    );
    w.delete_resource("tok", ResourceKey::job(job), t0, SEC, true)
        .unwrap();
    assert_eq!(w.get_resource(&inc(b), t0 + SEC).unwrap_err().status, 404);
}

#[test]
fn a_task_of_another_session_cannot_be_removed_and_answers_the_lost_task_500() {
    let (mut w, t0) = world_with_session(None);
    w.logon("other".into(), t0);
    let job = ResourceKey::job(Uuid::new_v4());
    w.delete_resource("other", job, t0, SEC, true).unwrap();
    let refused = w.delete_task("tok", "task-1", t0).unwrap_err();
    assert_eq!(refused.status, 500);
    assert!(refused.message.contains("in current rest session"));
    assert!(
        w.get_task("other", "task-1", t0).is_ok(),
        "the task is untouched"
    );
    assert_eq!(w.delete_task("tok", "task-9", t0).unwrap_err().status, 404);
}

#[test]
fn the_first_poll_to_see_a_task_ended_is_recorded_with_how_late_it_came() {
    let (mut w, t0) = world_with_session(None);
    w.delete_resource("tok", ResourceKey::job(Uuid::new_v4()), t0, SEC, true)
        .unwrap();
    w.get_task("tok", "task-1", t0 + SEC / 2).unwrap();
    assert!(w.sightings().is_empty(), "still running");
    let late = Duration::from_millis(300);
    w.get_task("tok", "task-1", t0 + SEC + late).unwrap();
    w.get_task("tok", "task-1", t0 + 3 * SEC).unwrap();
    assert_eq!(
        w.sightings(),
        [TaskSighting {
            duration: SEC,
            late
        }],
        "only the first poll that saw it ended"
    );
}
