//! The NATS text protocol, both directions.
//!
//! Client operations ([`ClientOp`]) are written with [`encode`]; server
//! operations ([`ServerOp`]) are read with [`Decoder::decode`], which
//! takes what has arrived so far and returns an operation once one is
//! whole. A control line is at most [`MAX_CONTROL_LINE`] bytes and a
//! payload at most the decoder's limit; anything else is a
//! [`ProtocolError`] that closes the connection.

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};

/// The longest control line (the operation before its payload) the
/// client takes: a server in a cluster lists every peer in its INFO,
/// which goes well past the 4 KiB a client's own lines are held to.
pub const MAX_CONTROL_LINE: usize = 64 * 1024;

/// Headers of a message, in order: `NATS/1.0` then `Name: value` lines.
pub type Headers = Vec<(String, String)>;

/// What a client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    /// The first operation: the client's options as JSON.
    Connect(String),
    /// A message on `subject`, with an optional reply subject and headers.
    Publish {
        /// The subject.
        subject: String,
        /// Where replies go.
        reply_to: Option<String>,
        /// Its headers.
        headers: Headers,
        /// Its bytes.
        payload: Bytes,
    },
    /// Interest in `subject` (which may hold `*` and `>`), under the id
    /// `sid`.
    Subscribe {
        /// The subject, which may hold `*` and `>`.
        subject: String,
        /// The id the server's messages name.
        sid: u64,
    },
    /// No more interest under `sid`.
    Unsubscribe {
        /// The subscription's id.
        sid: u64,
    },
    /// Keep-alive probe.
    Ping,
    /// Answer to the server's `PING`.
    Pong,
}

/// What a server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerOp {
    /// The server's description, as JSON (first, and again on changes).
    Info(String),
    /// A message for subscription `sid`.
    Message {
        /// The subject.
        subject: String,
        /// The subscription's id.
        sid: u64,
        /// Where replies go.
        reply_to: Option<String>,
        /// Its headers.
        headers: Headers,
        /// Its bytes.
        payload: Bytes,
    },
    /// Keep-alive probe: answer `PONG`.
    Ping,
    /// Answer to our `PING`.
    Pong,
    /// Acknowledgement in verbose mode.
    Ok,
    /// An error the server reports (it may then close the connection).
    Err(String),
}

/// A byte stream that does not follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// A control line longer than [`MAX_CONTROL_LINE`].
    #[error("the server sent a control line longer than {MAX_CONTROL_LINE} bytes")]
    LineTooLong,
    /// A payload longer than the decoder allows.
    #[error("the server sent a {size}-byte message; the limit is {limit}")]
    PayloadTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// An operation that cannot be read.
    #[error("the server sent `{0}`, which is not a NATS operation this client knows")]
    Malformed(String),
}

fn check_subject(subject: &str) -> bool {
    !subject.is_empty() && !subject.contains(|c: char| c.is_whitespace() || c.is_control())
}

/// Writes `op` to `out`. Subjects must not hold spaces or control
/// characters; header names and values must not hold line breaks (the
/// callers check topics and metadata before they get here).
pub fn encode(op: &ClientOp, out: &mut BytesMut) {
    match op {
        ClientOp::Connect(json) => {
            out.put_slice(b"CONNECT ");
            out.put_slice(json.as_bytes());
            out.put_slice(b"\r\n");
        }
        ClientOp::Publish {
            subject,
            reply_to,
            headers,
            payload,
        } => {
            debug_assert!(check_subject(subject));
            let reply = reply_to
                .as_deref()
                .map(|reply| format!(" {reply}"))
                .unwrap_or_default();
            if headers.is_empty() {
                out.put_slice(format!("PUB {subject}{reply} {}\r\n", payload.len()).as_bytes());
            } else {
                let block = header_block(headers);
                out.put_slice(
                    format!(
                        "HPUB {subject}{reply} {} {}\r\n",
                        block.len(),
                        block.len() + payload.len()
                    )
                    .as_bytes(),
                );
                out.put_slice(&block);
            }
            out.put_slice(payload);
            out.put_slice(b"\r\n");
        }
        ClientOp::Subscribe { subject, sid } => {
            out.put_slice(format!("SUB {subject} {sid}\r\n").as_bytes());
        }
        ClientOp::Unsubscribe { sid } => {
            out.put_slice(format!("UNSUB {sid}\r\n").as_bytes());
        }
        ClientOp::Ping => out.put_slice(b"PING\r\n"),
        ClientOp::Pong => out.put_slice(b"PONG\r\n"),
    }
}

