//! The schedules document (named schedules with periods, a time zone, holidays and a mode), read and validated as a
//! whole: one bad field refuses the document, naming the field and the rule.

use std::collections::BTreeSet;

use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use serde::Deserialize;
use shared::error::InvalidInput;

/// The largest schedules document read, in bytes.
pub const MAX_SCHEDULES_BYTES: usize = 256 * 1024;

/// At most this many schedules in one document, periods in one schedule, holidays in one schedule.
pub const MAX_SCHEDULES: usize = 100;
pub const MAX_PERIODS: usize = 20;
pub const MAX_HOLIDAYS: usize = 400;

/// How a schedule treats what a person does by hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The schedule is the truth: a builder started by hand outside its periods is stopped, one stopped by hand in
    /// a period is started again.
    Enforced,
    /// Act at a period's edges only (the first run after the schedule changes its mind), never fight a person.
    RespectManual,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforced => "enforced",
            Mode::RespectManual => "respect-manual",
        }
    }
}

/// A day a period runs on, by weekday: every such day, the nth of the month (1 to 5), or the last of the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeekdayRule {
    Every(Weekday),
    Nth(Weekday, i8),
    Last(Weekday),
}

/// A day of the month a period runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MonthDay {
    Day(i8),
    /// The last day of the month, whatever its number.
    Last,
}

/// When a schedule runs, within each day its rules select (local time of the schedule's zone). `begin` after `end`
/// runs across midnight: from `begin` on a selected day to `end` the next day. Without `begin` it runs from the
/// start of the day, without `end` to its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub begin: Option<Time>,
    pub end: Option<Time>,
    /// `None`: every day of the week.
    pub weekdays: Option<Vec<WeekdayRule>>,
    /// `None`: every day of the month.
    pub monthdays: Option<BTreeSet<MonthDay>>,
    /// `None`: every month (1 to 12).
    pub months: Option<BTreeSet<i8>>,
}

/// One named schedule, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub name: String,
    /// The IANA name, as written.
    pub timezone: String,
    pub tz: TimeZone,
    pub mode: Mode,
    pub periods: Vec<Period>,
    /// Inclusive ranges of local dates on which the schedule is off all day.
    pub holidays: Vec<(Date, Date)>,
}

/// Every schedule of a document, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Schedules {
    pub schedules: Vec<Schedule>,
}

