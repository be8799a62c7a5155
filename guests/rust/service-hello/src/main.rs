//! A long-running service: a tiny HTTP/1.1 server on the address given as
//! its first argument, kept across requests (the count of greetings lives
//! in the process). `POST /hello` with a name answers `👋 Hello NAME`;
//! `GET /count` answers how many greetings it gave; `GET /headers` echoes
//! the request's headers, one `name: value` a line (for the host's proxy
//! tests); `GET /path/...` echoes the path and query; `GET /file/NAME` and
//! `POST /file/NAME` read and write a file of the folder mounted at `/data`;
//! `GET /stream` answers a body of no declared length;
//! `POST /exit` ends the
//! program with status 3 (which wasip2 reports to the host as a failure,
//! status 1), `POST /udp` tries a UDP socket and `POST /grow`
//! asks for 512 MiB, for the host's tests. With `hoard` as its second
//! argument it keeps every connection it accepts open instead; with `spin`
//! as its only argument it computes forever without listening (the
//! fairness benchmark's spinning service).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
    // `spin`: a service that never yields on its own, for the fairness
    // benchmark (the host must keep its handlers fast next to it).
    if std::env::args().nth(1).as_deref() == Some("spin") {
        println!("spinning");
        let mut state = 1u64;
        loop {
            state = std::hint::black_box(state.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listener = match TcpListener::bind(&address) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("cannot listen on {address}: {error}");
            std::process::exit(1);
        }
    };
    println!("listening on {address}");
    // Its secret, printed as a careless program would: the host must
    // redact it.
    if let Ok(token) = std::env::var("TOKEN") {
        println!("token {token}");
    }
    // `hoard` as the second argument: keep every connection open, as a
    // broker with many subscribers would (the host's handle budget test).
    if std::env::args().nth(2).as_deref() == Some("hoard") {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            match stream {
                Ok(stream) => held.push(stream),
                Err(error) => eprintln!("accept failed after {} connections: {error}", held.len()),
            }
        }
        return;
    }
    let mut greetings: u64 = 0;
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => {
                if let Err(error) = serve(stream, &mut greetings) {
                    eprintln!("connection failed: {error}");
                }
            }
            Err(error) => eprintln!("accept failed: {error}"),
        }
    }
}

/// Answers one request on `stream`.
fn serve(stream: TcpStream, greetings: &mut u64) -> std::io::Result<()> {
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let mut length = 0usize;
    let mut headers = String::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
            headers.push_str(&format!(
                "{}: {}\n",
                name.to_ascii_lowercase(),
                value.trim()
            ));
        }
    }
    let mut body = vec![0; length.min(64 * 1024)];
    reader.read_exact(&mut body)?;
    let (status, text) = match (method.as_str(), path.as_str()) {
        ("POST", "/hello") => {
            *greetings += 1;
            let name = String::from_utf8_lossy(&body);
            ("200 OK", format!("👋 Hello {}", name.trim()))
        }
        ("GET", "/count") => ("200 OK", format!("{greetings} greetings\n")),
        ("GET", "/headers") => ("200 OK", headers),
        ("GET", path) if path.starts_with("/path/") => ("200 OK", format!("{path}\n")),
        // A file of the folder mounted at /data, read and written.
        ("GET", path) if path.starts_with("/file/") => {
            match std::fs::read_to_string(format!("/data/{}", &path["/file/".len()..])) {
                Ok(text) => ("200 OK", text),
                Err(error) => ("404 Not Found", format!("{error}\n")),
            }
        }
        ("POST", path) if path.starts_with("/file/") => {
            match std::fs::write(format!("/data/{}", &path["/file/".len()..]), &body) {
                Ok(()) => ("200 OK", "written\n".to_owned()),
                Err(error) => ("403 Forbidden", format!("{error}\n")),
            }
        }
        ("POST", "/grow") => {
            // Far past any sensible max_memory: the host stops the program.
            let hoard = vec![1u8; 512 << 20];
            (
                "200 OK",
                format!("grew {}\n", hoard.iter().map(|b| *b as u64).sum::<u64>()),
            )
        }
        ("POST", "/udp") => match std::net::UdpSocket::bind("127.0.0.1:0") {
            Ok(_) => ("200 OK", "udp: bound\n".to_owned()),
            Err(error) => ("200 OK", format!("udp: {error}\n")),
        },
        ("POST", "/exit") => {
            println!("exiting on request");
            std::process::exit(3);
        }
        _ => ("404 Not Found", "not found\n".to_owned()),
    };
    drop(reader);
    let mut stream = &stream;
    // `GET /stream`: a body of unknown length, ended by closing the
    // connection, in three writes.
    if (method.as_str(), path.as_str()) == ("GET", "/stream") {
        write!(stream, "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")?;
        for part in ["one\n", "two\n", "three\n"] {
            stream.write_all(part.as_bytes())?;
            stream.flush()?;
        }
        return Ok(());
    }
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    )?;
    stream.flush()
}
