//! The bounded pool that decodes and encodes previews: `preview.workers` threads of its own, so
//! that no image is ever decoded on Pingora's request threads or on the I/O runtime, and at
//! most `workers + queue` jobs admitted at once; past that, `submit` refuses at once (the
//! request answers `503 preview_busy`) instead of letting work pile up.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

type Job = Box<dyn FnOnce() + Send + 'static>;

pub struct Pool {
    workers: usize,
    capacity: usize,
    /// Threads start on first use: a server that forks (daemon mode) after building its
    /// services would lose threads started before the fork.
    started: OnceLock<Started>,
}

struct Started {
    jobs: SyncSender<Job>,
    slots: Arc<Semaphore>,
}

/// Every slot is taken: try again shortly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl Pool {
    /// A pool of `workers` threads admitting at most `workers + queue` jobs at once.
    pub fn start(workers: usize, queue: usize) -> Pool {
        Pool {
            workers: workers.max(1),
            capacity: workers.max(1) + queue,
            started: OnceLock::new(),
        }
    }

    fn started(&self) -> &Started {
        self.started.get_or_init(|| {
            // The channel holds every admitted job, so sending never blocks.
            let (jobs, rx) = sync_channel::<Job>(self.capacity);
            let rx = Arc::new(Mutex::new(rx));
            for n in 0..self.workers {
                let rx = rx.clone();
                std::thread::Builder::new()
                    .name(format!("preview-{n}"))
                    .spawn(move || work(&rx))
                    .expect("a preview worker thread starts");
            }
            Started {
                jobs,
                slots: Arc::new(Semaphore::new(self.capacity)),
            }
        })
    }

    /// Take a slot for a job whose input is still being gathered; `Full` when every slot is
    /// taken, so that a full pool costs the caller no I/O.
    pub fn reserve(&self) -> Result<Reserved, Full> {
        let started = self.started();
        let slot = started
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Full)?;
        Ok(Reserved {
            slot,
            jobs: started.jobs.clone(),
        })
    }

    /// Run `f` on a worker; its result arrives on the returned channel.
    pub fn submit<T, F>(&self, f: F) -> Result<oneshot::Receiver<T>, Full>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        Ok(self.reserve()?.run(f))
    }

    /// Jobs admitted and not finished yet (running or waiting).
    pub fn depth(&self) -> usize {
        self.started
            .get()
            .map_or(0, |s| self.capacity - s.slots.available_permits())
    }
}

/// A slot held for one job: dropping it unused gives the slot back.
pub struct Reserved {
    slot: OwnedSemaphorePermit,
    jobs: SyncSender<Job>,
}

impl Reserved {
    /// Run `f` on a worker in this slot; its result arrives on the returned channel (closed
    /// without a value only if the job panicked).
    pub fn run<T, F>(self, f: F) -> oneshot::Receiver<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let slot = self.slot;
        let job: Job = Box::new(move || {
            let out = f();
            // The slot is free before anyone learns the result.
            drop(slot);
            let _ = tx.send(out);
        });
        // The channel holds as many jobs as there are slots, so this never blocks; it fails
        // only when every worker is gone, and then the receiver reports it.
        let _ = self.jobs.send(job);
        rx
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while taking the next job, never while running it.
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        match job {
            // A panicking job (a decoder bug) must not take the worker with it: its caller
            // sees the result channel closed, and the thread takes the next job.
            Ok(job) => {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
            }
            Err(_) => return, // the pool is gone
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_on_its_own_threads_and_refuses_past_its_bound() {
        let pool = Pool::start(1, 1);
        let (release, hold) = std::sync::mpsc::channel::<()>();
        let hold = Mutex::new(hold);
        // Occupy the worker and the one queue slot.
        let first = pool
            .submit(move || {
                let _ = hold.lock().unwrap().recv();
                std::thread::current().name().map(str::to_owned)
            })
            .unwrap();
        let second = pool.submit(|| 2).unwrap();
        assert_eq!(pool.depth(), 2);
        assert_eq!(pool.submit(|| 3).err(), Some(Full));
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().as_deref(), Some("preview-0"));
        assert_eq!(second.await.unwrap(), 2);
        // Slots come back once jobs finish.
        assert_eq!(pool.submit(|| 4).unwrap().await.unwrap(), 4);
        assert_eq!(pool.depth(), 0);
    }
}
