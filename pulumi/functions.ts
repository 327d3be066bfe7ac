// The four Lambda functions built by cargo-lambda, their log groups and roles.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { LambdaName, Settings, lambdaArchivePath, namePrefix } from "./config";
import { FunctionRole, PolicyStatement, createFunctionRole, logStatement, xrayStatement } from "./iam";
import { ITEMS_BY_CREATOR_INDEX, ITEM_STREAM_PREFIX, SNAPSHOT_PREFIX, Tables, itemsTableLogicalName } from "./tables";

/** Partition prefix of the projector's quarantine in the events table (`items_aws::quarantine::QUARANTINE_PREFIX`). */
export const QUARANTINE_PREFIX = "quarantine#";

/**
 * Limits a statement on the events table to item streams (`item#<id>`
 * partitions): no idempotency record (`idem#<sub>#<key>`: other callers'
 * keys and stored answers), snapshot or quarantine item. IAM checks every
 * partition key the request names (`ForAllValues`).
 */
export const ITEM_STREAMS_ONLY = { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [`${ITEM_STREAM_PREFIX}*`] } };

/** The same for the events table's snapshot items (`snap#<id>`). */
export const SNAPSHOTS_ONLY = { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [`${SNAPSHOT_PREFIX}*`] } };

export interface LambdaBundle {
    key: LambdaName;
    /** Deterministic physical name, `<project>-<stack>-<key>`. */
    functionName: string;
    fn: aws.lambda.Function;
    logGroup: aws.cloudwatch.LogGroup;
    role: aws.iam.Role;
    policy: aws.iam.RolePolicy;
    /** Its grants on the live read table, a policy named by the table's generation (when it has any). */
    readTablePolicy?: aws.iam.RolePolicy;
}

export interface Functions {
    postItem: LambdaBundle;
    getItems: LambdaBundle;
    itemCommands: LambdaBundle;
    projectEvents: LambdaBundle;
    cursorSigningKey: random.RandomPassword;
}

interface LambdaSpec {
    key: LambdaName;
    description: string;
    memorySize: number;
    timeout: number;
    environment: Record<string, pulumi.Input<string>>;
    statements: PolicyStatement[];
    /**
     * Grants on the live read table and its index: an inline policy of
     * their own, `<function>-<table's logical name>-policy`.
     */
    readTableStatements?: PolicyStatement[];
}

/**
 * The logical name of a function's policy on the live read table of
 * generation `generation`: `get-items-items-policy` for generation 1,
 * `get-items-items-v2-policy` for 2. Switching generations replaces it: the
 * new one is created before the function moves to the new table, the old one
 * deleted at the end of that `pulumi up`, after the function has moved, so no
 * read of either table is refused on the way (docs/deploy.md, the switch).
 */
export function readTablePolicyName(key: LambdaName, generation: number): string {
    return `${key}-${itemsTableLogicalName(generation)}-policy`;
}

/** Lambda's own limit on function names. */
const MAX_FUNCTION_NAME = 64;

export function functionName(key: LambdaName): string {
    const name = `${namePrefix()}-${key}`;
    if (name.length > MAX_FUNCTION_NAME) {
        throw new Error(`function name "${name}" is longer than ${MAX_FUNCTION_NAME} characters; use a shorter stack name`);
    }
    return name;
}

/**
 * The order one `pulumi up` updates the functions in. Readers decode the
 * events table (the projector, and get-items folding a stream for
 * `?version=`/`?at=`); writers append to it. Each writer depends on every
 * reader, so a new event schema is readable before it can be written: a
 * build before a schema refuses it (the projector quarantines the record and
 * holds back its item until a redrive). `WRITE_EVENT_SCHEMAS`
 * (`writeEventSchemas`) goes to the writers alone. See docs/deploy.md,
 * "Event schema changes: two-step rollout".
 */
export const ROLLOUT = {
    readers: ["project-events", "get-items"],
    writers: ["post-item", "item-commands"],
} as const satisfies { readers: readonly LambdaName[]; writers: readonly LambdaName[] };

