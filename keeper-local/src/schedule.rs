//! `keeper-local schedule`: what a schedules document does, before it is trusted with builders: each schedule's
//! running stretches between two dates in its local time and in UTC, or each schedule's state at one instant.

use jiff::Timestamp;
use jiff::civil::Date;
use start_idle_image_builders::config::schedules::{self, Schedule};
use start_idle_image_builders::plan::schedule;

/// The longest range listed: a year and a day, so a whole year of any zone fits.
const MAX_DAYS: i64 = 366;

/// What to show.
#[derive(Debug, PartialEq, Eq)]
pub enum Show {
    /// The running stretches from the start of `from` to the end of `to`, both local dates of each schedule.
    Between {
        from: Date,
        to: Date,
    },
    At(Timestamp),
}

/// Parses `schedule <schedules.json> [--name N] (--from DATE --to DATE | --at TIME)` after `schedule`.
pub fn parse_args(args: &[String]) -> Result<(String, Option<String>, Show), String> {
    let mut path = None;
    let (mut name, mut from, mut to, mut at) = (None, None, None, None);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| args.next().cloned().ok_or_else(|| format!("{flag} needs a value"));
        match arg.as_str() {
            "--name" => name = Some(value("--name")?),
            "--from" => from = Some(value("--from")?),
            "--to" => to = Some(value("--to")?),
            "--at" => at = Some(value("--at")?),
            flag if flag.starts_with("--") => return Err(format!("unknown option `{flag}`")),
            file if path.is_none() => path = Some(file.to_string()),
            extra => return Err(format!("unexpected argument `{extra}`")),
        }
    }
    let path = path.ok_or("schedule needs a schedules document (JSON)")?;
    let date =
        |flag: &str, text: &str| text.parse::<Date>().map_err(|_| format!("{flag} `{text}` must be a date YYYY-MM-DD"));
    let show = match (from, to, at) {
        (None, None, Some(at)) => Show::At(
            at.parse::<Timestamp>()
                .map_err(|_| format!("--at `{at}` must be an RFC 3339 time, e.g. 2026-12-24T09:00:00+01:00"))?,
        ),
        (Some(from), Some(to), None) => {
            let (from, to) = (date("--from", &from)?, date("--to", &to)?);
            let days = from.until(to).map_err(|e| e.to_string())?.get_days() as i64;
            if !(0..MAX_DAYS).contains(&days) {
                return Err(format!("--to must be on or after --from, and at most {MAX_DAYS} days later"));
            }
            Show::Between { from, to }
        }
        _ => return Err("schedule needs --from DATE --to DATE, or --at TIME".into()),
    };
    Ok((path, name, show))
}

