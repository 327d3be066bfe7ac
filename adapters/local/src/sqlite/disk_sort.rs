//! `items export`'s sort on disk: a log read in no order (a DynamoDB parallel
//! Scan) goes out in the file's order, item streams by id, each in version
//! order, with memory flat however large the log.

use std::path::Path;

use rusqlite::params;

use super::scratch::Scratch;
use super::unavailable;
use items_domain::ports::StoreError;

/// Lines keyed by (stream id, version) in a scratch file, removed when dropped.
pub struct DiskSort(Scratch);

impl DiskSort {
    /// A new, empty scratch file in `dir` (which must exist): it needs about
    /// as much free space as the export.
    pub fn create(dir: &Path) -> Result<Self, StoreError> {
        Scratch::create(
            dir,
            "export",
            "CREATE TABLE lines (stream_id TEXT NOT NULL, version INTEGER NOT NULL, line TEXT NOT NULL,
                                 PRIMARY KEY (stream_id, version)) WITHOUT ROWID;",
        )
        .map(Self)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// Keeps `lines` (stream id, version, line); a key kept twice is an error:
    /// the log holds one event per version.
    pub async fn keep(&self, lines: Vec<(String, u64, String)>) -> Result<(), StoreError> {
        self.0
            .run(move |connection| {
                let mut insert = connection
                    .prepare_cached("INSERT INTO lines (stream_id, version, line) VALUES (?1, ?2, ?3)")
                    .map_err(unavailable)?;
                for (stream_id, version, line) in &lines {
                    insert.execute(params![stream_id, version, line]).map_err(|error| match error {
                        rusqlite::Error::SqliteFailure(e, _) if e.code == rusqlite::ErrorCode::ConstraintViolation => {
                            StoreError::Corrupt(format!("version {version} of {stream_id} read twice"))
                        }
                        other => unavailable(other),
                    })?;
                }
                Ok(())
            })
            .await
    }

    /// Hands every line and its stream id to `each`, in (stream id,
    /// version) order: blocking, for a blocking thread. Stops at `each`'s
    /// first error.
    pub fn each_in_order<E: From<StoreError>>(
        &self,
        mut each: impl FnMut(&str, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        let connection = self.0.lock();
        let mut statement =
            connection.prepare("SELECT stream_id, line FROM lines ORDER BY stream_id, version").map_err(unavailable)?;
        let mut rows = statement.query([]).map_err(unavailable)?;
        let text =
            |row: &rusqlite::Row<'_>, column| -> Result<String, StoreError> { row.get(column).map_err(unavailable) };
        while let Some(row) = rows.next().map_err(unavailable)? {
            each(&text(row, 0)?, &text(row, 1)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_come_out_by_stream_then_version_whatever_order_they_went_in() {
        let dir = std::env::temp_dir().join(format!("items-sort-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let sort = DiskSort::create(&dir).unwrap();
        let line = |stream: &str, version: u64| (stream.to_owned(), version, format!("{stream}@{version}"));
        sort.keep(vec![line("item#b", 2), line("item#a", 10), line("item#b", 1)]).await.unwrap();
        sort.keep(vec![line("item#a", 9), line("item#a", 2)]).await.unwrap();
        let mut out = Vec::new();
        sort.each_in_order(|_, line| {
            out.push(line.to_owned());
            Ok::<_, StoreError>(())
        })
        .unwrap();
        assert_eq!(out, ["item#a@2", "item#a@9", "item#a@10", "item#b@1", "item#b@2"]);
        let twice = sort.keep(vec![line("item#a", 9)]).await;
        assert!(matches!(twice, Err(StoreError::Corrupt(_))), "{twice:?}");
        let path = sort.path().to_owned();
        drop(sort);
        assert!(!path.exists(), "the scratch file goes with it");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
