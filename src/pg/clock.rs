//! Time and ids: the wall clock as Unix seconds, interval arguments in
//! seconds, random uuids.

use crate::core::claims::{uuid_text, uuid_v4};
use crate::core::error::IdentityError;
use pgrx::datum::Interval;

/// Wall-clock now, Unix seconds (not the transaction start: a long
/// transaction must not keep accepting a token that has expired).
///
/// Whole seconds are all a JWT check or an issued claim uses, so on Linux
/// it reads the clock as of the kernel's last tick (CLOCK_REALTIME_COARSE,
/// at most one tick, 1-10 ms, behind), which costs no clock-source read:
/// about 25 ns less per verify_jwt and sign_jwt than gettimeofday here.
pub fn now_unix() -> i64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes only the timespec it is given, which
        // lives on this stack frame for the call.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
            return ts.tv_sec;
        }
    }
    // SAFETY: GetCurrentTimestamp reads the system clock; no preconditions.
    let ts = unsafe { pgrx::pg_sys::GetCurrentTimestamp() };
    ts.div_euclid(1_000_000) + 946_684_800
}

/// Seconds in a positive interval (months count 30 days), or 22023.
pub fn interval_seconds(i: &Interval, max: i64) -> Result<i64, IdentityError> {
    let secs = i.months() as i64 * 30 * 86_400
        + i.days() as i64 * 86_400
        + i.micros().div_euclid(1_000_000);
    if secs <= 0 || secs > max {
        return Err(IdentityError::invalid("interval is out of range")
            .detail(format!("{secs} s; allowed 1 s .. {max} s")));
    }
    Ok(secs)
}

thread_local! {
    /// (pid, generator) for `new_uuid`.
    static ID_RNG: std::cell::RefCell<Option<(u32, rand::rngs::StdRng)>> = const { std::cell::RefCell::new(None) };
}

/// This backend's pid (Postgres' own copy: a load, not a system call).
pub fn backend_pid() -> u32 {
    // SAFETY: a backend global, written once at process start.
    unsafe { pgrx::pg_sys::MyProcPid as u32 }
}

/// A random uuid v4 as text (jti, session ids): unguessable, not a key.
/// From rand's StdRng (ChaCha12, a CSPRNG) seeded from the OS once per
/// backend, and again whenever the pid changes, so a forked process never
/// repeats its parent's stream; a getrandom syscall per token was a tenth
/// of sign_jwt. Keys, API tokens and nonces still come from OsRng.
pub fn new_uuid() -> String {
    use rand::{RngCore, SeedableRng};
    let mut random = [0u8; 16];
    // Postgres' own copy of the pid (set in every process after its fork):
    // a load, where std::process::id() is a getpid system call each time.
    let pid = backend_pid();
    ID_RNG.with(|cell| {
        let mut g = cell.borrow_mut();
        if g.as_ref().is_none_or(|(p, _)| *p != pid) {
            *g = Some((
                pid,
                rand::rngs::StdRng::from_rng(rand::rngs::OsRng).expect("the OS random source"),
            ));
        }
        g.as_mut().expect("seeded above").1.fill_bytes(&mut random);
    });
    uuid_text(&uuid_v4(random))
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn wall() -> f64 {
        Spi::get_one::<f64>("select extract(epoch from pg_catalog.clock_timestamp())::float8")
            .expect("spi")
            .expect("a time")
    }

    /// `now_unix` (the coarse clock) is the wall clock in whole seconds, and
    /// moves inside a transaction (it is not the transaction's start).
    #[pg_test]
    fn now_is_the_wall_clock_and_moves_within_a_transaction() {
        for _ in 0..100 {
            let before = wall();
            let now = super::now_unix();
            let after = wall();
            // At most a tick (1-10 ms) behind: the second before's, at worst.
            assert!(
                now >= before.floor() as i64 - 1 && now <= after.ceil() as i64,
                "{before} {now} {after}"
            );
        }
        let start = super::now_unix();
        Spi::run("select pg_catalog.pg_sleep(1.2)").expect("spi");
        assert!(super::now_unix() > start);
    }
}
