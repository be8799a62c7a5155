//! The pipeline's in-memory cache, as a service: a small HTTP/1.1 server
//! on the address given as its argument. `POST /readings` with a JSON
//! reading (`{"sensor":"…",…}`, as the telemetry sample sends) keeps it as
//! that sensor's latest; `GET /latest` answers every sensor's latest
//! reading as one JSON object, by sensor name, and `GET /latest/SENSOR`
//! one of them (404 before its first reading).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

/// The largest reading it keeps.
const MOST_BODY: usize = 64 * 1024;

fn main() {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9001".to_owned());
    let listener = match TcpListener::bind(&address) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {address}: {error}");
            std::process::exit(1);
        }
    };
    println!("cache listening on {address}");
    let mut latest: BTreeMap<String, String> = BTreeMap::new();
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        if let Err(error) = serve(&stream, &mut latest) {
            eprintln!("a request failed: {error}");
        }
    }
}

/// Answers one request on `stream`.
fn serve(stream: &TcpStream, latest: &mut BTreeMap<String, String>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let (status, body) = match (method, path) {
        ("POST", "/readings") if length > MOST_BODY => (413, "too large\n".to_owned()),
        ("POST", "/readings") => {
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            let text = String::from_utf8_lossy(&body).trim().to_owned();
            match sensor_of(&text) {
                Some(sensor) => {
                    latest.insert(sensor, text);
                    (204, String::new())
                }
                None => (
                    400,
                    "a reading is JSON with a \"sensor\" string\n".to_owned(),
                ),
            }
        }
        ("GET", "/latest") => {
            let entries: Vec<String> = latest
                .iter()
                .map(|(sensor, reading)| format!("\"{sensor}\":{reading}"))
                .collect();
            (200, format!("{{{}}}\n", entries.join(",")))
        }
        ("GET", _) if path.starts_with("/latest/") => match latest.get(&path["/latest/".len()..]) {
            Some(reading) => (200, format!("{reading}\n")),
            None => (404, "no reading from that sensor yet\n".to_owned()),
        },
        _ => (
            404,
            "POST /readings, GET /latest or GET /latest/SENSOR\n".to_owned(),
        ),
    };
    let reason = match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        413 => "Content Too Large",
        _ => "Not Found",
    };
    let mut writer = stream;
    write!(
        writer,
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    writer.flush()
}

/// The `sensor` string of a reading, found without a JSON parser: the
/// readings come from the telemetry sample, whose names need no escapes.
fn sensor_of(reading: &str) -> Option<String> {
    let rest = &reading[reading.find("\"sensor\"")? + "\"sensor\"".len()..];
    let rest = rest
        .trim_start()
        .strip_prefix(':')?
        .trim_start()
        .strip_prefix('"')?;
    let name = &rest[..rest.find('"')?];
    (!name.is_empty() && !name.contains('\\')).then(|| name.to_owned())
}
