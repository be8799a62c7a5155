//! The streaming suite's client: plain HTTP/1.1 over a blocking socket with
//! 1 MiB reads and writes, the request body written from a thread of its
//! own while the response is read. A hyper client (a task per connection
//! and a hand-off per frame) or curl (16 KiB reads) topped out at about
//! 0.75 and 1.2 GB/s on one core, below what native hyper serves; this one
//! does not.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The size of every read and write.
const BUFFER: usize = 1 << 20;

/// What the client asks for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// `POST /stream` with the body, read back as it comes.
    Echo,
    /// `GET /stream?bytes=N`.
    Download,
}

impl Mode {
    /// Both, in the report's order.
    pub const ALL: [Mode; 2] = [Mode::Echo, Mode::Download];

    /// The name in the report.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Download => "download",
        }
    }

    /// The request head for `total` bytes.
    fn head(self, address: SocketAddr, total: u64) -> String {
        match self {
            Mode::Echo => format!(
                "POST /stream HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/octet-stream\r\nContent-Length: {total}\r\nConnection: close\r\n\r\n"
            ),
            Mode::Download => format!(
                "GET /stream?bytes={total} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
            ),
        }
    }
}

/// How the response body is framed.
#[derive(Debug, PartialEq)]
enum Framing {
    /// `content-length`: this many bytes are still to come.
    Length(u64),
    /// `transfer-encoding: chunked`.
    Chunked(Chunked),
    /// Neither: the body ends when the connection does.
    UntilClose,
}

/// Where a chunked body's decoder is.
#[derive(Debug, PartialEq)]
enum Chunked {
    /// Reading a chunk-size line (its text so far).
    Size(Vec<u8>),
    /// Inside a chunk, with this many data bytes to go.
    Data(u64),
    /// After a chunk's data: the CRLF, this many bytes of it seen.
    DataEnd(u8),
    /// After the last (zero) chunk: trailers until an empty line (the
    /// current line so far).
    Trailers(Vec<u8>),
    /// The body is complete.
    Done,
}

/// Reads a response as it arrives: the status, then the body's bytes
/// counted (decoded when chunked), never kept.
#[derive(Debug)]
pub struct Response {
    head: Vec<u8>,
    status: Option<u16>,
    framing: Option<Framing>,
    /// Body bytes received so far.
    pub body_bytes: u64,
}

impl Response {
    fn new() -> Response {
        Response {
            head: Vec::new(),
            status: None,
            framing: None,
            body_bytes: 0,
        }
    }

    /// Whether the whole body has arrived (an until-close body never is).
    fn complete(&self) -> bool {
        matches!(
            self.framing,
            Some(Framing::Length(0)) | Some(Framing::Chunked(Chunked::Done))
        )
    }

    /// Takes the next bytes off the wire.
    fn feed(&mut self, data: &[u8]) -> anyhow::Result<()> {
        if self.framing.is_none() {
            self.head.extend_from_slice(data);
            let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                return Ok(());
            };
            let head = String::from_utf8_lossy(&self.head[..end]).into_owned();
            let rest = self.head[end + 4..].to_vec();
            self.parse_head(&head)?;
            self.head.clear();
            return self.feed_body(&rest);
        }
        self.feed_body(data)
    }

    fn parse_head(&mut self, head: &str) -> anyhow::Result<()> {
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        self.status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok());
        if self.status.is_none() {
            bail!("not an HTTP response: {status_line:?}");
        }
        let mut framing = Framing::UntilClose;
        for line in lines {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                framing = Framing::Length(
                    value
                        .parse()
                        .with_context(|| format!("content-length {value:?}"))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.eq_ignore_ascii_case("chunked")
            {
                framing = Framing::Chunked(Chunked::Size(Vec::new()));
            }
        }
        self.framing = Some(framing);
        Ok(())
    }

    fn feed_body(&mut self, mut data: &[u8]) -> anyhow::Result<()> {
        let Some(framing) = self.framing.as_mut() else {
            return Ok(());
        };
        match framing {
            Framing::UntilClose => self.body_bytes += data.len() as u64,
            Framing::Length(left) => {
                let take = (*left).min(data.len() as u64);
                *left -= take;
                self.body_bytes += take;
            }
            Framing::Chunked(state) => {
                while !data.is_empty() {
                    match state {
                        Chunked::Size(line) => {
                            let Some(at) = data.iter().position(|&b| b == b'\n') else {
                                line.extend_from_slice(data);
                                return Ok(());
                            };
                            line.extend_from_slice(&data[..at]);
                            data = &data[at + 1..];
                            let text = String::from_utf8_lossy(line);
                            let digits = text.trim().split(';').next().unwrap_or_default();
                            let size = u64::from_str_radix(digits.trim(), 16)
                                .with_context(|| format!("a chunk size {text:?}"))?;
                            *state = if size == 0 {
                                Chunked::Trailers(Vec::new())
                            } else {
                                Chunked::Data(size)
                            };
                        }
                        Chunked::Data(left) => {
                            let take = (*left).min(data.len() as u64);
                            *left -= take;
                            self.body_bytes += take;
                            data = &data[take as usize..];
                            if *left == 0 {
                                *state = Chunked::DataEnd(0);
                            }
                        }
                        Chunked::DataEnd(seen) => {
                            *seen += 1;
                            data = &data[1..];
                            if *seen == 2 {
                                *state = Chunked::Size(Vec::new());
                            }
                        }
                        Chunked::Trailers(line) => {
                            let Some(at) = data.iter().position(|&b| b == b'\n') else {
                                line.extend_from_slice(data);
                                return Ok(());
                            };
                            let empty = line.iter().chain(&data[..at]).all(|&b| b == b'\r');
                            data = &data[at + 1..];
                            *state = if empty {
                                Chunked::Done
                            } else {
                                Chunked::Trailers(Vec::new())
                            };
                        }
                        Chunked::Done => return Ok(()),
                    }
                }
            }
        }
        Ok(())
    }
}