/// What `keeper-local schedule` prints for a document, or why it cannot (a bad document names the field).
pub fn render(json: &str, name: Option<&str>, show: &Show) -> Result<String, String> {
    let document = schedules::parse(json).map_err(|e| e.to_string())?;
    let chosen: Vec<&Schedule> = document.schedules.iter().filter(|s| name.is_none_or(|n| s.name == n)).collect();
    if chosen.is_empty() {
        let known: Vec<&str> = document.schedules.iter().map(|s| s.name.as_str()).collect();
        return Err(format!("no schedule `{}` in the document ({})", name.unwrap_or_default(), known.join(", ")));
    }
    let mut out = String::new();
    for s in chosen {
        out.push_str(&format!("{} ({}, {})\n", s.name, s.timezone, s.mode.as_str()));
        match show {
            Show::At(at) => {
                let state = schedule::at(s, *at);
                let local = schedule::local_time(s, *at);
                let word = if state.running { "running" } else { "stopped" };
                out.push_str(&format!("  {word} at {local} ({at}): {}\n", state.why));
            }
            Show::Between { from, to } => {
                let start = |d: Date| d.to_zoned(s.tz.clone()).map(|z| z.timestamp()).map_err(|e| e.to_string());
                let (begin, end) = (start(*from)?, start(to.tomorrow().map_err(|e| e.to_string())?)?);
                let stretches = schedule::running_between(s, begin, end);
                if stretches.is_empty() {
                    out.push_str("  never running in this range\n");
                }
                for (b, e, why) in stretches {
                    let local = |t: Timestamp| schedule::local_time(s, t);
                    let hours = (e.as_second() - b.as_second()) as f64 / 3600.0;
                    out.push_str(&format!(
                        "  {} → {}  ({} → {}, {hours:.2} h, {why})\n",
                        local(b),
                        local(e),
                        b.strftime("%Y-%m-%dT%H:%MZ"),
                        e.strftime("%Y-%m-%dT%H:%MZ"),
                    ));
                }
                for (first, last) in s.holidays.iter().filter(|(a, b)| *a <= *to && *b >= *from) {
                    let days = if first == last { first.to_string() } else { format!("{first} to {last}") };
                    out.push_str(&format!("  holiday {days}: off all day\n"));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"{"schedules": [
        {"name": "office", "timezone": "Europe/Berlin", "periods": [{"begin": "08:00", "end": "18:00", "weekdays": ["mon-fri"]}], "holidays": ["2026-03-30"]},
        {"name": "night", "timezone": "UTC", "mode": "respect-manual", "periods": [{"begin": "22:00", "end": "02:00"}]}
    ]}"#;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn given_a_range_across_the_dst_change_when_shown_then_local_hours_stay_and_utc_hours_move_and_the_holiday_is_off()
    {
        let (_, name, show) = parse_args(&args("s.json --name office --from 2026-03-27 --to 2026-03-31")).unwrap();
        let out = render(DOC, name.as_deref(), &show).unwrap();
        assert_eq!(
            out,
            "office (Europe/Berlin, enforced)\n\
             \x20 Fri 2026-03-27 08:00 CET → Fri 2026-03-27 18:00 CET  (2026-03-27T07:00Z → 2026-03-27T17:00Z, 10.00 h, in period 1)\n\
             \x20 Tue 2026-03-31 08:00 CEST → Tue 2026-03-31 18:00 CEST  (2026-03-31T06:00Z → 2026-03-31T16:00Z, 10.00 h, in period 1)\n\
             \x20 holiday 2026-03-30: off all day\n"
        );
    }

    #[test]
    fn given_an_instant_when_shown_then_each_schedule_says_its_state_and_why() {
        let (_, name, show) = parse_args(&args("s.json --at 2026-03-30T23:30:00Z")).unwrap();
        let out = render(DOC, name.as_deref(), &show).unwrap();
        assert!(out.contains("office (Europe/Berlin, enforced)\n  stopped at Tue 2026-03-31 01:30 CEST"), "{out}");
        assert!(out.contains("night (UTC, respect-manual)\n  running at Mon 2026-03-30 23:30 UTC"), "{out}");
    }

    #[test]
    fn given_bad_arguments_or_a_bad_document_when_shown_then_a_clear_error() {
        for (line, says) in [
            ("s.json", "--from DATE --to DATE"),
            ("s.json --from 2026-01-02 --to 2026-01-01", "on or after --from"),
            ("s.json --from 2026-01-01 --to 2027-06-01", "at most 366 days"),
            ("s.json --at tomorrow", "RFC 3339"),
            ("--at 2026-01-01T00:00:00Z", "schedules document"),
        ] {
            let error = parse_args(&args(line)).expect_err(line);
            assert!(error.contains(says), "{line}: {error}");
        }
        let show = Show::At("2026-01-01T00:00:00Z".parse().unwrap());
        assert!(render(DOC, Some("lunch"), &show).unwrap_err().contains("office, night"));
        let bad = render(r#"{"schedules": [{"name": "x", "timezone": "Nowhere", "periods": [{}]}]}"#, None, &show);
        assert!(bad.unwrap_err().contains("schedules[0].timezone"));
    }
}
