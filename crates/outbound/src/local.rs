//! The addresses of this machine's own network interfaces.
//!
//! A service bound to `0.0.0.0` or `[::]` answers on every one of them, not
//! only on loopback, so to the policy each of them is as sensitive as
//! `127.0.0.1`: only a rule naming the address itself allows it. The list
//! is read from the kernel (`getifaddrs`) when it is first needed, then
//! again every [`REFRESH_AFTER`] by a thread of its own, so that an address
//! added while the host runs is protected within that time without a
//! system call on the decision path. Each change is logged.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

/// How often the interface list is read again.
pub const REFRESH_AFTER: Duration = Duration::from_millis(250);

/// This machine's interface addresses, shared by every allowlist (cheap to
/// clone).
#[derive(Debug, Clone)]
pub struct LocalInterfaces(Arc<RwLock<Arc<HashSet<IpAddr>>>>);

impl LocalInterfaces {
    /// The machine's own interfaces: one list for the process, kept
    /// current by a background thread started on first use.
    pub fn system() -> LocalInterfaces {
        static SYSTEM: OnceLock<LocalInterfaces> = OnceLock::new();
        SYSTEM
            .get_or_init(|| {
                let first = read_interfaces().unwrap_or_else(|error| {
                    tracing::error!(
                        "cannot read the local interface addresses ({error}); only loopback and the other special ranges are protected until a reading succeeds"
                    );
                    HashSet::new()
                });
                let shared = LocalInterfaces(Arc::new(RwLock::new(Arc::new(first))));
                let kept = shared.clone();
                let spawned = std::thread::Builder::new()
                    .name("local-interfaces".into())
                    .spawn(move || kept.keep_current());
                if let Err(error) = spawned {
                    tracing::error!(
                        "cannot start the thread that re-reads the local interface addresses: {error}"
                    );
                }
                shared
            })
            .clone()
    }

    /// A fixed set of addresses, never re-read (tests, and tools that
    /// decide for another machine).
    pub fn fixed(addresses: impl IntoIterator<Item = IpAddr>) -> LocalInterfaces {
        LocalInterfaces(Arc::new(RwLock::new(Arc::new(
            addresses.into_iter().collect(),
        ))))
    }

    /// The addresses as last read.
    pub fn addresses(&self) -> Arc<HashSet<IpAddr>> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The addresses as last read, sorted, for the startup log.
    pub fn describe(&self) -> String {
        describe(&self.addresses())
    }

    /// Whether `ip` is an address of one of this machine's interfaces.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(&ip)
    }

    /// Re-reads the list forever, logging each change. A failed reading
    /// keeps the last list: an error must not empty it and so open the
    /// door.
    fn keep_current(&self) {
        loop {
            std::thread::sleep(REFRESH_AFTER);
            let now = match read_interfaces() {
                Ok(now) => now,
                Err(error) => {
                    tracing::warn!(
                        "cannot read the local interface addresses, keeping the last list: {error}"
                    );
                    continue;
                }
            };
            let before = self.addresses();
            if *before == now {
                continue;
            }
            let added: HashSet<IpAddr> = now.difference(&before).copied().collect();
            let removed: HashSet<IpAddr> = before.difference(&now).copied().collect();
            *self
                .0
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(now);
            tracing::info!(
                "local interface addresses changed: added {}; removed {}",
                describe(&added),
                describe(&removed)
            );
        }
    }
}

/// The addresses sorted and joined, or `none`.
fn describe(addresses: &HashSet<IpAddr>) -> String {
    if addresses.is_empty() {
        return "none".to_owned();
    }
    let mut sorted: Vec<&IpAddr> = addresses.iter().collect();
    sorted.sort();
    sorted
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every IPv4 and IPv6 address of every interface, up or down.
fn read_interfaces() -> std::io::Result<HashSet<IpAddr>> {
    let mut first: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes a list head we free below with
    // freeifaddrs; on failure it returns -1 and allocates nothing.
    if unsafe { libc::getifaddrs(&mut first) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut addresses = HashSet::new();
    let mut entry = first;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs returned, alive
        // until freeifaddrs.
        let node = unsafe { &*entry };
        // SAFETY: getifaddrs gives each node a null or valid address of
        // the length its family implies.
        let ip = unsafe { socket_address(node.ifa_addr) };
        if let Some(ip) = ip {
            addresses.insert(ip);
        }
        entry = node.ifa_next;
    }
    // SAFETY: `first` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(first) };
    Ok(addresses)
}

/// The IP address in a `sockaddr`, if it is IPv4 or IPv6.
///
/// # Safety
/// `address` is null or points to a valid `sockaddr` of the length its
/// family implies, as getifaddrs gives.
unsafe fn socket_address(address: *const libc::sockaddr) -> Option<IpAddr> {
    if address.is_null() {
        return None;
    }
    // SAFETY: the caller guarantees a valid sockaddr; the family says
    // which larger struct it is.
    unsafe {
        match i32::from((*address).sa_family) {
            libc::AF_INET => {
                let v4 = &*(address as *const libc::sockaddr_in);
                Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(v4.sin_addr.s_addr))))
            }
            libc::AF_INET6 => {
                let v6 = &*(address as *const libc::sockaddr_in6);
                Some(IpAddr::V6(Ipv6Addr::from(v6.sin6_addr.s6_addr)))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_list_holds_loopback() {
        // Every Linux machine, container or namespace has `lo`.
        let local = LocalInterfaces::system();
        assert!(
            local.contains(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "{:?}",
            local.addresses()
        );
    }

    #[test]
    fn a_fixed_list_is_what_it_was_given() {
        let ip: IpAddr = "192.0.2.10".parse().unwrap();
        let local = LocalInterfaces::fixed([ip]);
        assert!(local.contains(ip));
        assert!(!local.contains("192.0.2.11".parse().unwrap()));
    }
}
