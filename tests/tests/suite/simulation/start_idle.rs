//! start-idle-image-builders under generated histories: schedule firings, Scheduler retries, hand requests, builders
//! started, stopped or deleted by someone else, and faults. Its promises: an opted-out builder is never touched, a
//! builder is started at most once per firing, one someone else started is never reported as started by keeper, and
//! a calm firing at the end leaves no selected builder STOPPED.

use proptest::prelude::*;
use serde_json::{Value, json};
use shared::report::Outcome;
use start_idle_image_builders::StartIdleImageBuilders;

use super::history::{Delivered, Model, World};

const BUILDERS: [&str; 4] = ["team-a", "team-b", "team-c", "team-d"];

/// The AppStream calls a fault may hit, with each fault's code (throttled, unavailable, refused). This model's
/// histories use the first three (it never stops a builder); the reconcile's all four.
pub(crate) const APPSTREAM_FAULTS: [(&str, &str, &str, &str); 4] = [
    (
        "StartImageBuilder",
        "ConcurrentModificationException",
        "ServiceUnavailableException",
        "InvalidAccountStatusException",
    ),
    ("DescribeImageBuilders", "ThrottlingException", "ServiceUnavailableException", "InvalidAccountStatusException"),
    ("ListTagsForResource", "ThrottlingException", "ServiceUnavailableException", "InvalidAccountStatusException"),
    (
        "StopImageBuilder",
        "ConcurrentModificationException",
        "ServiceUnavailableException",
        "InvalidAccountStatusException",
    ),
];
/// Carries the opt-out tag.
const OPTED_OUT: &str = "team-x";

#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// An EventBridge Scheduler firing of the start schedule (`retry` > 0: Scheduler's retry of that firing, with a
    /// new execution id).
    Firing { firing: u8, retry: u8 },
    /// By hand: start these builders (bit mask over the team builders; the opted-out one when `opted_out`).
    Hand { mask: u8, opted_out: bool },
}

#[derive(Debug, Clone)]
pub(crate) enum Writer {
    /// Someone starts a builder in the console.
    Starts(u8),
    /// Someone stops a builder (it is STOPPED again).
    Stops(u8),
    /// Someone deletes a builder.
    Deletes(u8),
}

fn state(dump: &Value, name: &str) -> Option<String> {
    dump["regions"]["us-east-1"]["imageBuilders"][name]["State"].as_str().map(String::from)
}

/// No call of the log names `name`'s builder (the opted-out one).
pub(crate) fn untouched(calls: &[local::Call], name: &str) -> Result<(), String> {
    match calls
        .iter()
        .find(|c| c.operation.ends_with("ImageBuilder") && c.params.get("Name").map(String::as_str) == Some(name))
    {
        Some(c) => Err(format!("the opted-out builder {name} was touched: {c:?}")),
        None => Ok(()),
    }
}

pub(crate) struct StartIdle;

impl Model for StartIdle {
    type F = StartIdleImageBuilders;
    type Event = Event;
    type Writer = Writer;

    fn seed(&self) -> Value {
        let mut builders = serde_json::Map::new();
        for name in BUILDERS {
            builders.insert(name.into(), json!({"State": "STOPPED", "Tags": {"keeper:schedule": "office-hours"}}));
        }
        builders.insert(
            OPTED_OUT.into(),
            json!({"State": "STOPPED", "Tags": {"keeper:schedule": "office-hours", "keeper:skip": "true"}}),
        );
        // Transitions take a minute: a started builder stays PENDING for the whole history.
        json!({"timing": {"transitionMillis": 60000}, "regions": {"us-east-1": {"imageBuilders": builders}}})
    }

    fn settings(&self) -> Vec<(&'static str, String)> {
        vec![("NAME_PREFIX", "team-".into()), ("TAGS", "keeper:schedule=office-hours".into())]
    }

    /// An operator allows one builder at a time.
    fn variants(&self) -> Vec<Vec<(&'static str, String)>> {
        vec![vec![("MAX_CONCURRENCY", "1".into())]]
    }

    fn events(&self) -> BoxedStrategy<Event> {
        prop_oneof![
            3 => (0u8..4, 0u8..3).prop_map(|(firing, retry)| Event::Firing { firing, retry }),
            2 => (1u8..16, proptest::bool::weighted(0.2)).prop_map(|(mask, opted_out)| Event::Hand { mask, opted_out }),
        ]
        .boxed()
    }

    fn writers(&self) -> BoxedStrategy<Writer> {
        prop_oneof![
            3 => (0u8..4).prop_map(Writer::Starts),
            2 => (0u8..4).prop_map(Writer::Stops),
            1 => (0u8..4).prop_map(Writer::Deletes),
        ]
        .boxed()
    }

