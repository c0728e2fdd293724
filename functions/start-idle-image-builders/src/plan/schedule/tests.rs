//! The evaluator's rules over generated instants: DST changes in several zones, leap days, month ends, periods
//! across midnight, holidays, and the moment a schedule last changed its mind.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use proptest::prelude::*;

use super::*;
use crate::config::schedules::{self, Schedules};

/// Zones with DST in either hemisphere, one with a half-hour DST shift, one without DST and an odd offset.
const ZONES: [&str; 6] =
    ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Australia/Lord_Howe", "Asia/Kathmandu", "UTC"];

fn one(json: &str) -> Schedule {
    let Schedules { mut schedules } = schedules::parse(&format!(r#"{{"schedules": [{json}]}}"#)).expect("valid");
    schedules.remove(0)
}

fn daily(zone: &str, begin: &str, end: &str) -> Schedule {
    one(&format!(r#"{{"name": "s", "timezone": "{zone}", "periods": [{{"begin": "{begin}", "end": "{end}"}}]}}"#))
}

fn hhmm(minutes: i32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// An instant between 2020 and 2040, by the minute.
fn instant() -> impl Strategy<Value = Timestamp> {
    (1_577_836_800i64 / 60..2_208_988_800i64 / 60).prop_map(|m| Timestamp::from_second(m * 60).expect("in range"))
}

fn date() -> impl Strategy<Value = Date> {
    (2020i16..2040, 1i8..=12, 1i8..=31).prop_filter_map("a real date", |(y, m, d)| Date::new(y, m, d).ok())
}

fn local_time(at: Timestamp, zone: &str) -> (Date, jiff::civil::Time) {
    let z = at.to_zoned(TimeZone::get(zone).expect("a zone"));
    (z.date(), z.time())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// GIVEN a daily period in a zone, WHEN a whole local day (a DST change day or not) is evaluated, THEN it runs in
    /// one stretch that begins at the first instant whose wall clock reads `begin` or later, and ends at the first
    /// that reads `end` or later: the same wall-clock hours, however long the day is.
    #[test]
    fn given_a_daily_period_when_a_local_day_is_evaluated_then_it_runs_the_wall_clock_hours(
        zone in proptest::sample::select(ZONES.to_vec()),
        day in date(),
        begin in 0i32..1380,
        length in 30i32..600,
    ) {
        let end = (begin + length).min(1439);
        let s = daily(zone, &hhmm(begin), &hhmm(end));
        let tz = TimeZone::get(zone).expect("a zone");
        let Ok(from) = day.to_zoned(tz.clone()).map(|z| z.timestamp()) else { return Ok(()) };
        let Ok(to) = day.tomorrow().and_then(|d| d.to_zoned(tz)).map(|z| z.timestamp()) else { return Ok(()) };
        let stretches = running_between(&s, from, to);
        prop_assert_eq!(stretches.len(), 1, "{:?}", stretches);
        let (b, e, why) = &stretches[0];
        prop_assert_eq!(why, &Why::Period(0));
        let mins = |t: jiff::civil::Time| i32::from(t.hour()) * 60 + i32::from(t.minute());
        let (_, b_local) = local_time(*b, zone);
        let (_, before_b) = local_time(b.checked_sub(MINUTE).expect("in range"), zone);
        prop_assert!(mins(b_local) >= begin && (mins(before_b) < begin || *b == from), "{zone} {day}: begins {b_local}");
        let (_, e_local) = local_time(*e, zone);
        let (_, before_e) = local_time(e.checked_sub(MINUTE).expect("in range"), zone);
        prop_assert!(mins(e_local) >= end && mins(before_e) < end, "{zone} {day}: ends {e_local}");
    }

    /// GIVEN a period on the last day of the month, the last Friday and the second Tuesday, WHEN any date is
    /// checked, THEN each is selected exactly when the calendar says (leap years and 30-day months included).
    #[test]
    fn given_last_and_nth_rules_when_any_date_is_checked_then_the_calendar_decides(day in date()) {
        let last_day = one(r#"{"name": "s", "timezone": "UTC", "periods": [{"monthdays": ["L"]}]}"#);
        prop_assert_eq!(day_selected(&last_day.periods[0], day), day.tomorrow().map(|t| t.day() == 1).unwrap_or(true));
        let last_friday = one(r#"{"name": "s", "timezone": "UTC", "periods": [{"weekdays": ["friL"]}]}"#);
        let in_a_week = day.checked_add(jiff::Span::new().days(7)).expect("in range");
        prop_assert_eq!(
            day_selected(&last_friday.periods[0], day),
            day.weekday() == Weekday::Friday && in_a_week.month() != day.month()
        );
        let second_tuesday = one(r#"{"name": "s", "timezone": "UTC", "periods": [{"weekdays": ["tue#2"]}]}"#);
        let tuesdays_so_far = (1..=day.day())
            .filter(|d| Date::new(day.year(), day.month(), *d).is_ok_and(|d| d.weekday() == Weekday::Tuesday))
            .count();
        prop_assert_eq!(
            day_selected(&second_tuesday.periods[0], day),
            day.weekday() == Weekday::Tuesday && tuesdays_so_far == 2
        );
    }

    /// GIVEN a Friday-night period 22:00 to 06:00, WHEN any instant is evaluated, THEN it runs from Friday 22:00
    /// to Saturday 06:00 local time and at no other time: the part after midnight belongs to the day it began on.
    #[test]
    fn given_a_period_across_midnight_when_any_instant_is_evaluated_then_it_belongs_to_the_day_it_began(
        zone in proptest::sample::select(ZONES.to_vec()),
        at in instant(),
    ) {
        let s = one(&format!(
            r#"{{"name": "s", "timezone": "{zone}", "periods": [{{"begin": "22:00", "end": "06:00", "weekdays": ["fri"]}}]}}"#
        ));
        let (date, time) = local_time(at, zone);
        let expected = (date.weekday() == Weekday::Friday && time.hour() >= 22)
            || (date.weekday() == Weekday::Saturday && time.hour() < 6);
        prop_assert_eq!(self::at(&s, at).running, expected, "{} {} {}", zone, date, time);
    }

    /// GIVEN a schedule with a holiday range, WHEN any instant is evaluated, THEN on a holiday's local date it is
    /// off and says why, and on any other date it is as the same schedule without holidays.
    #[test]
    fn given_holidays_when_any_instant_is_evaluated_then_off_on_them_and_unchanged_elsewhere(
        zone in proptest::sample::select(ZONES.to_vec()),
        at in instant(),
        start in date(),
        days in 0i64..20,
    ) {
        let end = start.checked_add(jiff::Span::new().days(days)).expect("in range");
        let period = r#"[{"begin": "00:00", "end": "23:59"}, {"begin": "23:59"}]"#;
        let with = one(&format!(
            r#"{{"name": "s", "timezone": "{zone}", "periods": {period}, "holidays": ["{start}..{end}"]}}"#
        ));
        let without = one(&format!(r#"{{"name": "s", "timezone": "{zone}", "periods": {period}}}"#));
        let (date, _) = local_time(at, zone);
        let evaluated = self::at(&with, at);
        if start <= date && date <= end {
            prop_assert_eq!(evaluated, Evaluation { running: false, why: Why::Holiday(date) });
        } else {
            prop_assert_eq!(evaluated.clone(), self::at(&without, at));
            prop_assert!(evaluated.running, "every minute of a day that is no holiday runs");
        }
    }

    /// GIVEN a night period 22:00 to 06:00 and a holiday, WHEN any instant is evaluated, THEN the night that began
    /// on the holiday does not run (after midnight either) and the one that began the evening before runs to its end.
    #[test]
    fn given_a_night_period_and_a_holiday_when_evaluated_then_the_day_a_night_began_decides(
        zone in proptest::sample::select(ZONES.to_vec()),
        at in instant(),
        holiday in date(),
    ) {
        let s = one(&format!(
            r#"{{"name": "s", "timezone": "{zone}", "periods": [{{"begin": "22:00", "end": "06:00"}}], "holidays": ["{holiday}"]}}"#
        ));
        let (date, time) = local_time(at, zone);
        let began = if time.hour() >= 22 { Some(date) } else if time.hour() < 6 { date.yesterday().ok() } else { None };
        let expected = began.is_some_and(|b| b != holiday);
        prop_assert_eq!(self::at(&s, at).running, expected, "{} {} {}", zone, date, time);
    }

    /// GIVEN office hours in a zone, WHEN asked since when the state at an instant holds, THEN that minute has the
    /// same state, the minute before it the other, and so does the instant asked about.
    #[test]
    fn given_an_instant_when_asked_since_when_then_the_edge_before_it(
        zone in proptest::sample::select(ZONES.to_vec()),
        at in instant(),
    ) {
        let s = one(&format!(
            r#"{{"name": "s", "timezone": "{zone}", "periods": [{{"begin": "08:30", "end": "17:45", "weekdays": ["mon-fri"]}}]}}"#
        ));
        let state = self::at(&s, at).running;
        let edge = since(&s, at).expect("office hours change within 40 days");
        prop_assert!(edge <= at);
        prop_assert_eq!(self::at(&s, edge).running, state);
        prop_assert_ne!(self::at(&s, edge.checked_sub(MINUTE).expect("in range")).running, state);
        // No edge in between: the middle has the same state too.
        let middle = Timestamp::from_second((edge.as_second() + at.as_second()) / 2).expect("in range");
        prop_assert_eq!(self::at(&s, middle).running, state);
    }
}

#[test]
fn given_berlin_office_hours_when_clocks_go_forward_and_back_then_the_utc_hours_move_and_the_local_stay() {
    // GIVEN 08:00-18:00 in Berlin: UTC+1 in winter, UTC+2 in summer (DST from 29 March 2026 02:00)
    let s = daily("Europe/Berlin", "08:00", "18:00");
    let utc = |t: &str| t.parse::<Timestamp>().expect("an instant");
    // THEN the Friday before runs 07:00-17:00 UTC, the Monday after 06:00-16:00 UTC
    let friday = running_between(&s, utc("2026-03-27T00:00:00Z"), utc("2026-03-28T00:00:00Z"));
    assert_eq!(friday, vec![(utc("2026-03-27T07:00:00Z"), utc("2026-03-27T17:00:00Z"), Why::Period(0))]);
    let monday = running_between(&s, utc("2026-03-30T00:00:00Z"), utc("2026-03-31T00:00:00Z"));
    assert_eq!(monday, vec![(utc("2026-03-30T06:00:00Z"), utc("2026-03-30T16:00:00Z"), Why::Period(0))]);
    // AND a period beginning in the skipped hour (02:30 does not exist that day) begins when the clock jumps
    let night = daily("Europe/Berlin", "02:30", "05:00");
    let jump = running_between(&night, utc("2026-03-29T00:00:00Z"), utc("2026-03-29T06:00:00Z"));
    assert_eq!(jump, vec![(utc("2026-03-29T01:00:00Z"), utc("2026-03-29T03:00:00Z"), Why::Period(0))]);
    // AND on the night clocks go back (25 October 2026, 03:00 → 02:00), 01:00-04:00 lasts four hours
    let back = daily("Europe/Berlin", "01:00", "04:00");
    let long = running_between(&back, utc("2026-10-24T20:00:00Z"), utc("2026-10-25T06:00:00Z"));
    assert_eq!(long, vec![(utc("2026-10-24T23:00:00Z"), utc("2026-10-25T03:00:00Z"), Why::Period(0))]);
}

#[test]
fn given_override_tags_when_read_then_each_form_or_the_rule_it_breaks() {
    let at = "2026-12-04T18:00:00+01:00".parse::<Timestamp>().expect("an instant");
    assert_eq!(parse_override("running until 2026-12-04T18:00:00+01:00"), Ok(Override::Running(at)));
    assert_eq!(parse_override("Stopped until 2026-12-04T17:00:00Z"), Ok(Override::Stopped(at)));
    assert_eq!(parse_override(" ignore "), Ok(Override::Ignore));
    for bad in ["running", "running until friday", "paused until 2026-12-04T17:00:00Z", "running until 2026-12-04"] {
        let rule = parse_override(bad).expect_err(bad);
        assert!(rule.contains("running until <RFC 3339 time>"), "{bad}: {rule}");
    }
}
