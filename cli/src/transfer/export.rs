//! `items export [FILE]`: the event log as JSON Lines.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::digest;
use items_domain::ports::{EventLogScan, PageKey, ReplayObserver, StoreError, WriteStats};
use items_local::sqlite::{DATABASE_FILE, DiskSort};

use super::{Log, open};
use crate::replay::progress::Progress;
use crate::settings::LogArgs;

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Where to write the log; standard output when not given (or `-`).
    /// Written beside it first and renamed at the end: an interrupted
    /// export leaves no file that looks whole.
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub log: LogArgs,
    /// DynamoDB: segments of the parallel Scan (default: one per 2,000 events, at most 4 per core).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub segments: Option<u32>,
}

/// Where the lines go: the output, a SHA-256 of every byte, counts.
struct Lines {
    out: BufWriter<Box<dyn Write + Send>>,
    digest: digest::Context,
    events: u64,
    items: u64,
    stream: String,
}

impl Lines {
    fn new(out: Box<dyn Write + Send>) -> Self {
        Self {
            out: BufWriter::with_capacity(1 << 16, out),
            digest: digest::Context::new(&digest::SHA256),
            events: 0,
            items: 0,
            stream: String::new(),
        }
    }

    /// One stored event of `stream`, as its JSON and a newline.
    fn push(&mut self, stream: &str, line: &str) -> anyhow::Result<()> {
        if stream != self.stream {
            self.items += 1;
            stream.clone_into(&mut self.stream);
        }
        for bytes in [line.as_bytes(), b"\n"] {
            self.out.write_all(bytes)?;
            self.digest.update(bytes);
        }
        self.events += 1;
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<(u64, u64, String)> {
        self.out.flush()?;
        let hex = self.digest.finish().as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Ok((self.events, self.items, hex))
    }
}

/// One stored event's line: its stored form, fields in the documented order.
fn line_of(event: &items_domain::Event) -> Result<String, StoreError> {
    serde_json::to_string(&event.to_stored()).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// `items export > backup.jsonl` gets the shell's mode (often 0644), where
/// `items export backup.jsonl` writes 0600: say so (security review N9).
fn warn_if_others_can_read_stdout() {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        use std::os::unix::fs::PermissionsExt;
        let Ok(stdout) = std::io::stdout().as_fd().try_clone_to_owned() else { return };
        let Ok(metadata) = std::fs::File::from(stdout).metadata() else { return };
        let mode = metadata.permissions().mode();
        if metadata.is_file() && mode & 0o077 != 0 {
            eprintln!(
                "warning: standard output is a file others can read (mode {:o}); the log holds every item and \
                 sub: give FILE to write it private (0600)",
                mode & 0o777
            );
        }
    }
}

pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    if !args.log.on_dynamodb() && !args.log.data_dir.join(DATABASE_FILE).is_file() {
        // Opening would create an empty store, and export nothing as if it were the log.
        anyhow::bail!("there is no embedded store in {} to export", args.log.data_dir.display());
    }
    let log = open(&args.log, false).await?;
    let target = args.file.clone().filter(|file| file.as_os_str() != "-");
    let partial = target.as_deref().map(partial_path);
    let out: Box<dyn Write + Send> = match &partial {
        // Private, as the store it comes from: the log holds every name and sub.
        Some(path) => {
            Box::new(items_local::data_dir::open_private(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?)
        }
        None => {
            warn_if_others_can_read_stdout();
            Box::new(std::io::stdout())
        }
    };
    let work = write(log, &args, Lines::new(out));
    let finished = tokio::select! {
        finished = work => finished.and_then(Lines::finish),
        // Dropping the work drops the scratch sort (and its file) with it.
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted; no file was written")),
    };
    let renamed = finished.and_then(|done| match (&partial, &target) {
        (Some(partial), Some(target)) => {
            std::fs::rename(partial, target).map_err(|e| anyhow::anyhow!("{}: {e}", target.display()))?;
            Ok(done)
        }
        _ => Ok(done),
    });
    let (events, items, sha256) = match renamed {
        Ok(done) => done,
        Err(error) => {
            if let Some(partial) = &partial {
                let _ = std::fs::remove_file(partial);
            }
            return Err(error);
        }
    };
    let name = target.as_deref().map_or_else(|| "-".to_owned(), |t| t.display().to_string());
    eprintln!("exported {events} events of {items} items in {:.1} s", started.elapsed().as_secs_f64());
    // As `sha256sum` prints it, so `sha256sum -c` can check the file.
    eprintln!("{sha256}  {name}");
    Ok(())
}

/// Every event of `log` into `lines`, in the file's order.
async fn write(log: Log, args: &ExportArgs, lines: Lines) -> anyhow::Result<Lines> {
    match log {
        Log::Embedded(database, store) => {
            let progress = Progress::labelled("export", database.head());
            let lines = in_order(store.as_ref(), lines, &progress).await;
            progress.finish();
            lines
        }
        Log::Dynamo { store, approximate_events } => {
            let progress = Arc::new(Progress::labelled("export", approximate_events));
            let segments = args.segments.unwrap_or_else(|| crate::replay::default_segments(approximate_events));
            let sorted = sorted(store, segments, &args.log.data_dir, lines, progress.clone()).await;
            progress.finish();
            sorted
        }
    }
}

fn partial_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_owned();
    name.push(format!(".partial-{}", std::process::id()));
    file.with_file_name(name)
}

/// The embedded log, read in its index's order, which is the file's: one
/// segment, streams by id, each in version order.
async fn in_order(store: &dyn EventLogScan, mut lines: Lines, progress: &Progress) -> anyhow::Result<Lines> {
    let mut after: Option<PageKey> = None;
    loop {
        let page = store.scan_page(0, 1, after.as_ref()).await?;
        for event in &page.events {
            lines.push(&event.item_id.stream_id(), &line_of(event)?)?;
        }
        progress.page_done(0, page.events.len(), WriteStats::default());
        match page.next {
            Some(next) => after = Some(next),
            None => return Ok(lines),
        }
    }
}

/// A log read in no order (DynamoDB's parallel Scan): every segment's pages
/// go into a sort on disk in the data dir, which then gives the file's order.
async fn sorted(
    store: Arc<dyn EventLogScan>,
    segments: u32,
    scratch_dir: &Path,
    mut lines: Lines,
    progress: Arc<Progress>,
) -> anyhow::Result<Lines> {
    items_local::data_dir::create_private_dir(scratch_dir)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", scratch_dir.display()))?;
    let sort = Arc::new(DiskSort::create(scratch_dir)?);
    let reads = (0..segments).map(|segment| {
        let (store, sort, progress) = (store.clone(), sort.clone(), progress.clone());
        async move {
            let mut after: Option<PageKey> = None;
            loop {
                let page = store.scan_page(segment, segments, after.as_ref()).await?;
                let count = page.events.len();
                let keyed = page
                    .events
                    .iter()
                    .map(|event| Ok((event.item_id.stream_id(), event.version, line_of(event)?)))
                    .collect::<Result<Vec<_>, StoreError>>()?;
                sort.keep(keyed).await?;
                progress.page_done(segment, count, WriteStats::default());
                match page.next {
                    Some(next) => after = Some(next),
                    None => return Ok::<_, StoreError>(()),
                }
            }
        }
    });
    futures::future::try_join_all(reads).await?;
    tokio::task::spawn_blocking(move || {
        sort.each_in_order(|stream, line| lines.push(stream, line))?;
        Ok(lines)
    })
    .await?
}
