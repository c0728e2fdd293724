//! start-idle-image-builders' reconcile under generated histories: reconciles at the times the history reaches
//! (across a DST change and a holiday), Lambda's retries and re-sends, fixed starts and stops by hand, people
//! starting and stopping builders, faults and crashes. Its promises: each builder has one master (a fixed job never
//! touches a scheduled builder, a reconcile never one without a schedule), an opted-out builder is never touched, a
//! calm reconcile leaves every enforced builder as its schedule wants, keeper acts at most once per stretch on a
//! `respect-manual` builder, and on an enforced one more than once only when a person changed it in between.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use serde_json::{Value, json};
use shared::report::Outcome;
use start_idle_image_builders::StartIdleImageBuilders;
use start_idle_image_builders::config::schedules::{Schedule, Schedules, parse};
use start_idle_image_builders::plan::schedule;

use super::history::{Delivered, Model, World};

/// Berlin office hours on weekdays, Good Friday off, enforced; and a night in UTC across midnight that keeper starts
/// once and then leaves to people.
const SCHEDULES: &str = r#"{"schedules": [
    {"name": "office", "timezone": "Europe/Berlin", "mode": "enforced",
     "periods": [{"begin": "08:00", "end": "18:00", "weekdays": ["mon-fri"]}], "holidays": ["2026-04-03"]},
    {"name": "night", "timezone": "UTC", "mode": "respect-manual", "periods": [{"begin": "22:00", "end": "06:00"}]}]}"#;

/// On office hours (enforced).
const ENFORCED: [&str; 2] = ["e-0", "e-1"];
/// On the night (respect-manual).
const POLITE: &str = "r-0";
/// On office hours, and opted out.
const OPTED_OUT: &str = "x-0";
/// Without a schedule: the fixed jobs' alone.
const FREE: &str = "free";
/// Every builder a person or a request may name.
const NAMED: [&str; 4] = ["e-0", "e-1", "r-0", "free"];

/// Monday 23 March 2026, 02:00 UTC, in the night: the histories' hours reach office hours, other nights, the DST
/// change (29 March) and Good Friday (3 April).
fn begins() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_774_231_200)
}

#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// The reconcile schedule fires, at the time the history has reached.
    Reconcile,
    /// By hand: a fixed start (or stop) of the builders of `mask` (bits over [`NAMED`]).
    Hand { start: bool, mask: u8 },
}

#[derive(Debug, Clone)]
pub(crate) enum Writer {
    /// A person starts a builder (of [`NAMED`]) in the console.
    Starts(u8),
    /// A person stops one.
    Stops(u8),
}

/// Whether Berlin's office is open at `at`, worked out by hand and not by the evaluator under test: weekdays
/// 08:00-18:00 local time (CET, CEST from 29 March 2026), Good Friday (3 April 2026) off.
fn office_hours(at: jiff::Timestamp) -> bool {
    let local = at.to_zoned(jiff::tz::TimeZone::get("Europe/Berlin").expect("bundled"));
    let weekday = local.weekday().to_monday_one_offset() <= 5;
    let good_friday = local.date() == jiff::civil::date(2026, 4, 3);
    weekday && !good_friday && (8..18).contains(&local.hour())
}

/// When the UTC night (22:00-06:00) or the day between two nights that holds `at` began, by hand.
fn night_began(at: jiff::Timestamp) -> jiff::Timestamp {
    let utc = at.to_zoned(jiff::tz::TimeZone::UTC);
    let day = utc.date();
    let began = match utc.hour() {
        22.. => day.at(22, 0, 0, 0),
        0..6 => day.yesterday().expect("in range").at(22, 0, 0, 0),
        _ => day.at(6, 0, 0, 0),
    };
    began.to_zoned(jiff::tz::TimeZone::UTC).expect("UTC has no gaps").timestamp()
}

fn state(dump: &Value, name: &str) -> Option<String> {
    dump["regions"]["us-east-1"]["imageBuilders"][name]["State"].as_str().map(String::from)
}

pub(crate) struct Reconcile {
    schedules: Schedules,
}

impl Default for Reconcile {
    fn default() -> Self {
        Reconcile { schedules: parse(SCHEDULES).expect("the model's schedules are valid") }
    }
}

impl Reconcile {
    fn schedule(&self, name: &str) -> &Schedule {
        let of = if name == POLITE { "night" } else { "office" };
        self.schedules.get(of).expect("in the document")
    }

    fn instant(at_ms: i64) -> jiff::Timestamp {
        jiff::Timestamp::try_from(begins() + Duration::from_millis(at_ms as u64)).expect("in range")
    }

