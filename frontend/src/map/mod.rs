//! The Service Map at cluster scale: folding (`fold`), a layered layout (`layered`), edge
//! geometry (`route`), the camera (`camera`), how edges look (`style`), data quality
//! (`quality`), and the view that draws it all on a canvas, with DOM hooks for the boxes and
//! edges in view (`view`, `paint`, `hooks`).

pub mod camera;
pub mod card;
pub mod fold;
pub mod hooks;
pub mod input;
pub mod layer;
pub mod layered;
pub mod minimap;
pub mod paint;
pub mod quality;
pub mod route;
pub mod scene;
pub mod state;
pub mod style;
pub mod view;
