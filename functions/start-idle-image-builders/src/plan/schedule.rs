//! The schedule evaluator: whether a schedule runs at an instant, why, since when, and its running periods between
//! two instants. Pure: time in, decision out. Every rule is read in the schedule's local time, so a period means the
//! same wall-clock hours before and after a DST change (a begin inside the skipped hour starts at its end).

use std::fmt;

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::config::schedules::{MonthDay, Period, Schedule, WeekdayRule};

/// Why a schedule is on or off at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Why {
    /// In the period of this index (0-based, as in the document).
    Period(usize),
    /// The local date is one of the schedule's holidays.
    Holiday(Date),
    /// In none of its periods.
    Outside,
}

/// A schedule's state at an instant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluation {
    pub running: bool,
    pub why: Why,
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::Period(i) => write!(f, "in period {}", i + 1),
            Why::Holiday(d) => write!(f, "holiday {d}"),
            Why::Outside => f.write_str("outside every period"),
        }
    }
}

/// How far back [`since`] looks for the moment a schedule last changed its mind: longer than any stretch a
/// calendar makes (a season off, a shutdown of weeks), so a `respect-manual` stretch keeps one start.
pub const LOOK_BACK: SignedDuration = SignedDuration::from_hours(400 * 24);

/// `at` in the schedule's local time, as reports and `keeper-local schedule` show it: `Mon 2026-03-30 08:30 CEST`.
pub fn local_time(schedule: &Schedule, at: Timestamp) -> String {
    at.to_zoned(schedule.tz.clone()).strftime("%a %Y-%m-%d %H:%M %Z").to_string()
}

/// The schedule's state at `at`.
/// A holiday is the day a stretch begins on: a night shift that began the evening before runs to its end, and one
/// that would begin on the holiday does not run, after midnight either.
pub fn at(schedule: &Schedule, at: Timestamp) -> Evaluation {
    let date = at.to_zoned(schedule.tz.clone()).date();
    let holiday = |d: Date| schedule.holidays.iter().any(|(from, to)| *from <= d && d <= *to);
    let mut off = None;
    for (i, p) in schedule.periods.iter().enumerate() {
        match in_period(p, &schedule.tz, date, at) {
            Some(began) if holiday(began) => off = off.or(Some(began)),
            Some(_) => return Evaluation { running: true, why: Why::Period(i) },
            None => {}
        }
    }
    match off.or(holiday(date).then_some(date)) {
        Some(day) => Evaluation { running: false, why: Why::Holiday(day) },
        None => Evaluation { running: false, why: Why::Outside },
    }
}

/// Whether a period's day rules select `date`: its months, its days of the month, and its weekdays, all of them.
pub fn day_selected(p: &Period, date: Date) -> bool {
    let (day, last) = (date.day(), date.days_in_month());
    let month_ok = p.months.as_ref().is_none_or(|m| m.contains(&date.month()));
    let monthday_ok = p
        .monthdays
        .as_ref()
        .is_none_or(|d| d.contains(&MonthDay::Day(day)) || (day == last && d.contains(&MonthDay::Last)));
    let weekday_ok = p.weekdays.as_ref().is_none_or(|rules| {
        rules.iter().any(|rule| match *rule {
            WeekdayRule::Every(w) => date.weekday() == w,
            WeekdayRule::Nth(w, n) => date.weekday() == w && (day - 1) / 7 + 1 == n,
            WeekdayRule::Last(w) => date.weekday() == w && day + 7 > last,
        })
    });
    month_ok && monthday_ok && weekday_ok
}

/// The instant a local date and wall-clock time name: in a gap (clocks going forward) the first instant after it,
/// in a fold (clocks going back) the first of the two, so that a period is one stretch of real time whose ends read
/// `begin` and `end` on the wall clock.
fn instant(tz: &TimeZone, date: Date, time: Option<Time>) -> Option<Timestamp> {
    let wanted = date.to_datetime(time.unwrap_or(Time::midnight()));
    // jiff's default puts a time in a gap as far after it as the gap is long (02:30 → 03:30); the first instant
    // whose wall clock reads the time or later is the moment the clock jumps, found by halving.
    let later = wanted.to_zoned(tz.clone()).ok()?.timestamp();
    let reads = |t: Timestamp| t.to_zoned(tz.clone()).datetime();
    if reads(later) == wanted {
        return Some(later);
    }
    let (mut low, mut high) = (later.as_second() - 26 * 3600, later.as_second());
    while high - low > 1 {
        let middle = low + (high - low) / 2;
        match reads(Timestamp::from_second(middle).ok()?) >= wanted {
            true => high = middle,
            false => low = middle,
        }
    }
    Timestamp::from_second(high).ok()
}

