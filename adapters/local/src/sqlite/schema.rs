//! Opening the database: the data dir's lock, the file's identity, WAL mode,
//! and the schema's migrations (`PRAGMA user_version` counts those applied).

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::LOCK_FILE;
use super::database::BUSY_TIMEOUT;

/// Marks the file as an Items API database (`PRAGMA application_id`, "ITEM").
const APPLICATION_ID: i32 = 0x4954_454d;

/// Each entry moves the schema one version up; never edit one that has shipped.
const MIGRATIONS: &[&str] = &[
    // 1: the event log (one row per event, in its documented stored form), the
    // idempotency records, the read model and the projector's position.
    "CREATE TABLE events (
         sequence INTEGER PRIMARY KEY AUTOINCREMENT,
         stream_id TEXT NOT NULL,
         version INTEGER NOT NULL,
         stored TEXT NOT NULL,
         UNIQUE (stream_id, version)
     );
     CREATE TABLE idempotency (
         subject TEXT NOT NULL,
         key TEXT NOT NULL,
         expires_at TEXT NOT NULL,
         record TEXT NOT NULL,
         PRIMARY KEY (subject, key)
     );
     CREATE TABLE items (
         id TEXT PRIMARY KEY,
         version INTEGER NOT NULL,
         item TEXT NOT NULL
     );
     CREATE TABLE projector (
         feed TEXT PRIMARY KEY,
         position INTEGER NOT NULL
     );",
    // 2: poison records the change feed set aside (the local on-failure destination).
    "CREATE TABLE quarantine (
         sequence TEXT PRIMARY KEY,
         stream_id TEXT NOT NULL,
         reason TEXT NOT NULL,
         at TEXT NOT NULL
     );",
    // 3: idempotency records by expiry, so expired ones are removed cheaply
    // (`expires_at` is fixed-width RFC 3339 UTC: text order is time order).
    "CREATE INDEX idempotency_expiry ON idempotency (expires_at);",
    // 4: each item's latest snapshot (the write side folds from it).
    "CREATE TABLE snapshots (
         stream_id TEXT PRIMARY KEY,
         version INTEGER NOT NULL,
         revision INTEGER NOT NULL,
         item TEXT NOT NULL
     );",
    // 5: the read model by creator, newest first (`GET /items?createdBy`): the
    // embedded counterpart of the DynamoDB table's `by-creator` index.
    "CREATE INDEX items_by_creator ON items (json_extract(item, '$.createdBy'), json_extract(item, '$.createdAt'), id);",
];

/// The schema version this code writes.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("another process (`items serve` or `items replay`) is using the data dir {dir}; stop it first")]
    Locked { dir: PathBuf },
    #[error("cannot write to the data dir {dir}: {detail}")]
    NotWritable { dir: PathBuf, detail: String },
    #[error(
        "{path} has schema version {found}, newer than this build supports ({supported}): use a newer `items`, or another data dir"
    )]
    NewerSchema { path: PathBuf, found: u32, supported: u32 },
    #[error("{path} is not an Items API database")]
    Foreign { path: PathBuf },
    #[error("cannot read the database {path} (corrupt or not a database?): {detail}")]
    Unreadable { path: PathBuf, detail: String },
    #[error("cannot open the database {path}: {detail}")]
    Io { path: PathBuf, detail: String },
}

impl OpenError {
    pub(super) fn unreadable(path: &Path, error: rusqlite::Error) -> Self {
        let read_only = matches!(
            error.sqlite_error_code(),
            Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied)
        );
        match (read_only, path.parent()) {
            (true, Some(dir)) => Self::NotWritable { dir: dir.to_owned(), detail: error.to_string() },
            _ => Self::Unreadable { path: path.to_owned(), detail: error.to_string() },
        }
    }
}