impl Schedules {
    pub fn get(&self, name: &str) -> Option<&Schedule> {
        self.schedules.iter().find(|s| s.name == name)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    schedules: Vec<ScheduleSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleSpec {
    name: String,
    timezone: String,
    #[serde(default)]
    description: Option<String>,
    mode: Option<Mode>,
    periods: Vec<PeriodSpec>,
    #[serde(default)]
    holidays: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PeriodSpec {
    begin: Option<String>,
    end: Option<String>,
    weekdays: Option<Vec<String>>,
    monthdays: Option<Vec<String>>,
    months: Option<Vec<String>>,
}

/// A schedule name: what a `keeper:schedule` tag value may be (AppStream tag values allow these and more).
fn check_name(field: &str, name: &str) -> Result<(), InvalidInput> {
    let ok = (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "ignore";
    ok.then_some(()).ok_or_else(|| {
        InvalidInput::new(field, format!("`{name}` must be 1 to 64 of A-Z a-z 0-9 - _ . (and not `ignore`)"))
    })
}

/// Reads a schedules document: JSON `{"schedules": [...]}`. Any field wrong refuses the whole document.
pub fn parse(json: &str) -> Result<Schedules, InvalidInput> {
    let document: Document = serde_json::from_str(json)
        .map_err(|e| InvalidInput::new("schedules", format!("is not a schedules document: {e}")))?;
    if document.schedules.len() > MAX_SCHEDULES {
        return Err(InvalidInput::new(
            "schedules",
            format!("has {} schedules; at most {MAX_SCHEDULES}", document.schedules.len()),
        ));
    }
    let mut out = Vec::new();
    for (i, spec) in document.schedules.into_iter().enumerate() {
        let at = format!("schedules[{i}]");
        let schedule = schedule(&at, spec)?;
        if out.iter().any(|s: &Schedule| s.name == schedule.name) {
            return Err(InvalidInput::new(format!("{at}.name"), format!("`{}` names two schedules", schedule.name)));
        }
        out.push(schedule);
    }
    Ok(Schedules { schedules: out })
}

fn schedule(at: &str, spec: ScheduleSpec) -> Result<Schedule, InvalidInput> {
    check_name(&format!("{at}.name"), &spec.name)?;
    let _ = spec.description;
    let tz = TimeZone::get(&spec.timezone).map_err(|_| {
        InvalidInput::new(
            format!("{at}.timezone"),
            format!("`{}` is not an IANA time zone (e.g. Europe/Berlin, UTC)", spec.timezone),
        )
    })?;
    if spec.periods.is_empty() || spec.periods.len() > MAX_PERIODS {
        return Err(InvalidInput::new(format!("{at}.periods"), format!("must hold 1 to {MAX_PERIODS} periods")));
    }
    let periods = spec
        .periods
        .into_iter()
        .enumerate()
        .map(|(j, p)| period(&format!("{at}.periods[{j}]"), p))
        .collect::<Result<Vec<_>, _>>()?;
    if spec.holidays.len() > MAX_HOLIDAYS {
        return Err(InvalidInput::new(format!("{at}.holidays"), format!("at most {MAX_HOLIDAYS} dates or ranges")));
    }
    let holidays = spec
        .holidays
        .iter()
        .enumerate()
        .map(|(j, h)| holiday(&format!("{at}.holidays[{j}]"), h))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Schedule {
        name: spec.name,
        timezone: spec.timezone,
        tz,
        mode: spec.mode.unwrap_or(Mode::Enforced),
        periods,
        holidays,
    })
}

fn period(at: &str, spec: PeriodSpec) -> Result<Period, InvalidInput> {
    let begin = spec.begin.as_deref().map(|t| time(&format!("{at}.begin"), t)).transpose()?;
    let end = spec.end.as_deref().map(|t| time(&format!("{at}.end"), t)).transpose()?;
    if begin.is_some() && begin == end {
        return Err(InvalidInput::new(format!("{at}.end"), "must differ from begin (omit both for the whole day)"));
    }
    if begin.is_none() && end == Some(Time::midnight()) {
        return Err(InvalidInput::new(
            format!("{at}.end"),
            "00:00 without a begin would never run (omit it for the whole day)",
        ));
    }
    let list = |name: &str, items: Option<Vec<String>>| -> Result<Option<Vec<String>>, InvalidInput> {
        match items {
            Some(items) if items.is_empty() => {
                Err(InvalidInput::new(format!("{at}.{name}"), "must not be empty (omit it for every day)"))
            }
            other => Ok(other),
        }
    };
    let weekdays = list("weekdays", spec.weekdays)?
        .map(|w| {
            let mut rules = Vec::new();
            for (k, item) in w.iter().enumerate() {
                rules.extend(weekday_rules(&format!("{at}.weekdays[{k}]"), item)?);
            }
            Ok::<_, InvalidInput>(rules)
        })
        .transpose()?;
    let monthdays = list("monthdays", spec.monthdays)?
        .map(|m| {
            let mut days = BTreeSet::new();
            for (k, item) in m.iter().enumerate() {
                days.extend(monthdays(&format!("{at}.monthdays[{k}]"), item)?);
            }
            Ok::<_, InvalidInput>(days)
        })
        .transpose()?;
    let months = list("months", spec.months)?
        .map(|m| {
            let mut months = BTreeSet::new();
            for (k, item) in m.iter().enumerate() {
                months.extend(month_range(&format!("{at}.months[{k}]"), item)?);
            }
            Ok::<_, InvalidInput>(months)
        })
        .transpose()?;
    Ok(Period { begin, end, weekdays, monthdays, months })
}

/// `HH:MM`, 00:00 to 23:59.
fn time(field: &str, text: &str) -> Result<Time, InvalidInput> {
    let bad = || InvalidInput::new(field, format!("`{text}` must be a local time HH:MM, 00:00 to 23:59"));
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let (h, m): (i8, i8) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

const WEEKDAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

fn weekday(text: &str) -> Option<Weekday> {
    WEEKDAYS.iter().find(|(n, _)| text.eq_ignore_ascii_case(n)).map(|(_, d)| *d)
}

/// `mon`, `mon-fri` (a range may wrap: `fri-mon`), `mon#2` (the second Monday of the month), `friL` (the last
/// Friday).
fn weekday_rules(field: &str, text: &str) -> Result<Vec<WeekdayRule>, InvalidInput> {
    let bad = || {
        InvalidInput::new(
            field,
            format!(
                "`{text}` must be a weekday (mon..sun), a range (mon-fri), the nth of the month (mon#1 to mon#5) or the last (friL)"
            ),
        )
    };
    let text = text.trim();
    if let Some((day, nth)) = text.split_once('#') {
        let day = weekday(day).ok_or_else(bad)?;
        let nth: i8 = nth.parse().map_err(|_| bad())?;
        return (1..=5).contains(&nth).then_some(vec![WeekdayRule::Nth(day, nth)]).ok_or_else(bad);
    }
    if let Some(day) = text.strip_suffix('L').or_else(|| text.strip_suffix('l')).and_then(weekday) {
        return Ok(vec![WeekdayRule::Last(day)]);
    }
    if let Some((from, to)) = text.split_once('-') {
        let (mut day, to) = (weekday(from).ok_or_else(bad)?, weekday(to).ok_or_else(bad)?);
        let mut out = vec![WeekdayRule::Every(day)];
        while day != to {
            day = day.next();
            out.push(WeekdayRule::Every(day));
        }
        return Ok(out);
    }
    Ok(vec![WeekdayRule::Every(weekday(text).ok_or_else(bad)?)])
}

/// `1`, `1-15`, `L` (the last day), `15-L`.
fn monthdays(field: &str, text: &str) -> Result<Vec<MonthDay>, InvalidInput> {
    let bad = || {
        InvalidInput::new(
            field,
            format!("`{text}` must be a day of the month 1 to 31, L (the last), or a range (1-15, 15-L)"),
        )
    };
    let day = |t: &str| -> Result<MonthDay, InvalidInput> {
        match t.trim() {
            "L" | "l" => Ok(MonthDay::Last),
            n => n.parse::<i8>().ok().filter(|n| (1..=31).contains(n)).map(MonthDay::Day).ok_or_else(bad),
        }
    };
    match text.split_once('-') {
        None => Ok(vec![day(text)?]),
        Some((from, to)) => match (day(from)?, day(to)?) {
            (MonthDay::Day(a), MonthDay::Day(b)) if a <= b => Ok((a..=b).map(MonthDay::Day).collect()),
            (MonthDay::Day(a), MonthDay::Last) => Ok((a..=31).map(MonthDay::Day).chain([MonthDay::Last]).collect()),
            _ => Err(bad()),
        },
    }
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];

/// `jan`, `1`, `jan-mar`, `11-2` (wrapping: November to February).
fn month_range(field: &str, text: &str) -> Result<Vec<i8>, InvalidInput> {
    let bad =
        || InvalidInput::new(field, format!("`{text}` must be a month (jan..dec or 1 to 12) or a range (jan-mar)"));
    let month = |t: &str| -> Result<i8, InvalidInput> {
        let t = t.trim();
        MONTHS
            .iter()
            .position(|m| t.eq_ignore_ascii_case(m))
            .map(|i| i as i8 + 1)
            .or_else(|| t.parse::<i8>().ok().filter(|m| (1..=12).contains(m)))
            .ok_or_else(bad)
    };
    match text.split_once('-') {
        None => Ok(vec![month(text)?]),
        Some((from, to)) => {
            let (mut m, to) = (month(from)?, month(to)?);
            let mut out = vec![m];
            while m != to {
                m = m % 12 + 1;
                out.push(m);
            }
            Ok(out)
        }
    }
}

/// `2026-12-24`, or an inclusive range `2026-12-24..2027-01-01`.
fn holiday(field: &str, text: &str) -> Result<(Date, Date), InvalidInput> {
    let bad =
        || InvalidInput::new(field, format!("`{text}` must be a date YYYY-MM-DD or a range YYYY-MM-DD..YYYY-MM-DD"));
    let date = |t: &str| t.trim().parse::<Date>().map_err(|_| bad());
    match text.split_once("..") {
        None => {
            let d = date(text)?;
            Ok((d, d))
        }
        Some((from, to)) => {
            let (from, to) = (date(from)?, date(to)?);
            if from > to {
                return Err(InvalidInput::new(field, format!("`{text}` ends before it begins")));
            }
            Ok((from, to))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(schedule: &str) -> String {
        format!(r#"{{"schedules": [{schedule}]}}"#)
    }

    #[test]
    fn given_a_full_schedule_when_read_then_every_rule_is_kept() {
        let s = parse(&doc(
            r#"{"name": "office", "timezone": "Europe/Berlin", "mode": "respect-manual",
                "periods": [{"begin": "08:00", "end": "18:00", "weekdays": ["mon-fri", "sat#1", "sunL"], "months": ["nov-feb"], "monthdays": ["1-3", "28-L"]}],
                "holidays": ["2026-12-24", "2026-12-31..2027-01-01"]}"#,
        ))
        .expect("a valid document");
        let office = s.get("office").expect("by name");
        assert_eq!(office.mode, Mode::RespectManual);
        let p = &office.periods[0];
        assert_eq!(p.begin, Some(Time::constant(8, 0, 0, 0)));
        assert_eq!(p.weekdays.as_ref().map(Vec::len), Some(7), "mon-fri, sat#1, sunL");
        assert_eq!(p.months.as_ref().map(|m| m.iter().copied().collect::<Vec<_>>()), Some(vec![1, 2, 11, 12]));
        assert!(p.monthdays.as_ref().is_some_and(|d| d.contains(&MonthDay::Last) && d.contains(&MonthDay::Day(31))));
        assert_eq!(office.holidays.len(), 2);
    }

    #[test]
    fn given_each_bad_field_when_read_then_the_document_is_refused_naming_that_field() {
        let base = |period: &str, rest: &str| {
            doc(&format!(r#"{{"name": "s", "timezone": "UTC", "periods": [{period}]{rest}}}"#))
        };
        for (json, field) in [
            (base(r#"{"begin": "25:00"}"#, ""), "schedules[0].periods[0].begin"),
            (base(r#"{"begin": "8:00"}"#, ""), "schedules[0].periods[0].begin"),
            (base(r#"{"begin": "08:00", "end": "08:00"}"#, ""), "schedules[0].periods[0].end"),
            (base(r#"{"weekdays": ["mon#6"]}"#, ""), "schedules[0].periods[0].weekdays[0]"),
            (base(r#"{"weekdays": []}"#, ""), "schedules[0].periods[0].weekdays"),
            (base(r#"{"monthdays": ["0"]}"#, ""), "schedules[0].periods[0].monthdays[0]"),
            (base(r#"{"monthdays": ["L-3"]}"#, ""), "schedules[0].periods[0].monthdays[0]"),
            (base(r#"{"months": ["smarch"]}"#, ""), "schedules[0].periods[0].months[0]"),
            (base("{}", r#", "holidays": ["2026-02-30"]"#), "schedules[0].holidays[0]"),
            (base("{}", r#", "holidays": ["2026-12-31..2026-12-01"]"#), "schedules[0].holidays[0]"),
            (doc(r#"{"name": "s", "timezone": "Mars/Olympus", "periods": [{}]}"#), "schedules[0].timezone"),
            (doc(r#"{"name": "s", "timezone": "UTC", "periods": []}"#), "schedules[0].periods"),
            (doc(r#"{"name": "ignore", "timezone": "UTC", "periods": [{}]}"#), "schedules[0].name"),
            (
                doc(
                    r#"{"name": "a", "timezone": "UTC", "periods": [{}]}, {"name": "a", "timezone": "UTC", "periods": [{}]}"#,
                ),
                "schedules[1].name",
            ),
            (doc(r#"{"name": "s", "timezone": "UTC", "periods": [{}], "colour": "red"}"#), "schedules"),
        ] {
            let refused = parse(&json).expect_err(&json);
            assert_eq!(refused.field, field, "{json}: {refused}");
        }
    }
}
