//! Server-Sent Events framing for responses that stream through the gateway: split a
//! byte stream into whole events (kept as their original bytes, so events that need no
//! rewrite are forwarded exactly as upstream wrote them), read an event's fields, and
//! write an event back with new `data`.

use bytes::{Bytes, BytesMut};

/// Splits a byte stream into raw events (each ending with its blank line).
#[derive(Default)]
pub struct SseFramer {
    buf: BytesMut,
    /// Where the search for the end of the current event resumes.
    scanned: usize,
}

impl SseFramer {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    /// Bytes held for an event not yet complete.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete event, raw.
    pub fn next_event(&mut self) -> Option<Bytes> {
        let from = self.scanned.saturating_sub(3);
        let hay = &self.buf[from..];
        let end = [&b"\n\n"[..], b"\r\n\r\n", b"\r\r"]
            .iter()
            .filter_map(|pat| find(hay, pat).map(|i| i + pat.len()))
            .min();
        match end {
            Some(len) => {
                self.scanned = 0;
                Some(self.buf.split_to(from + len).freeze())
            }
            None => {
                self.scanned = self.buf.len();
                None
            }
        }
    }

    /// Whatever is left when the stream ends (an unterminated last event).
    pub fn take_rest(&mut self) -> Bytes {
        self.scanned = 0;
        self.buf.split().freeze()
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The fields of one event.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub retry: Option<String>,
    /// `data` lines joined with `\n`; None when the event has no data line.
    pub data: Option<String>,
}

impl SseEvent {
    /// Reads a raw event.
    pub fn parse(raw: &[u8]) -> SseEvent {
        let text = String::from_utf8_lossy(raw);
        let mut ev = SseEvent::default();
        for line in text.split(['\n', '\r']) {
            if line.is_empty() || line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "data" => match &mut ev.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => ev.data = Some(value.to_owned()),
                },
                "id" => ev.id = Some(value.to_owned()),
                "event" => ev.event = Some(value.to_owned()),
                "retry" => ev.retry = Some(value.to_owned()),
                _ => {}
            }
        }
        ev
    }

    /// Writes the event (one `data` line per line of data).
    pub fn render(&self) -> Bytes {
        let mut out = String::new();
        for (name, v) in [
            ("event", &self.event),
            ("id", &self.id),
            ("retry", &self.retry),
        ] {
            if let Some(v) = v {
                out.push_str(name);
                out.push_str(": ");
                out.push_str(v);
                out.push('\n');
            }
        }
        if let Some(data) = &self.data {
            for line in data.split('\n') {
                out.push_str("data: ");
                out.push_str(line);
                out.push('\n');
            }
        }
        out.push('\n');
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_across_chunks_and_line_endings() {
        let mut f = SseFramer::default();
        f.push(b"event: message\nid: 1\ndata: {\"a\"");
        assert_eq!(f.next_event(), None);
        f.push(b":1}\n\nid: 2\r\ndata: x\r\n\r\ndata: tail");
        let e1 = f.next_event().unwrap();
        assert_eq!(&e1[..], b"event: message\nid: 1\ndata: {\"a\":1}\n\n");
        let p = SseEvent::parse(&e1);
        assert_eq!(p.data.as_deref(), Some("{\"a\":1}"));
        assert_eq!(p.id.as_deref(), Some("1"));
        let e2 = SseEvent::parse(&f.next_event().unwrap());
        assert_eq!(
            (e2.id.as_deref(), e2.data.as_deref()),
            (Some("2"), Some("x"))
        );
        assert_eq!(f.next_event(), None);
        assert_eq!(&f.take_rest()[..], b"data: tail");
    }

    #[test]
    fn renders_back() {
        let ev = SseEvent {
            id: Some("7".into()),
            event: Some("message".into()),
            retry: None,
            data: Some("a\nb".into()),
        };
        assert_eq!(SseEvent::parse(&ev.render()), ev);
    }
}