    fn operations(&self) -> &'static [(&'static str, &'static str, &'static str, &'static str)] {
        &APPSTREAM_FAULTS[..3]
    }

    fn payload(&self, event: &Event, _n: usize, _world: &World) -> Value {
        match event {
            Event::Firing { firing, retry } => json!({"action": "start", "scheduler": {
                "executionId": format!("exec-{firing}-{retry}"),
                "scheduledTime": format!("2026-12-0{}T07:00:00Z", firing + 1),
                "scheduleArn": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/keeper-start"}}),
            Event::Hand { mask, opted_out } => {
                let mut names: Vec<&str> =
                    (0..BUILDERS.len()).filter(|i| mask & (1 << i) != 0).map(|i| BUILDERS[i]).collect();
                if *opted_out {
                    names.push(OPTED_OUT);
                }
                json!({"action": "start", "names": names})
            }
        }
    }

    fn write(&self, writer: &Writer, world: &World) {
        let mut w = world.running.emulator.world();
        let builders = &mut w.region("us-east-1").image_builders;
        let name = |i: &u8| BUILDERS[*i as usize % BUILDERS.len()].to_string();
        match writer {
            Writer::Starts(i) => {
                if let Some(b) = builders.get_mut(&name(i))
                    && b.state() == "STOPPED"
                {
                    b.fields.insert("State".into(), json!("RUNNING"));
                    b.transition = None;
                }
            }
            Writer::Stops(i) => {
                if let Some(b) = builders.get_mut(&name(i)) {
                    b.fields.insert("State".into(), json!("STOPPED"));
                    b.transition = None;
                }
            }
            Writer::Deletes(i) => {
                builders.remove(&name(i));
            }
        }
    }

    fn always(&self, world: &World, log: &[Delivered]) -> Result<(), String> {
        let calls = world.calls();
        // The opted-out builder is never touched, whoever names it.
        untouched(&calls, OPTED_OUT)?;
        // A start this run made that took effect (its answer lost included) is reported as this run's, once.
        for d in log.iter().filter(|d| !d.concurrent) {
            let Some(report) = d.report().filter(|r| !r.replayed) else { continue };
            for c in calls[d.calls.clone()].iter().filter(|c| c.operation == "StartImageBuilder" && c.ok()) {
                let name = c.params.get("Name").map(String::as_str).unwrap_or_default();
                let reported = report.actions.iter().any(|a| {
                    a.target.ends_with(&format!("/{name}"))
                        && a.outcome == Outcome::Applied
                        && a.action.contains("start")
                });
                if !reported {
                    return Err(format!(
                        "{name} was started by this run and not reported started: {:?}",
                        report.actions
                    ));
                }
            }
        }
        // A builder reported started by a delivery was started by that delivery: a StartImageBuilder of it that took
        // effect (its answer may have been lost) is in its window.
        for d in log {
            let Some(report) = d.report().filter(|r| !r.replayed) else { continue };
            for a in report.actions.iter().filter(|a| a.outcome == Outcome::Applied && a.action.contains("start")) {
                let name = a.target.rsplit('/').next().unwrap_or_default();
                let started = calls[d.calls.clone()].iter().any(|c| {
                    c.operation == "StartImageBuilder"
                        && c.params.get("Name").map(String::as_str) == Some(name)
                        && c.ok()
                });
                if !started {
                    return Err(format!("{name} reported started by this run, and no start of it took effect: {a:?}"));
                }
            }
        }
        Ok(())
    }

    fn settle(&self) -> Option<Event> {
        Some(Event::Firing { firing: 9, retry: 0 })
    }

    fn quiescent(&self, world: &World, log: &[Delivered]) -> Result<(), String> {
        let dump = world.dump();
        let calls = world.calls();
        // A calm firing at the end leaves no selected builder STOPPED.
        for name in BUILDERS {
            if state(&dump, name).as_deref() == Some("STOPPED") {
                return Err(format!("{name} is STOPPED after a calm firing: {:?}", log.last().map(|d| &d.answer)));
            }
        }
        // Started at most once per firing: two starts of one builder that took effect in the deliveries of one
        // event need someone to have stopped it in between.
        let mut by_event: std::collections::BTreeMap<String, Vec<&Delivered>> = Default::default();
        for d in log {
            by_event.entry(d.payload.to_string()).or_default().push(d);
        }
        for (event, deliveries) in by_event {
            let first = deliveries.iter().map(|d| d.calls.start).min().unwrap_or(0);
            let last = deliveries.iter().map(|d| d.calls.end).max().unwrap_or(0);
            if world.other_writer_between(first, last) {
                continue;
            }
            // Concurrent deliveries share calls (twins one window, an interleaved one a part of another's): each
            // call made while a delivery of the event ran counts once.
            let made: std::collections::BTreeSet<usize> = deliveries.iter().flat_map(|d| d.calls.clone()).collect();
            for name in BUILDERS {
                let starts = made
                    .iter()
                    .filter(|at| {
                        let c = &calls[**at];
                        c.operation == "StartImageBuilder"
                            && c.ok()
                            && c.params.get("Name").map(String::as_str) == Some(name)
                    })
                    .count();
                if starts > 1 {
                    return Err(format!("{name} started {starts} times by one event {event}"));
                }
            }
        }
        Ok(())
    }
}
