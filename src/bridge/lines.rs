//! [`BoundedLines`]: reads newline-terminated lines from a child's pipe holding at most
//! `max` bytes of one line, however long the line the child writes. A longer line is
//! reported by its length (with its first `max` bytes) and the rest of it is skipped up to
//! its newline, so a hostile or broken child cannot make the bridge allocate without bound.
//! Bytes are returned as they are: deciding about UTF-8 and JSON is the caller's business.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};

/// Bytes read from the pipe at a time.
const READ_CHUNK: usize = 64 * 1024;

/// One line read by [`BoundedLines`], without its newline.
#[derive(Debug, PartialEq, Eq)]
pub enum Line {
    /// A whole line of at most `max` bytes.
    Whole(Vec<u8>),
    /// A line longer than `max`: its first `max` bytes and its full length.
    TooLong { head: Vec<u8>, len: u64 },
}

/// A line reader over `R` whose memory is bounded by `max` plus one read chunk.
pub struct BoundedLines<R> {
    reader: BufReader<R>,
    max: usize,
    line: Vec<u8>,
}

impl<R: AsyncRead + Unpin> BoundedLines<R> {
    /// Reads lines of at most `max` bytes (not counting the newline) from `reader`.
    pub fn new(reader: R, max: usize) -> Self {
        Self {
            reader: BufReader::with_capacity(READ_CHUNK, reader),
            max,
            line: Vec::new(),
        }
    }

    /// The next line; `None` at the end of the stream. A last line without a newline is
    /// still returned.
    pub async fn next_line(&mut self) -> std::io::Result<Option<Line>> {
        // Bytes of the current line seen so far (kept or skipped).
        let mut len: u64 = 0;
        loop {
            let available = self.reader.fill_buf().await?;
            if available.is_empty() {
                return Ok((len > 0).then(|| self.finish(len)));
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.unwrap_or(available.len());
            let keep = take.min(self.max.saturating_sub(self.line.len()));
            if self.line.capacity() - self.line.len() < keep {
                // Grow by doubling, but never past `max` (plain doubling could reach 2×).
                let want = (self.line.capacity() * 2).clamp(self.line.len() + keep, self.max);
                self.line.reserve_exact(want - self.line.len());
            }
            self.line.extend_from_slice(&available[..keep]);
            len += take as u64;
            self.reader.consume(newline.map_or(take, |n| n + 1));
            if newline.is_some() {
                return Ok(Some(self.finish(len)));
            }
        }
    }

    /// Hands out the line collected so far, `len` bytes long in total.
    fn finish(&mut self, len: u64) -> Line {
        // Hand the buffer out, so a long line's capacity is not kept for the next one.
        let bytes = std::mem::take(&mut self.line);
        if len > self.max as u64 {
            Line::TooLong { head: bytes, len }
        } else {
            Line::Whole(bytes)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn all_lines(input: &[u8], max: usize) -> Vec<Line> {
        let mut lines = BoundedLines::new(input, max);
        let mut out = Vec::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            out.push(line);
        }
        out
    }

    #[tokio::test]
    async fn lines_up_to_the_limit_are_whole_and_a_last_line_needs_no_newline() {
        let lines = all_lines(b"abcd\n\nxy\nlast", 4).await;
        assert_eq!(
            lines,
            vec![
                Line::Whole(b"abcd".to_vec()),
                Line::Whole(Vec::new()),
                Line::Whole(b"xy".to_vec()),
                Line::Whole(b"last".to_vec()),
            ]
        );
    }

    #[tokio::test]
    async fn a_longer_line_is_reported_by_length_and_skipped_to_its_newline() {
        let lines = all_lines(b"abcde\nok\nabcdefgh", 4).await;
        assert_eq!(
            lines,
            vec![
                Line::TooLong {
                    head: b"abcd".to_vec(),
                    len: 5
                },
                Line::Whole(b"ok".to_vec()),
                Line::TooLong {
                    head: b"abcd".to_vec(),
                    len: 8
                },
            ]
        );
    }

    #[tokio::test]
    async fn a_line_far_longer_than_the_limit_never_grows_the_buffer_past_it() {
        // 5 MiB in 64 KiB reads, with a 1 KiB limit: the kept head never passes 1 KiB.
        let mut input = vec![b'x'; 5 << 20];
        input.extend_from_slice(b"\n{\"ok\":true}\n");
        let mut lines = BoundedLines::new(&input[..], 1024);
        match lines.next_line().await.unwrap() {
            Some(Line::TooLong { head, len }) => {
                assert_eq!((head.len(), len), (1024, 5 << 20));
                assert_eq!(head.capacity(), 1024);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            lines.next_line().await.unwrap(),
            Some(Line::Whole(b"{\"ok\":true}".to_vec()))
        );
        assert_eq!(lines.next_line().await.unwrap(), None);
    }

    #[tokio::test]
    async fn bytes_that_are_not_utf8_come_through_untouched() {
        let lines = all_lines(b"\xff\xfe\n\xc3\x28\n", 16).await;
        assert_eq!(
            lines,
            vec![
                Line::Whole(b"\xff\xfe".to_vec()),
                Line::Whole(b"\xc3\x28".to_vec())
            ]
        );
    }

    #[tokio::test]
    async fn the_buffer_grows_by_doubling_but_never_past_the_limit() {
        // A 300 KiB line in 64 KiB reads with a 200 000-byte limit: doubling alone would
        // end at 256 KiB of capacity.
        let mut input = vec![b'z'; 300 * 1024];
        input.push(b'\n');
        let mut lines = BoundedLines::new(&input[..], 200_000);
        match lines.next_line().await.unwrap() {
            Some(Line::TooLong { head, .. }) => assert_eq!(head.capacity(), 200_000),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_line_split_across_reads_is_joined() {
        let (mut tx, rx) = tokio::io::duplex(8);
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for part in [&b"{\"a\":"[..], b"1}", b"\nnext\n"] {
                tx.write_all(part).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut lines = BoundedLines::new(rx, 64);
        assert_eq!(
            lines.next_line().await.unwrap(),
            Some(Line::Whole(b"{\"a\":1}".to_vec()))
        );
        assert_eq!(
            lines.next_line().await.unwrap(),
            Some(Line::Whole(b"next".to_vec()))
        );
        writer.await.unwrap();
        assert_eq!(lines.next_line().await.unwrap(), None);
    }
}
