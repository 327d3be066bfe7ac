// DynamoDB tables: the event store and the read model.

import * as aws from "@pulumi/aws";
import { ReadTableGenerations } from "./config";

/** Attribute names shared with the Rust adapters. */
export const EVENTS_HASH_KEY = "stream_id";
export const EVENTS_RANGE_KEY = "version";
export const EVENTS_TTL_ATTRIBUTE = "expires_at";
/**
 * The partition key prefix of an item's event stream, `item#<id>`
 * (`items_domain::event::STREAM_PREFIX`); the events table's other
 * partitions are idempotency records (`idem#`), snapshots (`snap#`) and the
 * projector's quarantine (`quarantine#`).
 */
export const ITEM_STREAM_PREFIX = "item#";
/** The partition key prefix of an item's snapshot, `snap#<id>` (`items_aws::dynamodb::event_store`). */
export const SNAPSHOT_PREFIX = "snap#";
export const ITEMS_HASH_KEY = "id";
/**
 * TTL attribute of the read tables. Deleted items' tombstones carry it: the
 * projector sets it to the deletion time plus a retention longer than any
 * stream record can still arrive (so a late record still finds the tombstone
 * and is not projected as a live item). Live items never have it.
 */
export const ITEMS_TTL_ATTRIBUTE = "expires_at";
/**
 * The read tables' index for "my items" (`GET /items?createdBy=<sub>`) and
 * its key attributes, shared with the Rust adapter: `read_model` writes and
 * queries it under the same names (`items_aws::dynamodb::codec`). Its
 * partition key is a shard of the creator, `<createdBy>#<NN>` (16 shards),
 * so one creator's writes spread over as many index partitions; a listing
 * queries every shard. `createdAt` is an RFC 3339 UTC string with
 * milliseconds, fixed width: text order is time order.
 */
export const ITEMS_BY_CREATOR_INDEX = "by-creator-shard";
export const ITEMS_CREATOR_SHARD_KEY = "creatorShard";
export const ITEMS_CREATED_AT_KEY = "createdAt";

export interface Tables {
    events: aws.dynamodb.Table;
    /** The live read table (`itemsTableGeneration`): every function reads and projects into this one only. */
    items: aws.dynamodb.Table;
    /** The empty table of `itemsRebuildGeneration` for `items replay --into`, when set. */
    itemsRebuild?: aws.dynamodb.Table;
}

/**
 * Logical name of the read table of a generation: generation 1 keeps the
 * original name "items" (so stacks from before generations keep their table),
 * generation N > 1 is "items-v<N>".
 */
export function itemsTableLogicalName(generation: number): string {
    return generation === 1 ? "items" : `items-v${generation}`;
}

/**
 * One read table. All generations share the key schema and settings; only the
 * logical name (and so the physical name Pulumi derives from it) differs.
 */
function createItemsTable(generation: number, pointInTimeRecovery: boolean): aws.dynamodb.Table {
    return new aws.dynamodb.Table(
        itemsTableLogicalName(generation),
        {
            billingMode: "PAY_PER_REQUEST",
            hashKey: ITEMS_HASH_KEY,
            // Every key attribute of the table and its index and no other: the
            // provider refuses a missing one and keeps diffing an extra one.
            attributes: [
                { name: ITEMS_HASH_KEY, type: "S" },
                { name: ITEMS_CREATOR_SHARD_KEY, type: "S" },
                { name: ITEMS_CREATED_AT_KEY, type: "S" },
            ],
            globalSecondaryIndexes: [
                {
                    name: ITEMS_BY_CREATOR_INDEX,
                    hashKey: ITEMS_CREATOR_SHARD_KEY,
                    rangeKey: ITEMS_CREATED_AT_KEY,
                    // ALL: get-items answers a page from the index alone, with no
                    // second read per item. On demand, so no capacity to set.
                    projectionType: "ALL",
                },
            ],
            // Off by default: a read table is rebuilt from the log, not restored.
            pointInTimeRecovery: { enabled: pointInTimeRecovery },
            serverSideEncryption: { enabled: true },
            ttl: { attributeName: ITEMS_TTL_ATTRIBUTE, enabled: true },
        },
        // An index added to a table that holds items is built (backfilled)
        // before the update completes: the provider waits for it to be
        // ACTIVE at most this long (its default is 60 minutes).
        { customTimeouts: { update: ITEMS_TABLE_UPDATE_TIMEOUT } },
    );
}

/** How long `pulumi up` waits for a read table's update, an index build included. */
export const ITEMS_TABLE_UPDATE_TIMEOUT = "4h";

export function createTables(opts: {
    eventsDeletionProtection: boolean;
    readTables: ReadTableGenerations;
    itemsPointInTimeRecovery: boolean;
}): Tables {
    // Event store. Real events live under stream_id = "item#<uuid>" with a
    // numeric version; idempotency records share the table under "idem#..."
    // and expire through the TTL attribute.
    const events = new aws.dynamodb.Table("events", {
        billingMode: "PAY_PER_REQUEST",
        hashKey: EVENTS_HASH_KEY,
        rangeKey: EVENTS_RANGE_KEY,
        attributes: [
            { name: EVENTS_HASH_KEY, type: "S" },
            { name: EVENTS_RANGE_KEY, type: "N" },
        ],
        streamEnabled: true,
        streamViewType: "NEW_IMAGE",
        // Always: the log is the source of truth (35 days of restore points).
        pointInTimeRecovery: { enabled: true },
        serverSideEncryption: { enabled: true },
        ttl: { attributeName: EVENTS_TTL_ATTRIBUTE, enabled: true },
        // The log is the truth: a `pulumi destroy` must not take it along by
        // accident (docs/deploy.md says how to tear down on purpose).
        deletionProtectionEnabled: opts.eventsDeletionProtection,
    });

    // Read model, kept by the projector (or rebuilt by `items replay`). Only
    // the live generation and the rebuild generation (if set) are declared:
    // switching `itemsTableGeneration` to the rebuild generation and removing
    // `itemsRebuildGeneration` makes `pulumi up` delete the old read table,
    // after the functions and their policies have moved to the new one. That is
    // safe because a read table is disposable: everything in it is rebuilt from
    // the event log (which is why it has no deletion protection).
    const items = createItemsTable(opts.readTables.live, opts.itemsPointInTimeRecovery);
    const rebuild = opts.readTables.rebuild;
    const itemsRebuild =
        rebuild === undefined ? undefined : createItemsTable(rebuild, opts.itemsPointInTimeRecovery);

    return { events, items, itemsRebuild };
}
