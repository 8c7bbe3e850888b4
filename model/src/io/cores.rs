//! CORES: the CPU cores that statements (and, optionally, other hosts' work) run on.
//!
//! A statement that completes holds one core for its service time (or the server's
//! `core_fraction` of it, the rest passing off the core: `ServerConfig::core_fraction`); a
//! statement that blocks gives its core back at once. By default every [`super::Server`] has its own
//! `executors_max` cores. A run that models ONE machine running both the database and the
//! backend (a latency profile with `[cpu] cores = N`) hands the same [`Cores`] to the server
//! (`ServerConfig::cores`) and to the backend, which holds a core while it spends its own
//! modelled CPU ([`Cores::hold`]): under load the two then queue for the same N cores, as
//! PostgreSQL and the HTTP service do on a real host.
//!
//! FAIRNESS: backend waiters queue FIFO in the semaphore; the server only takes a free core
//! (`try_take`) when it has a statement ready and is woken whenever a core is given back, so
//! a core released while backend work waits goes to that work first. Which of the server's
//! ready statements gets a core is its scheduler's pick (`super::sched`; a server on shared
//! cores picks at random).
//!
//! TIME SLICING ([`Cores::with_quantum`]; issue #17). Without a quantum a core runs one piece
//! of work to its end (no preemption). With a quantum, a piece of work spends its time through
//! [`Cores::spend`] and is preempted ROUND-ROBIN: once it has held its core for a quantum
//! while other work waits for a core (a backend task in [`Cores::take`], or a ready statement
//! of the server, which reports them with [`Demand::set`]), it gives the core up and queues
//! again at the back; it continues from where it stopped when it gets a core again. A core
//! given up goes to the first backend waiter (FIFO, as any give-back does) or, when only the
//! server waits, is PARKED for it (the server's `try_take` takes parked cores first; a server
//! that no longer needs them gives them back). Work that nobody waits behind runs on past its
//! quantum without a single extra timer (one sleep, exactly as without slicing), so a run in
//! which nothing ever waits is the same with and without a quantum (one user nearly always;
//! validate's 1-user level moved by one tick at p50, sim/README.md); a piece that has run
//! past its quantum is preempted as soon as someone starts waiting. Work finishing within its
//! quantum behaves as without slicing. Quantum and durations are in the caller's (tokio) time:
//! the simulation passes scaled time, and its quantum is a whole number of ticks.
//!
//! ON A TICKING CLOCK ([`Cores::on_ticks`], the simulation's 25 µs ticks) each piece's time
//! is rounded to the nearest tick with a carry from piece to piece, so the cores are busy as
//! long as the work asked, on average, not half a tick more per piece.
//!
//! TWO GROUPS ([`Sharing::TwoGroups`]; issue #17). A Linux desktop or server kernel with
//! autogroups (`sched_autogroup_enabled = 1`, the default) puts PostgreSQL's processes in one
//! scheduling group and the shell that started the service and the load generator in another,
//! and shares the cores between the GROUPS fairly before it shares them among threads. With
//! two groups every piece of work belongs to one ([`Group`]: statements and the WAL's CPU to
//! the database, the other hosts' work to the service), and a core given back goes to the
//! group that waits and holds fewer cores (the giver's other group on a tie), FIFO within
//! it; a piece of a group holding two or more cores more than the other while the other
//! waits gives its core up AT ONCE (as a woken task of a starved group preempts on a real
//! kernel), and a piece whose slice ended gives its core up only to its own group's waiters,
//! or to the other group's when its group holds more cores than the other. So a statement
//! that becomes ready while the service holds both cores runs at once, and under load each
//! group gets half the cores however many threads it runs. One pool ([`Sharing::OnePool`])
//! is the model without groups (FIFO among all waiters).
//!
//! PING-PONG FIRST ([`Sharing::PingPongFirst`]; issue #17). Two groups as above, and the
//! statements the server reports URGENT ([`Demand::report`]: it reports those that arrive
//! right after their session's previous reply, a round trip the service makes at once) get a
//! core before every other piece of the database's work; the rest queue as with two groups.
//! It stands for the kernel's wake-affine hand-off: the service's thread wakes the backend
//! and blocks for its reply, and the backend runs on the core the thread left. Measured on the
//! real side (session 28, storm at 50 users): a backend that slept < 100 µs before its
//! statement waited 5 µs for a core on average, one that slept 0.3–1 ms 161 µs, ≥ 1 ms 295 µs.
//!
//! PING-PONG COOPERATIVE ([`Sharing::PingPongCooperative`]; issue #17). Ping-pong first, and
//! a piece of the service's work does not give its core up to the service's own waiters at a
//! slice's end: it runs to its end unless the database's group is owed a core (it holds more
//! than the database while the database waits). The service's pieces are tokio tasks, which
//! run on their worker thread until their next await and do not preempt one another; the
//! kernel slices between the service's threads and PostgreSQL's processes, not between the
//! tasks. Without it, 50 requests' pieces took 25 µs turns on the service's cores, and a
//! rules evaluation of 60 µs stretched to milliseconds (its p95 at 50 users 6-14x real).
//!
//! Not modelled: hyper-threading, the kernel's fair share by accumulated CPU (every waiter
//! queues FIFO, with no priority for work that slept, ping-pong first's urgent statements
//! apart: round-robin, not CFS/EEVDF; the two groups share by cores held, not by CPU time
//! accumulated), the cost of a context switch,
//! which part of a statement is not CPU (the server's `core_fraction` is one share for every
//! statement: a COMMIT's WAL-flush wait is not singled out).
//!
//! DETERMINISM: everything happens on turmoil's single thread; a give-back wakes the next
//! waiter in FIFO order and notifies the server, whose host turmoil polls in its fixed order;
//! a preempted piece queues behind every waiter already there.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

