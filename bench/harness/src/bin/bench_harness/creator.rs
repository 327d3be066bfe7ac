//! "My items" as the table grows: read tables of each size on DynamoDB Local,
//! one creator's items among everyone's; a page of that creator's items from
//! the `by-creator` index (a Query), timed many times, against listing the
//! whole table (Scan pages), timed a few times.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use futures::StreamExt;
use items_aws::dynamodb::{DynamoReadModel, ensure_items_table};
use items_domain::ports::ReadModel;
use items_domain::{Item, ItemId};
use serde_json::json;
use uuid::Uuid;

use crate::{Series, ms};

#[derive(Debug, clap::Args)]
pub struct CreatorArgs {
    /// Table sizes (items), comma-separated.
    #[arg(long, default_value = "10000,200000", value_delimiter = ',')]
    pub sizes: Vec<usize>,
    /// The creator's items in every table (the page is `--page` of them).
    #[arg(long, default_value_t = 1_000)]
    pub mine: usize,
    #[arg(long, default_value_t = 100)]
    pub page: u32,
    /// Timed pages per table.
    #[arg(long, default_value_t = 50)]
    pub samples: usize,
    /// Timed full listings per table.
    #[arg(long, default_value_t = 3)]
    pub listings: usize,
    #[arg(long)]
    pub out: PathBuf,
}

const ME: &str = "4f1e8a52-7c3b-4d59-9a41-0c6b2f2e9d11";
/// Other creators the rest of the items are spread over.
const OTHERS: usize = 1_000;

fn item(n: usize, creator: String) -> Item {
    Item {
        id: ItemId(Uuid::new_v4()),
        name: format!("item {n} with a name of ordinary length"),
        timestamp: "2026-11-30".into(),
        created_by: creator,
        created_at: chrono::DateTime::UNIX_EPOCH + chrono::TimeDelta::seconds(1_700_000_000 + n as i64),
        version: 1,
        deleted: false,
        description: None,
    }
}

async fn fill(client: &aws_sdk_dynamodb::Client, table: &str, size: usize, mine: usize) -> anyhow::Result<()> {
    let batches = (0..size).collect::<Vec<_>>();
    futures::stream::iter(batches.chunks(25))
        .map(|chunk| async move {
            let mut writes = Vec::new();
            for &n in chunk {
                // Mine spread through the table, not in one run.
                let creator = if n % (size / mine).max(1) == 0 && n / (size / mine).max(1) < mine {
                    ME.to_owned()
                } else {
                    format!("other-{}", n % OTHERS)
                };
                let record: HashMap<String, aws_sdk_dynamodb::types::AttributeValue> =
                    serde_dynamo::to_item(item(n, creator))?;
                writes.push(
                    WriteRequest::builder().put_request(PutRequest::builder().set_item(Some(record)).build()?).build(),
                );
            }
            let mut pending = HashMap::from([(table.to_owned(), writes)]);
            while !pending.is_empty() {
                let output = client.batch_write_item().set_request_items(Some(pending)).send().await?;
                pending =
                    output.unprocessed_items.unwrap_or_default().into_iter().filter(|(_, v)| !v.is_empty()).collect();
            }
            Ok::<_, anyhow::Error>(())
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(())
}

pub fn run(args: CreatorArgs) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    let local = items_testkit::DynamoDbLocal::start()?;
    let client = rt.block_on(local.client());
    let mut series = Series::default();
    let mut tables = Vec::new();
    for &size in &args.sizes {
        let table = format!("creator-{size}");
        rt.block_on(ensure_items_table(&client, &table))?;
        let started = Instant::now();
        rt.block_on(fill(&client, &table, size, args.mine))?;
        eprintln!("creator: {size} items written in {:.0} s", started.elapsed().as_secs_f64());
        tables.push((size, DynamoReadModel::new(client.clone(), &table)));
    }
    rt.block_on(async {
        // Untimed pages first (connections, the JVM's compiler), then the
        // tables' samples interleaved, so warm-up and drift fall on each alike.
        for _ in 0..args.samples {
            for (_, read_model) in &tables {
                read_model.list_by_creator(ME, Some(args.page), None).await?;
            }
        }
        for _ in 0..args.samples {
            for (size, read_model) in &tables {
                let started = Instant::now();
                let page = read_model.list_by_creator(ME, Some(args.page), None).await?;
                series.push(&format!("creator_{size}.page_ms"), ms(started.elapsed()));
                anyhow::ensure!(page.items.len() == args.page as usize, "a page of {} items", page.items.len());
                anyhow::ensure!(page.items.iter().all(|item| item.created_by == ME), "only mine");
            }
        }
        for _ in 0..args.listings {
            for (size, read_model) in &tables {
                let (started, mut after, mut listed) = (Instant::now(), None, 0);
                loop {
                    let page = read_model.list_page(None, after.as_ref()).await?;
                    listed += page.items.len();
                    match page.next {
                        Some(next) => after = Some(next),
                        None => break,
                    }
                }
                series.push(&format!("creator_{size}.listing_ms"), ms(started.elapsed()));
                anyhow::ensure!(listed == *size, "listed {listed} of {size}");
            }
        }
        Ok::<_, anyhow::Error>(())
    })?;
    series.write(&args.out, json!({ "sizes": args.sizes, "page": args.page, "mine": args.mine }))
}
