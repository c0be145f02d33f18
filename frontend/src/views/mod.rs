//! The app's views: the page shell, the timeline (overview, connection swimlanes), replica
//! balance, the request list and the detail panel of one request.

pub mod app;
pub mod balance;
pub mod detail;
pub mod list;
pub mod timeline;

use podtap_shared::Record;

/// The CSS class of a record's outcome in the list (`ok`, `s4`, `s5`, `none`).
pub fn lanes_outcome_class(r: &Record) -> &'static str {
    use timeline::lanes::Outcome;
    match Outcome::of(r) {
        Outcome::Ok => "ok",
        Outcome::Refused => "s4",
        Outcome::Failed => "s5",
        Outcome::NoAnswer => "none",
    }
}
