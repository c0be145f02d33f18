// podtap's stream worker: holds the page's WebSocket (`/api/v1/stream`) on a thread of its own.
// A browser reads a socket's frames on the thread that owns it, a chunk at a time; on the page's
// main thread a cold page's big snapshot waited for every task the page ran (mounting, drawing).
// index.html starts this worker before the app has loaded, so it is ready when the app opens
// the stream. Each text message goes to the page as its UTF-8 bytes, transferred (not copied).
//
// page → worker: {open: url, id} (replacing any socket before) | {send: text} | {close: true}
// worker → page: {id, open: true} | {id, data: ArrayBuffer} (one message) | {id, close: true}
let socket = null;

const detach = (ws) => {
  ws.onopen = ws.onmessage = ws.onclose = null;
  ws.close();
};

onmessage = (event) => {
  const m = event.data;
  if (m.open) {
    if (socket) detach(socket);
    const { id } = m;
    const ws = new WebSocket(m.open);
    socket = ws;
    const encoder = new TextEncoder();
    ws.onopen = () => postMessage({ id, open: true });
    ws.onmessage = (e) => {
      if (typeof e.data !== 'string') return; // podtap sends text only
      const data = encoder.encode(e.data).buffer;
      postMessage({ id, data }, [data]);
    };
    ws.onclose = () => {
      if (socket === ws) socket = null;
      postMessage({ id, close: true });
    };
  } else if (m.send != null) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(m.send);
  } else if (m.close) {
    if (socket) detach(socket);
    socket = null;
  }
};
