//! The app's views, one per file: the page shell, the Service Map, replica balance, the request
//! timeline.

pub mod app;
pub mod balance;
pub mod map;
pub mod timeline;