/// One transfer of `total` bytes on a new connection: how long from the
/// first byte sent to the last byte of the response. Fails unless the
/// answer is `200` with exactly `total` bytes.
pub fn transfer(address: SocketAddr, mode: Mode, total: u64) -> anyhow::Result<Duration> {
    let mut stream =
        TcpStream::connect(address).with_context(|| format!("cannot connect to {address}"))?;
    stream.set_nodelay(true)?;
    let started = Instant::now();
    stream.write_all(mode.head(address, total).as_bytes())?;
    let writer = match mode {
        Mode::Echo => {
            let mut out = stream.try_clone()?;
            Some(std::thread::spawn(move || -> std::io::Result<()> {
                let buffer = vec![b'x'; BUFFER];
                let mut left = total;
                while left > 0 {
                    let take = left.min(BUFFER as u64) as usize;
                    out.write_all(&buffer[..take])?;
                    left -= take as u64;
                }
                Ok(())
            }))
        }
        Mode::Download => None,
    };
    let mut response = Response::new();
    let mut buffer = vec![0u8; BUFFER];
    while !response.complete() {
        let read = stream.read(&mut buffer).context("reading the response")?;
        if read == 0 {
            break;
        }
        response.feed(&buffer[..read])?;
    }
    let took = started.elapsed();
    if let Some(writer) = writer {
        match writer.join() {
            Ok(result) => result.context("writing the request body")?,
            Err(_) => bail!("the thread writing the request body panicked"),
        }
    }
    if response.status != Some(200) || response.body_bytes != total {
        bail!(
            "{} of {total} bytes: answered {:?} with {} bytes",
            mode.label(),
            response.status,
            response.body_bytes
        );
    }
    Ok(took)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `wire` in pieces of `step` bytes.
    fn read(wire: &[u8], step: usize) -> Response {
        let mut response = Response::new();
        for piece in wire.chunks(step) {
            response.feed(piece).unwrap();
        }
        response
    }

    #[test]
    fn a_chunked_body_is_counted_without_its_framing_in_any_split() {
        let wire = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\na;x=y\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n";
        for step in [1, 2, 3, 7, wire.len()] {
            let response = read(wire, step);
            assert_eq!(response.status, Some(200), "step {step}");
            assert_eq!(response.body_bytes, 15, "step {step}");
            assert!(response.complete(), "step {step}");
        }
        let unfinished = read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
            4,
        );
        assert_eq!(unfinished.body_bytes, 3);
        assert!(!unfinished.complete());
    }

    #[test]
    fn a_length_body_stops_at_its_length() {
        let response = read(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcdEXTRA", 3);
        assert_eq!(response.body_bytes, 4);
        assert!(response.complete());
        let close = read(b"HTTP/1.0 503 Busy\r\n\r\nsorry", 2);
        assert_eq!(close.status, Some(503));
        assert_eq!(close.body_bytes, 5);
        assert!(!close.complete());
    }

    #[test]
    fn garbage_is_not_a_response() {
        let mut response = Response::new();
        assert!(response.feed(b"SSH-2.0-x\r\n\r\n").is_err());
        let mut bad_chunk = Response::new();
        assert!(
            bad_chunk
                .feed(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n")
                .is_err()
        );
    }

    #[test]
    fn request_heads_say_the_size() {
        let address: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(
            Mode::Echo
                .head(address, 42)
                .contains("POST /stream HTTP/1.1\r\n")
        );
        assert!(
            Mode::Echo
                .head(address, 42)
                .contains("Content-Length: 42\r\n")
        );
        assert!(
            Mode::Download
                .head(address, 42)
                .starts_with("GET /stream?bytes=42 HTTP/1.1\r\n")
        );
    }
}
