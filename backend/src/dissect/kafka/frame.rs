//! Kafka's framing (the protocol guide, "Protocol Primitives" and "Requests and Responses"): every
//! request and response is a 4-byte big-endian size, then that many bytes. A frame is handed over
//! whole when it is at most `HOLD` bytes; a larger one (a big Produce or Fetch) is handed over as
//! its first `HOLD` bytes once it has all gone by, so memory stays bounded whatever the size.

/// The most of one frame held: headers and the topics before any record batch fit many times.
pub const HOLD: usize = 1 << 20;

/// Larger than any frame a broker takes (`socket.request.max.bytes` defaults to 100 MiB) or a
/// Fetch response (`fetch.max.bytes`, 50 MiB) carries: the stream is not Kafka, or out of step.
pub const MAX_FRAME: u32 = 256 << 20;

/// One frame: where it began in the stream (the size's first byte), when, its size (without the
/// 4-byte prefix), and its first bytes (all of them when `whole`).
#[derive(Debug)]
pub struct Frame {
    pub offset: u64,
    pub ts_us: u64,
    pub len: u32,
    pub head: Vec<u8>,
    pub whole: bool,
}

/// A size no Kafka frame has: the stream is not Kafka (or the reader lost step).
#[derive(Debug, PartialEq, Eq)]
pub struct Broken;

/// Cuts one direction's bytes into frames.
#[derive(Debug, Default)]
pub struct Framer {
    /// The stream offset of the next byte given.
    offset: u64,
    /// The size prefix being read (fewer than 4 bytes of it so far).
    size: Vec<u8>,
    /// The frame being read: its size is known.
    current: Option<Frame>,
    /// Bytes of the current frame still to come.
    left: u64,
}

impl Framer {
    /// Takes the next bytes of the stream (at `ts_us`); finished frames go to `out`.
    pub fn feed(&mut self, mut data: &[u8], ts_us: u64, min_len: u32, out: &mut Vec<Frame>) -> Result<(), Broken> {
        while !data.is_empty() {
            let Some(frame) = &mut self.current else {
                let take = (4 - self.size.len()).min(data.len());
                self.size.extend_from_slice(&data[..take]);
                data = &data[take..];
                self.offset += take as u64;
                if self.size.len() < 4 {
                    return Ok(());
                }
                let len = u32::from_be_bytes(self.size[..4].try_into().expect("four bytes"));
                self.size.clear();
                if !(min_len..=MAX_FRAME).contains(&len) {
                    return Err(Broken);
                }
                let start = self.offset - 4;
                self.current = Some(Frame { offset: start, ts_us, len, head: Vec::new(), whole: true });
                self.left = u64::from(len);
                continue;
            };
            let take = (self.left as usize).min(data.len());
            let room = HOLD.saturating_sub(frame.head.len()).min(take);
            frame.head.extend_from_slice(&data[..room]);
            data = &data[take..];
            self.offset += take as u64;
            self.left -= take as u64;
            if self.left == 0 {
                let mut frame = self.current.take().expect("a frame");
                frame.whole = frame.head.len() == frame.len as usize;
                out.push(frame);
            }
        }
        Ok(())
    }

    /// The stream offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn frames_come_whole_however_the_bytes_are_cut() {
        let mut stream = framed(b"first body");
        stream.extend(framed(b"second"));
        for cut in 1..stream.len() {
            let (mut f, mut out) = (Framer::default(), Vec::new());
            f.feed(&stream[..cut], 1, 4, &mut out).unwrap();
            f.feed(&stream[cut..], 2, 4, &mut out).unwrap();
            let bodies: Vec<&[u8]> = out.iter().map(|f| f.head.as_slice()).collect();
            assert_eq!(bodies, [&b"first body"[..], b"second"], "cut at {cut}");
            assert_eq!((out[0].offset, out[1].offset), (0, 14));
            assert!(out.iter().all(|f| f.whole));
        }
    }

    #[test]
    fn a_large_frame_keeps_its_head_only() {
        let body = vec![7u8; HOLD + 10];
        let (mut f, mut out) = (Framer::default(), Vec::new());
        for chunk in framed(&body).chunks(4096) {
            f.feed(chunk, 1, 4, &mut out).unwrap();
        }
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].head.len(), out[0].len, out[0].whole), (HOLD, (HOLD + 10) as u32, false));
    }

    #[test]
    fn sizes_no_kafka_frame_has_break_the_stream() {
        let (mut f, mut out) = (Framer::default(), Vec::new());
        assert_eq!(f.feed(b"GET / HTTP/1.1\r\n", 1, 4, &mut out), Err(Broken));
        let mut f = Framer::default();
        assert_eq!(f.feed(&[0, 0, 0, 2, 1, 2], 1, 4, &mut out), Err(Broken), "shorter than a header");
    }
}
