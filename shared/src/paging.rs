//! Bounded pagination for the loops the SDK has no paginator for: a limit on pages, and a stop when a token comes
//! back again, so a service that never says "last page" cannot keep a function reading until its deadline.

use std::collections::HashSet;

use crate::classify::{Classify, ErrorType};

/// More pages than any real listing has (AppStream answers 25 builders a page: 25,000 builders).
pub const MAX_PAGES: usize = 1000;

/// A listing that would not end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: the listing did not end ({reason}); stopped reading")]
pub struct Endless {
    pub what: String,
    pub reason: String,
}

impl Classify for Endless {
    fn error_type(&self) -> ErrorType {
        ErrorType::SERVICE_UNAVAILABLE
    }
}

/// The pages of one listing so far.
#[derive(Debug)]
pub struct Pages {
    what: String,
    seen: HashSet<String>,
    read: usize,
    max: usize,
}

impl Pages {
    pub fn new(what: impl Into<String>) -> Self {
        Pages::with_limit(what, MAX_PAGES)
    }

    pub fn with_limit(what: impl Into<String>, max: usize) -> Self {
        Pages { what: what.into(), seen: HashSet::new(), read: 0, max }
    }

    /// After a page: the token to ask for next, `None` when the listing has ended (no token, or an empty one).
    pub fn next(&mut self, token: Option<String>) -> Result<Option<String>, Endless> {
        self.read += 1;
        let Some(token) = token.filter(|t| !t.is_empty()) else { return Ok(None) };
        let endless = |reason: String| Endless { what: self.what.clone(), reason };
        if self.read >= self.max {
            return Err(endless(format!("more than {} pages", self.max)));
        }
        if !self.seen.insert(token.clone()) {
            return Err(endless(format!("page token `{token}` came back after {} pages", self.read)));
        }
        Ok(Some(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_listing_when_its_tokens_end_then_every_token_is_asked_for_once() {
        let mut pages = Pages::new("builders");
        assert_eq!(pages.next(Some("a".into())), Ok(Some("a".into())));
        assert_eq!(pages.next(Some("b".into())), Ok(Some("b".into())));
        assert_eq!(pages.next(Some(String::new())), Ok(None), "an empty token ends it");
        assert_eq!(Pages::new("x").next(None), Ok(None));
    }

    #[test]
    fn given_a_token_that_comes_back_or_too_many_pages_when_paging_then_it_stops_with_a_retryable_error() {
        let mut pages = Pages::new("builders");
        pages.next(Some("a".into())).unwrap();
        pages.next(Some("b".into())).unwrap();
        let again = pages.next(Some("a".into())).unwrap_err();
        assert!(again.to_string().contains("`a` came back after 3 pages"), "{again}");
        assert!(again.error_type().is_retryable());
        let mut bounded = Pages::with_limit("groups", 3);
        bounded.next(Some("1".into())).unwrap();
        bounded.next(Some("2".into())).unwrap();
        assert!(bounded.next(Some("3".into())).unwrap_err().to_string().contains("more than 3 pages"));
    }
}
