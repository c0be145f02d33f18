//! Frames of several interfaces back into capture-time order. dumpcap, tcpdump and tshark write
//! a multi-interface pcapng as each interface's ring drains, so one interface's frames can follow
//! another's later ones by a few hundred milliseconds (a whole short connection on the client's
//! veth, then its copy on the server's). Read in file order, the copy arrives after the
//! connection closed and the record says it was seen once. `Reorder` holds frames and hands them
//! out oldest first; within an interface the file's order is kept (a merge of the interfaces'
//! queues, not a sort: a few comparisons a frame).
//!
//! A frame goes out once nothing read later can be older: every other interface declared so far
//! has passed its time (a writer keeps one interface's frames in order), and a short margin
//! (`MARGIN_US`) for an interface declared after its first frames were taken (podtap's own
//! writer declares a new pod's veth as it attaches to it); else a window behind the newest frame
//! read (an interface gone quiet holds nothing up for longer). A file already in time order (a
//! `mergecap` merge) so comes out frames after it was read, its bytes still in the cache, not a
//! second of capture later (BENCHMARKS.md, session 29).

use std::collections::VecDeque;

/// How far behind the newest frame read a frame may be and still come out in order: dumpcap's
/// rings drain every 250 ms at the latest, and the lab's captures lag by up to about 220 ms.
pub const WINDOW_US: u64 = 1_000_000;
/// How far behind the newest frame read a frame is held even when every interface has passed
/// it: the time between attaching to an interface and declaring it in the file.
pub const MARGIN_US: u64 = 20_000;
/// At most this many frames are held (about 12 MiB), whatever the window: past it, the oldest
/// goes out early rather than memory growing with the capture's rate.
pub const MAX_HELD: usize = 1 << 18;

/// One interface's frames read but not handed out, in the file's order, and the newest time it
/// has shown (`None`: declared, no frame yet).
struct Queue<T> {
    frames: VecDeque<(u64, T)>,
    newest_us: Option<u64>,
}

impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self { frames: VecDeque::new(), newest_us: None }
    }
}

/// The frames read but not yet handed out: one queue per interface, each in the file's order (a
/// writer keeps one interface's frames in order), merged by their oldest.
pub struct Reorder<T> {
    queues: Vec<Queue<T>>,
    held: usize,
    newest_us: u64,
    window_us: u64,
    margin_us: u64,
    max_held: usize,
}

impl<T> Default for Reorder<T> {
    fn default() -> Self {
        Self::new(WINDOW_US, MARGIN_US, MAX_HELD)
    }
}

impl<T> Reorder<T> {
    pub fn new(window_us: u64, margin_us: u64, max_held: usize) -> Self {
        Self { queues: Vec::new(), held: 0, newest_us: 0, window_us, margin_us, max_held: max_held.max(1) }
    }

    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// `interfaces` are declared so far: one with no frame yet holds the others' back (up to the
    /// window) until it shows one.
    pub fn declare(&mut self, interfaces: usize) {
        if self.queues.len() < interfaces {
            self.queues.resize_with(interfaces, Queue::default);
        }
    }

    /// Holds a frame of interface `queue`.
    pub fn push(&mut self, queue: u32, ts_us: u64, item: T) {
        self.declare(queue as usize + 1);
        self.newest_us = self.newest_us.max(ts_us);
        let q = &mut self.queues[queue as usize];
        q.newest_us = Some(q.newest_us.map_or(ts_us, |n| n.max(ts_us)));
        q.frames.push_back((ts_us, item));
        self.held += 1;
    }

    /// The oldest held frame, once nothing read later can be older: every other interface has
    /// passed it (and the margin has), it is a window behind the newest read, or too many are
    /// held.
    pub fn ready(&mut self) -> Option<T> {
        let (q, oldest) = self.oldest()?;
        let due = oldest.saturating_add(self.window_us) <= self.newest_us
            || self.held > self.max_held
            || (oldest.saturating_add(self.margin_us) <= self.newest_us && self.passed(q, oldest));
        due.then(|| self.take(q))
    }

    /// Whether every interface but `q` has shown a frame later than `ts`: one listed before
    /// `q` strictly later (its frame of the same time would go first), one after at least as late.
    fn passed(&self, q: usize, ts: u64) -> bool {
        self.queues.iter().enumerate().all(|(i, other)| match other.newest_us {
            _ if i == q => true,
            None => false,
            Some(n) if i < q => n > ts,
            Some(n) => n >= ts,
        })
    }

    /// The oldest held frame, whatever the window (the file has ended).
    pub fn pop(&mut self) -> Option<T> {
        let (q, _) = self.oldest()?;
        Some(self.take(q))
    }

