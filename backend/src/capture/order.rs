//! Frames of several interfaces back into capture-time order. dumpcap, tcpdump and tshark write
//! a multi-interface pcapng as each interface's ring drains, so one interface's frames can follow
//! another's later ones by a few hundred milliseconds (a whole short connection on the client's
//! veth, then its copy on the server's). Read in file order, the copy arrives after the
//! connection closed and the record says it was seen once. `Reorder` holds frames and hands them
//! out oldest first; within an interface the file's order is kept (a merge of the interfaces'
//! queues, not a sort: a few comparisons a frame).
//!
//! A frame goes out once nothing read later can be older: every interface declared so far has
//! passed its time (a writer keeps one interface's frames in order), and a short margin
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

/// How many frames behind the one taken in its interface's queue are asked for (`prefetch`):
/// they were pushed thousands of frames ago, and the caches have let them go.
const AHEAD: usize = 8;

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
/// writer keeps one interface's frames in order), merged by their oldest. What a frame's release
/// asks is kept up to date as frames come and go (`front`, `passed_us`), not found again for
/// every frame: a few comparisons a frame, not a walk over the interfaces.
pub struct Reorder<T> {
    queues: Vec<Queue<T>>,
    held: usize,
    newest_us: u64,
    /// Every interface has shown a frame at least this late (0 while one has shown none).
    passed_us: u64,
    /// The queue whose first frame is the oldest held (the first such on a tie) and its time;
    /// `None`: to be found again (its frame went out).
    front: Option<(usize, u64)>,
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
        Self {
            queues: Vec::new(),
            held: 0,
            newest_us: 0,
            passed_us: 0,
            front: None,
            window_us,
            margin_us,
            max_held: max_held.max(1),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// `interfaces` are declared so far: one with no frame yet holds the others' back (up to the
    /// window) until it shows one.
    pub fn declare(&mut self, interfaces: usize) {
        if self.queues.len() < interfaces {
            self.queues.resize_with(interfaces, Queue::default);
            self.passed_us = 0;
        }
    }

    /// Holds a frame of interface `queue`.
    pub fn push(&mut self, queue: u32, ts_us: u64, item: T) {
        let q = queue as usize;
        self.declare(q + 1);
        self.newest_us = self.newest_us.max(ts_us);
        let mine = &mut self.queues[q];
        // Its frame is the oldest held if it is its queue's first and older than the front.
        if self.held == 0 {
            self.front = Some((q, ts_us));
        } else if let Some((f, t)) = self.front
            && mine.frames.is_empty()
            && (ts_us, q) < (t, f)
        {
            self.front = Some((q, ts_us));
        }
        mine.frames.push_back((ts_us, item));
        self.held += 1;
        let before = mine.newest_us.unwrap_or(0);
        mine.newest_us = Some(before.max(ts_us));
        // The interface that was furthest behind moved on: how far all have got, again.
        if before <= self.passed_us && ts_us > before {
            self.passed_us = self.queues.iter().map(|q| q.newest_us.unwrap_or(0)).min().unwrap_or(0);
        }
    }

    /// The oldest held frame, once nothing read later can be older: every interface has passed
    /// it (and the margin has), it is a window behind the newest read, or too many are held.
    pub fn ready(&mut self) -> Option<T> {
        let (q, oldest) = self.front()?;
        let due = oldest.saturating_add(self.window_us) <= self.newest_us
            || self.held > self.max_held
            || (oldest < self.passed_us && oldest.saturating_add(self.margin_us) <= self.newest_us);
        due.then(|| self.take(q))
    }

    /// The oldest held frame, whatever the window (the file has ended).
    pub fn pop(&mut self) -> Option<T> {
        let (q, _) = self.front()?;
        Some(self.take(q))
    }

    /// The queue whose first frame is the oldest (the first such queue on a tie), and its time.
    fn front(&mut self) -> Option<(usize, u64)> {
        if self.front.is_none() {
            for (i, q) in self.queues.iter().enumerate() {
                if let Some(&(ts, _)) = q.frames.front()
                    && self.front.is_none_or(|(_, b)| ts < b)
                {
                    self.front = Some((i, ts));
                }
            }
        }
        self.front
    }

    fn take(&mut self, q: usize) -> T {
        self.held -= 1;
        self.front = None;
        let frames = &mut self.queues[q].frames;
        let out = frames.pop_front().expect("the queue front() found").1;
        if let Some(later) = frames.get(AHEAD) {
            super::prefetch::prefetch(later);
        }
        out
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

    /// A file in time order (a `mergecap` merge) comes out as soon as every interface has passed
    /// a frame and the margin has, not a window later.
    #[test]
    fn frames_every_interface_has_passed_go_out_after_the_margin() {
        let mut r = Reorder::new(1_000_000, 10, 100);
        r.declare(2);
        r.push(0, 5, 'a');
        assert_eq!(r.ready(), None, "interface 1 has shown nothing yet, and the margin has not passed");
        r.push(1, 7, 'b');
        assert_eq!(r.ready(), None, "within the margin of the newest");
        r.push(0, 20, 'c');
        assert_eq!((r.ready(), r.ready()), (Some('a'), None), "interface 1 is at 7: 'b' waits for it to move on");
        r.push(1, 30, 'd');
        assert_eq!((r.ready(), r.ready()), (Some('b'), None), "'c' waits for interface 0 to pass 20");
        r.push(0, 45, 'e');
        assert_eq!((r.ready(), r.ready()), (Some('c'), None), "interface 1 is at 30: 'd' waits for it to move on");
    }

    /// Equal times keep their order (the lower interface first) because a frame waits until every
    /// interface is strictly past its time: one at the same time may still bring a frame of it.
    #[test]
    fn a_tie_waits_for_every_interface_to_move_on() {
        let mut r = Reorder::new(1_000_000, 10, 100);
        r.push(1, 5, 'v');
        r.push(0, 5, 'x');
        r.push(1, 50, 'w');
        assert_eq!(r.ready(), None, "interface 0 may bring another frame at 5");
        r.push(0, 5, 'y');
        r.push(0, 6, 'z');
        assert_eq!((r.ready(), r.ready(), r.ready(), r.ready()), (Some('x'), Some('y'), Some('v'), None));
        let mut rest = Vec::new();
        rest.extend(std::iter::from_fn(|| r.pop()));
        assert_eq!(rest, ['z', 'w']);
    }

    /// Interfaces written in runs as their rings drained, each in its own order, equal times
    /// among them: whatever is released early, everything comes out in time order, ties by
    /// interface then file order (a pseudo-random file, the same every run).
    #[test]
    fn runs_of_several_interfaces_come_out_as_one_sorted_merge() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut clocks = [0u64; 4];
        let mut file = Vec::new();
        for _ in 0..400 {
            let q = next(4) as usize;
            for _ in 0..=next(6) {
                clocks[q] += next(3) * 5;
                file.push((q as u32, clocks[q], file.len()));
            }
        }
        let mut r = Reorder::new(1_000_000, 5, 10_000);
        r.declare(4);
        let mut out = Vec::new();
        for &(q, ts, n) in &file {
            r.push(q, ts, (ts, q, n));
            out.extend(std::iter::from_fn(|| r.ready()));
        }
        let early = out.len();
        out.extend(std::iter::from_fn(|| r.pop()));
        let mut sorted: Vec<(u64, u32, usize)> = file.iter().map(|&(q, ts, n)| (ts, q, n)).collect();
        sorted.sort();
        assert_eq!(out, sorted);
        assert!(early > file.len() / 2, "most went out before the end: {early} of {}", file.len());
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
