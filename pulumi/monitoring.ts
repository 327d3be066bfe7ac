// What operators watch: alarms to an SNS topic (optionally e-mailed) and a
// CloudWatch dashboard with the same figures. The functions' own metrics
// (items created, projected, lag...) arrive in Embedded Metric Format under
// METRICS_NAMESPACE (see adapters/aws/src/metrics.rs).

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { STAGE_NAME } from "./api";
import { Settings, namePrefix } from "./config";
import { Functions, LambdaBundle } from "./functions";
import { ITEMS_BY_CREATOR_INDEX } from "./tables";

/** The EMF namespace of the functions' metrics (the Rust side uses the same). */
export const METRICS_NAMESPACE = "ItemsApi";
/** Five minutes: alarm periods and dashboard granularity. */
export const PERIOD_SECONDS = 300;

export interface Monitoring {
    topic: aws.sns.Topic;
    emailSubscription?: aws.sns.TopicSubscription;
    alarms: aws.cloudwatch.MetricAlarm[];
    dashboard: aws.cloudwatch.Dashboard;
}

interface AlarmSpec {
    key: string;
    description: string;
    args: Omit<aws.cloudwatch.MetricAlarmArgs, "alarmActions" | "okActions" | "alarmDescription" | "name">;
}

export function createMonitoring(
    settings: Settings,
    fns: Functions,
    restApiName: pulumi.Input<string>,
    dlq: aws.sqs.Queue,
    readTable: aws.dynamodb.Table,
): Monitoring {
    const prefix = namePrefix();
    const topic = new aws.sns.Topic("alarms", { name: `${prefix}-alarms` });
    const emailSubscription = settings.monitoring.alarmEmail
        ? new aws.sns.TopicSubscription("alarms-email", {
              topic: topic.arn,
              protocol: "email",
              endpoint: settings.monitoring.alarmEmail,
          })
        : undefined;

    const lambdas: LambdaBundle[] = [fns.postItem, fns.getItems, fns.itemCommands, fns.projectEvents];
    const apiDimensions = { ApiName: restApiName, Stage: STAGE_NAME };
    const specs: AlarmSpec[] = [
        {
            key: "projector-iterator-age",
            description: "The projector is behind: the oldest stream record it read waited longer than the threshold.",
            args: {
                namespace: "AWS/Lambda",
                metricName: "IteratorAge",
                dimensions: { FunctionName: fns.projectEvents.functionName },
                statistic: "Maximum",
                period: 60,
                evaluationPeriods: 5,
                threshold: settings.monitoring.iteratorAgeAlarmMs,
                comparisonOperator: "GreaterThanThreshold",
                treatMissingData: "notBreaching",
            },
        },
        {
            key: "projector-dlq-visible",
            description: "The projector gave up on a stream batch: it is described in the DLQ (the events are still in the log; replay).",
            args: {
                namespace: "AWS/SQS",
                metricName: "ApproximateNumberOfMessagesVisible",
                dimensions: { QueueName: dlq.name },
                statistic: "Maximum",
                period: 60,
                evaluationPeriods: 1,
                threshold: 0,
                comparisonOperator: "GreaterThanThreshold",
                treatMissingData: "notBreaching",
            },
        },
        {
            // Sent for stream event source mappings too: "For event source
            // mappings, Lambda supports destinations for stream sources
            // (DynamoDB and Kinesis)" (Lambda guide, Types of metrics for
            // Lambda functions, DestinationDeliveryFailures).
            key: "projector-destination-failures",
            description:
                "The projector gave up on a stream batch and could not describe it in the DLQ either: nothing records which events were skipped (they are still in the log; replay).",
            args: {
                namespace: "AWS/Lambda",
                metricName: "DestinationDeliveryFailures",
                dimensions: { FunctionName: fns.projectEvents.functionName },
                statistic: "Sum",
                period: 60,
                evaluationPeriods: 1,
                threshold: 0,
                comparisonOperator: "GreaterThanThreshold",
                treatMissingData: "notBreaching",
            },
        },
        ...(
            [
                ["RecordsQuarantined", "projector-quarantined", "The projector set a record it cannot apply aside in the quarantine: its item waits (items quarantine --dynamodb; --redrive once the cause is fixed)."],
                ["RecordsOfNewerCode", "projector-newer-code", "The projector met an event type or schema it does not know: a writer was deployed before it (docs/deploy.md, two-step rollout); its item waits in the quarantine until a redrive with the new code."],
            ] as const
        ).map(
            ([metricName, key, description]): AlarmSpec => ({
                key,
                description,
                args: anyInPeriod(METRICS_NAMESPACE, metricName, { Function: "project-events" }),
            }),
        ),
        // The live read table's writes (the projector's PutItems) and its
        // by-creator index's: every PutItem of an item the index holds is
        // also an index write, and when the index cannot take it the table
        // write is throttled too; one creator's items share that creator's
        // 16 index shards (`creatorShard`). `WriteThrottleEvents` counts each
        // throttled event, the table's under `TableName` alone, an index's
        // only under `TableName` + `GlobalSecondaryIndexName`; DynamoDB
        // publishes it for on-demand tables and indexes too (the per-cause
        // metrics, e.g. `WriteKeyRangeThroughputThrottleEvents` for one hot
        // partition, are on the dashboard):
        // https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/metrics-dimensions.html
        // https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/TroubleshootingThrottling-cloudwatch.html
        ...(
            [
                ["items-write-throttles", {}, "Writes to the live read table were throttled: the projector retries them (its iterator age grows) and GET falls behind the log until they pass."],
                [
                    "items-by-creator-write-throttles",
                    { GlobalSecondaryIndexName: ITEMS_BY_CREATOR_INDEX },
                    `Writes to the read table's ${ITEMS_BY_CREATOR_INDEX} index were throttled (one creator's items share 16 index partitions): the table write is throttled with it, and the projector retries (docs/scaling.md).`,
                ],
            ] as const
        ).map(
            ([key, index, description]): AlarmSpec => ({
                key,
                description,
                args: anyInPeriod("AWS/DynamoDB", "WriteThrottleEvents", { TableName: readTable.name, ...index }),
            }),
        ),
        ...lambdas.flatMap((f): AlarmSpec[] =>
            (["Errors", "Throttles"] as const).map((metricName) => ({
                key: `${f.key}-${metricName.toLowerCase()}`,
                description: `${f.key}: ${metricName.toLowerCase()} in the last 5 minutes.`,
                args: {
                    namespace: "AWS/Lambda",
                    metricName,
                    dimensions: { FunctionName: f.functionName },
                    statistic: "Sum",
                    period: PERIOD_SECONDS,
                    evaluationPeriods: 1,
                    threshold: 0,
                    comparisonOperator: "GreaterThanThreshold",
                    treatMissingData: "notBreaching",
                },
            })),
        ),
        {
            key: "api-5xx-rate",
            description: `More than ${settings.monitoring.api5xxAlarmPercent}% of API requests answered 5XX over 5 minutes.`,
            args: {
                // 5XXError's Average is the share of requests that were 5XX.
                namespace: "AWS/ApiGateway",
                metricName: "5XXError",
                dimensions: apiDimensions,
                statistic: "Average",
                period: PERIOD_SECONDS,
                evaluationPeriods: 1,
                threshold: settings.monitoring.api5xxAlarmPercent / 100,
                comparisonOperator: "GreaterThanThreshold",
                treatMissingData: "notBreaching",
            },
        },
        {
            key: "api-p99-latency",
            description: `API p99 latency above ${settings.monitoring.apiP99LatencyAlarmMs} ms for 15 minutes.`,
            args: {
                namespace: "AWS/ApiGateway",
                metricName: "Latency",
                dimensions: apiDimensions,
                extendedStatistic: "p99",
                period: PERIOD_SECONDS,
                evaluationPeriods: 3,
                threshold: settings.monitoring.apiP99LatencyAlarmMs,
                comparisonOperator: "GreaterThanThreshold",
                treatMissingData: "notBreaching",
            },
        },
    ];
    const alarms = specs.map(
        (spec) =>
            new aws.cloudwatch.MetricAlarm(spec.key, {
                ...spec.args,
                name: `${prefix}-${spec.key}`,
                alarmDescription: spec.description,
                alarmActions: [topic.arn],
                okActions: [topic.arn],
            }),
    );

    const dashboard = new aws.cloudwatch.Dashboard("dashboard", {
        dashboardName: prefix,
        dashboardBody: pulumi
            .all([
                aws.getRegionOutput().region,
                restApiName,
                dlq.name,
                readTable.name,
                ...lambdas.map((f) => pulumi.output(f.functionName)),
            ])
            .apply(([region, apiName, queueName, tableName, ...functionNames]) =>
                JSON.stringify(dashboardBody(region, apiName, queueName, tableName, functionNames, settings)),
            ),
    });

    return { topic, emailSubscription, alarms, dashboard };
}

