//! The stream's transport. The WebSocket lives in a dedicated worker (`frontend/stream-worker.js`,
//! started by index.html's boot script before the app has loaded, as `window.podtapStreamWorker`):
//! a browser reads a socket's frames on the thread that owns it, so on the page's main thread a
//! cold page's 2.7 MB snapshot waited for the mount and every frame drawn meanwhile (BENCHMARKS.md).
//! The worker hands each message over as UTF-8 bytes, whole. A page without the worker (an
//! index.html that does not start it, or a worker that cannot start) holds the socket itself.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{ArrayBuffer, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{CloseEvent, MessageEvent, WebSocket, Worker};

/// What the stream's owner is told.
pub struct Events {
    pub open: Box<dyn Fn()>,
    /// One text message (invalid UTF-8 arrives as an empty text, which no reader accepts).
    pub message: Box<dyn Fn(&str)>,
    pub close: Box<dyn Fn()>,
}

enum Socket {
    /// The worker's socket `id` (messages of an earlier one are dropped).
    Worker {
        id: u32,
        open: bool,
    },
    Direct(WebSocket),
}

thread_local! {
    static CURRENT: RefCell<Option<Socket>> = const { RefCell::new(None) };
    static EVENTS: RefCell<Option<Rc<Events>>> = const { RefCell::new(None) };
    /// The worker, once taken from the page; `None` after it failed (the page holds sockets).
    static WORKER: RefCell<Option<Worker>> = const { RefCell::new(None) };
    static TAKEN: Cell<bool> = const { Cell::new(false) };
    static NEXT_ID: Cell<u32> = const { Cell::new(0) };
}

/// Opens `url` (closing any socket open before); `Err` when neither way could.
pub fn open(url: &str, events: Rc<Events>) -> Result<(), JsValue> {
    close();
    EVENTS.with(|e| *e.borrow_mut() = Some(events));
    let socket = match worker() {
        Some(worker) => {
            let id = NEXT_ID.get() + 1;
            NEXT_ID.set(id);
            let m = message("open", &JsValue::from_str(url));
            Reflect::set(&m, &JsValue::from_str("id"), &JsValue::from(id))?;
            match worker.post_message(&m) {
                Ok(()) => Socket::Worker { id, open: false },
                Err(_) => direct(url)?,
            }
        }
        None => direct(url)?,
    };
    CURRENT.with(|c| *c.borrow_mut() = Some(socket));
    Ok(())
}

/// Sends `text` if the socket is open; whether it was.
pub fn send(text: &str) -> bool {
    CURRENT.with(|c| match c.borrow().as_ref() {
        Some(Socket::Worker { open: true, .. }) => {
            worker().is_some_and(|w| w.post_message(&message("send", &JsValue::from_str(text))).is_ok())
        }
        Some(Socket::Direct(ws)) if ws.ready_state() == WebSocket::OPEN => ws.send_with_str(text).is_ok(),
        _ => false,
    })
}

/// Closes the socket without telling its owner.
pub fn close() {
    match CURRENT.with(|c| c.borrow_mut().take()) {
        Some(Socket::Worker { .. }) => {
            if let Some(w) = worker() {
                let _ = w.post_message(&message("close", &JsValue::TRUE));
            }
        }
        Some(Socket::Direct(ws)) => {
            ws.set_onclose(None);
            ws.set_onmessage(None);
            let _ = ws.close();
        }
        None => {}
    }
}

/// The page's stream worker, its handlers set the first time.
fn worker() -> Option<Worker> {
    if !TAKEN.replace(true) {
        let started = web_sys::window()
            .and_then(|w| Reflect::get(&w, &JsValue::from_str("podtapStreamWorker")).ok())
            .and_then(|w| w.dyn_into::<Worker>().ok());
        if let Some(w) = started {
            listen(&w);
            WORKER.with(|slot| *slot.borrow_mut() = Some(w));
        }
    }
    WORKER.with(|w| w.borrow().clone())
}

fn events() -> Option<Rc<Events>> {
    EVENTS.with(|e| e.borrow().clone())
}

fn listen(worker: &Worker) {
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        let data = e.data();
        let field = |name: &str| Reflect::get(&data, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED);
        let id = field("id").as_f64().map(|id| id as u32);
        let current = CURRENT.with(|c| match c.borrow().as_ref() {
            Some(Socket::Worker { id: now, .. }) => Some(*now) == id,
            _ => false,
        });
        let Some(events) = events().filter(|_| current) else { return };
        if let Some(buffer) = field("data").dyn_ref::<ArrayBuffer>() {
            let text = String::from_utf8(Uint8Array::new(buffer).to_vec()).unwrap_or_default();
            (events.message)(&text);
        } else if field("open").is_truthy() {
            set_open(true);
            (events.open)();
        } else if field("close").is_truthy() {
            set_open(false);
            (events.close)();
        }
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    // A worker that cannot start (its script missing, a policy against it): the page holds its
    // sockets from then on, and the stream is reopened by its owner's retry.
    let on_error = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
        if let Some(w) = WORKER.with(|w| w.borrow_mut().take()) {
            w.set_onmessage(None);
            w.set_onerror(None);
            w.terminate();
        }
        let was_worker = CURRENT.with(|c| matches!(c.borrow().as_ref(), Some(Socket::Worker { .. })));
        if was_worker {
            CURRENT.with(|c| *c.borrow_mut() = None);
            if let Some(events) = events() {
                (events.close)();
            }
        }
    });
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();
}

fn set_open(open: bool) {
    CURRENT.with(|c| {
        if let Some(Socket::Worker { open: o, .. }) = c.borrow_mut().as_mut() {
            *o = open;
        }
    });
}

/// `{key: value}`, a message to the worker.
fn message(key: &str, value: &JsValue) -> Object {
    let m = Object::new();
    let _ = Reflect::set(&m, &JsValue::from_str(key), value);
    m
}

fn direct(url: &str) -> Result<Socket, JsValue> {
    let ws = WebSocket::new(url)?;
    let on_open = Closure::<dyn FnMut()>::new(move || {
        if let Some(events) = events() {
            (events.open)();
        }
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    on_open.forget();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        if let Some(events) = events() {
            (events.message)(&e.data().as_string().unwrap_or_default());
        }
    });
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget();
    let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_: CloseEvent| {
        if let Some(events) = events() {
            (events.close)();
        }
    });
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    on_close.forget();
    Ok(Socket::Direct(ws))
}