    /// The stretch (the moment its schedule last changed its mind) a delivery at `at_ms` decided `name` in: the
    /// night's worked out by hand; office hours' (only grouped by, never judged) from the function's evaluator.
    fn stretch(&self, name: &str, at_ms: i64) -> Option<jiff::Timestamp> {
        let at = Self::instant(at_ms);
        if name == POLITE {
            return Some(night_began(at));
        }
        schedule::since(self.schedule(name), at)
    }

    fn is_reconcile(d: &Delivered) -> bool {
        d.payload.get("action").and_then(Value::as_str) == Some("reconcile")
    }
}

/// Every call of the log that started or stopped `name` and took effect, by its index.
fn mutations_of(calls: &[local::Call], name: &str, window: std::ops::Range<usize>) -> Vec<usize> {
    window
        .filter(|at| {
            let c = &calls[*at];
            (c.operation == "StartImageBuilder" || c.operation == "StopImageBuilder")
                && c.ok()
                && c.params.get("Name").map(String::as_str) == Some(name)
        })
        .collect()
}

impl Model for Reconcile {
    type F = StartIdleImageBuilders;
    type Event = Event;
    type Writer = Writer;

    fn seed(&self) -> Value {
        let mut builders = serde_json::Map::new();
        for name in ENFORCED {
            builders.insert(name.into(), json!({"State": "STOPPED", "Tags": {"keeper:schedule": "office"}}));
        }
        builders.insert(POLITE.into(), json!({"State": "STOPPED", "Tags": {"keeper:schedule": "night"}}));
        builders.insert(
            OPTED_OUT.into(),
            json!({"State": "STOPPED", "Tags": {"keeper:schedule": "office", "keeper:skip": "true"}}),
        );
        builders.insert(FREE.into(), json!({"State": "STOPPED"}));
        // A transition lasts until hours pass (Model::time_passes ends it), so a start is PENDING within a moment.
        json!({"timing": {"transitionMillis": 3_600_000}, "regions": {"us-east-1": {"imageBuilders": builders}}})
    }

    fn settings(&self) -> Vec<(&'static str, String)> {
        // A transition lasts until hours pass: a start would wait out the deadline for a STOPPING builder to stop.
        vec![("SCHEDULES", SCHEDULES.into()), ("WAIT_FOR_STOPPING", "false".into())]
    }

    fn variants(&self) -> Vec<Vec<(&'static str, String)>> {
        vec![vec![("MAX_CONCURRENCY", "1".into())]]
    }

    fn clock(&self) -> Option<SystemTime> {
        Some(begins())
    }

    fn events(&self) -> BoxedStrategy<Event> {
        prop_oneof![
            4 => Just(Event::Reconcile),
            1 => (any::<bool>(), 1u8..16).prop_map(|(start, mask)| Event::Hand { start, mask }),
        ]
        .boxed()
    }

    fn writers(&self) -> BoxedStrategy<Writer> {
        prop_oneof![(0u8..4).prop_map(Writer::Starts), (0u8..4).prop_map(Writer::Stops)].boxed()
    }