function createLambda(settings: Settings, spec: LambdaSpec, after: pulumi.Resource[] = []): LambdaBundle {
    const name = functionName(spec.key);
    // Created explicitly (rather than on first invocation) so that retention is
    // managed, the role does not need logs:CreateLogGroup, and the group goes
    // away with the stack.
    const logGroup = new aws.cloudwatch.LogGroup(`${spec.key}-logs`, {
        name: `/aws/lambda/${name}`,
        retentionInDays: settings.logRetentionDays,
    });
    const own = spec.readTableStatements
        ? [{ logical: readTablePolicyName(spec.key, settings.readTables.live), statements: spec.readTableStatements }]
        : [];
    const { role, policy, policies }: FunctionRole = createFunctionRole(
        spec.key,
        [...spec.statements, logStatement(logGroup.arn), ...(settings.tracing ? [xrayStatement()] : [])],
        own,
    );
    const fn = new aws.lambda.Function(
        spec.key,
        {
            name,
            description: spec.description,
            role: role.arn,
            runtime: "provided.al2023",
            handler: "bootstrap",
            architectures: [settings.architecture],
            // Refused at preview when the zip's bootstrap is of another architecture.
            code: new pulumi.asset.FileArchive(
                lambdaArchivePath(settings.lambdaArtifactsDir, spec.key, { architecture: settings.architecture }),
            ),
            memorySize: spec.memorySize,
            timeout: spec.timeout,
            tracingConfig: { mode: settings.tracing ? "Active" : "PassThrough" },
            environment: { variables: spec.environment },
            loggingConfig: {
                logFormat: "JSON",
                applicationLogLevel: settings.logLevel,
                // INFO keeps the platform's START and REPORT records (duration,
                // max memory, init duration, timeouts).
                systemLogLevel: "INFO",
                logGroup: logGroup.name,
            },
        },
        // The policies must exist before the function runs (and before the
        // event source mapping validates the role's stream permissions):
        // the function moves to a new read table only once its grants on
        // that table exist. `after`: a writer waits for the readers (ROLLOUT).
        { dependsOn: [policy, ...policies, logGroup, ...after] },
    );
    return { key: spec.key, functionName: name, fn, logGroup, role, policy, readTablePolicy: policies[0] };
}