fn header_block(headers: &Headers) -> Vec<u8> {
    let mut block = b"NATS/1.0\r\n".to_vec();
    for (name, value) in headers {
        block.extend_from_slice(name.as_bytes());
        block.extend_from_slice(b": ");
        block.extend_from_slice(value.as_bytes());
        block.extend_from_slice(b"\r\n");
    }
    block.extend_from_slice(b"\r\n");
    block
}

fn parse_headers(block: &[u8]) -> Result<Headers, ProtocolError> {
    let text = std::str::from_utf8(block)
        .map_err(|_| ProtocolError::Malformed("a header block that is not UTF-8".to_owned()))?;
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("NATS/1.0") {
        return Err(ProtocolError::Malformed(format!("header block {status:?}")));
    }
    let mut headers = Vec::new();
    for line in lines.filter(|line| !line.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| ProtocolError::Malformed(format!("header line {line:?}")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Ok(headers)
}

/// Reads server operations from a stream.
pub struct Decoder {
    max_payload: usize,
}

impl Decoder {
    /// A decoder that refuses payloads past `max_payload` bytes.
    pub fn new(max_payload: usize) -> Decoder {
        Decoder { max_payload }
    }

    /// The next whole operation in `buffer`, which it removes; `None`
    /// until one has fully arrived.
    pub fn decode(&self, buffer: &mut BytesMut) -> Result<Option<ServerOp>, ProtocolError> {
        let Some(end) = buffer.windows(2).position(|w| w == b"\r\n") else {
            if buffer.len() > MAX_CONTROL_LINE {
                return Err(ProtocolError::LineTooLong);
            }
            return Ok(None);
        };
        if end > MAX_CONTROL_LINE {
            return Err(ProtocolError::LineTooLong);
        }
        let line = std::str::from_utf8(&buffer[..end])
            .map_err(|_| ProtocolError::Malformed("a control line that is not UTF-8".to_owned()))?
            .to_owned();
        let (verb, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let simple = |op: ServerOp, buffer: &mut BytesMut| {
            buffer.advance(end + 2);
            Ok(Some(op))
        };
        match verb.to_ascii_uppercase().as_str() {
            "PING" => simple(ServerOp::Ping, buffer),
            "PONG" => simple(ServerOp::Pong, buffer),
            "+OK" => simple(ServerOp::Ok, buffer),
            "-ERR" => {
                let message = rest.trim().trim_matches('\'').to_owned();
                simple(ServerOp::Err(message), buffer)
            }
            "INFO" => simple(ServerOp::Info(rest.trim().to_owned()), buffer),
            "MSG" | "HMSG" => {
                self.message(verb.eq_ignore_ascii_case("HMSG"), &line, rest, end, buffer)
            }
            _ => Err(ProtocolError::Malformed(line)),
        }
    }

    fn message(
        &self,
        with_headers: bool,
        line: &str,
        rest: &str,
        end: usize,
        buffer: &mut BytesMut,
    ) -> Result<Option<ServerOp>, ProtocolError> {
        let malformed = || ProtocolError::Malformed(line.to_owned());
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let sizes = if with_headers { 2 } else { 1 };
        if fields.len() < 2 + sizes || fields.len() > 3 + sizes {
            return Err(malformed());
        }
        let number = |text: &str| text.parse::<usize>().map_err(|_| malformed());
        let total = number(fields[fields.len() - 1])?;
        let header_size = if with_headers {
            number(fields[fields.len() - 2])?
        } else {
            0
        };
        if header_size > total {
            return Err(malformed());
        }
        if total > self.max_payload {
            return Err(ProtocolError::PayloadTooLarge {
                size: total,
                limit: self.max_payload,
            });
        }
        let sid = fields[1].parse::<u64>().map_err(|_| malformed())?;
        let reply_to = (fields.len() == 3 + sizes).then(|| fields[2].to_owned());
        let subject = fields[0].to_owned();
        // The line, the payload and its own line end.
        if buffer.len() < end + 2 + total + 2 {
            return Ok(None);
        }
        if &buffer[end + 2 + total..end + 2 + total + 2] != b"\r\n" {
            return Err(malformed());
        }
        buffer.advance(end + 2);
        let mut body = buffer.split_to(total).freeze();
        buffer.advance(2);
        let headers = if with_headers {
            let block = body.split_to(header_size);
            parse_headers(&block)?
        } else {
            Vec::new()
        };
        Ok(Some(ServerOp::Message {
            subject,
            sid,
            reply_to,
            headers,
            payload: body,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(op: ClientOp) -> String {
        let mut out = BytesMut::new();
        encode(&op, &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn client_operations_are_written_as_the_protocol_has_them() {
        assert_eq!(
            encoded(ClientOp::Publish {
                subject: "prod.telemetry".into(),
                reply_to: None,
                headers: Vec::new(),
                payload: Bytes::from_static(b"21.5"),
            }),
            "PUB prod.telemetry 4\r\n21.5\r\n"
        );
        assert_eq!(
            encoded(ClientOp::Publish {
                subject: "t".into(),
                reply_to: Some("_INBOX.1".into()),
                headers: vec![("content-type".into(), "text/plain".into())],
                payload: Bytes::from_static(b"hi"),
            }),
            "HPUB t _INBOX.1 38 40\r\nNATS/1.0\r\ncontent-type: text/plain\r\n\r\nhi\r\n"
        );
        assert_eq!(
            encoded(ClientOp::Subscribe {
                subject: "prod.sensors.*".into(),
                sid: 7
            }),
            "SUB prod.sensors.* 7\r\n"
        );
        assert_eq!(encoded(ClientOp::Unsubscribe { sid: 7 }), "UNSUB 7\r\n");
        assert_eq!(encoded(ClientOp::Connect("{}".into())), "CONNECT {}\r\n");
        assert_eq!(encoded(ClientOp::Ping), "PING\r\n");
    }

    #[test]
    fn server_operations_are_read_whole_however_they_arrive() {
        let stream = b"INFO {\"max_payload\":1048576}\r\nPING\r\nMSG t 1 5\r\nhello\r\nHMSG t 2 _INBOX.9 18 20\r\nNATS/1.0\r\nk: v\r\n\r\nhi\r\n+OK\r\n-ERR 'Authorization Violation'\r\n";
        let expected = [
            ServerOp::Info("{\"max_payload\":1048576}".into()),
            ServerOp::Ping,
            ServerOp::Message {
                subject: "t".into(),
                sid: 1,
                reply_to: None,
                headers: Vec::new(),
                payload: Bytes::from_static(b"hello"),
            },
            ServerOp::Message {
                subject: "t".into(),
                sid: 2,
                reply_to: Some("_INBOX.9".into()),
                headers: vec![("k".into(), "v".into())],
                payload: Bytes::from_static(b"hi"),
            },
            ServerOp::Ok,
            ServerOp::Err("Authorization Violation".into()),
        ];
        // In one piece, and one byte at a time.
        for step in [stream.len(), 1] {
            let decoder = Decoder::new(1 << 20);
            let mut buffer = BytesMut::new();
            let mut ops = Vec::new();
            for chunk in stream.chunks(step) {
                buffer.extend_from_slice(chunk);
                while let Some(op) = decoder.decode(&mut buffer).unwrap() {
                    ops.push(op);
                }
            }
            assert_eq!(ops, expected, "in pieces of {step}");
            assert!(buffer.is_empty());
        }
    }

    #[test]
    fn streams_that_break_the_protocol_are_refused() {
        let decoder = Decoder::new(8);
        let refused = |text: &[u8]| decoder.decode(&mut BytesMut::from(text)).unwrap_err();
        assert_eq!(
            refused(b"MSG t 1 9\r\n123456789\r\n"),
            ProtocolError::PayloadTooLarge { size: 9, limit: 8 }
        );
        assert_eq!(
            refused(b"MSG t 1 2\r\nabcd"),
            ProtocolError::Malformed("MSG t 1 2".into()),
            "the payload does not end where its size says"
        );
        assert_eq!(
            refused(b"HELLO\r\n").to_string(),
            "the server sent `HELLO`, which is not a NATS operation this client knows"
        );
        assert_eq!(
            refused(&[b'x'; MAX_CONTROL_LINE + 1]),
            ProtocolError::LineTooLong
        );
        assert_eq!(
            refused(b"HMSG t 1 9 4\r\nabcd\r\n"),
            ProtocolError::Malformed("HMSG t 1 9 4".into()),
            "a header block larger than the whole"
        );
    }
}
