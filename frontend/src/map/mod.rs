//! The Service Map at cluster scale: folding (`fold`), a layered layout (`layered`), edge
//! geometry (`route`), the camera (`camera`), data quality (`quality`) and the view that draws it
//! all on a canvas with DOM hooks for the boxes and edges in view (`view`).

pub mod fold;
pub mod layered;
