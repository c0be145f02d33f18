//! Which request a response answers (RFC 9112 §9.3: in order, on one connection). While every
//! byte of both directions was seen, order is the truth, pipelining included. After a gap — or
//! on a connection joined mid-stream — order is no longer safe: a lost request's response would
//! shift every later status onto the wrong request. Until the connection is next quiet (nothing
//! outstanding), a response is then paired by time instead: with the newest request sent before
//! it began, when the connection has not pipelined (each request waited for its answer, so the
//! older ones lost their responses to the gap); when it has pipelined, with the oldest, marked
//! `paired: "uncertain"`. A response no request was sent before answers a request the capture
//! did not see, and stays unmatched. Pure bookkeeping; knows no bytes.

use std::collections::VecDeque;

use podtap_shared::HttpExchange;

/// A request waiting for its response.
pub struct PendingRequest {
    pub ts_us: u64,
    /// The TCP sequence number of its first byte.
    pub seq: u32,
    pub size: u64,
    pub http: HttpExchange,
}

/// What a response found. Returned once per response and taken apart at once: boxing the
/// request would cost an allocation per response to save a move.
#[allow(clippy::large_enum_variant)]
pub enum Answer {
    /// The request it answers, and whether that is certain.
    Request(PendingRequest, bool),
    /// No request seen could be it.
    Nothing,
}

/// The requests of one connection waiting for responses.
#[derive(Default)]
pub struct Pairing {
    requests: VecDeque<PendingRequest>,
    /// Bytes were lost (or the start not seen) since the connection was last quiet.
    disturbed: bool,
    /// A request was sent before the one before it was answered, while nothing was lost.
    pipelined: bool,
}

impl Pairing {
    /// A connection joined mid-stream starts disturbed: its first responses may answer requests
    /// sent before the capture began.
    pub fn new(joined: bool) -> Self {
        Self { disturbed: joined, ..Self::default() }
    }

    pub fn push(&mut self, request: PendingRequest) {
        if !self.disturbed && !self.requests.is_empty() {
            self.pipelined = true;
        }
        self.requests.push_back(request);
    }

    /// The request being read: its body size grows as it arrives.
    pub fn newest_mut(&mut self) -> Option<&mut PendingRequest> {
        self.requests.back_mut()
    }

    /// Bytes of either direction were lost.
    pub fn disturb(&mut self) {
        self.disturbed = true;
    }

    /// A response began at `ts_us`: the request it answers. Requests it leaves behind (older
    /// ones whose responses were lost) are appended to `unanswered`.
    pub fn answer(&mut self, ts_us: u64, unanswered: &mut Vec<PendingRequest>) -> Answer {
        if !self.disturbed {
            return self.requests.pop_front().map_or(Answer::Nothing, |r| Answer::Request(r, true));
        }
        let sent_before = self.requests.iter().take_while(|r| r.ts_us <= ts_us).count();
        if sent_before == 0 {
            return Answer::Nothing;
        }
        if self.pipelined {
            let r = self.requests.pop_front().expect("counted");
            return Answer::Request(r, sent_before == 1 && self.requests.is_empty());
        }
        unanswered.extend(self.requests.drain(..sent_before - 1));
        Answer::Request(self.requests.pop_front().expect("counted"), true)
    }

    /// A response ended: with nothing outstanding, order is safe again.
    pub fn response_done(&mut self) {
        if self.requests.is_empty() {
            self.disturbed = false;
        }
    }

    /// End of the connection: every request still waiting.
    pub fn drain(&mut self) -> impl Iterator<Item = PendingRequest> + '_ {
        self.requests.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(path: &str, ts_us: u64) -> PendingRequest {
        PendingRequest { ts_us, seq: 0, size: 1, http: HttpExchange { path: path.into(), ..Default::default() } }
    }

    fn path(a: Answer) -> Option<(String, bool)> {
        match a {
            Answer::Request(r, sure) => Some((r.http.path.into(), sure)),
            Answer::Nothing => None,
        }
    }

    #[test]
    fn in_order_while_nothing_is_lost_pipelining_included() {
        let mut p = Pairing::new(false);
        p.push(req("/a", 1));
        p.push(req("/b", 2));
        let mut left = Vec::new();
        assert_eq!(path(p.answer(3, &mut left)), Some(("/a".into(), true)));
        assert_eq!(path(p.answer(4, &mut left)), Some(("/b".into(), true)));
        assert!(left.is_empty());
    }

    #[test]
    fn after_a_lost_response_the_next_one_answers_the_newest_request_sent_before_it() {
        // keep-alive, one request at a time; /a's response is lost in a gap.
        let mut p = Pairing::new(false);
        let mut left = Vec::new();
        p.push(req("/a", 10));
        p.disturb();
        p.push(req("/b", 30));
        assert_eq!(path(p.answer(40, &mut left)), Some(("/b".into(), true)));
        assert_eq!(left.iter().map(|r| r.http.path.as_str()).collect::<Vec<_>>(), ["/a"], "answered, response lost");
    }

    #[test]
    fn the_response_to_a_lost_request_answers_nothing_and_shifts_nothing() {
        let mut p = Pairing::new(false);
        let mut left = Vec::new();
        p.disturb(); // the request sent at 10 was lost
        assert!(path(p.answer(15, &mut left)).is_none(), "its response: no request was sent before it");
        p.push(req("/next", 20));
        assert_eq!(path(p.answer(25, &mut left)), Some(("/next".into(), true)));
        p.response_done();
        p.push(req("/after", 30));
        assert_eq!(path(p.answer(35, &mut left)), Some(("/after".into(), true)), "quiet again: order");
    }

    #[test]
    fn a_pipelining_connection_after_a_gap_pairs_in_order_but_says_it_is_unsure() {
        let mut p = Pairing::new(false);
        let mut left = Vec::new();
        p.push(req("/a", 1));
        p.push(req("/b", 2));
        p.disturb();
        p.push(req("/c", 3));
        assert_eq!(path(p.answer(4, &mut left)), Some(("/a".into(), false)));
    }
}
