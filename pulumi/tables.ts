// DynamoDB tables: the event store and the read model.

import * as aws from "@pulumi/aws";

/** Attribute names shared with the Rust adapters. */
export const EVENTS_HASH_KEY = "stream_id";
export const EVENTS_RANGE_KEY = "version";
export const EVENTS_TTL_ATTRIBUTE = "expires_at";
export const ITEMS_HASH_KEY = "id";

export interface Tables {
    events: aws.dynamodb.Table;
    items: aws.dynamodb.Table;
}

export function createTables(opts: { eventsDeletionProtection: boolean }): Tables {
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
        pointInTimeRecovery: { enabled: true },
        serverSideEncryption: { enabled: true },
        ttl: { attributeName: EVENTS_TTL_ATTRIBUTE, enabled: true },
        // The log is the truth: a `pulumi destroy` must not take it along by
        // accident (docs/deploy.md says how to tear down on purpose).
        deletionProtectionEnabled: opts.eventsDeletionProtection,
    });

    // Read model, rebuilt by the projector (or by `items replay`).
    const items = new aws.dynamodb.Table("items", {
        billingMode: "PAY_PER_REQUEST",
        hashKey: ITEMS_HASH_KEY,
        attributes: [{ name: ITEMS_HASH_KEY, type: "S" }],
        pointInTimeRecovery: { enabled: true },
        serverSideEncryption: { enabled: true },
    });

    return { events, items };
}
