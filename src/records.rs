//! The compact storage of the lists a server sizes (commands, sensors, desired states): one byte arena holding
//! every item, and an index of `u32` offsets into it, one per item. An item is a 3-byte header (which strings
//! are present, which integers are present, a tag such as an error kind or an action), its integers (8 bytes
//! each, little-endian), then its present strings, each NUL-terminated so that C can point into it.
//!
//! Why: a list of structs of owned strings costs 150 to 200 bytes an item before its text, so an answer of
//! minimal items (`{"id":1}`, 9 bytes) would cost 20 times its size. Here an item costs its header and its
//! strings, never more than its JSON text (a string is stored unescaped, a number as written, and each field's
//! key and punctuation outweigh a NUL), plus 4 bytes of index. The arena is reserved once from that bound (the
//! answer's size), so it never reallocates while the answer is alive; [`Records::shrink`] gives back what was
//! not used once the answer is gone.

use std::ffi::CStr;

/// The most strings an item holds.
pub(crate) const MAX_STRINGS: usize = 8;
/// The most integers an item holds.
pub(crate) const MAX_INTS: usize = 2;

const HEADER: usize = 3;

/// Items of up to [`MAX_STRINGS`] strings and [`MAX_INTS`] integers each; see the module's comment.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Records {
    index: Vec<u32>,
    arena: Vec<u8>,
}

/// One item as stored: its tag, its integers and its strings (absent ones `None`), borrowed from the list.
/// (`pub` only for the sealed trait of the catalog's lists, whose methods read it; the module is private.)
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub tag: u8,
    pub ints: [Option<i64>; MAX_INTS],
    pub strings: [Option<&'a CStr>; MAX_STRINGS],
}

impl<'a> Record<'a> {
    /// String `i` as text (stored from a `&str`, so always UTF-8).
    pub(crate) fn str(&self, i: usize) -> Option<&'a str> {
        self.strings[i].map(|c| std::str::from_utf8(c.to_bytes()).unwrap_or_default())
    }
}

impl Records {
    /// An empty list with room for `items` items of `bytes` bytes in all, reserved exactly.
    pub(crate) fn with_capacity(items: usize, bytes: usize) -> Records {
        let mut r = Records::default();
        r.index.reserve_exact(items);
        r.arena.reserve_exact(bytes);
        r
    }

    pub(crate) fn len(&self) -> usize {
        self.index.len()
    }

    /// Appends an item. An interior NUL in a string becomes U+FFFD (3 bytes, shorter than the 6 of its JSON
    /// escape), so that C reads the whole text. An arena past 4 GiB (impossible for an answer of at most
    /// 8 MiB) drops the item rather than storing an offset that wraps.
    pub(crate) fn push(&mut self, tag: u8, ints: [Option<i64>; MAX_INTS], strings: &[Option<&str>]) {
        debug_assert!(strings.len() <= MAX_STRINGS);
        let Ok(start) = u32::try_from(self.arena.len()) else { return };
        let str_bits = strings.iter().enumerate().fold(0u8, |b, (i, s)| b | (u8::from(s.is_some()) << i));
        let int_bits = ints.iter().enumerate().fold(0u8, |b, (i, n)| b | (u8::from(n.is_some()) << i));
        self.index.push(start);
        self.arena.extend_from_slice(&[str_bits, int_bits, tag]);
        for n in ints.iter().flatten() {
            self.arena.extend_from_slice(&n.to_le_bytes());
        }
        for s in strings.iter().flatten() {
            if s.as_bytes().contains(&0) {
                self.arena.extend_from_slice(s.replace('\0', "\u{FFFD}").as_bytes());
            } else {
                self.arena.extend_from_slice(s.as_bytes());
            }
            self.arena.push(0);
        }
    }

    /// Item `i`, or `None` past the end.
    pub(crate) fn get(&self, i: usize) -> Option<Record<'_>> {
        let start = *self.index.get(i)? as usize;
        let bytes = &self.arena[start..];
        let (str_bits, int_bits, tag) = (bytes[0], bytes[1], bytes[2]);
        let mut at = HEADER;
        let mut ints = [None; MAX_INTS];
        for (k, slot) in ints.iter_mut().enumerate() {
            if int_bits & (1 << k) != 0 {
                let mut le = [0u8; 8];
                le.copy_from_slice(&bytes[at..at + 8]);
                *slot = Some(i64::from_le_bytes(le));
                at += 8;
            }
        }
        let mut strings = [None; MAX_STRINGS];
        for (k, slot) in strings.iter_mut().enumerate() {
            if str_bits & (1 << k) != 0 {
                let s = CStr::from_bytes_until_nul(&bytes[at..]).ok()?;
                at += s.to_bytes().len() + 1;
                *slot = Some(s);
            }
        }
        Some(Record { tag, ints, strings })
    }

    /// Replaces item `i`'s tag (an action decided after reading).
    pub(crate) fn set_tag(&mut self, i: usize, tag: u8) {
        if let Some(&start) = self.index.get(i) {
            self.arena[start as usize + 2] = tag;
        }
    }

    /// Keeps only the items for which `keep` is true, in order, in place (no allocation).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(Record<'_>) -> bool) {
        let (mut kept, mut write) = (0usize, 0usize);
        for i in 0..self.index.len() {
            let start = self.index[i] as usize;
            let end = self.index.get(i + 1).map_or(self.arena.len(), |&e| e as usize);
            if self.get(i).is_some_and(&mut keep) {
                self.arena.copy_within(start..end, write);
                self.index[kept] = write as u32;
                kept += 1;
                write += end - start;
            }
        }
        self.index.truncate(kept);
        self.arena.truncate(write);
    }

    /// Gives back the room reserved and not used (once the answer it was sized from is gone).
    pub(crate) fn shrink(&mut self) {
        self.index.shrink_to_fit();
        self.arena.shrink_to_fit();
    }

    /// The heap the list holds (its capacity), for tests and benchmarks.
    #[allow(dead_code)]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.index.capacity() * 4 + self.arena.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_and_retain_keeps_order() {
        let mut r = Records::with_capacity(3, 64);
        r.push(1, [Some(-5), None], &[Some("a"), None, Some("")]);
        r.push(2, [None, Some(7)], &[Some("b\0c")]);
        r.push(3, [None, None], &[None, Some("xyz")]);
        let x = r.get(0).unwrap();
        assert_eq!((x.tag, x.ints, x.str(0), x.str(1), x.str(2)), (1, [Some(-5), None], Some("a"), None, Some("")));
        let y = r.get(1).unwrap();
        assert_eq!((y.tag, y.ints[1], y.str(0)), (2, Some(7), Some("b\u{FFFD}c")));
        assert!(r.get(3).is_none());
        r.set_tag(2, 9);
        r.retain(|x| x.tag != 2);
        assert_eq!(r.len(), 2);
        assert_eq!((r.get(1).unwrap().tag, r.get(1).unwrap().str(1)), (9, Some("xyz")));
        assert_eq!(r.get(0).unwrap().str(0), Some("a"));
        assert!(r.heap_bytes() <= 3 * 4 + 64, "reserved once, never grown");
    }
}
