//! Output capture: an incremental UTF-8 decoder that never corrupts a character split
//! between two reads, and a per-stream capped text buffer that keeps draining past its
//! cap (dropping the excess) and remembers that it truncated.

use serde::Serialize;

/// Which output stream of a process a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// A piece of decoded output, sent to a streaming consumer as it arrives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputChunk {
    pub stream: Stream,
    pub data: String,
}

/// Decodes a byte stream as UTF-8 incrementally. Invalid sequences become U+FFFD exactly
/// as [`String::from_utf8_lossy`] would render the whole stream; an incomplete sequence at
/// the end of a chunk is held back until the next chunk completes (or breaks) it.
#[derive(Debug, Default)]
pub struct Utf8Decoder {
    /// Bytes of an incomplete but so far valid sequence (at most 3).
    pending: [u8; 4],
    pending_len: usize,
}

impl Utf8Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `input`, appending the text to `out`.
    pub fn decode(&mut self, mut input: &[u8], out: &mut String) {
        // First complete (or reject) a sequence left over from the previous chunk, one byte
        // at a time: it needs at most three more bytes.
        while self.pending_len > 0 && !input.is_empty() {
            self.pending[self.pending_len] = input[0];
            self.pending_len += 1;
            input = &input[1..];
            let buf = self.pending;
            let len = self.pending_len;
            match std::str::from_utf8(&buf[..len]) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending_len = 0;
                }
                Err(e) => match e.error_len() {
                    None => {} // still incomplete
                    Some(bad) => {
                        // `valid_up_to` is 0: the pending bytes start a sequence.
                        out.push(char::REPLACEMENT_CHARACTER);
                        self.pending_len = 0;
                        // The bytes after the invalid prefix start afresh.
                        self.decode_fresh(&buf[bad..len], out);
                    }
                },
            }
        }
        if !input.is_empty() {
            self.decode_fresh(input, out);
        }
    }

    /// Decodes with no pending bytes; keeps an incomplete tail pending.
    fn decode_fresh(&mut self, mut input: &[u8], out: &mut String) {
        debug_assert_eq!(self.pending_len, 0);
        loop {
            match std::str::from_utf8(input) {
                Ok(s) => {
                    out.push_str(s);
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // SAFETY-free: from_utf8 on the valid prefix cannot fail.
                    out.push_str(std::str::from_utf8(&input[..valid]).unwrap_or_default());
                    match e.error_len() {
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            input = &input[valid + bad..];
                        }
                        None => {
                            let tail = &input[valid..];
                            self.pending[..tail.len()].copy_from_slice(tail);
                            self.pending_len = tail.len();
                            return;
                        }
                    }
                }
            }
        }
    }

    /// Ends the stream: an incomplete sequence left over becomes one U+FFFD.
    pub fn finish(&mut self, out: &mut String) {
        if self.pending_len > 0 {
            self.pending_len = 0;
            out.push(char::REPLACEMENT_CHARACTER);
        }
    }

    /// Forgets any pending bytes (used when the stream was cut on purpose).
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }
}

/// The captured text of one stream, at most `cap` bytes of UTF-8 (cut on a character
/// boundary). Everything past the cap is counted and dropped.
#[derive(Debug)]
pub struct CappedText {
    decoder: Utf8Decoder,
    text: String,
    cap: usize,
    truncated: bool,
    total_bytes: u64,
    scratch: String,
}

impl CappedText {
    pub fn new(cap: usize) -> Self {
        Self {
            decoder: Utf8Decoder::new(),
            text: String::new(),
            cap,
            truncated: false,
            total_bytes: 0,
            scratch: String::new(),
        }
    }

    /// Feeds raw bytes; returns the newly kept text (empty once the cap is reached).
    pub fn push(&mut self, bytes: &[u8]) -> &str {
        self.total_bytes += bytes.len() as u64;
        self.scratch.clear();
        if self.truncated {
            return "";
        }
        let mut decoded = std::mem::take(&mut self.scratch);
        self.decoder.decode(bytes, &mut decoded);
        let room = self.cap - self.text.len();
        if decoded.len() > room {
            let cut = floor_char_boundary(&decoded, room);
            decoded.truncate(cut);
            self.truncated = true;
            self.decoder.reset();
        }
        self.text.push_str(&decoded);
        self.scratch = decoded;
        &self.scratch
    }

    /// Ends the stream; returns the text kept by this last step (a trailing U+FFFD for an
    /// incomplete final sequence, if it fits).
    pub fn finish(&mut self) -> &str {
        self.scratch.clear();
        if self.truncated {
            return "";
        }
        let mut tail = std::mem::take(&mut self.scratch);
        self.decoder.finish(&mut tail);
        if tail.len() > self.cap - self.text.len() {
            tail.clear();
            self.truncated = true;
        }
        self.text.push_str(&tail);
        self.scratch = tail;
        &self.scratch
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }

    /// Raw bytes seen, kept or not.
    pub fn total_bytes(&self) -> u64 {
        self.total_bytes
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn into_text(self) -> String {
        self.text
    }
}

/// The largest index `<= index` that lies on a character boundary of `s`.
fn floor_char_boundary(s: &str, index: usize) -> usize {
    if index >= s.len() {
        return s.len();
    }
    let mut i = index;
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_split(bytes: &[u8], splits: &[usize]) -> String {
        let mut d = Utf8Decoder::new();
        let mut out = String::new();
        let mut start = 0;
        for &s in splits {
            d.decode(&bytes[start..s], &mut out);
            start = s;
        }
        d.decode(&bytes[start..], &mut out);
        d.finish(&mut out);
        out
    }

    #[test]
    fn three_byte_char_split_at_every_position() {
        let text = "a€b€€c";
        let bytes = text.as_bytes();
        for i in 0..=bytes.len() {
            assert_eq!(decode_split(bytes, &[i]), text, "split at {i}");
            for j in i..=bytes.len() {
                assert_eq!(decode_split(bytes, &[i, j]), text, "split at {i},{j}");
            }
        }
        // Byte by byte.
        let all: Vec<usize> = (1..bytes.len()).collect();
        assert_eq!(decode_split(bytes, &all), text);
    }

    #[test]
    fn four_byte_char_byte_by_byte() {
        let text = "x😀y";
        let bytes = text.as_bytes();
        let all: Vec<usize> = (1..bytes.len()).collect();
        assert_eq!(decode_split(bytes, &all), text);
    }

    #[test]
    fn invalid_bytes_become_replacement_like_lossy() {
        let cases: &[&[u8]] = &[
            b"\xff",
            b"a\xffb",
            b"\xe2\x82",  // truncated at end
            b"\xe2\x82A", // broken by ASCII
            b"\xe2\x82\xe2\x82\xac",
            b"\xf0\x9f\x98",
            b"\xf0\x9f\x98\x80\x80",
            b"\xc0\x80",     // overlong
            b"\xed\xa0\x80", // surrogate
            b"\xf4\x90\x80\x80",
        ];
        for case in cases {
            let expected = String::from_utf8_lossy(case).into_owned();
            for i in 0..=case.len() {
                for j in i..=case.len() {
                    assert_eq!(
                        decode_split(case, &[i, j]),
                        expected,
                        "{case:x?} split {i},{j}"
                    );
                }
            }
        }
    }

    #[test]
    fn random_streams_match_lossy() {
        // Deterministic xorshift; bytes biased towards UTF-8 lead/continuation bytes.
        let mut state = 0x9e3779b97f4a7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let alphabet = [
            b'a', 0x80, 0x9f, 0xbf, 0xc3, 0xe2, 0xed, 0xf0, 0xf4, 0xff, 0x82, 0xac,
        ];
        for _ in 0..2000 {
            let len = (next() % 24) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let mut splits: Vec<usize> = (0..3).map(|_| (next() as usize) % (len + 1)).collect();
            splits.sort();
            assert_eq!(
                decode_split(&bytes, &splits),
                String::from_utf8_lossy(&bytes),
                "{bytes:x?} {splits:?}"
            );
        }
    }

    #[test]
    fn cap_cuts_on_char_boundary_and_keeps_counting() {
        let mut c = CappedText::new(5);
        assert_eq!(c.push(b"ab"), "ab");
        // "€" is 3 bytes: "ab€" is 5 bytes, fits exactly.
        assert_eq!(c.push("€".as_bytes()), "€");
        assert!(!c.truncated());
        assert_eq!(c.push(b"x"), "");
        assert!(c.truncated());
        assert_eq!(c.push(b"more"), "");
        assert_eq!(c.finish(), "");
        assert_eq!(c.text(), "ab€");
        assert_eq!(c.total_bytes(), 10);
    }

    #[test]
    fn cap_never_splits_a_char() {
        for cap in 0..10 {
            let mut c = CappedText::new(cap);
            c.push("a€€".as_bytes()); // 7 bytes
            c.finish();
            assert!(c.text().len() <= cap);
            let expected = match cap {
                0 => "",
                1..=3 => "a",
                4..=6 => "a€",
                _ => "a€€",
            };
            assert_eq!(c.text(), expected, "cap {cap}");
            assert_eq!(c.truncated(), cap < 7, "cap {cap}");
        }
    }

    #[test]
    fn cap_exactly_full_is_not_truncated() {
        let mut c = CappedText::new(4);
        c.push(b"ab");
        c.push(b"cd");
        c.finish();
        assert_eq!(c.text(), "abcd");
        assert!(!c.truncated());
    }

    #[test]
    fn split_char_across_pushes_within_cap() {
        let bytes = "é€😀".as_bytes();
        for i in 0..=bytes.len() {
            let mut c = CappedText::new(100);
            let mut streamed = String::new();
            streamed.push_str(c.push(&bytes[..i]));
            streamed.push_str(c.push(&bytes[i..]));
            streamed.push_str(c.finish());
            assert_eq!(c.text(), "é€😀");
            assert_eq!(streamed, "é€😀");
        }
    }

    #[test]
    fn trailing_incomplete_sequence_at_finish() {
        let mut c = CappedText::new(100);
        c.push(b"ok\xe2\x82");
        assert_eq!(c.text(), "ok");
        assert_eq!(c.finish(), "\u{fffd}");
        assert_eq!(c.text(), "ok\u{fffd}");
    }
}