/// Creates the data dir if needed and takes its lock: one process at a time.
pub(super) fn lock_data_dir(dir: &Path) -> Result<File, OpenError> {
    let not_writable =
        |error: std::io::Error| OpenError::NotWritable { dir: dir.to_owned(), detail: error.to_string() };
    crate::data_dir::create_private_dir(dir).map_err(not_writable)?;
    let lock =
        OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(LOCK_FILE)).map_err(not_writable)?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(TryLockError::WouldBlock) => Err(OpenError::Locked { dir: dir.to_owned() }),
        Err(TryLockError::Error(error)) => Err(not_writable(error)),
    }
}

/// Takes group and other access away from `file`, if it exists.
fn make_private(file: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        match std::fs::metadata(file) {
            Ok(metadata) if metadata.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(file, std::fs::Permissions::from_mode(metadata.permissions().mode() & 0o700))
            }
            Ok(_) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(error),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        Ok(())
    }
}

/// WAL pages between checkpoints (64 MiB of 4 KiB pages).
const WAL_CHECKPOINT_PAGES: i64 = 16_384;

/// Opens the writing connection: WAL mode, the file checked to be ours, the
/// schema migrated to [`SCHEMA_VERSION`].
pub(super) fn open_writer(path: &Path) -> Result<Connection, OpenError> {
    let unreadable = |error: rusqlite::Error| OpenError::unreadable(path, error);
    // Created private (0600) before SQLite opens it: SQLite gives the WAL
    // and shared-memory files the database file's permissions.
    match crate::data_dir::open_private(path) {
        Ok(_) => {}
        // One made before (or by hand) keeps its mode: made private too,
        // with its WAL and shared-memory files (security review N9).
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
            for suffix in ["", "-wal", "-shm"] {
                let file = PathBuf::from(format!("{}{suffix}", path.display()));
                if let Err(error) = make_private(&file) {
                    return Err(OpenError::Io { path: file, detail: error.to_string() });
                }
            }
        }
        Err(error) => return Err(OpenError::Io { path: path.to_owned(), detail: error.to_string() }),
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut connection = Connection::open_with_flags(path, flags).map_err(unreadable)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(unreadable)?;
    let application_id: i32 =
        connection.pragma_query_value(None, "application_id", |row| row.get(0)).map_err(unreadable)?;
    let version: u32 = connection.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(unreadable)?;
    let empty: bool =
        connection.query_row("SELECT count(*) = 0 FROM sqlite_schema", [], |row| row.get(0)).map_err(unreadable)?;
    if application_id != APPLICATION_ID && !(application_id == 0 && empty) {
        return Err(OpenError::Foreign { path: path.to_owned() });
    }
    if version > SCHEMA_VERSION {
        return Err(OpenError::NewerSchema { path: path.to_owned(), found: version, supported: SCHEMA_VERSION });
    }
    let mode: String =
        connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(unreadable)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::Io { path: path.to_owned(), detail: format!("journal mode is {mode}, not WAL") });
    }
    connection.pragma_update(None, "synchronous", "FULL").map_err(unreadable)?;
    // Checkpoints copy each page the WAL holds once, however often it was
    // written since: every append rewrites the same hot pages (the log's
    // tail, its indexes' and the read model's), so the longer between
    // checkpoints, the fewer copies. SQLite's 1,000 pages (4 MiB) made the
    // writer thread spend most of its time copying (perf: pread/pwrite).
    connection.pragma_update(None, "wal_autocheckpoint", WAL_CHECKPOINT_PAGES).map_err(unreadable)?;
    for (applied, migration) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let transaction = connection.transaction().map_err(unreadable)?;
        transaction.execute_batch(migration).map_err(unreadable)?;
        transaction.pragma_update(None, "user_version", applied as u32 + 1).map_err(unreadable)?;
        transaction.pragma_update(None, "application_id", APPLICATION_ID).map_err(unreadable)?;
        transaction.commit().map_err(unreadable)?;
    }
    Ok(connection)
}
