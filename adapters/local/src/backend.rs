//! The stores behind `items serve`, opened in one place: the event log, the
//! read model, and the projection that keeps the second following the first
//! (the change feed of a local log, or the DynamoDB stream poller), wired as
//! the projector Lambda is (`items_aws::compose::project_events`).
//!
//! The projection runs on a thread of its own, as the projector Lambda runs
//! apart from the API's functions: under load it keeps its share of the
//! machine instead of queueing behind every request on the API's runtime.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use items_aws::compose;
use items_aws::dynamodb::{DynamoEventStore, DynamoReadModel, ensure_events_table, ensure_items_table};
use items_domain::memory::InMemoryReadModel;
use items_domain::ports::{EventStore, ReadModel, StoreError};
use tokio::sync::oneshot;

use crate::event_source_mapping::{ChangeLog, run_change_feed};
use crate::sqlite::{Database, OpenError, SqliteEventStore, SqliteReadModel};
use crate::stream_poller::{PollerConfig, run_stream_poller};
use crate::volatile::VolatileEventStore;

/// Stream records per projector batch, as the event source mapping's batch size.
pub const FEED_BATCH: usize = 100;

/// Which store to open.
pub enum Store {
    /// The durable default: SQLite in this data dir.
    Sqlite(PathBuf),
    /// In process, lost when it stops.
    Volatile,
    /// DynamoDB (DynamoDB Local, or AWS), its tables made when missing.
    Dynamo {
        dynamodb: aws_sdk_dynamodb::Client,
        streams: aws_sdk_dynamodbstreams::Client,
        events_table: String,
        items_table: String,
    },
}

/// An open store, its projection running.
pub struct Backend {
    pub events: Arc<dyn EventStore>,
    pub read_model: Arc<dyn ReadModel>,
    pub projection: Projection,
}

/// The projection's thread: a runtime of its own running the feed until
/// stopped (or dropped).
pub struct Projection {
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Projection {
    fn spawn(feed: impl Future<Output = ()> + Send + 'static) -> std::io::Result<Self> {
        let (stop, stopped) = oneshot::channel::<()>();
        let (started, start) = std::sync::mpsc::channel::<std::io::Result<()>>();
        // The runtime is made (and dropped) on its own thread, never on the caller's.
        let thread = std::thread::Builder::new().name("projection".into()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime,
                Err(error) => {
                    let _ = started.send(Err(error));
                    return;
                }
            };
            let _ = started.send(Ok(()));
            runtime.block_on(async {
                tokio::select! {
                    () = feed => {}
                    _ = stopped => {}
                }
            });
        })?;
        start.recv().map_err(std::io::Error::other)??;
        Ok(Self { stop: Some(stop), thread: Some(thread) })
    }

    /// Stops the feed where it is and waits for the thread. Its position is
    /// saved at most 250 ms behind what it applied; a restart re-applies
    /// from there, version-guarded.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Projection {
    fn drop(&mut self) {
        self.halt();
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error(transparent)]
    Sqlite(#[from] OpenError),
    #[error("creating the {table} table: {detail}")]
    Table { table: String, detail: String },
    #[error("starting the projection's thread: {0}")]
    Thread(#[from] std::io::Error),
}

pub async fn open(store: Store) -> Result<Backend, BackendError> {
    match store {
        Store::Sqlite(data_dir) => {
            let database = Database::open(&data_dir)?;
            let events = Arc::new(SqliteEventStore::new(database.clone()));
            fed(events, Arc::new(SqliteReadModel::new(database)))
        }
        Store::Volatile => fed(Arc::new(VolatileEventStore::default()), Arc::new(InMemoryReadModel::default())),
        Store::Dynamo { dynamodb, streams, events_table, items_table } => {
            let table = |table: &str| {
                let table = table.to_owned();
                move |error: StoreError| BackendError::Table { table, detail: error.to_string() }
            };
            ensure_events_table(&dynamodb, &events_table).await.map_err(table(&events_table))?;
            ensure_items_table(&dynamodb, &items_table).await.map_err(table(&items_table))?;
            let read_model = Arc::new(DynamoReadModel::new(dynamodb.clone(), &items_table));
            let events = Arc::new(DynamoEventStore::new(dynamodb.clone(), &events_table));
            let projector = Arc::new(compose::project_events(read_model.clone(), events.clone()));
            let config = PollerConfig::new(&events_table);
            let projection = Projection::spawn(run_stream_poller(dynamodb, streams, config, projector))?;
            Ok(Backend { events, read_model, projection })
        }
    }
}

/// A local log with its change feed driving the projector.
fn fed<L: EventStore + ChangeLog + 'static>(
    events: Arc<L>,
    read_model: Arc<dyn ReadModel>,
) -> Result<Backend, BackendError> {
    let projector = Arc::new(compose::project_events(read_model.clone(), events.clone()));
    let projection = Projection::spawn(run_change_feed(events.clone(), projector, FEED_BATCH))?;
    Ok(Backend { events, read_model, projection })
}
