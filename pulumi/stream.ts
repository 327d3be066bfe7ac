// The projector's trigger: events table stream -> project-events, failures -> SQS DLQ.

import * as aws from "@pulumi/aws";
import { Settings } from "./config";
import { EVENTS_HASH_KEY, ITEM_STREAM_PREFIX } from "./tables";

/** 14 days, the SQS maximum. */
export const DLQ_RETENTION_SECONDS = 14 * 24 * 60 * 60;

/**
 * Only new item events reach the projector: idempotency records
 * (stream_id "idem#...") and TTL deletions are filtered out by Lambda.
 */
export const STREAM_FILTER_PATTERN = JSON.stringify({
    eventName: ["INSERT"],
    dynamodb: { Keys: { [EVENTS_HASH_KEY]: { S: [{ prefix: ITEM_STREAM_PREFIX }] } } },
});

export function createDlq(): aws.sqs.Queue {
    // Receives a description (shard, sequence numbers) of every batch the
    // projector gave up on; the records themselves stay in the events table.
    return new aws.sqs.Queue("projector-dlq", {
        messageRetentionSeconds: DLQ_RETENTION_SECONDS,
        sqsManagedSseEnabled: true,
    });
}

export function createStreamTrigger(
    settings: Settings,
    events: aws.dynamodb.Table,
    projector: aws.lambda.Function,
    dlq: aws.sqs.Queue,
): aws.lambda.EventSourceMapping {
    return new aws.lambda.EventSourceMapping("project-events-stream", {
        eventSourceArn: events.streamArn,
        functionName: projector.arn,
        startingPosition: "TRIM_HORIZON",
        batchSize: settings.stream.batchSize,
        // Batches of one shard at once; the projector converges whatever the
        // order of an item's records
        // (docs/scaling.md, "The projector, per shard").
        parallelizationFactor: settings.stream.parallelizationFactor,
        maximumBatchingWindowInSeconds: settings.stream.maximumBatchingWindowInSeconds,
        bisectBatchOnFunctionError: true,
        maximumRetryAttempts: settings.stream.maximumRetryAttempts,
        maximumRecordAgeInSeconds: settings.stream.maximumRecordAgeInSeconds,
        functionResponseTypes: ["ReportBatchItemFailures"],
        destinationConfig: { onFailure: { destinationArn: dlq.arn } },
        filterCriteria: { filters: [{ pattern: STREAM_FILTER_PATTERN }] },
    });
}
