//! The app's views, one per file: the page shell, the Service Map, the request timeline.

pub mod app;
pub mod map;
pub mod timeline;
