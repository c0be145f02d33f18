//! Click-to-filter: a name, status, path or Service on screen that adds its term to the page's
//! filter (`pod:web-1`, `status:503`, `svc:default/web`, …), so every view narrows together.

use leptos::prelude::*;

/// The page's filter text, provided as context by the app.
#[derive(Clone, Copy)]
pub struct FilterText(pub RwSignal<String>);

/// Appends `term` to `filter` unless it is there already.
pub fn add_term(filter: &str, term: &str) -> String {
    if filter.split_whitespace().any(|w| w == term) {
        return filter.to_string();
    }
    let base = filter.trim();
    if base.is_empty() { term.to_string() } else { format!("{base} {term}") }
}

/// `text`, which adds `term` to the filter when clicked.
#[component]
pub fn Term(
    /// What is shown.
    text: String,
    /// What it adds to the filter; a term with a space cannot be one and shows as plain text.
    term: String,
) -> impl IntoView {
    let filter = use_context::<FilterText>();
    match filter {
        Some(FilterText(f)) if !term.contains(char::is_whitespace) && !term.is_empty() => {
            let title = format!("filter: {term}");
            let t = term.clone();
            view! {
                <button class="term" data-testid="filter-term" data-term=term title=title
                    on:click=move |ev| { ev.stop_propagation(); f.update(|text| *text = add_term(text, &t)); }>
                    {text}
                </button>
            }
            .into_any()
        }
        _ => view! { <span>{text}</span> }.into_any(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_is_added_once() {
        assert_eq!(add_term("", "pod:web-1"), "pod:web-1");
        assert_eq!(add_term("ns:shop ", "status:503"), "ns:shop status:503");
        assert_eq!(add_term("ns:shop status:503", "status:503"), "ns:shop status:503");
    }
}
