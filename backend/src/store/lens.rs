//! What one query sees: the records a filter admits, each as the viewer's sight shows it
//! (`access::rule`). The filter is matched against what the viewer sees, never against what it
//! may not (a filter on a hidden pod's name finds nothing), and every count is folded from the
//! records so seen: the rollups serve only a viewer who sees everything, unfiltered.

use std::borrow::Cow;

use podtap_shared::{Filter, Record};

use crate::access::{Sight, view};

/// A filter and the sight it is seen through.
#[derive(Clone, Copy)]
pub struct Lens<'a> {
    pub filter: &'a Filter,
    pub sight: &'a Sight,
}

static ALL: Sight = Sight::All;

impl<'a> Lens<'a> {
    /// Everything `filter` admits, whole (the admin's, the engine's own).
    pub fn all(filter: &'a Filter) -> Self {
        Lens { filter, sight: &ALL }
    }

    pub fn new(filter: &'a Filter, sight: &'a Sight) -> Self {
        Lens { filter, sight }
    }

    /// Whether the lens sees every record whole, so rollups answer for it.
    pub fn is_whole(&self) -> bool {
        self.filter.is_empty() && self.sight.is_all()
    }

    /// Whether records are seen as they are (no endpoint is reduced).
    pub fn sees_all(&self) -> bool {
        self.sight.is_all()
    }

    /// `r` as seen, when the sight shows it and the filter admits what is shown.
    pub fn show<'r>(&self, r: &'r Record) -> Option<Cow<'r, Record>> {
        let seen = match self.sight {
            Sight::All => Cow::Borrowed(r),
            sight => Cow::Owned(view(r, sight)?),
        };
        self.filter.matches(&seen).then_some(seen)
    }
}
