//! Budgets of operating-system handles (file descriptors) held for guests.
//!
//! Every descriptor a request holds counts against one per-request budget,
//! whatever door opened it: its mounted folders, files and directories it
//! opens in them (`open-at`), `wasi:sockets` sockets, connected or not, and
//! `outbound-tcp` connections. All requests together draw on a host-wide
//! budget kept below the process's `RLIMIT_NOFILE`, with a reserve for the
//! listener's `accept`, the admin endpoints, pooled outbound HTTP
//! connections and the compile cache, so that no guest can make the host
//! unable to take a connection. A guest past either budget gets an error
//! (`new-socket-limit`, a filesystem `io` error, `outbound-tcp`'s
//! `limit-reached`) and a log line; nothing traps.
//!
//! The host's own limit is raised to its hard maximum at startup
//! ([`raise_open_file_limit`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use wasmtime::component::{Resource, ResourceTable};

/// How many OS handles one request may hold at once.
pub const MAX_HANDLES_PER_REQUEST: usize = 256;

/// The share of `RLIMIT_NOFILE` kept back from guests for the host itself:
/// a quarter, and at least this many descriptors.
const MIN_RESERVE: usize = 256;

/// The host-wide budget, shared by every request.
#[derive(Debug)]
pub struct HostHandles {
    /// Lowered once when the server reserves its connections
    /// ([`HostHandles::reserve_for_host`]).
    limit: AtomicUsize,
    in_use: AtomicUsize,
}

/// Why the host could not reserve descriptors for itself: the guests
/// would keep too few.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "reserving {reserved} of the {open_files} open files (RLIMIT_NOFILE) leaves the guests {left} OS handles, fewer than the {needed} they need (a quarter of the limit, and at least {MAX_HANDLES_PER_REQUEST})"
)]
pub struct ReserveError {
    /// The process's open-file limit.
    pub open_files: usize,
    /// What the host asked to keep for itself.
    pub reserved: usize,
    /// What that would leave the guests.
    pub left: usize,
    /// The least the guests must keep.
    pub needed: usize,
}

impl HostHandles {
    /// A budget of `limit` handles for all guests together.
    pub fn new(limit: usize) -> Arc<HostHandles> {
        Arc::new(HostHandles {
            limit: AtomicUsize::new(limit),
            in_use: AtomicUsize::new(0),
        })
    }

    /// The budget for a process allowed `open_files` descriptors: what is
    /// left after the host's reserve.
    pub fn for_open_file_limit(open_files: usize) -> Arc<HostHandles> {
        let reserve = (open_files / 4).max(MIN_RESERVE);
        HostHandles::new(open_files.saturating_sub(reserve))
    }

    /// The most a host allowed `open_files` descriptors may keep for
    /// itself: the guests keep a quarter of the limit, and at least
    /// [`MAX_HANDLES_PER_REQUEST`] so that one request can use its whole
    /// budget.
    pub fn most_reservable(open_files: usize) -> usize {
        open_files.saturating_sub(guests_need(open_files))
    }

    /// Makes the guests' budget what `open_files` leaves after `reserved`
    /// descriptors kept for the host (its client connections, listeners,
    /// pooled connections and cache), and returns it; refused, leaving the
    /// budget as it was, when that is past [`HostHandles::most_reservable`].
    pub fn reserve_for_host(
        &self,
        open_files: usize,
        reserved: usize,
    ) -> Result<usize, ReserveError> {
        let left = open_files.saturating_sub(reserved);
        let needed = guests_need(open_files);
        if left < needed {
            return Err(ReserveError {
                open_files,
                reserved,
                left,
                needed,
            });
        }
        self.limit.store(left, Ordering::Release);
        Ok(left)
    }

    /// How many handles all guests may hold together.
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Acquire)
    }

    /// How many they hold now.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Relaxed)
    }

    fn take(&self, count: usize) -> bool {
        self.in_use
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(count)
                    .filter(|total| *total <= self.limit())
            })
            .is_ok()
    }

    fn give_back(&self, count: usize) {
        self.in_use.fetch_sub(count, Ordering::AcqRel);
    }
}

/// One handle taken from the host-wide budget, for a descriptor that
/// outlives requests (a pooled outbound HTTP connection); given back when
/// dropped.
#[derive(Debug)]
pub(crate) struct HostHandle(Arc<HostHandles>);

impl HostHandles {
    /// One handle of the host-wide budget, or `None` when it is spent.
    pub(crate) fn acquire(self: &Arc<Self>) -> Option<HostHandle> {
        self.take(1).then(|| HostHandle(self.clone()))
    }
}

impl Drop for HostHandle {
    fn drop(&mut self) {
        self.0.give_back(1);
    }
}

/// The least the guests keep of `open_files` when the host reserves
/// descriptors for itself.
fn guests_need(open_files: usize) -> usize {
    (open_files / 4).max(MAX_HANDLES_PER_REQUEST)
}