    fn operations(&self) -> &'static [(&'static str, &'static str, &'static str, &'static str)] {
        &super::start_idle::APPSTREAM_FAULTS
    }

    fn payload(&self, event: &Event, n: usize, world: &World) -> Value {
        match event {
            // Each firing its own event: its execution id, and the time it was scheduled for (the time it runs).
            Event::Reconcile => json!({"action": "reconcile", "scheduler": {
                "executionId": format!("00000000-0000-4000-8000-{n:012}"),
                "scheduledTime": Self::instant(world.elapsed_ms()).to_string(),
                "scheduleArn": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/keeper-reconcile"}}),
            Event::Hand { start, mask } => {
                let names: Vec<&str> = (0..NAMED.len()).filter(|i| mask & (1 << i) != 0).map(|i| NAMED[i]).collect();
                json!({"action": if *start { "start" } else { "stop" }, "names": names, "requestId": format!("hand-{n}")})
            }
        }
    }

    fn write(&self, writer: &Writer, world: &World) {
        let mut w = world.running.emulator.world();
        let builders = &mut w.region("us-east-1").image_builders;
        let (name, to) = match writer {
            Writer::Starts(i) => (NAMED[*i as usize % NAMED.len()], "RUNNING"),
            Writer::Stops(i) => (NAMED[*i as usize % NAMED.len()], "STOPPED"),
        };
        if let Some(b) = builders.get_mut(name) {
            b.fields.insert("State".into(), json!(to));
            b.transition = None;
        }
    }

    /// Hours pass: every transition has ended.
    fn time_passes(&self, world: &World, _ms: i64) {
        let mut w = world.running.emulator.world();
        for b in w.region("us-east-1").image_builders.values_mut() {
            let done = match b.state() {
                "PENDING" => "RUNNING",
                "STOPPING" => "STOPPED",
                _ => continue,
            };
            b.fields.insert("State".into(), json!(done));
            b.transition = None;
        }
    }

    fn always(&self, world: &World, log: &[Delivered]) -> Result<(), String> {
        let calls = world.calls();
        // The opted-out builder is never touched.
        super::start_idle::untouched(&calls, OPTED_OUT)?;
        // One master: a fixed job never starts or stops a scheduled builder, a reconcile never the free one.
        for d in log.iter().filter(|d| !d.concurrent) {
            let reconcile = Self::is_reconcile(d);
            for name in NAMED {
                let scheduled = name != FREE;
                if scheduled != reconcile && !mutations_of(&calls, name, d.calls.clone()).is_empty() {
                    return Err(format!("{name} was started or stopped by {}: not its master", d.payload));
                }
            }
        }
        // A calm reconcile leaves every enforced builder as its schedule wants at the time it ran.
        if let (true, Some(d)) = (world.fresh(), log.last())
            && Self::is_reconcile(d)
            && !d.concurrent
            && !d.dry_run
            && let Some(report) = d.report().filter(|r| !r.replayed && r.error.is_none())
        {
            let dump = world.dump();
            for name in ENFORCED {
                let line = report.actions.iter().find(|a| a.target == format!("us-east-1/{name}"));
                if line.is_none_or(|l| l.outcome == Outcome::Failed) {
                    continue;
                }
                let wanted = office_hours(Self::instant(d.at_ms));
                let states: &[&str] = if wanted { &["RUNNING", "PENDING"] } else { &["STOPPED", "STOPPING"] };
                let now = state(&dump, name).unwrap_or_default();
                if !states.contains(&now.as_str()) {
                    return Err(format!(
                        "{name} is {now} after a calm reconcile at {} that wants it {}: {line:?}",
                        Self::instant(d.at_ms),
                        if wanted { "running" } else { "stopped" }
                    ));
                }
            }
        }
        // Per stretch: keeper starts or stops the respect-manual builder once at most, and only until a reconcile has
        // settled the stretch (acted, or found it as wanted): after that the builder is the people's. An enforced
        // one is acted on again only when a person changed it in between. Concurrent deliveries share their calls:
        // each counts once.
        let mut by_stretch: BTreeMap<(&str, Option<jiff::Timestamp>), BTreeSet<usize>> = BTreeMap::new();
        let mut settled: BTreeMap<(&str, Option<jiff::Timestamp>), usize> = BTreeMap::new();
        for d in log.iter().filter(|d| Self::is_reconcile(d)) {
            for name in ENFORCED.iter().copied().chain([POLITE]) {
                let made = mutations_of(&calls, name, d.calls.clone());
                let stretch = self.stretch(name, d.at_ms);
                if name == POLITE
                    && let Some(&after) = settled.get(&(name, stretch))
                    && !d.concurrent
                    && d.calls.start >= after
                    && !made.is_empty()
                {
                    return Err(format!(
                        "{POLITE} was {} by {} in a stretch (since {stretch:?}) an earlier reconcile had settled",
                        calls[made[0]].operation, d.payload
                    ));
                }
                if !made.is_empty() {
                    by_stretch.entry((name, stretch)).or_default().extend(made);
                }
                let settles = !d.dry_run
                    && d.report().is_some_and(|r| {
                        !r.replayed
                            && r.actions
                                .iter()
                                .any(|a| a.target == format!("us-east-1/{POLITE}") && a.outcome != Outcome::Failed)
                    });
                if name == POLITE && settles {
                    settled.entry((name, stretch)).or_insert(d.calls.end);
                }
            }
        }
        for ((name, since), made) in by_stretch {
            let (first, last) = (made.first().copied().unwrap_or(0), made.last().copied().unwrap_or(0));
            if made.len() > 1 && (name == POLITE || !world.other_writer_between(first, last)) {
                let ops: Vec<&str> = made.iter().map(|at| calls[*at].operation.as_str()).collect();
                return Err(format!(
                    "{name} was acted on {} times in its stretch since {since:?}: {ops:?}",
                    made.len()
                ));
            }
        }
        Ok(())
    }

    fn settle(&self) -> Option<Event> {
        Some(Event::Reconcile)
    }

    fn quiescent(&self, world: &World, log: &[Delivered]) -> Result<(), String> {
        // The calm reconcile at the end, the one surely without faults, held to every promise.
        self.always(world, log)
    }
}