type Metric = (string | Record<string, string>)[];

/**
 * Every count the functions emit (adapters/aws/src/metrics.rs), by the
 * `Function` dimension's value each Lambda main gives it.
 */
export const FUNCTION_METRICS: [string, string][] = [
    ["post-item", "ItemsCreated"],
    ["post-item", "IdempotentRepeats"],
    ["item-commands", "ItemsUpdated"],
    ["item-commands", "ItemsDeleted"],
    ["item-commands", "IdempotentRepeats"],
    ["project-events", "RecordsProjected"],
    ["project-events", "RecordsAlreadyNewer"],
    ["project-events", "RecordsFailed"],
    ["project-events", "RecordsQuarantined"],
    ["project-events", "RecordsOfNewerCode"],
];

/** An alarm on any count of `metricName` in one period (five minutes). */
function anyInPeriod(
    namespace: string,
    metricName: string,
    dimensions: Record<string, pulumi.Input<string>>,
): AlarmSpec["args"] {
    return {
        namespace,
        metricName,
        dimensions,
        statistic: "Sum",
        period: PERIOD_SECONDS,
        evaluationPeriods: 1,
        threshold: 0,
        comparisonOperator: "GreaterThanThreshold",
        treatMissingData: "notBreaching",
    };
}

/** One of the functions' own metrics (EMF, METRICS_NAMESPACE). */
function own(fn: string, name: string, stat: string): Metric {
    return [METRICS_NAMESPACE, name, "Function", fn, { stat }];
}