/// Most cores a pool may have.
pub const CORES_MAX: usize = 256;

/// The scheduling group a piece of work runs in ([`Sharing::TwoGroups`]; module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Group {
    /// The database's work: statements (the server's cores) and the WAL's CPU.
    Database = 0,
    /// Every other host's work on the machine: the service's CPU, the load generator's.
    Service = 1,
}

impl Group {
    fn other(self) -> Group {
        match self {
            Group::Database => Group::Service,
            Group::Service => Group::Database,
        }
    }
}

/// How waiting work shares the cores (module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// One pool: a core given back goes to the first waiter, whoever it is.
    OnePool,
    /// Two scheduling groups ([`Group`]) sharing the cores fairly between them first.
    TwoGroups,
    /// Two groups, and the server's URGENT statements (its report, [`Demand::report`]: a
    /// statement sent right after its session's previous reply) get a core before any other
    /// work of the database (module doc).
    PingPongFirst,
    /// Ping-pong first, and the service's pieces are not sliced among themselves: a piece of
    /// the service's work runs on until it ends unless the database's group is owed a core,
    /// as tokio tasks run on their worker threads until their next await (module doc).
    PingPongCooperative,
}

/// The two groups' books ([`Sharing::TwoGroups`]), indexed by [`Group`].
#[derive(Debug)]
struct Groups {
    /// Cores each group holds (the server's parked cores are counted apart, `Cores::parked`).
    held: [AtomicUsize; 2],
    /// Each group's waiters in [`Cores::take`], FIFO: a core handed to a group is one permit.
    queues: [Semaphore; 2],
    /// Waiters in each queue (a waiter counts until it has its core or stops waiting).
    queued: [AtomicUsize; 2],
    /// Cores handed to each queue that their waiter has not picked up yet.
    granted: [AtomicUsize; 2],
    /// The server's urgent statements go first ([`Sharing::PingPongFirst`]).
    urgent_first: bool,
    /// The service's pieces do not give their core up to the service's own waiters
    /// ([`Sharing::PingPongCooperative`]).
    service_cooperative: bool,
}

/// A pool of CPU cores.
#[derive(Debug)]
pub struct Cores {
    semaphore: Semaphore,
    /// Notified on every give-back: the server's executor loop listens.
    released: Notify,
    /// Time slice; `None`: run to completion.
    quantum: Option<Duration>,
    /// Pieces of work waiting in [`Cores::take`] (kept with a quantum only).
    queued: AtomicUsize,
    /// Ready statements the server found no core for at its last look ([`Demand`]).
    demand: AtomicUsize,
    /// The part of `demand` the server calls urgent ([`Demand::report`]).
    urgent: AtomicUsize,
    /// Cores a preempted piece left for the server (out of the semaphore until taken).
    parked: AtomicUsize,
    /// Notified (all listeners) when work starts waiting: running pieces past their quantum
    /// then give their core up.
    contended: Notify,
    /// ns the cores have been held so far, every guard counted when it is dropped.
    busy_ns: AtomicU64,
    /// The part of `busy_ns` held by statements ([`CoreGuard::for_statement`]).
    statement_busy_ns: AtomicU64,
    /// The clock's tick, when time moves in whole ticks ([`Cores::on_ticks`]).
    tick: Option<Duration>,
    /// ns held beyond what was asked so far (negative: less), each piece's time rounded to
    /// the nearest tick after adding it ([`Cores::on_ticks`]).
    carry_ns: AtomicI64,
    /// The two groups' books, when the cores are shared between groups first.
    groups: Option<Groups>,
}

/// One taken core; given back when dropped (a crashed host's tasks give theirs back too).
#[derive(Debug)]
pub struct CoreGuard {
    cores: Arc<Cores>,
    /// When the current slice began (the core was taken).
    since: Instant,
    /// Dropped to be parked for the server instead of given back to the semaphore.
    park: bool,
    /// Time the work on this core has spent preempted so far: given up in [`Cores::spend`]
    /// and queued until it had a core again.
    preempted: Duration,
    /// A statement's core (the server's), counted apart in [`Cores::statement_busy`].
    statement: bool,
    /// The group the work on this core runs in.
    group: Group,
}

impl CoreGuard {
    /// This core runs a statement: its time counts in [`Cores::statement_busy`] too.
    pub fn for_statement(mut self) -> CoreGuard {
        self.statement = true;
        self
    }
}

impl Drop for CoreGuard {
    fn drop(&mut self) {
        let held = Instant::now().saturating_duration_since(self.since);
        self.cores.busy_ns.fetch_add(held.as_nanos() as u64, Ordering::Relaxed);
        if self.statement {
            self.cores.statement_busy_ns.fetch_add(held.as_nanos() as u64, Ordering::Relaxed);
        }
        if let Some(groups) = &self.cores.groups {
            groups.held[self.group as usize].fetch_sub(1, Ordering::Relaxed);
            self.cores.dispatch(Some(self.group));
            return;
        }
        if self.park {
            self.cores.parked.fetch_add(1, Ordering::Relaxed);
        } else {
            self.cores.semaphore.add_permits(1);
        }
        self.cores.released.notify_one();
    }
}

/// What a piece of work on a core does next ([`Cores::spend`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Turn {
    /// Give the core up now (its group holds more than its share while the other waits).
    Yield,
    /// Give it up at the end of its slice (someone it yields to waits).
    AtSliceEnd,
    /// Run on: nobody it yields to waits.
    Run,
}

