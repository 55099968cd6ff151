//! The two limits of a budget that can change while callers wait on them: [`Gate`], the cap
//! on calls in flight (a fair semaphore that can shrink below the slots in use), and
//! [`Pace`], the rate (GCRA: at most `burst` calls at once and `rate` a second on average,
//! so at most `rate + burst` in any one second). Mechanism only: what the limits should be
//! is decided elsewhere (the [`Aimd`](super::aimd::Aimd) controller).

use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// A resizable cap on calls in flight. Cheap to share.
#[derive(Clone)]
pub(super) struct Gate {
    inner: Arc<GateInner>,
}

struct GateInner {
    slots: Arc<Semaphore>,
    size: Mutex<Size>,
}

/// The cap, and how many slots still out have to be forgotten when they come back (a cap
/// lowered below the slots in use).
struct Size {
    cap: usize,
    debt: usize,
}

/// One slot of a [`Gate`]; given back (or forgotten, when the cap was lowered) when dropped.
pub(super) struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    gate: Arc<GateInner>,
}

impl Gate {
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        Gate {
            inner: Arc::new(GateInner {
                slots: Arc::new(Semaphore::new(cap)),
                size: Mutex::new(Size { cap, debt: 0 }),
            }),
        }
    }

    /// Waits for a slot, first come first served.
    ///
    /// Cancel safety: dropping the future takes no slot.
    pub async fn enter(&self) -> Slot {
        let permit = Arc::clone(&self.inner.slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        Slot {
            permit: Some(permit),
            gate: Arc::clone(&self.inner),
        }
    }

    /// Sets the cap (at least 1). Lowered, the free slots go at once and slots in use as
    /// they come back; raised, slots still owed are kept first.
    pub fn resize(&self, cap: usize) {
        let cap = cap.max(1);
        let mut size = self.inner.lock();
        if cap < size.cap {
            let cut = size.cap - cap;
            let gone = self.inner.slots.forget_permits(cut);
            size.debt += cut - gone;
        } else if cap > size.cap {
            let more = cap - size.cap;
            let kept = more.min(size.debt);
            size.debt -= kept;
            self.inner.slots.add_permits(more - kept);
        }
        size.cap = cap;
    }

    /// The cap now.
    #[cfg(test)]
    pub fn cap(&self) -> usize {
        self.inner.lock().cap
    }

    /// Slots in use now (more than the cap just after it was lowered).
    pub fn in_use(&self) -> usize {
        let size = self.inner.lock();
        (size.cap + size.debt).saturating_sub(self.inner.slots.available_permits())
    }
}

impl GateInner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Size> {
        self.size.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(permit) = self.permit.take() else {
            return;
        };
        let mut size = self.gate.lock();
        if size.debt > 0 {
            size.debt -= 1;
            permit.forget();
        }
        // Else `permit` is dropped here, under the lock, and its slot given back.
    }
}

/// A changeable rate: generic cell rate algorithm over a theoretical arrival time.
pub(super) struct Pace {
    state: Mutex<PaceState>,
}

struct PaceState {
    /// Time between calls at the rate.
    period: Duration,
    /// How far ahead of the rate calls may run: `burst - 1` periods.
    tolerance: Duration,
    /// When the next call would be due were calls spaced at the rate; `None` before the first.
    due: Option<Instant>,
}

impl Pace {
    /// `rate` calls a second (positive), `burst` at once (at least 1).
    pub fn new(rate: f64, burst: u32) -> Self {
        let pace = Pace {
            state: Mutex::new(PaceState {
                period: Duration::ZERO,
                tolerance: Duration::ZERO,
                due: None,
            }),
        };
        pace.set(rate, burst);
        pace
    }

    /// Changes the rate and burst; calls already let through stay counted.
    pub fn set(&self, rate: f64, burst: u32) {
        let period = Duration::from_secs_f64(1.0 / rate.clamp(1e-6, 1e9));
        let mut s = self.lock();
        s.period = period;
        s.tolerance = period * burst.max(1).saturating_sub(1);
    }

    /// Takes the next call's turn if it is due by `now`, else says when to ask again.
    pub fn try_take(&self, now: Instant) -> Result<(), Instant> {
        let mut s = self.lock();
        let due = s.due.unwrap_or(now);
        let earliest = due.checked_sub(s.tolerance).unwrap_or(now);
        if now < earliest {
            return Err(earliest);
        }
        s.due = Some(due.max(now) + s.period);
        Ok(())
    }

    /// Waits for the next call's turn; returns whether it had to wait.
    ///
    /// Cancel safety: dropping the future takes no turn; a turn, once taken, is spent.
    pub async fn take(&self) -> bool {
        let mut waited = false;
        while let Err(at) = self.try_take(Instant::now()) {
            waited = true;
            tokio::time::sleep_until(at).await;
        }
        waited
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PaceState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn enter_many(gate: &Gate, n: usize) -> Vec<Slot> {
        let mut slots = Vec::new();
        for _ in 0..n {
            slots.push(gate.enter().await);
        }
        slots
    }

    #[tokio::test]
    async fn a_lowered_cap_is_obeyed_once_the_slots_in_use_come_back() {
        let gate = Gate::new(4);
        let held = enter_many(&gate, 4).await;
        gate.resize(2);
        assert_eq!((gate.cap(), gate.in_use()), (2, 4));
        let mut held = held.into_iter();
        drop(held.next());
        drop(held.next());
        assert_eq!(gate.in_use(), 2);
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "two in use under a cap of two");
        drop(held.next());
        let third = waiting.await.unwrap();
        assert_eq!(gate.in_use(), 2);
        gate.resize(3);
        let fourth = tokio::time::timeout(Duration::from_secs(5), gate.enter()).await;
        assert!(fourth.is_ok(), "raised: a third slot is free");
        drop((third, fourth, held));
        assert_eq!(gate.in_use(), 0);
    }

    #[tokio::test]
    async fn a_cap_raised_while_slots_are_owed_pays_the_debt_first() {
        let gate = Gate::new(3);
        let held = enter_many(&gate, 3).await;
        gate.resize(1); // two owed
        gate.resize(2); // one owed
        drop(held);
        assert_eq!((gate.cap(), gate.in_use()), (2, 0));
        let both = enter_many(&gate, 2).await;
        let third = tokio::time::timeout(Duration::from_millis(50), gate.enter()).await;
        assert!(third.is_err(), "a cap of 2 lets 2 in");
        drop(both);
    }

    #[tokio::test(start_paused = true)]
    async fn the_pace_lets_a_burst_through_then_spaces_calls_at_the_rate_it_has_now() {
        let pace = Pace::new(10.0, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert!(!pace.take().await, "the burst goes at once");
        }
        assert!(pace.take().await);
        assert_eq!(start.elapsed(), Duration::from_millis(100));
        pace.set(2.0, 1);
        let before = Instant::now();
        pace.take().await;
        pace.take().await;
        // The turn due at the old rate (300 ms on), then one period of the new.
        assert_eq!(before.elapsed(), Duration::from_millis(800));
    }
}
