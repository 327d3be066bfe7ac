//! The writer thread: owns the only writing connection and commits every
//! write that is waiting in one transaction (group commit), each in its own
//! savepoint. Callers are told the outcome only after the commit.

use std::sync::mpsc;

use items_domain::ports::{AppendError, StoreError};
use rusqlite::Connection;
use tokio::sync::{oneshot, watch};

/// Writes committed in one transaction at most.
const MAX_GROUP: usize = 512;

/// One write: runs inside the writer's transaction, answers after the commit.
trait Job: Send {
    /// Whether the caller must not be answered before the write is on disk.
    fn durable(&self) -> bool;
    /// Does the work; `false` when it failed (its savepoint is rolled back).
    fn run(&mut self, connection: &Connection) -> bool;
    /// Tells the caller, once the transaction is committed or has failed.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

type Work<T> = Box<dyn FnOnce(&Connection) -> Result<T, AppendError> + Send>;

struct Pending<T> {
    durable: bool,
    work: Option<Work<T>>,
    result: Option<Result<T, AppendError>>,
    reply: oneshot::Sender<Result<T, AppendError>>,
}

impl<T: Send + 'static> Job for Pending<T> {
    fn durable(&self) -> bool {
        self.durable
    }

    fn run(&mut self, connection: &Connection) -> bool {
        let Some(work) = self.work.take() else { return false };
        let result = work(connection);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let result = match (self.result, commit) {
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(error)) => Err(error.into()),
            (None, _) => Err(StoreError::Unavailable("the write was not run".into()).into()),
        };
        // The caller may have gone (a client that hung up): nothing to tell.
        let _ = self.reply.send(result);
    }
}

pub(super) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
}

impl Writer {
    /// Starts the writer thread on `connection`; it stops when the `Writer` is dropped.
    pub(super) fn start(connection: Connection, head: watch::Sender<u64>) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        std::thread::Builder::new().name("sqlite-writer".into()).spawn(move || run(connection, queue, head))?;
        Ok(Self { jobs })
    }

    /// A write that is answered only once it is synced to disk (the event log).
    pub(super) async fn durable<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, AppendError> + Send + 'static,
    ) -> Result<T, AppendError> {
        self.submit(true, Box::new(work)).await
    }

    /// A write to what replay can rebuild (read model, projector position):
    /// committed, not synced.
    pub(super) async fn disposable<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, AppendError> + Send + 'static,
    ) -> Result<T, AppendError> {
        self.submit(false, Box::new(work)).await
    }

    async fn submit<T: Send + 'static>(&self, durable: bool, work: Work<T>) -> Result<T, AppendError> {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending { durable, work: Some(work), result: None, reply });
        self.jobs.send(job).map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?
    }
}

fn run(connection: Connection, queue: mpsc::Receiver<Box<dyn Job>>, head: watch::Sender<u64>) {
    let mut synced = None;
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let durable = group.iter().any(|job| job.durable());
        let commit = commit_group(&connection, &mut group, durable, &mut synced);
        if commit.is_err() {
            let _ = connection.execute_batch("ROLLBACK");
            synced = None;
        }
        if let Err(error) = &commit {
            tracing::error!(%error, writes = group.len(), "database commit failed");
        }
        if durable && commit.is_ok() {
            // Announce new events only once they are on disk.
            match connection.query_row("SELECT coalesce(max(sequence), 0) FROM events", [], |row| row.get(0)) {
                Ok(newest) => {
                    head.send_if_modified(|current: &mut u64| {
                        let newer = newest > *current;
                        *current = (*current).max(newest);
                        newer
                    });
                }
                Err(error) => tracing::error!(%error, "cannot read the log's head"),
            }
        }
        for job in group {
            job.finish(commit.clone());
        }
    }
}

fn commit_group(
    connection: &Connection,
    group: &mut [Box<dyn Job>],
    durable: bool,
    synced: &mut Option<bool>,
) -> Result<(), StoreError> {
    let sql = |statement: &str| connection.execute_batch(statement).map_err(super::unavailable);
    // `synchronous` is per connection: FULL syncs the WAL at commit, NORMAL does not.
    if *synced != Some(durable) {
        sql(if durable { "PRAGMA synchronous = FULL" } else { "PRAGMA synchronous = NORMAL" })?;
        *synced = Some(durable);
    }
    sql("BEGIN IMMEDIATE")?;
    for job in group.iter_mut() {
        sql("SAVEPOINT job")?;
        if job.run(connection) {
            sql("RELEASE job")?;
        } else {
            sql("ROLLBACK TO job; RELEASE job")?;
        }
    }
    sql("COMMIT")
}