/// Counts a piece of work waiting in [`Cores::take`] while it waits (also when the wait is
/// dropped: an aborted request).
struct Queued<'a>(&'a Cores);

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a waiter in its group's queue ([`Sharing::TwoGroups`]) while it waits. A waiter
/// that stops waiting after a core was handed to it (an aborted request) leaves the core
/// in its queue when nobody else waits there: it is taken back out and handed on.
struct QueuedInGroup<'a>(&'a Cores, Group);

impl Drop for QueuedInGroup<'_> {
    fn drop(&mut self) {
        let Self(cores, group) = *self;
        let groups = cores.groups.as_ref().expect("queued in a group");
        let g = group as usize;
        groups.queued[g].fetch_sub(1, Ordering::Relaxed);
        while let Ok(permit) = groups.queues[g].try_acquire() {
            permit.forget();
            groups.granted[g].fetch_sub(1, Ordering::Relaxed);
            cores.dispatch(None);
        }
    }
}

/// The server's report of the statements it has ready and no core for (see the module doc);
/// reports none when dropped (a crashed db host), giving parked cores back.
#[derive(Debug)]
pub struct Demand {
    cores: Arc<Cores>,
}

impl Demand {
    /// `ready` statements wait for a core (0: none; parked cores are given back).
    pub fn set(&self, ready: usize) {
        self.report(ready, 0);
    }

    /// `ready` statements wait for a core, `urgent` of them to go first
    /// ([`Sharing::PingPongFirst`]; 0: none; parked cores are given back).
    pub fn report(&self, ready: usize, urgent: usize) {
        assert!(urgent <= ready, "urgent statements are ready ones: {urgent} of {ready}");
        let cores = &self.cores;
        cores.urgent.store(urgent, Ordering::Relaxed);
        let before = cores.demand.swap(ready, Ordering::Relaxed);
        if ready == 0 {
            let parked = cores.parked.swap(0, Ordering::Relaxed);
            if cores.groups.is_some() {
                for _ in 0..parked {
                    cores.dispatch(None);
                }
            } else if parked > 0 {
                cores.semaphore.add_permits(parked);
            }
        } else if before == 0 && cores.quantum.is_some() {
            cores.contended.notify_waiters();
        }
    }
}

impl Drop for Demand {
    fn drop(&mut self) {
        self.set(0);
    }
}

impl Cores {
    /// `count` cores that run each piece of work to its end.
    pub fn new(count: usize) -> Arc<Cores> {
        Cores::with_quantum(count, None)
    }

    /// `count` cores; with `quantum`, shared round-robin in slices of that length (see the
    /// module doc), else run to completion.
    pub fn with_quantum(count: usize, quantum: Option<Duration>) -> Arc<Cores> {
        Cores::build(count, quantum, None, Sharing::OnePool)
    }

    /// The one constructor: `count` cores, an optional quantum, an optional clock tick, one
    /// pool or two groups (which need a quantum: a slice's end is when a group's own waiters
    /// get their turn).
    fn build(
        count: usize,
        quantum: Option<Duration>,
        tick: Option<Duration>,
        sharing: Sharing,
    ) -> Arc<Cores> {
        assert!((1..=CORES_MAX).contains(&count), "cores must be 1..={CORES_MAX}, got {count}");
        assert!(quantum.is_none_or(|q| !q.is_zero()), "a quantum must be positive");
        assert!(
            sharing == Sharing::OnePool || quantum.is_some(),
            "two groups share the cores in slices: they need a quantum"
        );
        let groups = (sharing != Sharing::OnePool).then(|| Groups {
            held: [AtomicUsize::new(0), AtomicUsize::new(0)],
            queues: [Semaphore::new(0), Semaphore::new(0)],
            queued: [AtomicUsize::new(0), AtomicUsize::new(0)],
            granted: [AtomicUsize::new(0), AtomicUsize::new(0)],
            urgent_first: matches!(sharing, Sharing::PingPongFirst | Sharing::PingPongCooperative),
            service_cooperative: sharing == Sharing::PingPongCooperative,
        });
        Arc::new(Cores {
            semaphore: Semaphore::new(count),
            released: Notify::new(),
            quantum,
            queued: AtomicUsize::new(0),
            demand: AtomicUsize::new(0),
            urgent: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
            contended: Notify::new(),
            busy_ns: AtomicU64::new(0),
            statement_busy_ns: AtomicU64::new(0),
            tick,
            carry_ns: AtomicI64::new(0),
            groups,
        })
    }

    /// `count` cores as [`Cores::with_quantum`], on a clock that moves in whole `tick`s (the
    /// simulation's): each piece of work holds its core for whole ticks, its time rounded to
    /// the NEAREST tick after adding what earlier pieces were rounded by (a carry, one per
    /// pool), so the cores are held as long as the work asked, on average. A sleep alone
    /// rounds up to the next tick: every piece then held its core half a tick longer on
    /// average, and the modelled machine spent ~18 % more CPU per request than the real one
    /// it was calibrated to (validate, storm at 10 users, 2026-12-07: 2,045 µs against 1,736).
    /// `sharing`: one pool, or two groups (module doc; they need a quantum).
    pub fn on_ticks(
        count: usize,
        quantum: Option<Duration>,
        tick: Duration,
        sharing: Sharing,
    ) -> Arc<Cores> {
        assert!(!tick.is_zero(), "a tick must be positive");
        assert!(
            quantum.is_none_or(|q| q.as_nanos().is_multiple_of(tick.as_nanos())),
            "a quantum must be a whole number of ticks"
        );
        Cores::build(count, quantum, Some(tick), sharing)
    }

