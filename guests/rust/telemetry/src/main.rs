//! Publishes simulated sensor readings on a timer: the telemetry module
//! of the server-side-wasm pipeline.
//!
//! `telemetry BROKER [TOPIC] [INTERVAL_MS] [SENSOR]` connects to the
//! pubsub-broker sample at BROKER (retrying while it is not up yet), then
//! every interval sends `PUB TOPIC {"sensor":"SENSOR","seq":N,"celsius":T}`.
//! When the broker goes away the program exits with a failure, and the
//! host's supervisor starts it again.
//!
//! With `messaging` as BROKER it sends the same readings through the
//! host's own broker with wasi:messaging instead (its `[[services]]` entry
//! needs `publish = ["TOPIC"]`); a reading the host refuses is logged and
//! the next one is tried.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use serverless_wasm_sdk::messaging;

/// How long to wait between attempts to reach the broker.
const RETRY: Duration = Duration::from_millis(200);

/// How many attempts before giving up (and letting the host restart it).
const ATTEMPTS: u32 = 50;

fn main() {
    let mut args = std::env::args().skip(1);
    let broker = args.next().unwrap_or_else(|| "127.0.0.1:9000".to_owned());
    let topic = args.next().unwrap_or_else(|| "telemetry".to_owned());
    let interval = args
        .next()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_secs(1), Duration::from_millis);
    let sensor = args.next().unwrap_or_else(|| "sensor-1".to_owned());
    let mut readings = Readings::default();

    if broker == "messaging" {
        println!("publishing to {topic} with wasi:messaging every {interval:?}");
        loop {
            let (seq, reading) = readings.next(&sensor);
            let message = messaging::Message::new(reading.as_bytes());
            let sent = message
                .set_content_type("application/json")
                .map_err(|()| messaging::Error::Other("the content type was refused".into()))
                .and_then(|()| messaging::send_message(&topic, message));
            if let Err(error) = sent {
                eprintln!("reading {seq} was not sent: {error:?}");
            }
            std::thread::sleep(interval);
        }
    }

    let stream = connect(&broker);
    println!("publishing to {topic} on {broker} every {interval:?}");
    let mut replies = BufReader::new(&stream);
    let mut writer = &stream;
    loop {
        let (_, reading) = readings.next(&sensor);
        if let Err(error) = writeln!(writer, "PUB {topic} {reading}") {
            eprintln!("the broker went away: {error}");
            std::process::exit(1);
        }
        let mut reply = String::new();
        match replies.read_line(&mut reply) {
            Ok(0) | Err(_) => {
                eprintln!("the broker went away");
                std::process::exit(1);
            }
            Ok(_) if reply != "OK\n" => {
                eprintln!("the broker refused a reading: {}", reply.trim_end());
                std::process::exit(1);
            }
            Ok(_) => {}
        }
        std::thread::sleep(interval);
    }
}

/// Connects to the broker, retrying while it starts.
fn connect(broker: &str) -> TcpStream {
    let mut last = None;
    for _ in 0..ATTEMPTS {
        match TcpStream::connect(broker) {
            Ok(stream) => return stream,
            Err(error) => {
                last = Some(error);
                std::thread::sleep(RETRY);
            }
        }
    }
    eprintln!(
        "cannot reach the broker at {broker}: {}",
        last.map_or_else(|| "no attempt".to_owned(), |e| e.to_string())
    );
    std::process::exit(1);
}

/// A random walk around 21 °C, from a fixed seed: the same readings every
/// run, which keeps the pipeline's tests exact.
struct Readings {
    state: u64,
    tenths: i64,
    seq: u64,
}

impl Default for Readings {
    fn default() -> Self {
        Readings {
            state: 0x2545_F491_4F6C_DD1D,
            tenths: 210,
            seq: 0,
        }
    }
}

impl Readings {
    /// The next reading's number and JSON text.
    fn next(&mut self, sensor: &str) -> (u64, String) {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.tenths = (self.tenths + (self.state % 5) as i64 - 2).clamp(150, 300);
        self.seq += 1;
        let reading = format!(
            "{{\"sensor\":\"{sensor}\",\"seq\":{},\"celsius\":{}.{}}}",
            self.seq,
            self.tenths / 10,
            self.tenths % 10
        );
        (self.seq, reading)
    }
}
