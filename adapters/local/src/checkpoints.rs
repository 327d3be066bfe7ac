//! Replay checkpoints in a JSON file, written atomically (temp file + rename)
//! after every page, so a crash loses at most the page in flight.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use items_domain::ports::{Checkpoints, SegmentProgress};
use items_domain::ports::{PageKey, StoreError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct State {
    /// What the checkpoints are for; a resume with other settings is refused.
    run: String,
    total_segments: u32,
    /// When the run first started (RFC 3339): a resumed rebuild into a new
    /// table must catch up from here, not from when it was resumed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_at: Option<String>,
    /// Per segment: `null` when done, else the scan position after which to go on.
    segments: BTreeMap<u32, Option<String>>,
}

pub struct FileCheckpoints {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read {path}: {detail}")]
    Unreadable { path: PathBuf, detail: String },
    #[error(
        "{path} is for another replay ({found}, {found_segments} segments), not {wanted} with {wanted_segments} segments"
    )]
    Mismatch { path: PathBuf, found: String, found_segments: u32, wanted: String, wanted_segments: u32 },
}

impl FileCheckpoints {
    /// Starts afresh (ignoring any file) or, with `resume`, continues the file
    /// at `path` if it describes the same run.
    pub fn open(path: &Path, run: &str, total_segments: u32, resume: bool) -> Result<Self, CheckpointError> {
        let started_at = Some(items_domain::event::rfc3339::format(&chrono::Utc::now()));
        let fresh = State { run: run.to_owned(), total_segments, started_at, segments: BTreeMap::new() };
        let state = if resume && path.exists() {
            let text = std::fs::read_to_string(path)
                .map_err(|e| CheckpointError::Unreadable { path: path.to_owned(), detail: e.to_string() })?;
            let state: State = serde_json::from_str(&text)
                .map_err(|e| CheckpointError::Unreadable { path: path.to_owned(), detail: e.to_string() })?;
            if state.run != run || state.total_segments != total_segments {
                return Err(CheckpointError::Mismatch {
                    path: path.to_owned(),
                    found: state.run,
                    found_segments: state.total_segments,
                    wanted: run.to_owned(),
                    wanted_segments: total_segments,
                });
            }
            state
        } else {
            fresh
        };
        Ok(Self { path: path.to_owned(), state: Mutex::new(state) })
    }

    /// The segment count a previous run used, to resume with the same.
    pub fn previous_segments(path: &Path) -> Option<u32> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str::<State>(&text).ok().map(|s| s.total_segments)
    }

    /// When the run these checkpoints are for first started (now, for a
    /// fresh run); `None` for a file written before runs kept it.
    pub fn started_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.started_at.as_deref().and_then(|at| items_domain::event::rfc3339::parse(at).ok())
    }

    /// Removes the file once a run has finished.
    pub fn finish(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Checkpoints for FileCheckpoints {
    fn load(&self, segment: u32) -> Option<SegmentProgress> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.segments.get(&segment).map(|position| match position {
            None => SegmentProgress::Done,
            Some(key) => SegmentProgress::After(PageKey(key.clone())),
        })
    }

    fn save(&self, segment: u32, progress: &SegmentProgress) -> Result<(), StoreError> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let position = match progress {
            SegmentProgress::Done => None,
            SegmentProgress::After(key) => Some(key.0.clone()),
        };
        state.segments.insert(segment, position);
        let text = serde_json::to_string_pretty(&*state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let temporary = self.path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            if let Some(parent) = self.path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&temporary, text)?;
            std::fs::rename(&temporary, &self.path)
        };
        write().map_err(|e| StoreError::Unavailable(format!("writing {}: {e}", self.path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_survive_a_reopen_and_refuse_another_run() {
        let path = std::env::temp_dir().join(format!("items-checkpoints-{}.json", uuid::Uuid::new_v4().simple()));
        let first = FileCheckpoints::open(&path, "events->items", 4, false).unwrap();
        first.save(0, &SegmentProgress::Done).unwrap();
        first.save(2, &SegmentProgress::After(PageKey("k".into()))).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));

        let resumed = FileCheckpoints::open(&path, "events->items", 4, true).unwrap();
        assert_eq!(resumed.started_at(), first.started_at(), "a resumed run keeps its first start");
        assert!(first.started_at().is_some());
        assert_eq!(resumed.load(0), Some(SegmentProgress::Done));
        assert_eq!(resumed.load(2), Some(SegmentProgress::After(PageKey("k".into()))));
        assert_eq!(resumed.load(1), None);
        assert_eq!(FileCheckpoints::previous_segments(&path), Some(4));

        assert!(matches!(
            FileCheckpoints::open(&path, "events->other", 4, true),
            Err(CheckpointError::Mismatch { .. })
        ));
        assert!(matches!(
            FileCheckpoints::open(&path, "events->items", 8, true),
            Err(CheckpointError::Mismatch { .. })
        ));
        let fresh = FileCheckpoints::open(&path, "events->items", 4, false).unwrap();
        assert_eq!(fresh.load(0), None, "without resume, old checkpoints are ignored");
        fresh.finish();
        assert!(!path.exists());
    }
}