/// Why a request may not open another handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HandleRefusal {
    /// The request holds its budget already.
    #[error(
        "this request already holds {0} OS handles (files, sockets and connections), its limit"
    )]
    Request(usize),
    /// All guests together hold the host's budget.
    #[error(
        "the host's guests already hold {0} OS handles, the host-wide limit kept below its open-file limit"
    )]
    Host(usize),
}

/// The kinds of table entries that hold a descriptor, so that a counted
/// handle the guest has since dropped can be recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandleKind {
    File,
    TcpSocket,
    UdpSocket,
    TcpConnection,
    /// A file's input stream, which keeps the file open.
    FileReadStream,
    /// A file's output stream, which keeps the file open.
    FileWriteStream,
    /// An entry of the unit tests.
    #[cfg(test)]
    Test,
}

/// The handles one request holds, charged to the host-wide budget until
/// the request ends.
#[derive(Debug)]
pub(crate) struct RequestHandles {
    host: Arc<HostHandles>,
    /// Handles that live outside the resource table (mounted folders).
    fixed: usize,
    /// Counted table entries, by representation and kind.
    counted: Vec<(u32, HandleKind)>,
    /// Reserved for an open in progress, not yet recorded.
    pending: usize,
}

impl RequestHandles {
    /// A request's budget, with `fixed` handles (its mounts) already
    /// taken.
    pub(crate) fn new(host: Arc<HostHandles>, fixed: usize) -> Result<Self, HandleRefusal> {
        if fixed > MAX_HANDLES_PER_REQUEST {
            return Err(HandleRefusal::Request(MAX_HANDLES_PER_REQUEST));
        }
        if !host.take(fixed) {
            return Err(HandleRefusal::Host(host.limit()));
        }
        Ok(RequestHandles {
            host,
            fixed,
            counted: Vec::new(),
            pending: 0,
        })
    }

    /// How many handles the request holds, as far as it knows.
    fn held(&self) -> usize {
        self.fixed + self.counted.len() + self.pending
    }

    /// Makes room for one more handle: forgets counted entries the guest
    /// has dropped since (their slot in `table` is empty or holds another
    /// kind of entry), then takes one from both budgets.
    pub(crate) fn reserve(&mut self, table: &ResourceTable) -> Result<(), HandleRefusal> {
        let before = self.counted.len();
        self.counted
            .retain(|(rep, kind)| still_held(table, *rep, *kind));
        self.host.give_back(before - self.counted.len());
        if self.held() >= MAX_HANDLES_PER_REQUEST {
            return Err(HandleRefusal::Request(MAX_HANDLES_PER_REQUEST));
        }
        if !self.host.take(1) {
            return Err(HandleRefusal::Host(self.host.limit()));
        }
        self.pending += 1;
        Ok(())
    }

    /// Records the entry a reserved handle went to.
    pub(crate) fn record(&mut self, rep: u32, kind: HandleKind) {
        self.pending = self.pending.saturating_sub(1);
        self.counted.push((rep, kind));
    }

    /// Returns a reserved handle that was not opened after all.
    pub(crate) fn unreserve(&mut self) {
        if self.pending > 0 {
            self.pending -= 1;
            self.host.give_back(1);
        }
    }
}

impl Drop for RequestHandles {
    fn drop(&mut self) {
        // The store, and with it every descriptor, goes with the request.
        self.host.give_back(self.held());
    }
}

