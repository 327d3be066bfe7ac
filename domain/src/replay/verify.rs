//! `--verify`: the read model against the fold of the log, with the
//! replay's own code, in flat memory; and the comparison behind it.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::event::ItemId;
use crate::item::Item;
use crate::ports::{EventLogScan, FoldStore, ReplayObserver, ReplayTarget, StoreError, WriteStats};
use crate::projection;

use super::{NoCheckpoints, ReplayService, ReplaySummary};

/// How many ids of each kind of difference a report keeps (the smallest):
/// enough to show and to check again, bounded whatever the table's size.
pub const REPORT_IDS: usize = 1_000;

/// Items that differ in one way: all counted, the first [`REPORT_IDS`] by id kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Differences {
    pub count: usize,
    pub ids: std::collections::BTreeSet<ItemId>,
}

impl Differences {
    fn add(&mut self, id: ItemId) {
        self.count += 1;
        self.ids.insert(id);
        if self.ids.len() > REPORT_IDS {
            self.ids.pop_last();
        }
    }

    /// Counted but not kept (beyond [`REPORT_IDS`]).
    pub fn unlisted(&self) -> usize {
        self.count - self.ids.len()
    }
}

/// How the read table differs from what the event log says it should hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VerifyReport {
    pub expected: usize,
    pub actual: usize,
    /// In the log, not in the table. A deleted item's tombstone is not
    /// required: it expires (DynamoDB TTL), and a missing row shows nothing,
    /// as a tombstone does.
    pub missing: Differences,
    /// In both, but the table's copy is not the log's latest state.
    pub stale: Differences,
    /// In the table, not in the log.
    pub extra: Differences,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.missing.count == 0 && self.stale.count == 0 && self.extra.count == 0
    }

    /// Files item `id` under the difference, if any, between what the log
    /// says (`want`) and what the table holds (`have`).
    fn compare(&mut self, id: ItemId, want: Option<&Item>, have: Option<&Item>) {
        match (want, have) {
            (None, Some(_)) => self.extra.add(id),
            // A deleted item's tombstone may have expired: no row is right too.
            (Some(want), None) if !want.deleted => self.missing.add(id),
            (Some(want), Some(have)) if want != have => self.stale.add(id),
            _ => {}
        }
    }
}

/// Writes the fold into a [`FoldStore`] (newest state wins), as a replay target.
struct FoldTarget(Arc<dyn FoldStore>);

#[async_trait]
impl ReplayTarget for FoldTarget {
    async fn write(&self, items: Vec<Item>) -> Result<WriteStats, StoreError> {
        self.0.keep(items).await?;
        Ok(WriteStats::default())
    }
}

/// States handed back from the fold store at a time, for what the table lacks.
const LEFT_OVER_PAGE: usize = 1_000;

/// `--verify`: folds the whole log with the replay's own code (the same
/// pages, segments and projector rules) into `fold`, then reads the table a
/// page at a time, taking each row's expected state out of `fold`; what is
/// left there has no row. Memory holds a page or two, whatever the sizes:
/// the fold waits in `fold` (on disk), the report keeps counts and the first
/// ids. Differences may be the moment's traffic: see [`recheck`].
pub async fn verify_read_model(
    scan: Arc<dyn EventLogScan>,
    read_model: &dyn crate::ports::ReadModel,
    fold: Arc<dyn FoldStore>,
    segments: u32,
    observer: Arc<dyn ReplayObserver>,
) -> Result<(ReplaySummary, VerifyReport), StoreError> {
    let service = ReplayService::new(scan, Some(Arc::new(FoldTarget(fold.clone()))), Arc::new(NoCheckpoints), observer);
    let summary = service.run(segments).await?;
    let mut report = VerifyReport::default();
    let mut after = None;
    loop {
        let page = read_model.list_page(None, after.as_ref()).await?;
        let mut expected: HashMap<ItemId, Item> =
            fold.take(page.items.iter().map(|item| item.id).collect()).await?.into_iter().map(|i| (i.id, i)).collect();
        report.expected += expected.len();
        for have in &page.items {
            report.actual += 1;
            report.compare(have.id, expected.remove(&have.id).as_ref(), Some(have));
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    loop {
        let left = fold.take_any(LEFT_OVER_PAGE).await?;
        if left.is_empty() {
            break;
        }
        report.expected += left.len();
        for want in &left {
            report.compare(want.id, Some(want), None);
        }
    }
    Ok((summary, report))
}

/// Compares the expected states (from [`fold_states`] over the whole log) with
/// the table's items.
pub fn verify(expected: &HashMap<ItemId, Item>, actual: impl IntoIterator<Item = Item>) -> VerifyReport {
    let mut report = VerifyReport { expected: expected.len(), ..VerifyReport::default() };
    let mut seen = std::collections::HashSet::new();
    for item in actual {
        report.actual += 1;
        seen.insert(item.id);
        report.compare(item.id, expected.get(&item.id), Some(&item));
    }
    for want in expected.values().filter(|want| !seen.contains(&want.id)) {
        report.compare(want.id, Some(want), None);
    }
    report
}

/// Checks each listed difference in `report` again, against the item's
/// stream and row as they are now. The log and the table are read at
/// different moments, so under live traffic an item changed in between shows
/// as a difference that is not one. Keeps only the ids that still differ;
/// differences counted but not listed stay counted.
pub async fn recheck(
    scan: &dyn EventLogScan,
    read_model: &dyn crate::ports::ReadModel,
    report: VerifyReport,
) -> Result<VerifyReport, StoreError> {
    let mut rechecked = VerifyReport { expected: report.expected, actual: report.actual, ..VerifyReport::default() };
    rechecked.missing.count = report.missing.unlisted();
    rechecked.stale.count = report.stale.unlisted();
    rechecked.extra.count = report.extra.unlisted();
    let candidates = report.missing.ids.iter().chain(&report.stale.ids).chain(&report.extra.ids);
    for &id in candidates {
        let want = projection::fold_stream(&scan.item_stream(id).await?)?;
        rechecked.compare(id, want.as_ref(), read_model.get(id).await?.as_ref());
    }
    Ok(rechecked)
}
