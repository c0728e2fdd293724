//! Time in the emulated account: the clock every request reads, the ISO-8601 text the services answer with, and how
//! fast timed transitions run.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::macros::format_description;

/// How fast the emulated account moves; tests make it fast, the demo keeps it visible.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Timing {
    /// AppStream image builder transitions (PENDING → RUNNING, STOPPING → STOPPED, ...).
    #[serde(default = "Timing::default_transition")]
    pub transition_millis: u64,
    /// Image Builder lifecycle executions (IN_PROGRESS → SUCCESS).
    #[serde(default = "Timing::default_lifecycle")]
    pub lifecycle_millis: u64,
}

impl Timing {
    fn default_transition() -> u64 {
        1000
    }
    fn default_lifecycle() -> u64 {
        1000
    }
}

impl Default for Timing {
    fn default() -> Self {
        Timing { transition_millis: Timing::default_transition(), lifecycle_millis: Timing::default_lifecycle() }
    }
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// `2026-11-21T05:38:52.000Z` for epoch milliseconds: UTC with milliseconds, as CloudFront and Image Builder write it.
pub fn iso8601(ms: i64) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("{ms} ms after the epoch"))
}

/// Epoch milliseconds of an [`iso8601`] time (any RFC 3339 time), for moving a seeded time.
pub fn parse_iso8601(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_an_iso8601_time_when_parsed_then_its_epoch_millis() {
        assert_eq!(parse_iso8601("2026-11-21T05:38:52.000Z"), Some(1_795_239_532_000));
        assert_eq!(parse_iso8601(&iso8601(951_782_400_123)), Some(951_782_400_123));
        assert_eq!(parse_iso8601("yesterday"), None);
    }

    #[test]
    fn given_epoch_millis_when_formatted_then_iso8601_utc() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso8601(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(iso8601(1_795_239_532_000), "2026-11-21T05:38:52.000Z");
    }
}