/// Whether the table entry `rep` is still a handle of `kind`. A freed slot
/// reused by another kind of entry fails the type check; reused by the
/// same kind, it was counted again when it was made.
fn still_held(table: &ResourceTable, rep: u32, kind: HandleKind) -> bool {
    fn is<T: 'static>(table: &ResourceTable, rep: u32) -> bool {
        table.get(&Resource::<T>::new_borrow(rep)).is_ok()
    }
    match kind {
        HandleKind::File => is::<wasmtime_wasi::filesystem::Descriptor>(table, rep),
        HandleKind::TcpSocket => is::<wasmtime_wasi::p2::TcpSocket>(table, rep),
        HandleKind::UdpSocket => is::<wasmtime_wasi::p2::UdpSocket>(table, rep),
        HandleKind::TcpConnection => is::<crate::host::outbound_tcp::Connection>(table, rep),
        HandleKind::FileReadStream => is::<wasmtime_wasi::p2::DynInputStream>(table, rep),
        HandleKind::FileWriteStream => is::<wasmtime_wasi::p2::DynOutputStream>(table, rep),
        #[cfg(test)]
        HandleKind::Test => is::<tests::TestHandle>(table, rep),
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and returns the limit
/// in force, which the host-wide budget is computed from.
pub fn raise_open_file_limit() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit = raised;
    }
    Ok((before, limit.rlim_cur))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stands for an entry that holds a descriptor.
    pub(super) struct TestHandle;

    #[test]
    fn the_host_keeps_a_reserve() {
        assert_eq!(HostHandles::for_open_file_limit(1_048_576).limit(), 786_432);
        assert_eq!(HostHandles::for_open_file_limit(1024).limit(), 768);
        assert_eq!(HostHandles::for_open_file_limit(300).limit(), 44);
        assert_eq!(HostHandles::for_open_file_limit(100).limit(), 0);
    }

    #[test]
    fn the_host_reserves_its_connections_and_the_guests_keep_the_rest() {
        let host = HostHandles::for_open_file_limit(20_000);
        assert_eq!(host.reserve_for_host(20_000, 10_256), Ok(9_744));
        assert_eq!(host.limit(), 9_744);
        assert_eq!(HostHandles::most_reservable(20_000), 15_000);
        assert_eq!(HostHandles::most_reservable(1024), 768);
        // Small limits keep the guests at least one request's budget.
        assert_eq!(HostHandles::most_reservable(600), 344);
        assert_eq!(HostHandles::most_reservable(200), 0);
        let host = HostHandles::for_open_file_limit(1024);
        assert_eq!(host.reserve_for_host(1024, 768), Ok(256));
        let refused = host.reserve_for_host(1024, 856).unwrap_err();
        assert_eq!(
            refused,
            ReserveError {
                open_files: 1024,
                reserved: 856,
                left: 168,
                needed: 256
            }
        );
        assert_eq!(
            refused.to_string(),
            "reserving 856 of the 1024 open files (RLIMIT_NOFILE) leaves the guests 168 OS handles, fewer than the 256 they need (a quarter of the limit, and at least 256)"
        );
        assert_eq!(host.limit(), 256, "a refused reservation changes nothing");
        assert_eq!(host.reserve_for_host(100_000, 200_000).unwrap_err().left, 0);
        // The lowered budget is what requests are refused against.
        let host = HostHandles::for_open_file_limit(2000);
        assert_eq!(host.reserve_for_host(2000, 1500), Ok(500));
        let _first = RequestHandles::new(host.clone(), 250).unwrap();
        let _second = RequestHandles::new(host.clone(), 250).unwrap();
        assert_eq!(
            RequestHandles::new(host.clone(), 1).unwrap_err(),
            HandleRefusal::Host(500)
        );
    }

    #[test]
    fn a_request_holds_at_most_its_budget_and_gives_everything_back() {
        let host = HostHandles::new(10_000);
        let table = ResourceTable::new();
        let mut request = RequestHandles::new(host.clone(), 2).unwrap();
        assert_eq!(host.in_use(), 2);
        for rep in 0..(MAX_HANDLES_PER_REQUEST as u32 - 2) {
            // Entries that are not in the table count as dropped, so use
            // fixed handles' kind check only through `record`.
            request.counted.push((rep, HandleKind::File));
            assert!(host.take(1));
        }
        assert_eq!(host.in_use(), MAX_HANDLES_PER_REQUEST);
        // Every recorded entry is gone from the (empty) table: reserving
        // forgets them all and takes one.
        request.reserve(&table).unwrap();
        assert_eq!(host.in_use(), 3);
        request.unreserve();
        assert_eq!(host.in_use(), 2);
        request.reserve(&table).unwrap();
        drop(request);
        assert_eq!(host.in_use(), 0);
    }

    #[test]
    fn a_request_past_its_budget_is_refused() {
        let host = HostHandles::new(10_000);
        let table = ResourceTable::new();
        let mut request = RequestHandles::new(host.clone(), 0).unwrap();
        let mut table_with = ResourceTable::new();
        for _ in 0..MAX_HANDLES_PER_REQUEST {
            request.reserve(&table_with).unwrap();
            let entry = table_with.push(TestHandle).unwrap();
            request.record(entry.rep(), HandleKind::Test);
        }
        assert_eq!(
            request.reserve(&table_with),
            Err(HandleRefusal::Request(MAX_HANDLES_PER_REQUEST))
        );
        // Against a table where they are gone, there is room again.
        request.reserve(&table).unwrap();
        drop(request);
        assert_eq!(host.in_use(), 0);
    }

    #[test]
    fn the_host_budget_refuses_past_its_limit() {
        let host = HostHandles::new(3);
        let table = ResourceTable::new();
        let mut first = RequestHandles::new(host.clone(), 2).unwrap();
        first.reserve(&table).unwrap();
        first.record(0, HandleKind::TcpConnection);
        assert_eq!(
            RequestHandles::new(host.clone(), 1).unwrap_err(),
            HandleRefusal::Host(3)
        );
        let mut second = RequestHandles::new(host.clone(), 0).unwrap();
        assert_eq!(second.reserve(&table), Err(HandleRefusal::Host(3)));
        drop(first);
        assert_eq!(host.in_use(), 0);
        second.reserve(&table).unwrap();
        second.record(7, HandleKind::UdpSocket);
        drop(second);
        assert_eq!(host.in_use(), 0);
    }
}