export function createFunctions(settings: Settings, tables: Tables, dlq: aws.sqs.Queue): Functions {
    // `tables.items` is the live read table: ITEMS_TABLE and every grant on a
    // read table name it alone. A rebuild table (`tables.itemsRebuild`) is
    // filled by `items replay --into` with the operator's credentials, so no
    // function can read or write it before the switch.
    const tableEnv = {
        EVENTS_TABLE: tables.events.name,
        ITEMS_TABLE: tables.items.name,
    };
    // The API functions add Access-Control-Allow-Origin for this origin to their
    // own responses (API Gateway only adds it to preflights and its own errors).
    const corsEnv = { CORS_ALLOWED_ORIGINS: settings.api.corsAllowedOrigin };

    // Only the writers append events: the newest schema set they may write.
    const writerEnv = { WRITE_EVENT_SCHEMAS: String(settings.writeEventSchemas) };

    // HMAC key for the opaque pagination cursors handed out by get-items.
    const cursorSigningKey = new random.RandomPassword("cursor-signing-key", {
        length: 48,
        special: false,
    });

    const specs: Record<LambdaName, LambdaSpec> = {
        "post-item": {
            key: "post-item",
            description: "POST /items: validates the command and appends an ItemCreated event",
            memorySize: settings.apiMemorySizeMb,
            timeout: settings.apiTimeoutSeconds,
            environment: {
                ...tableEnv,
                ...corsEnv,
                IDEMPOTENCY_TTL_SECONDS: String(settings.idempotencyTtlSeconds),
            },
            statements: [
                {
                    sid: "AppendEvents",
                    actions: ["dynamodb:PutItem", "dynamodb:GetItem"],
                    resources: [tables.events.arn],
                },
                {
                    // After a refused write that is not its own retry (an id
                    // collision, a keyed create that kept losing to other
                    // transactions): the stream's head, for the 409.
                    sid: "ReadStreamHead",
                    actions: ["dynamodb:Query"],
                    resources: [tables.events.arn],
                    condition: ITEM_STREAMS_ONLY,
                },
            ],
        },

        "get-items": {
            key: "get-items",
            description: "GET /items and GET /items/{id}: reads the items read model (and its by-creator index), and an item's stream for ?version/?at",
            memorySize: settings.apiMemorySizeMb,
            timeout: settings.apiTimeoutSeconds,
            environment: {
                ...tableEnv,
                ...corsEnv,
                CURSOR_SIGNING_KEY: pulumi.secret(cursorSigningKey.result),
            },
            readTableStatements: [
                {
                    sid: "ReadItems",
                    actions: ["dynamodb:Scan", "dynamodb:GetItem"],
                    resources: [tables.items.arn],
                },
                {
                    // `?createdBy=`: that one index of the live table; a grant on
                    // the table does not reach its indexes.
                    sid: "QueryItemsByCreator",
                    actions: ["dynamodb:Query"],
                    resources: [pulumi.interpolate`${tables.items.arn}/index/${ITEMS_BY_CREATOR_INDEX}`],
                },
            ],
            statements: [
                {
                    // `?version=` / `?at=`: folds one item's stream (consistent
                    // reads); no other partition of the log (security review
                    // N10: idempotency records hold other callers' answers).
                    sid: "ReadItemStreams",
                    actions: ["dynamodb:Query"],
                    resources: [tables.events.arn],
                    condition: ITEM_STREAMS_ONLY,
                },
                {
                    // ... from the item's snapshot when the point is at or
                    // after it (HistoryService::item_at).
                    sid: "ReadSnapshots",
                    actions: ["dynamodb:GetItem"],
                    resources: [tables.events.arn],
                    condition: SNAPSHOTS_ONLY,
                },
            ],
        },

        "item-commands": {
            key: "item-commands",
            description: "PATCH and DELETE /items/{id}, GET /items/{id}/events: decides on the item's event stream",
            memorySize: settings.apiMemorySizeMb,
            timeout: settings.apiTimeoutSeconds,
            environment: {
                EVENTS_TABLE: tables.events.name,
                ...corsEnv,
                IDEMPOTENCY_TTL_SECONDS: String(settings.idempotencyTtlSeconds),
            },
            statements: [
                {
                    // Query reads a stream (and the history); PutItem and
                    // ConditionCheckItem are what TransactWriteItems checks per item.
                    sid: "ReadAndAppendEvents",
                    actions: ["dynamodb:Query", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:ConditionCheckItem"],
                    resources: [tables.events.arn],
                },
            ],
        },

        "project-events": {
            key: "project-events",
            description: "DynamoDB stream consumer: projects item events into the items table",
            memorySize: settings.projectorMemorySizeMb,
            timeout: settings.projectorTimeoutSeconds,
            environment: tableEnv,
            readTableStatements: [
                {
                    // GetItem: an update applies to the state right before it.
                    sid: "WriteReadModel",
                    actions: ["dynamodb:PutItem", "dynamodb:GetItem"],
                    resources: [tables.items.arn],
                },
            ],
            statements: [
                {
                    // Only when an update does not follow on from the read model's
                    // state: the item's stream is folded instead.
                    sid: "ReadItemHistory",
                    actions: ["dynamodb:Query"],
                    resources: [tables.events.arn],
                    condition: ITEM_STREAMS_ONLY,
                },
                {
                    // What Lambda's guide lists for reading a DynamoDB stream, on
                    // the stream these actions are evaluated against.
                    sid: "ReadEventStream",
                    actions: ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
                    resources: [tables.events.streamArn],
                },
                {
                    // Also in that list, and without a resource type in IAM: only
                    // `*` grants it (on the stream ARN it would be inert). It lists
                    // stream ARNs, nothing of their records.
                    sid: "ListEventStreams",
                    actions: ["dynamodb:ListStreams"],
                    resources: ["*"],
                },
                {
                    // The quarantine: a record it cannot apply is set aside as an
                    // item of its own in the events table, under keys that start
                    // `quarantine#` (no event, no idempotency record can be written).
                    sid: "SetAsidePoison",
                    actions: ["dynamodb:PutItem"],
                    resources: [tables.events.arn],
                    condition: { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [`${QUARANTINE_PREFIX}*`] } },
                },
                {
                    sid: "SendFailuresToDlq",
                    actions: ["sqs:SendMessage"],
                    resources: [dlq.arn],
                },
            ],
        },
    };

    // Readers first; each writer depends on all of them (ROLLOUT).
    const readers = ROLLOUT.readers.map((key) => createLambda(settings, specs[key]));
    const after = readers.map((r) => r.fn);
    const writers = ROLLOUT.writers.map((key) =>
        createLambda(settings, { ...specs[key], environment: { ...specs[key].environment, ...writerEnv } }, after),
    );
    const bundle = (key: LambdaName): LambdaBundle => {
        const found = [...readers, ...writers].find((b) => b.key === key);
        if (found === undefined) {
            throw new Error(`function ${key} is neither a reader nor a writer in ROLLOUT`);
        }
        return found;
    };

    return {
        postItem: bundle("post-item"),
        getItems: bundle("get-items"),
        itemCommands: bundle("item-commands"),
        projectEvents: bundle("project-events"),
        cursorSigningKey,
    };
}