/// The stretch `[begin, end)` of real time a period runs in when it begins on local `date`, if its day rules select
/// that date. A begin after the end runs across midnight, into the next day.
fn stretch(p: &Period, tz: &TimeZone, date: Date) -> Option<(Timestamp, Timestamp)> {
    if !day_selected(p, date) {
        return None;
    }
    let tomorrow = date.tomorrow().ok()?;
    let begin = instant(tz, date, p.begin)?;
    let end = match (p.begin, p.end) {
        (Some(b), Some(e)) if e < b => instant(tz, tomorrow, Some(e))?,
        (_, Some(e)) => instant(tz, date, Some(e))?,
        (_, None) => instant(tz, tomorrow, None)?,
    };
    Some((begin, end))
}

/// The day whose stretch of the period `at` is in: `at`'s local `date`, or the day before (the part after midnight
/// of a period across it belongs to the day it began on, and so do its day rules).
fn in_period(p: &Period, tz: &TimeZone, date: Date, at: Timestamp) -> Option<Date> {
    let within = |d: &Date| stretch(p, tz, *d).is_some_and(|(begin, end)| begin <= at && at < end);
    Some(date).filter(within).or_else(|| date.yesterday().ok().filter(within))
}

const MINUTE: SignedDuration = SignedDuration::from_mins(1);

/// The start of the minute `at` is in: every rule is in whole minutes of local time, and every zone's offset is too.
fn minute_of(at: Timestamp) -> Timestamp {
    Timestamp::from_second(at.as_second().div_euclid(60) * 60).unwrap_or(at)
}

/// When the schedule last changed its mind before or at `at`: the first instant of the stretch of the same state
/// that `at` is in. `None` when it has not changed within [`LOOK_BACK`] (a schedule that is always on, say).
///
/// The state can change only where a period's stretch begins or ends, or at a local midnight (a holiday begins or
/// ends): those instants of the days looked back on are walked from the latest down, a few per day, instead of
/// every minute of forty days.
pub fn since(schedule: &Schedule, at: Timestamp) -> Option<Timestamp> {
    let running = self::at(schedule, at).running;
    let oldest = at.checked_sub(LOOK_BACK).ok()?;
    let today = at.to_zoned(schedule.tz.clone()).date();
    let mut edges = Vec::new();
    let mut day = today.tomorrow().ok()?;
    for _ in 0..=LOOK_BACK.as_hours() / 24 + 1 {
        edges.extend(instant(&schedule.tz, day, None));
        for p in &schedule.periods {
            if let Some((begin, end)) = stretch(p, &schedule.tz, day) {
                edges.extend([begin, end]);
            }
        }
        day = day.yesterday().ok()?;
    }
    edges.retain(|e| *e <= at && *e > oldest);
    edges.sort_unstable_by(|a, b| b.cmp(a));
    edges.dedup();
    let just_before = SignedDuration::from_secs(1);
    edges.into_iter().find(|e| e.checked_sub(just_before).is_ok_and(|b| self::at(schedule, b).running != running))
}

/// The stretches in which the schedule runs between `from` and `to`, each `[begin, end)` with why it runs at its
/// begin; a stretch cut by `from` or `to` begins or ends there.
pub fn running_between(schedule: &Schedule, from: Timestamp, to: Timestamp) -> Vec<(Timestamp, Timestamp, Why)> {
    let mut out = Vec::new();
    let mut open: Option<(Timestamp, Why)> = None;
    let mut t = from;
    while t < to {
        let now = at(schedule, t);
        match (&open, now.running) {
            (None, true) => open = Some((t, now.why)),
            (Some(_), false) => {
                let (begin, why) = open.take().expect("open");
                out.push((begin, t, why));
            }
            _ => {}
        }
        // The next minute boundary: stretches begin and end on them.
        t = minute_of(t).checked_add(MINUTE).unwrap_or(to);
    }
    if let Some((begin, why)) = open {
        out.push((begin, to, why));
    }
    out
}

/// A builder's override tag (`keeper:override`): hold a state until a time, or leave the builder alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Override {
    Running(Timestamp),
    Stopped(Timestamp),
    /// `ignore`: keeper leaves the builder as it is while the tag is on it.
    Ignore,
}

/// Reads an override tag's value: `running until <RFC 3339>`, `stopped until <RFC 3339>` or `ignore`. The error
/// is the rule it breaks, for the builder's report line.
pub fn parse_override(value: &str) -> Result<Override, String> {
    let value = value.trim();
    if value.eq_ignore_ascii_case("ignore") {
        return Ok(Override::Ignore);
    }
    let rule =
        || format!("`{value}` must be `running until <RFC 3339 time>`, `stopped until <RFC 3339 time>` or `ignore`");
    let (state, until) = value.split_once(" until ").ok_or_else(rule)?;
    let until: Timestamp = until.trim().parse().map_err(|_| rule())?;
    match state.trim().to_ascii_lowercase().as_str() {
        "running" => Ok(Override::Running(until)),
        "stopped" => Ok(Override::Stopped(until)),
        _ => Err(rule()),
    }
}

#[cfg(test)]
mod tests;
