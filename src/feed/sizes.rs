//! What a 413 can mean (contract sections 5 and 7.5). The path to Realer (proxies, gateways, Realer's own
//! byte budget) may cap request bodies; a 413 says "too large" only for a body larger than what the path has
//! carried and at least 1 KiB. The client remembers, for its life, the largest body the path carried and the
//! smallest it refused, and sizes batches below the latter.

use std::sync::Mutex;

/// A body under this many bytes is under any byte limit a path could have: a 413 for it refused the request.
pub(crate) const SMALL_BODY: usize = 1024;

/// What a 413 says about a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict413 {
    /// The body may be over a limit on the path: split a batch; one item is over it.
    MayBeTooLarge,
    /// The body cannot be over any limit (under 1 KiB, or one item no larger than a body the path carried):
    /// the request was refused, not the item.
    Refusal,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Sizes {
    /// The largest request body that reached Realer (it answered with its own JSON).
    largest_carried: usize,
    /// The smallest body refused with a 413 that may have been about its size.
    smallest_refused: Option<usize>,
}

/// The sizes one client's path has carried and refused.
#[derive(Debug, Default)]
pub(crate) struct PathSizes(Mutex<Sizes>);

impl PathSizes {
    fn with<T>(&self, f: impl FnOnce(&mut Sizes) -> T) -> T {
        // Plain integer fields: consistent under any panic.
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// A body of `bytes` reached Realer. A limit below it is gone (the path changed).
    pub(crate) fn carried(&self, bytes: usize) {
        self.with(|s| {
            s.largest_carried = s.largest_carried.max(bytes);
            if s.smallest_refused.is_some_and(|r| r <= bytes) {
                s.smallest_refused = None;
            }
        });
    }

    /// Judges a 413 for a body of `bytes` holding `items` items, and remembers what it says. A batch may
    /// always be too large (it is halved until one item remains, contract section 5: a path may limit bodies
    /// below 1 KiB too); one item cannot be when it is under 1 KiB or no larger than a body the path carried.
    /// A refusal also forgets the smallest body refused: while 413s come for bodies that cannot be too large,
    /// they say nothing about sizes (a proxy answering 413 to everything must not shrink batches for the
    /// client's life).
    pub(crate) fn refused_413(&self, bytes: usize, items: usize) -> Verdict413 {
        self.with(|s| {
            let carried_larger = bytes <= s.largest_carried;
            if items == 1 && (bytes < SMALL_BODY || carried_larger) {
                s.smallest_refused = None;
                return Verdict413::Refusal;
            }
            // A batch no larger than what the path carried is split all the same (the limit may have been
            // lowered), but says nothing certain about the limit.
            if !carried_larger {
                s.smallest_refused = Some(s.smallest_refused.map_or(bytes, |r| r.min(bytes)));
            }
            Verdict413::MayBeTooLarge
        })
    }

    /// Whether a batch body of `bytes` is worth sending whole: smaller than every body refused as too large.
    pub(crate) fn fits(&self, bytes: usize) -> bool {
        self.with(|s| s.smallest_refused.is_none_or(|r| bytes < r))
    }

    /// Why a 413 for a body of `bytes` was judged a refusal, for messages and logs.
    pub(crate) fn why_refusal(&self, bytes: usize) -> String {
        let carried = self.with(|s| s.largest_carried);
        if bytes < SMALL_BODY {
            format!("a body of {bytes} bytes (under 1 KiB) is over no byte budget")
        } else {
            format!("a body of {bytes} bytes is no larger than one this path carried ({carried} bytes)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_bodies_and_items_no_larger_than_carried_are_refusals() {
        let p = PathSizes::default();
        assert_eq!(p.refused_413(1023, 1), Verdict413::Refusal);
        assert_eq!(p.refused_413(1023, 10), Verdict413::MayBeTooLarge, "a batch is halved to one item");
        assert_eq!(p.refused_413(1024, 1), Verdict413::MayBeTooLarge);
        p.carried(3000);
        assert_eq!(p.refused_413(3000, 1), Verdict413::Refusal);
        assert_eq!(p.refused_413(3001, 1), Verdict413::MayBeTooLarge);
        // A batch is split even when the path carried as much before (a lowered limit), unrecorded.
        let q = PathSizes::default();
        q.carried(11_000);
        assert_eq!(q.refused_413(11_000, 100), Verdict413::MayBeTooLarge);
        assert!(q.fits(50_000));
    }

    #[test]
    fn batches_are_sized_below_the_smallest_refused_until_a_larger_body_passes() {
        let p = PathSizes::default();
        assert!(p.fits(usize::MAX));
        assert_eq!(p.refused_413(11_000, 100), Verdict413::MayBeTooLarge);
        assert_eq!(p.refused_413(5_500, 50), Verdict413::MayBeTooLarge);
        p.carried(2_750);
        assert!(p.fits(5_499) && !p.fits(5_500) && !p.fits(11_000));
        p.carried(6_000);
        assert!(p.fits(11_000), "a larger body passed: the limit is gone");
    }

    #[test]
    fn a_refusal_forgets_sizes_learned_from_413s() {
        let p = PathSizes::default();
        // 413 to everything: halved down to one item (8 requests for 100 items), which is refused.
        for (bytes, items) in [(11_000, 100), (5_500, 50), (2_750, 25), (1_400, 13), (770, 7), (440, 4), (220, 2)] {
            assert_eq!(p.refused_413(bytes, items), Verdict413::MayBeTooLarge);
        }
        assert!(!p.fits(220));
        assert_eq!(p.refused_413(110, 1), Verdict413::Refusal);
        assert!(p.fits(11_000), "413 to everything: nothing learned");
        assert!(p.why_refusal(110).contains("under 1 KiB"));
        p.carried(2_000);
        assert!(p.why_refusal(1_500).contains("2000 bytes"));
    }
}