    /// The queue whose first frame is the oldest (the first such queue on a tie), and its time.
    fn oldest(&self) -> Option<(usize, u64)> {
        let mut best: Option<(usize, u64)> = None;
        for (i, q) in self.queues.iter().enumerate() {
            if let Some(&(ts, _)) = q.frames.front()
                && best.is_none_or(|(_, b)| ts < b)
            {
                best = Some((i, ts));
            }
        }
        best
    }

    fn take(&mut self, q: usize) -> T {
        self.held -= 1;
        self.queues[q].frames.pop_front().expect("the queue oldest() found").1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two interfaces' runs, written one after the other as their rings drained: out in time order.
    #[test]
    fn interleaved_runs_come_out_in_time_order() {
        let mut r = Reorder::new(1_000, 1_000, 100);
        let file = [(0, 10, "a1"), (0, 20, "a2"), (0, 30, "a3"), (1, 11, "b1"), (1, 21, "b2"), (1, 31, "b3")];
        let mut out = Vec::new();
        for (q, ts, name) in file.into_iter().chain([(0, 2_000, "a4")]) {
            r.push(q, ts, name);
            out.extend(std::iter::from_fn(|| r.ready()));
        }
        assert_eq!(out, ["a1", "b1", "a2", "b2", "a3", "b3"], "all a window behind a4");
        out.extend(std::iter::from_fn(|| r.pop()));
        assert_eq!(out.last(), Some(&"a4"));
    }

    /// Equal timestamps keep the file's order within an interface, and the lower interface's
    /// first across them; a frame within the window is held.
    #[test]
    fn ties_keep_file_order_and_recent_frames_wait() {
        let mut r = Reorder::new(1_000, 1_000, 100);
        r.push(1, 5, 'v');
        r.push(0, 5, 'x');
        r.push(0, 5, 'y');
        r.push(0, 500, 'z');
        assert_eq!(r.ready(), None, "nothing is a window old yet");
        r.push(1, 1_005, 'w');
        assert_eq!((r.ready(), r.ready(), r.ready(), r.ready()), (Some('x'), Some('y'), Some('v'), None));
    }

    /// A file in time order (a `mergecap` merge) comes out as soon as every other interface has
    /// passed a frame and the margin has, not a window later.
    #[test]
    fn frames_every_interface_has_passed_go_out_after_the_margin() {
        let mut r = Reorder::new(1_000_000, 10, 100);
        r.declare(2);
        r.push(0, 5, 'a');
        assert_eq!(r.ready(), None, "interface 1 has shown nothing yet, and the margin has not passed");
        r.push(1, 7, 'b');
        assert_eq!(r.ready(), None, "within the margin of the newest");
        r.push(0, 20, 'c');
        assert_eq!((r.ready(), r.ready(), r.ready()), (Some('a'), Some('b'), None));
    }

    /// On a tie the lower interface goes first, so a frame waits until every interface listed
    /// before it is strictly past its time: that one may still bring a frame of the same time.
    #[test]
    fn a_tie_waits_for_the_lower_interface_to_move_on() {
        let mut r = Reorder::new(1_000_000, 10, 100);
        r.push(1, 5, 'v');
        r.push(0, 5, 'x');
        r.push(1, 50, 'w');
        assert_eq!((r.ready(), r.ready()), (Some('x'), None), "interface 0 may bring another frame at 5");
        r.push(0, 5, 'y');
        r.push(0, 6, 'z');
        assert_eq!((r.ready(), r.ready(), r.ready(), r.ready()), (Some('y'), Some('v'), Some('z'), None));
    }

    /// An interface declared with no frame yet, or gone quiet, holds the others only up to the
    /// window.
    #[test]
    fn a_silent_interface_holds_the_rest_for_the_window_only() {
        let mut r = Reorder::new(1_000, 10, 100);
        r.declare(3);
        r.push(0, 5, 'a');
        r.push(1, 6, 'b');
        r.push(0, 500, 'c');
        assert_eq!(r.ready(), None, "interface 2 may still bring older frames");
        r.push(1, 1_006, 'd');
        assert_eq!((r.ready(), r.ready(), r.ready()), (Some('a'), Some('b'), None));
    }

    /// Past `max_held` the oldest goes out early: memory stays bounded on a dense capture.
    #[test]
    fn a_full_buffer_lets_the_oldest_go() {
        let mut r = Reorder::new(u64::MAX, u64::MAX, 2);
        for (q, ts) in [(0, 3), (1, 1), (2, 2)] {
            r.push(q, ts, ts);
        }
        assert_eq!((r.ready(), r.ready()), (Some(1), None));
    }
}
