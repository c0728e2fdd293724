//! The AWS region codes keeper knows, so a typo (`eu-wst-1`) is refused before any call, with a suggestion.
//!
//! Maintained by hand: when AWS opens a region, add it here (a request naming it is refused until then, with a
//! message that says so).

/// Region codes of the commercial, GovCloud, China and European Sovereign Cloud partitions.
pub const KNOWN: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eusc-de-east-1",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-west-1",
    "us-west-2",
];

/// Why a region code is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionError {
    #[error("`{0}` is not a region code (like us-east-1)")]
    Malformed(String),
    #[error("`{given}` is not a known AWS region{}", suggestion.as_deref().map(|s| format!("; did you mean {s}?")).unwrap_or_default())]
    Unknown { given: String, suggestion: Option<String> },
}

/// Checks a region code: well-formed and known.
pub fn check(region: &str) -> Result<(), RegionError> {
    let well_formed = region.split('-').count() >= 3
        && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && region.rsplit('-').next().is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    if !well_formed {
        return Err(RegionError::Malformed(region.to_string()));
    }
    if KNOWN.contains(&region) {
        return Ok(());
    }
    let suggestion =
        KNOWN.iter().map(|k| (distance(region, k), *k)).filter(|(d, _)| *d <= 2).min().map(|(_, k)| k.to_string());
    Err(RegionError::Unknown { given: region.to_string(), suggestion })
}

/// Levenshtein distance (region codes are short, so the plain dynamic programme is fine).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = diagonal + usize::from(ca != *cb);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_known_regions_when_checked_then_accepted() {
        for r in ["us-east-1", "eu-west-2", "ap-southeast-7", "us-gov-west-1", "cn-northwest-1", "eusc-de-east-1"] {
            assert_eq!(check(r), Ok(()), "{r}");
        }
    }

    #[test]
    fn given_typos_when_checked_then_unknown_with_the_nearest_region() {
        assert_eq!(
            check("eu-wst-1"),
            Err(RegionError::Unknown { given: "eu-wst-1".into(), suggestion: Some("eu-west-1".into()) })
        );
        assert!(check("us-east-1").is_ok());
        assert!(check("us-eats-2").unwrap_err().to_string().ends_with("did you mean us-east-2?"));
        assert_eq!(check("xx-nowhere-9"), Err(RegionError::Unknown { given: "xx-nowhere-9".into(), suggestion: None }));
    }

    #[test]
    fn given_malformed_codes_when_checked_then_malformed() {
        for r in ["", "useast1", "US-EAST-1", "us-east-", "us east 1", "us-east-x"] {
            assert!(matches!(check(r), Err(RegionError::Malformed(_))), "{r}");
        }
    }

    #[test]
    fn given_the_list_when_read_then_sorted_and_without_duplicates() {
        assert!(KNOWN.windows(2).all(|w| w[0] < w[1]));
        assert!(KNOWN.iter().all(|r| check(r).is_ok()));
    }
}
