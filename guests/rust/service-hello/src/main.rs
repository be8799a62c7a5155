//! A long-running service: a tiny HTTP/1.1 server on the address given as
//! its first argument, kept across requests (the count of greetings lives
//! in the process). `POST /hello` with a name answers `👋 Hello NAME`;
//! `GET /count` answers how many greetings it gave; `POST /exit` ends the
//! program with status 3 (which wasip2 reports to the host as a failure,
//! status 1), `POST /udp` tries a UDP socket and `POST /grow`
//! asks for 512 MiB, for the host's tests. With `hoard` as its second
//! argument it keeps every connection it accepts open instead.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
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
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
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
    write!(
        stream,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{text}",
        text.len()
    )?;
    stream.flush()
}
