//! Small reusable pieces of the page.

pub mod agents;
pub mod filter_box;
pub mod gate;
pub mod share;
pub mod status_pill;
pub mod term;
pub mod ticker;
pub mod who;
