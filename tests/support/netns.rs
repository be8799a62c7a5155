//! A test host in its own network namespace, reached over a veth pair, and
//! a private `/etc/hosts` for the host binary: how the tests give a name an
//! ordinary (not loopback) address without touching the machine's network.
//!
//! Needs root and iproute2; both are there in CI (`.ci/run` installs
//! iproute2).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use super::backends::EchoServer;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A network namespace holding one test host at `address`, linked to this
/// machine's namespace by a veth pair in 198.18.0.0/15 (the range reserved
/// for network tests). Removed when dropped.
pub struct TestNetwork {
    name: String,
    veth: String,
    /// The test host's address inside the namespace.
    pub address: Ipv4Addr,
    /// This machine's end of the link: an address of a local interface.
    pub local: Ipv4Addr,
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run `ip` ({e}); this test needs iproute2 (`apt-get install iproute2`) and root"
        )
    });
    assert!(
        output.status.success(),
        "`ip {}` failed (this test needs root): {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TestNetwork {
    /// Creates the namespace and the link.
    pub fn create() -> TestNetwork {
        let index = (std::process::id() * 8 + NEXT.fetch_add(1, Ordering::SeqCst)) % 16384;
        let name = format!("swtest{index}");
        let veth = format!("swv{index}");
        let peer = format!("swp{index}");
        let base = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + index * 4;
        let (outside, inside) = (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2));
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &veth]).output();
        let network = TestNetwork {
            name: name.clone(),
            veth: veth.clone(),
            address: inside,
            local: outside,
        };
        ip(&["netns", "add", &name]);
        ip(&["link", "add", &veth, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", &name]);
        ip(&["addr", "add", &format!("{outside}/30"), "dev", &veth]);
        ip(&["link", "set", &veth, "up"]);
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{inside}/30"),
            "dev",
            &peer,
        ]);
        ip(&["-n", &name, "link", "set", &peer, "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        network
    }

    /// An echo server on the test host, on a free port.
    pub fn echo_server(&self) -> EchoServer {
        EchoServer::serve(self.listener())
    }

    /// A listener on the test host, on a free port.
    pub fn listener(&self) -> TcpListener {
        let path = format!("/run/netns/{}", self.name);
        let address = SocketAddr::from((self.address, 0));
        // A thread that enters the namespace binds the listener there; the
        // socket stays in that namespace whichever thread serves it.
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).unwrap();
            // SAFETY: setns(2) on this thread with a namespace fd we opened.
            let result = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(
                result,
                0,
                "setns into {path} failed: {}",
                std::io::Error::last_os_error()
            );
            TcpListener::bind(address).unwrap()
        })
        .join()
        .unwrap()
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.veth])
            .output();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Name resolution for a program under test: a hosts file, and a
/// resolver configuration whose only name server is a closed loopback
/// port, so that names missing from the file fail at once.
pub struct Resolution {
    dir: tempfile::TempDir,
}

impl Resolution {
    /// `hosts` is the text of the hosts file.
    pub fn new(hosts: &str) -> Resolution {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("hosts"), hosts).unwrap();
        std::fs::write(
            dir.path().join("resolv.conf"),
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
        )
        .unwrap();
        Resolution { dir }
    }

    /// Replaces the hosts file's text in place, so that a running program
    /// sees the change at its next lookup.
    pub fn set_hosts(&self, hosts: &str) {
        std::fs::write(self.dir.path().join("hosts"), hosts).unwrap();
    }

    /// A command that runs `program` in a private mount namespace where
    /// these files are bind-mounted over `/etc/hosts` and
    /// `/etc/resolv.conf`; the caller appends the program's arguments.
    pub fn command(&self, program: &str) -> Command {
        let dir: &Path = self.dir.path();
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind '{dir}/hosts' /etc/hosts && \
                 mount --bind '{dir}/resolv.conf' /etc/resolv.conf && \
                 exec \"$0\" \"$@\"",
                dir = dir.display()
            ));
        command.arg(program);
        command
    }
}