function widget(title: string, metrics: Metric[], region: string, extra: Record<string, unknown> = {}) {
    return {
        type: "metric",
        width: 12,
        height: 6,
        properties: { title, region, metrics, period: PERIOD_SECONDS, view: "timeSeries", ...extra },
    };
}

/** The dashboard: the alarms' figures, and the functions' own metrics. */
export function dashboardBody(
    region: string,
    apiName: string,
    queueName: string,
    tableName: string,
    functionNames: string[],
    settings: Settings,
) {
    const api = ["ApiName", apiName, "Stage", STAGE_NAME];
    const index = ["TableName", tableName, "GlobalSecondaryIndexName", ITEMS_BY_CREATOR_INDEX];
    const projector = functionNames[functionNames.length - 1];
    return {
        widgets: [
            widget("API requests and 5XX", [["AWS/ApiGateway", "Count", ...api, { stat: "Sum" }], ["AWS/ApiGateway", "5XXError", ...api, { stat: "Sum" }], ["AWS/ApiGateway", "4XXError", ...api, { stat: "Sum" }]], region),
            widget("API latency p99 (ms)", [["AWS/ApiGateway", "Latency", ...api, { stat: "p99" }], ["AWS/ApiGateway", "IntegrationLatency", ...api, { stat: "p99" }]], region, {
                annotations: { horizontal: [{ label: "alarm", value: settings.monitoring.apiP99LatencyAlarmMs }] },
            }),
            widget("Function errors and throttles", functionNames.flatMap((name) => [["AWS/Lambda", "Errors", "FunctionName", name, { stat: "Sum" }], ["AWS/Lambda", "Throttles", "FunctionName", name, { stat: "Sum" }]]), region),
            widget("Projector iterator age (ms)", [["AWS/Lambda", "IteratorAge", "FunctionName", projector, { stat: "Maximum" }]], region, {
                annotations: { horizontal: [{ label: "alarm", value: settings.monitoring.iteratorAgeAlarmMs }] },
            }),
            widget("Projector DLQ messages and failed deliveries to it", [["AWS/SQS", "ApproximateNumberOfMessagesVisible", "QueueName", queueName, { stat: "Maximum" }], ["AWS/Lambda", "DestinationDeliveryFailures", "FunctionName", projector, { stat: "Sum" }]], region),
            widget("Read table write throttles (table, by-creator index; one hot index partition)", [["AWS/DynamoDB", "WriteThrottleEvents", "TableName", tableName, { stat: "Sum" }], ["AWS/DynamoDB", "WriteThrottleEvents", ...index, { stat: "Sum" }], ["AWS/DynamoDB", "WriteKeyRangeThroughputThrottleEvents", ...index, { stat: "Sum" }]], region),
            widget("Items created, changed and projected", FUNCTION_METRICS.map(([fn, name]) => own(fn, name, "Sum")), region),
            widget("Projection lag (ms, event time to projection)", [own("project-events", "ProjectionLag", "p99"), own("project-events", "ProjectionLag", "Maximum")], region),
        ],
    };
}
