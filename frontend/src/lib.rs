//! podtap's browser app (Leptos, client-side rendered, wasm32): connects to `WS /api/v1/stream`
//! and draws the Service Map and the live request list. It computes layout and filtering only;
//! every count it shows comes from the server.

pub mod api;
pub mod canvas;
pub mod components;
pub mod embed;
pub mod live;
pub mod map;
pub mod page;
pub mod socket;
pub mod url_state;
pub mod views;

use wasm_bindgen::prelude::wasm_bindgen;

/// Entry point called by the generated JS glue.
#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
    page::apply_to_document();
    leptos::mount::mount_to_body(views::app::App);
}