    /// `work` as whole ticks, the nearest after adding the carry (see [`Cores::on_ticks`]);
    /// `work` itself on a clock without ticks.
    fn on_the_clock(&self, work: Duration) -> Duration {
        let Some(tick) = self.tick else { return work };
        let tick_ns = tick.as_nanos() as i64;
        let wanted_ns = work.as_nanos() as i64 + self.carry_ns.load(Ordering::Relaxed);
        let ticks = (wanted_ns + tick_ns / 2).div_euclid(tick_ns).max(0);
        let held_ns = ticks * tick_ns;
        self.carry_ns.store(wanted_ns - held_ns, Ordering::Relaxed);
        debug_assert!((wanted_ns - held_ns).abs() <= tick_ns, "the carry stays within a tick");
        Duration::from_nanos(held_ns as u64)
    }

    /// Whether the server's urgent statements go first ([`Sharing::PingPongFirst`]).
    pub fn urgent_first(&self) -> bool {
        self.groups.as_ref().is_some_and(|g| g.urgent_first)
    }

    /// The time slice, if the cores are shared round-robin.
    pub fn quantum(&self) -> Option<Duration> {
        self.quantum
    }

    /// Time the cores have been held so far (summed over cores; a guard counts once it is
    /// given back): the modelled machine's CPU time, to compare with a real machine's.
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.busy_ns.load(Ordering::Relaxed))
    }

    /// The part of [`Cores::busy`] that statements held the cores (the rest is the other
    /// hosts' work: the backend's CPU).
    pub fn statement_busy(&self) -> Duration {
        Duration::from_nanos(self.statement_busy_ns.load(Ordering::Relaxed))
    }

    /// Cores free right now (parked ones included).
    pub fn free(&self) -> usize {
        self.semaphore.available_permits() + self.parked.load(Ordering::Relaxed)
    }

    fn guard(self: &Arc<Self>, group: Group) -> CoreGuard {
        if let Some(groups) = &self.groups {
            groups.held[group as usize].fetch_add(1, Ordering::Relaxed);
        }
        CoreGuard {
            cores: Arc::clone(self),
            since: Instant::now(),
            park: false,
            preempted: Duration::ZERO,
            statement: false,
            group,
        }
    }

    /// The server's take: a free core without waiting (none free, or others already queued:
    /// `None`), a core parked for the server first. Its work is the database's.
    pub fn try_take(self: &Arc<Self>) -> Option<CoreGuard> {
        if self.parked.load(Ordering::Relaxed) > 0 {
            self.parked.fetch_sub(1, Ordering::Relaxed);
            return Some(self.guard(Group::Database));
        }
        let permit = self.semaphore.try_acquire().ok()?;
        permit.forget();
        Some(self.guard(Group::Database))
    }

    /// Waits (FIFO; with two groups, FIFO within `group`) for a core for work of `group`.
    pub async fn take(self: &Arc<Self>, group: Group) -> CoreGuard {
        if let Some(groups) = &self.groups {
            if let Ok(permit) = self.semaphore.try_acquire() {
                permit.forget();
                return self.guard(group);
            }
            let g = group as usize;
            groups.queued[g].fetch_add(1, Ordering::Relaxed);
            let queued = QueuedInGroup(self, group);
            self.contended.notify_waiters();
            let permit = groups.queues[g].acquire().await.expect("the queue is never closed");
            permit.forget();
            groups.granted[g].fetch_sub(1, Ordering::Relaxed);
            drop(queued);
            return self.guard(group);
        }
        if self.quantum.is_some() {
            if let Ok(permit) = self.semaphore.try_acquire() {
                permit.forget();
                return self.guard(group);
            }
            self.queued.fetch_add(1, Ordering::Relaxed);
            let _queued = Queued(self);
            self.contended.notify_waiters();
            let permit = self.semaphore.acquire().await.expect("the semaphore is never closed");
            permit.forget();
            return self.guard(group);
        }
        let permit = self.semaphore.acquire().await.expect("the semaphore is never closed");
        permit.forget();
        self.guard(group)
    }

    /// Work of `group` waiting for a core ([`Sharing::TwoGroups`]): its queue's waiters not
    /// yet handed one, and for the database the server's ready statements that no parked
    /// core awaits.
    fn waiting(&self, groups: &Groups, group: Group) -> usize {
        let g = group as usize;
        let (queued, granted) =
            (groups.queued[g].load(Ordering::Relaxed), groups.granted[g].load(Ordering::Relaxed));
        debug_assert!(granted <= queued, "a core is handed only to a waiter");
        let queued = queued - granted;
        match group {
            Group::Service => queued,
            Group::Database => {
                let parked = self.parked.load(Ordering::Relaxed);
                queued + self.demand.load(Ordering::Relaxed).saturating_sub(parked)
            }
        }
    }

    /// Cores `group` holds, the server's parked cores counted as the database's.
    fn held(&self, groups: &Groups, group: Group) -> usize {
        let held = groups.held[group as usize].load(Ordering::Relaxed);
        match group {
            Group::Service => held,
            Group::Database => held + self.parked.load(Ordering::Relaxed),
        }
    }

    /// Hands one free core on ([`Sharing::TwoGroups`]): to the group that waits; when both
    /// do, to the one holding fewer cores (on a tie, not `from`'s, the group that gave it
    /// up; the service's when nobody did); within the database, to a waiter in its queue
    /// (a preempted piece) before the server (parked), except that with
    /// [`Sharing::PingPongFirst`] the server's urgent statements come first. Free when nobody
    /// waits.
    fn dispatch(&self, from: Option<Group>) {
        let groups = self.groups.as_ref().expect("dispatch is for two groups");
        let wants = |g| self.waiting(groups, g) > 0;
        let to = match (wants(Group::Database), wants(Group::Service)) {
            (false, false) => None,
            (true, false) => Some(Group::Database),
            (false, true) => Some(Group::Service),
            (true, true) => {
                let (db, service) =
                    (self.held(groups, Group::Database), self.held(groups, Group::Service));
                Some(match db.cmp(&service) {
                    std::cmp::Ordering::Less => Group::Database,
                    std::cmp::Ordering::Greater => Group::Service,
                    std::cmp::Ordering::Equal => from.map_or(Group::Service, Group::other),
                })
            }
        };
        match to {
            None => self.semaphore.add_permits(1),
            Some(group) => {
                let g = group as usize;
                let in_queue = groups.queued[g].load(Ordering::Relaxed)
                    > groups.granted[g].load(Ordering::Relaxed);
                let urgent = groups.urgent_first
                    && group == Group::Database
                    && self.urgent.load(Ordering::Relaxed) > self.parked.load(Ordering::Relaxed);
                if in_queue && !urgent {
                    groups.granted[g].fetch_add(1, Ordering::Relaxed);
                    groups.queues[g].add_permits(1);
                } else {
                    debug_assert_eq!(group, Group::Database, "only the server waits unqueued");
                    self.parked.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        self.released.notify_one();
    }

    /// The server's [`Demand`] report (one per server).
    pub fn demand(self: &Arc<Self>) -> Demand {
        Demand { cores: Arc::clone(self) }
    }

    /// Whether any work waits for a core.
    fn others_wait(&self) -> bool {
        match &self.groups {
            Some(groups) => {
                self.waiting(groups, Group::Database) + self.waiting(groups, Group::Service) > 0
            }
            None => {
                self.queued.load(Ordering::Relaxed) > 0 || self.demand.load(Ordering::Relaxed) > 0
            }
        }
    }

    /// What the work on `core` does now (see the module doc).
    fn turn(&self, core: &CoreGuard) -> Turn {
        let Some(groups) = &self.groups else {
            return if self.others_wait() { Turn::AtSliceEnd } else { Turn::Run };
        };
        let (mine, other) = (core.group, core.group.other());
        let other_waits = self.waiting(groups, other) > 0;
        let (held, other_held) = (self.held(groups, mine), self.held(groups, other));
        let cooperative = mine == Group::Service && groups.service_cooperative;
        let own_wait = !cooperative && self.waiting(groups, mine) > 0;
        if other_waits && held > other_held + 1 {
            Turn::Yield
        } else if own_wait || (other_waits && held > other_held) {
            Turn::AtSliceEnd
        } else {
            Turn::Run
        }
    }

    /// Spends `work` of CPU time starting on `core`: without a quantum one sleep; with one,
    /// round-robin (module doc). Returns the core the work ended on (still held, in the
    /// slice it ended in, so a caller's next `spend` continues that slice).
    pub async fn spend(self: &Arc<Self>, mut core: CoreGuard, work: Duration) -> CoreGuard {
        let work = self.on_the_clock(work);
        let Some(quantum) = self.quantum else {
            tokio::time::sleep(work).await;
            return core;
        };
        let mut left = work;
        while !left.is_zero() {
            let start = Instant::now();
            match self.turn(&core) {
                Turn::Yield => {
                    core = self.preempt(core).await;
                    continue;
                }
                Turn::AtSliceEnd => {
                    let slice_end = core.since + quantum;
                    if start >= slice_end {
                        core = self.preempt(core).await;
                    } else {
                        tokio::time::sleep(left.min(slice_end - start)).await;
                        left = left.saturating_sub(start.elapsed());
                    }
                    continue;
                }
                Turn::Run => {}
            }
            // Nobody it yields to waits: run to the end unless someone starts waiting first.
            let contended = self.contended.notified();
            tokio::pin!(contended);
            contended.as_mut().enable();
            if self.turn(&core) != Turn::Run {
                continue;
            }
            tokio::select! {
                biased;
                _ = tokio::time::sleep(left) => return core,
                _ = contended => left = left.saturating_sub(start.elapsed()),
            }
        }
        core
    }

    /// Gives `core` up to whoever waits (one pool: a backend waiter first, else parked for
    /// the server; two groups: as [`Cores::dispatch`] hands it) and queues for a core again,
    /// at the back (of its group's queue, with two groups).
    async fn preempt(self: &Arc<Self>, mut core: CoreGuard) -> CoreGuard {
        // With two groups the give-back itself hands the core on (`dispatch`).
        if self.groups.is_none() && self.queued.load(Ordering::Relaxed) == 0 {
            if self.demand.load(Ordering::Relaxed) == 0 {
                return core; // Nobody waits after all.
            }
            core.park = true;
        }
        let (preempted, statement, group) = (core.preempted, core.statement, core.group);
        let given_up = Instant::now();
        drop(core);
        let mut core = self.take(group).await;
        core.preempted = preempted + given_up.elapsed();
        core.statement = statement;
        core
    }

    /// Holds a core for `duration` of (tokio) time of `group`'s work: waits for one, spends
    /// the time on it ([`Cores::spend`]: sliced when there is a quantum), gives it back.
    /// Returns the time the work spent preempted once it had a core (the wait for the first
    /// core is not counted: a real thread times its work from when it runs).
    pub async fn hold(self: &Arc<Self>, group: Group, duration: Duration) -> Duration {
        let core = self.take(group).await;
        self.spend(core, duration).await.preempted
    }

    /// Completes after the next give-back (or at once if one happened since the last call).
    pub async fn released(&self) {
        self.released.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Pieces of 0.4 ms, one after another, on a clock of 1 ms ticks (tokio's paused clock):
    /// a plain pool holds a core a whole tick for each (sleeps round up), a pool on ticks
    /// holds it 0 or 1 tick by the carry, 0.4 ms on average; 1.5 ms pieces alternate 1 and 2.
    #[tokio::test(start_paused = true)]
    async fn on_ticks_the_cores_are_held_as_long_as_the_work_asked_on_average() {
        let tick = Duration::from_millis(1);
        async fn held_for(cores: &Arc<Cores>, pieces: u32, each: Duration) -> Duration {
            for _ in 0..pieces {
                cores.hold(Group::Service, each).await;
            }
            cores.busy()
        }
        let plain = Cores::new(1);
        assert_eq!(held_for(&plain, 100, Duration::from_micros(400)).await, 100 * tick);
        let ticking = Cores::on_ticks(1, None, tick, Sharing::OnePool);
        let start = tokio::time::Instant::now();
        assert_eq!(held_for(&ticking, 100, Duration::from_micros(400)).await, 40 * tick);
        assert_eq!(start.elapsed(), 40 * tick, "the work took as long as it was held");
        let ticking = Cores::on_ticks(1, Some(tick), tick, Sharing::OnePool);
        let mut each = Vec::new();
        for _ in 0..4 {
            let before = ticking.busy();
            ticking.hold(Group::Service, Duration::from_micros(1_500)).await;
            each.push((ticking.busy() - before).as_millis());
        }
        assert_eq!(each, vec![2, 1, 2, 1], "nearest tick after the carry, sliced or not");
    }

    #[tokio::test(start_paused = true)]
    async fn work_queues_for_the_cores_and_guards_give_them_back() {
        let cores = Cores::new(2);
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..5 {
            let cores = Arc::clone(&cores);
            tasks.push(tokio::spawn(async move {
                cores.hold(Group::Service, Duration::from_millis(10)).await;
                start.elapsed()
            }));
        }
        let mut ends = Vec::new();
        for t in tasks {
            ends.push(t.await.unwrap().as_millis());
        }
        // 5 jobs of 10 ms on 2 cores: done at 10, 10, 20, 20, 30.
        assert_eq!(ends, vec![10, 10, 20, 20, 30]);
        assert_eq!(cores.busy(), Duration::from_millis(50), "the cores' CPU time");
        assert_eq!(cores.free(), 2);
        let held = cores.try_take().unwrap();
        let second = cores.try_take().unwrap();
        assert!(cores.try_take().is_none(), "both cores taken");
        drop(held);
        assert_eq!(cores.free(), 1, "a dropped guard gives its core back");
        drop(second);
        cores.released().await; // a give-back happened: completes at once
    }

    /// Each job: (start after ms, work ms); returns each job's end, ms after the start.
    async fn run_jobs(cores: &Arc<Cores>, jobs: &[(u64, u64)]) -> Vec<u128> {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for &(after, work) in jobs {
            let cores = Arc::clone(cores);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(after)).await;
                cores.hold(Group::Service, Duration::from_millis(work)).await;
                start.elapsed().as_millis()
            }));
        }
        let mut ends = Vec::new();
        for t in tasks {
            ends.push(t.await.unwrap());
        }
        ends
    }

    #[tokio::test(start_paused = true)]
    async fn a_short_job_waits_a_whole_long_job_without_a_quantum_and_one_quantum_with_one() {
        // A 10 ms job from 0 and a 1 ms job from 1 ms on ONE core.
        let jobs = [(0, 10), (1, 1)];
        let ends = run_jobs(&Cores::new(1), &jobs).await;
        assert_eq!(ends, vec![10, 11], "run to completion: the short job waits 9 ms");
        let sliced = Cores::with_quantum(1, Some(Duration::from_millis(2)));
        let ends = run_jobs(&sliced, &jobs).await;
        // The long job is preempted at the end of its 2 ms slice; the short one runs 2..3;
        // the long one continues where it stopped (8 ms left) and ends when it would have
        // plus the short job's 1 ms.
        assert_eq!(ends, vec![11, 3], "a quantum: the short job waits 1 ms");
        assert_eq!(sliced.free(), 1);
        assert_eq!(sliced.queued.load(Ordering::Relaxed), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn hold_reports_the_time_spent_preempted_not_the_first_wait() {
        let sliced = Cores::with_quantum(1, Some(Duration::from_millis(2)));
        let long = tokio::spawn({
            let cores = Arc::clone(&sliced);
            async move { cores.hold(Group::Service, Duration::from_millis(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        // Waits 1 ms for its first core (the long job's slice ends at 2), then runs 2..3.
        let short = sliced.hold(Group::Service, Duration::from_millis(1)).await;
        assert_eq!(short, Duration::ZERO, "waiting for the first core is not preemption");
        assert_eq!(long.await.unwrap(), Duration::from_millis(1), "given up 2..3");
        // Without a quantum nothing is ever preempted.
        let whole = Cores::new(1);
        let first = tokio::spawn({
            let cores = Arc::clone(&whole);
            async move { cores.hold(Group::Service, Duration::from_millis(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(whole.hold(Group::Service, Duration::from_millis(1)).await, Duration::ZERO);
        assert_eq!(first.await.unwrap(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn long_jobs_take_turns_and_work_within_its_quantum_runs_as_before() {
        let sliced = Cores::with_quantum(1, Some(Duration::from_millis(1)));
        // Two 3 ms jobs: A 0-1, B 1-2, A 2-3, B 3-4, A 4-5, B 5-6.
        assert_eq!(run_jobs(&sliced, &[(0, 3), (0, 3)]).await, vec![5, 6]);
        // Jobs no longer than the quantum: exactly the run-to-completion schedule.
        let jobs = [(0, 2), (0, 1), (1, 2), (1, 2)];
        let whole = run_jobs(&Cores::new(2), &jobs).await;
        let sliced = Cores::with_quantum(2, Some(Duration::from_millis(2)));
        assert_eq!(run_jobs(&sliced, &jobs).await, whole);
        // Nobody waiting: a long job runs on past its quantum.
        let sliced = Cores::with_quantum(2, Some(Duration::from_millis(1)));
        assert_eq!(run_jobs(&sliced, &[(0, 7), (0, 5)]).await, vec![7, 5]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_preempted_core_is_parked_for_the_server_and_given_back_when_it_needs_none() {
        let cores = Cores::with_quantum(1, Some(Duration::from_millis(2)));
        let demand = cores.demand();
        let start = Instant::now();
        let job = |cores: Arc<Cores>| async move {
            cores.hold(Group::Service, Duration::from_millis(6)).await;
            start.elapsed().as_millis()
        };
        let a = tokio::spawn(job(Arc::clone(&cores)));
        tokio::time::sleep(Duration::from_millis(1)).await;
        demand.set(1); // A statement is ready at 1 ms.
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(cores.free(), 1, "at its slice's end (2 ms) the job parked its core");
        let statement = cores.try_take().expect("the parked core");
        demand.set(0);
        tokio::time::sleep(Duration::from_millis(2)).await;
        drop(statement); // At 5 ms: the job continues, 4 ms left.
        assert_eq!(a.await.unwrap(), 9);
        // Parked and then not needed (the statement left): given back to the waiting job.
        let b = tokio::spawn(job(Arc::clone(&cores)));
        tokio::time::sleep(Duration::from_millis(1)).await;
        demand.set(1);
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(cores.free(), 1);
        drop(demand); // At 12 ms, as a crashed server's would be.
        assert_eq!(b.await.unwrap(), 16, "started at 9, preempted 11-12, 4 ms left");
        assert_eq!(cores.free(), 1);
    }

    /// Each job: (group, start after ms, work ms) on `cores`; returns each end, ms.
    async fn run_group_jobs(cores: &Arc<Cores>, jobs: &[(Group, u64, u64)]) -> Vec<u128> {
        let start = Instant::now();
        let mut tasks = Vec::new();
        for &(group, after, work) in jobs {
            let cores = Arc::clone(cores);
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(after)).await;
                cores.hold(group, Duration::from_millis(work)).await;
                start.elapsed().as_millis()
            }));
        }
        let mut ends = Vec::new();
        for t in tasks {
            ends.push(t.await.unwrap());
        }
        ends
    }

    fn in_groups(count: usize, quantum_ms: u64) -> Arc<Cores> {
        Cores::build(count, Some(Duration::from_millis(quantum_ms)), None, Sharing::TwoGroups)
    }

    /// Three service pieces and one database piece of 6 ms each on 2 cores: in one pool the
    /// four take turns and all end near 12 ms; in two groups the database's one piece has a
    /// core of its own from the start (its group holds none while the service holds both,
    /// so a service piece gives one up at once) and ends at 6.
    #[tokio::test(start_paused = true)]
    async fn a_group_holding_no_core_gets_one_at_once_from_a_group_holding_two() {
        use Group::{Database as D, Service as S};
        let jobs = [(S, 0, 6), (S, 0, 6), (S, 0, 6), (D, 0, 6)];
        let pool = Cores::with_quantum(2, Some(Duration::from_millis(2)));
        let one_pool = run_group_jobs(&pool, &jobs).await;
        assert!(one_pool[3] >= 10, "one pool: the database's piece takes turns, {one_pool:?}");
        let groups = in_groups(2, 2);
        let two = run_group_jobs(&groups, &jobs).await;
        assert_eq!(two[3], 6, "two groups: a core of its own at once, {two:?}");
        assert_eq!(two.iter().max(), Some(&12), "the machine is as busy: 24 ms on 2 cores");
        assert_eq!(groups.free(), 2);
        assert_eq!(groups.busy(), Duration::from_millis(24));
    }

    /// The database's one long piece keeps its core while two service pieces take turns on
    /// the other (each group has its half); in one pool the long piece takes turns with them.
    #[tokio::test(start_paused = true)]
    async fn each_group_keeps_its_half_and_its_own_pieces_take_turns_on_it() {
        use Group::{Database as D, Service as S};
        let jobs = [(D, 0, 10), (S, 0, 4), (S, 0, 4)];
        let two = run_group_jobs(&in_groups(2, 1), &jobs).await;
        assert_eq!(two, vec![10, 7, 8], "S: A 0-1, B 1-2, … A ends 7, B 8; D runs through");
        let pool = Cores::with_quantum(2, Some(Duration::from_millis(1)));
        let one_pool = run_group_jobs(&pool, &jobs).await;
        assert!(one_pool[0] > 10, "one pool: the long piece is preempted, {one_pool:?}");
    }

    /// On ONE core the groups alternate at the quantum: no piece gives its core up within the
    /// instant it got it (neither group holds two more than the other).
    #[tokio::test(start_paused = true)]
    async fn on_one_core_the_groups_alternate_at_the_quantum() {
        use Group::{Database as D, Service as S};
        let two = run_group_jobs(&in_groups(1, 1), &[(S, 0, 3), (D, 0, 3)]).await;
        assert_eq!(two, vec![5, 6], "S 0-1, D 1-2, S 2-3, D 3-4, S 4-5, D 5-6");
    }

    /// Ping-pong cooperative: the service's pieces run to their end rather than take turns
    /// among themselves (A 0-4, B 4-8, where two groups alternate them to 7 and 8), while
    /// on one core the service and the database still alternate at the quantum.
    #[tokio::test(start_paused = true)]
    async fn cooperative_service_pieces_do_not_take_turns_among_themselves() {
        use Group::{Database as D, Service as S};
        let cooperative = |count, quantum_ms| {
            Cores::build(
                count,
                Some(Duration::from_millis(quantum_ms)),
                None,
                Sharing::PingPongCooperative,
            )
        };
        let jobs = [(D, 0, 10), (S, 0, 4), (S, 0, 4)];
        assert_eq!(run_group_jobs(&cooperative(2, 1), &jobs).await, vec![10, 4, 8]);
        assert_eq!(run_group_jobs(&in_groups(2, 1), &jobs).await, vec![10, 7, 8]);
        let one_core = run_group_jobs(&cooperative(1, 1), &[(S, 0, 3), (D, 0, 3)]).await;
        assert_eq!(one_core, vec![5, 6], "the database's group is still owed its turns");
    }

    /// The server's ready statement, while the service holds both cores: a service piece
    /// gives its core up at once and it is parked for the server; with the statement run,
    /// the service piece continues.
    #[tokio::test(start_paused = true)]
    async fn a_ready_statement_gets_a_parked_core_at_once_from_a_group_holding_two() {
        let cores = in_groups(2, 5);
        let demand = cores.demand();
        let start = Instant::now();
        let jobs: Vec<_> = (0..2)
            .map(|_| {
                let cores = Arc::clone(&cores);
                tokio::spawn(async move {
                    cores.hold(Group::Service, Duration::from_millis(10)).await;
                    start.elapsed().as_millis()
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(cores.try_take().is_none(), "both cores held by the service");
        demand.set(1);
        tokio::task::yield_now().await;
        assert_eq!(cores.free(), 1, "parked for the server within the instant");
        let statement = cores.try_take().expect("the parked core");
        demand.set(0);
        tokio::time::sleep(Duration::from_millis(2)).await;
        drop(statement); // at 3 ms
        let mut ends = Vec::new();
        for job in jobs {
            ends.push(job.await.unwrap());
        }
        assert_eq!(ends.iter().sum::<u128>(), 10 + 12, "one piece lost 1-3 ms: {ends:?}");
        assert_eq!(cores.free(), 2);
    }

    /// Ping-pong first: the server's URGENT ready statement gets the core at the end of the
    /// running piece's slice before the database's preempted piece; a ready statement not
    /// called urgent queues behind it, as with two groups.
    #[tokio::test(start_paused = true)]
    async fn an_urgent_statement_comes_before_the_database_s_other_waiting_work() {
        let cases = [
            (Sharing::TwoGroups, 1, 0),
            (Sharing::PingPongFirst, 1, 1),
            (Sharing::PingPongFirst, 0, 0),
            (Sharing::PingPongCooperative, 1, 1),
        ];
        for (sharing, urgent, parked_at_4) in cases {
            let cores = Cores::build(1, Some(Duration::from_millis(2)), None, sharing);
            assert_eq!(cores.urgent_first(), sharing != Sharing::TwoGroups);
            let demand = cores.demand();
            let jobs: Vec<_> = (0..2)
                .map(|_| {
                    let cores = Arc::clone(&cores);
                    tokio::spawn(async move {
                        cores.hold(Group::Database, Duration::from_millis(6)).await
                    })
                })
                .collect();
            tokio::time::sleep(Duration::from_millis(3)).await;
            demand.report(1, urgent); // Ready at 3 ms; B runs 2-4, A waits preempted.
            tokio::time::sleep(Duration::from_millis(1) + Duration::from_micros(500)).await;
            let case = format!("{sharing:?}, urgent {urgent}");
            assert_eq!(cores.free(), parked_at_4, "{case} at 4.5 ms");
            demand.set(0);
            for job in jobs {
                job.await.unwrap();
            }
            assert_eq!(cores.free(), 1, "{case}");
        }
    }

    /// A waiter handed a core that stops waiting before it takes it (an aborted request)
    /// does not keep the core: it goes on to whoever waits, else back to the free ones.
    #[tokio::test(start_paused = true)]
    async fn a_core_handed_to_a_waiter_that_left_is_handed_on() {
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let cores = in_groups(1, 1);
        let held = cores.try_take().expect("a free core");
        let mut waiting = Box::pin(cores.take(Group::Service));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(matches!(waiting.as_mut().poll(&mut cx), Poll::Pending), "queued");
        drop(held); // handed to the service's queue
        assert_eq!(cores.free(), 0, "handed to the waiter, not free");
        drop(waiting);
        assert_eq!(cores.free(), 1, "the waiter left: free again");
        let groups = cores.groups.as_ref().unwrap();
        assert_eq!(cores.waiting(groups, Group::Service), 0);
        assert_eq!(groups.granted[Group::Service as usize].load(Ordering::Relaxed), 0);
    }
}
