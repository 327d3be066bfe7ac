// The program with the minimal (default) configuration, against mocks.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, test } from "node:test";
import { LAMBDA_NAMES, PROJECT_DIR } from "../config";
import { ROLLOUT } from "../functions";
import { METRICS_NAMESPACE } from "../monitoring";
import { ITEMS_BY_CREATOR_INDEX, ITEMS_CREATED_AT_KEY, ITEMS_CREATOR_SHARD_KEY } from "../tables";
import {
    ACCOUNT,
    Program,
    REGION,
    Registered,
    loadProgram,
    parsePolicy,
    stackConfig,
    unsecret,
    urnOf,
    writePolicies,
} from "./harness";

const FN = "aws:lambda/function:Function";
const METHOD = "aws:apigateway/method:Method";
const INTEGRATION = "aws:apigateway/integration:Integration";
const ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy";

const EVENTS_ARN = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/events-1a2b3c4`;
const EVENTS_STREAM_ARN = `${EVENTS_ARN}/stream/2024-01-01T00:00:00.000`;
const ITEMS_ARN = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/items-1a2b3c4`;
const ITEMS_BY_CREATOR_ARN = `${ITEMS_ARN}/index/by-creator-shard`;
const DLQ_ARN = `arn:aws:sqs:${REGION}:${ACCOUNT}:projector-dlq-1a2b3c4`;
const logGroupArn = (fn: string) => `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:/aws/lambda/items-api-test-${fn}`;
const invokeArn = (fn: string) =>
    `arn:aws:apigateway:${REGION}:lambda:path/2015-03-31/functions/arn:aws:lambda:${REGION}:${ACCOUNT}:function:items-api-test-${fn}/invocations`;

let p: Program;

before(async () => {
    p = await loadProgram(stackConfig());
});

/** API path of a Method/Integration, from the Resource it is attached to. */
function resourcePath(r: Registered): string {
    const byId: Record<string, string> = {
        "items-id": "/items",
        "item-id": "/items/{id}",
        "item-events-id": "/items/{id}/events",
    };
    const found = byId[r.inputs.resourceId];
    assert.ok(found, `unknown resourceId ${r.inputs.resourceId}`);
    return found;
}

test("table key schemas and settings", () => {
    const events = p.get("aws:dynamodb/table:Table", "events").inputs;
    assert.equal(events.hashKey, "stream_id");
    assert.equal(events.rangeKey, "version");
    assert.deepEqual(
        [...events.attributes].sort((a: any, b: any) => a.name.localeCompare(b.name)),
        [
            { name: "stream_id", type: "S" },
            { name: "version", type: "N" },
        ],
    );
    assert.equal(events.billingMode, "PAY_PER_REQUEST");
    assert.deepEqual(events.pointInTimeRecovery, { enabled: true });
    assert.deepEqual(events.serverSideEncryption, { enabled: true });
    assert.deepEqual(events.ttl, { attributeName: "expires_at", enabled: true });

    // One read table by default, generation 1 under its original logical name.
    assert.deepEqual(p.ofType("aws:dynamodb/table:Table").map((t) => t.name).sort(), ["events", "items"]);
    const items = p.get("aws:dynamodb/table:Table", "items").inputs;
    assert.equal(items.hashKey, "id");
    assert.equal(items.rangeKey, undefined);
    // Every key attribute of the table and of its index, and no other.
    assert.deepEqual(
        [...items.attributes].sort((a: any, b: any) => a.name.localeCompare(b.name)),
        [
            { name: "createdAt", type: "S" },
            { name: "creatorShard", type: "S" },
            { name: "id", type: "S" },
        ],
    );
    assert.equal(items.billingMode, "PAY_PER_REQUEST");
    assert.deepEqual(items.pointInTimeRecovery, { enabled: false }, "a read table is rebuilt from the log, not restored");
    assert.deepEqual(items.serverSideEncryption, { enabled: true });
    assert.equal(items.streamEnabled, undefined);
    // Tombstones of deleted items expire; live items never carry the attribute.
    assert.deepEqual(items.ttl, { attributeName: "expires_at", enabled: true });
    assert.equal(items.deletionProtectionEnabled, undefined, "a read table is disposable: rebuilt from the log");
});

test("the read table's by-creator index: the creator's shard, then createdAt, every attribute projected", () => {
    // The names the Rust adapter writes and queries (items_aws::dynamodb::codec):
    // a program and a build that disagree would answer every ?createdBy= with 503.
    assert.deepEqual(
        [ITEMS_BY_CREATOR_INDEX, ITEMS_CREATOR_SHARD_KEY, ITEMS_CREATED_AT_KEY],
        ["by-creator-shard", "creatorShard", "createdAt"],
    );
    const codec = fs.readFileSync(path.join(PROJECT_DIR, "..", "adapters", "aws", "src", "dynamodb", "codec.rs"), "utf8");
    for (const [rust, value] of [
        ["ITEMS_BY_CREATOR_INDEX", ITEMS_BY_CREATOR_INDEX],
        ["ITEMS_CREATOR_SHARD_KEY", ITEMS_CREATOR_SHARD_KEY],
        ["ITEMS_CREATED_AT_KEY", ITEMS_CREATED_AT_KEY],
    ]) {
        assert.match(codec, new RegExp(`pub const ${rust}: &str = "${value}";`), rust);
    }
    const items = p.get("aws:dynamodb/table:Table", "items").inputs;
    // Exactly these fields: on demand, the index has no capacity settings either.
    assert.deepEqual(items.globalSecondaryIndexes, [
        { name: "by-creator-shard", hashKey: "creatorShard", rangeKey: "createdAt", projectionType: "ALL" },
    ]);
    assert.equal(items.localSecondaryIndexes, undefined);
    assert.equal(p.get("aws:dynamodb/table:Table", "events").inputs.globalSecondaryIndexes, undefined);
});

// Deploy review N9: the provider waits for a new index to be ACTIVE, by
// default at most 60 minutes; past that `pulumi up` fails while DynamoDB
// goes on building it.
test("pulumi up waits up to 4 hours for a read table's update (an index build)", () => {
    assert.equal(p.get("aws:dynamodb/table:Table", "items").options.customTimeouts.update, "4h");
    assert.equal(p.get("aws:dynamodb/table:Table", "events").options.customTimeouts.update, "", "the harness reads the option");
});

test("events table stream settings", () => {
    const events = p.get("aws:dynamodb/table:Table", "events").inputs;
    assert.equal(events.streamEnabled, true);
    assert.equal(events.streamViewType, "NEW_IMAGE");
});

test("event source mapping: TRIM_HORIZON, partial batch failures, bisect, retries until 23 h old, DLQ, INSERT+prefix filter", () => {
    const mappings = p.ofType("aws:lambda/eventSourceMapping:EventSourceMapping");
    assert.equal(mappings.length, 1);
    const m = mappings[0].inputs;
    assert.equal(m.eventSourceArn, EVENTS_STREAM_ARN);
    assert.equal(m.functionName, `arn:aws:lambda:${REGION}:${ACCOUNT}:function:items-api-test-project-events`);
    assert.equal(m.startingPosition, "TRIM_HORIZON");
    assert.equal(m.batchSize, 100);
    assert.equal(m.parallelizationFactor, 2);
    assert.equal(m.maximumBatchingWindowInSeconds, 1);
    assert.equal(m.bisectBatchOnFunctionError, true);
    // Dependency failures wait (the handler sets poison aside itself), until
    // an hour before DynamoDB Streams would trim the record.
    assert.equal(m.maximumRetryAttempts, -1);
    assert.equal(m.maximumRecordAgeInSeconds, 82800);
    assert.deepEqual(m.functionResponseTypes, ["ReportBatchItemFailures"]);
    assert.deepEqual(m.destinationConfig, { onFailure: { destinationArn: DLQ_ARN } });
    assert.equal(m.filterCriteria.filters.length, 1);
    assert.equal(
        m.filterCriteria.filters[0].pattern,
        '{"eventName":["INSERT"],"dynamodb":{"Keys":{"stream_id":{"S":[{"prefix":"item#"}]}}}}',
    );
});

test("DLQ is encrypted and keeps messages 14 days", () => {
    const q = p.get("aws:sqs/queue:Queue", "projector-dlq").inputs;
    assert.equal(q.sqsManagedSseEnabled, true);
    assert.equal(q.messageRetentionSeconds, 1209600);
});

test("each function: runtime, handler, architecture, code path, sizing, env vars, log config", async () => {
    const fns = p.ofType(FN);
    assert.deepEqual(fns.map((f) => f.name).sort(), ["get-items", "item-commands", "post-item", "project-events"]);
    const password = p.get("random:index/randomPassword:RandomPassword", "cursor-signing-key");
    const expectedEnv: Record<string, Record<string, string>> = {
        "post-item": {
            EVENTS_TABLE: "events-1a2b3c4",
            ITEMS_TABLE: "items-1a2b3c4",
            CORS_ALLOWED_ORIGINS: "http://localhost:3000",
            IDEMPOTENCY_TTL_SECONDS: "86400",
            WRITE_EVENT_SCHEMAS: "2",
        },
        "get-items": {
            EVENTS_TABLE: "events-1a2b3c4",
            ITEMS_TABLE: "items-1a2b3c4",
            CORS_ALLOWED_ORIGINS: "http://localhost:3000",
            CURSOR_SIGNING_KEY: password.state.result,
        },
        "item-commands": {
            EVENTS_TABLE: "events-1a2b3c4",
            CORS_ALLOWED_ORIGINS: "http://localhost:3000",
            IDEMPOTENCY_TTL_SECONDS: "86400",
            WRITE_EVENT_SCHEMAS: "2",
        },
        "project-events": { EVENTS_TABLE: "events-1a2b3c4", ITEMS_TABLE: "items-1a2b3c4" },
    };
    for (const f of fns) {
        const i = f.inputs;
        assert.equal(i.name, `items-api-test-${f.name}`);
        assert.equal(i.runtime, "provided.al2023");
        assert.equal(i.handler, "bootstrap");
        assert.deepEqual(i.architectures, ["x86_64"]);
        assert.equal(await i.code.path, path.join(p.artifactsDir, f.name, "bootstrap.zip"));
        assert.equal(i.memorySize, 256);
        assert.equal(i.timeout, f.name === "project-events" ? 30 : 10);
        // The signing key makes get-items' whole environment a secret.
        const env = unsecret(i.environment);
        assert.equal(env.secret, f.name === "get-items", `environment of ${f.name} secret?`);
        assert.deepEqual(env.value.variables, expectedEnv[f.name], `env of ${f.name}`);
        assert.deepEqual(i.loggingConfig, {
            logFormat: "JSON",
            applicationLogLevel: "INFO",
            systemLogLevel: "INFO",
            logGroup: `/aws/lambda/items-api-test-${f.name}`,
        });
        assert.equal(i.role, `arn:aws:iam::${ACCOUNT}:role/${f.name}-role-1a2b3c4`);
        const logGroup = p.get("aws:cloudwatch/logGroup:LogGroup", `${f.name}-logs`).inputs;
        assert.equal(logGroup.name, `/aws/lambda/items-api-test-${f.name}`);
        assert.equal(logGroup.retentionInDays, 14);
    }
});

// The functions that decode the events table, and those that append to it.
const READERS = ["project-events", "get-items"];
const WRITERS = ["post-item", "item-commands"];

test("rollout: every writer function is updated after every reader function (dependsOn)", () => {
    assert.deepEqual([...ROLLOUT.readers], READERS);
    assert.deepEqual([...ROLLOUT.writers], WRITERS);
    assert.deepEqual([...READERS, ...WRITERS].sort(), [...LAMBDA_NAMES].sort(), "each function is one or the other");
    // What the engine orders the update by: the dependencies the SDK sends
    // with each registration (a writer takes no input from a reader, so only
    // `dependsOn` puts a reader there).
    const deps = (name: string) => p.get(FN, name).options.dependencies;
    const functionDeps = (name: string) => deps(name).filter((u) => u.startsWith(urnOf(FN, "")));
    for (const name of LAMBDA_NAMES) {
        // The list is really recorded: each function waits for its policy.
        assert.ok(deps(name).includes(urnOf(ROLE_POLICY, `${name}-policy`)), `${name} after its policy`);
    }
    // And for its grants on the live read table, which its main policy waits for too.
    for (const name of ["get-items", "project-events"]) {
        assert.ok(deps(name).includes(urnOf(ROLE_POLICY, `${name}-items-policy`)), `${name} after its read-table policy`);
        assert.ok(p.get(ROLE_POLICY, `${name}-policy`).options.dependencies.includes(urnOf(ROLE_POLICY, `${name}-items-policy`)));
    }
    for (const writer of WRITERS) {
        assert.deepEqual(functionDeps(writer).sort(), READERS.map((r) => urnOf(FN, r)).sort(), `${writer} waits for the readers`);
    }
    for (const reader of READERS) {
        assert.deepEqual(functionDeps(reader), [], `${reader} waits for no function`);
    }
});

test("WRITE_EVENT_SCHEMAS (writeEventSchemas, default 2) reaches the writers alone", () => {
    for (const f of p.ofType(FN)) {
        const variables = unsecret(f.inputs.environment).value.variables;
        assert.equal(variables.WRITE_EVENT_SCHEMAS, WRITERS.includes(f.name) ? "2" : undefined, f.name);
    }
});

test("cursor signing key is a 48-character random password without specials", () => {
    const pw = p.get("random:index/randomPassword:RandomPassword", "cursor-signing-key").inputs;
    assert.equal(pw.length, 48);
    assert.equal(pw.special, false);
});

test("one role per function, assumable by Lambda only", () => {
    const roles = p.ofType("aws:iam/role:Role");
    assert.deepEqual(roles.map((r) => r.name).sort(), [
        "get-items-role",
        "item-commands-role",
        "post-item-role",
        "project-events-role",
    ]);
    for (const r of roles) {
        const doc = JSON.parse(r.inputs.assumeRolePolicy);
        assert.deepEqual(doc.Statement, [
            { Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" }, Action: "sts:AssumeRole" },
        ]);
    }
    assert.equal(p.ofType("aws:iam/rolePolicyAttachment:RolePolicyAttachment").length, 0);
});

test("role policies grant exactly the expected actions on exactly the expected resources", () => {
    const expected: Record<string, Record<string, { actions: string[]; resources: string[] }>> = {
        "post-item": {
            AppendEvents: { actions: ["dynamodb:GetItem", "dynamodb:PutItem"], resources: [EVENTS_ARN] },
            ReadStreamHead: { actions: ["dynamodb:Query"], resources: [EVENTS_ARN] },
            WriteOwnLogs: {
                actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
                resources: [`${logGroupArn("post-item")}:*`],
            },
        },
        // The live read table's grants: a policy of their own, named by its generation.
        "get-items-items": {
            ReadItems: { actions: ["dynamodb:GetItem", "dynamodb:Scan"], resources: [ITEMS_ARN] },
            // That one index, not `index/*`.
            QueryItemsByCreator: { actions: ["dynamodb:Query"], resources: [ITEMS_BY_CREATOR_ARN] },
        },
        "get-items": {
            // An item's stream and its snapshot (conditions: below), no Scan of the log.
            ReadItemStreams: { actions: ["dynamodb:Query"], resources: [EVENTS_ARN] },
            ReadSnapshots: { actions: ["dynamodb:GetItem"], resources: [EVENTS_ARN] },
            WriteOwnLogs: {
                actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
                resources: [`${logGroupArn("get-items")}:*`],
            },
        },
        "item-commands": {
            // Reads streams and the history, appends through transactions; no read table.
            ReadAndAppendEvents: {
                actions: ["dynamodb:ConditionCheckItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"],
                resources: [EVENTS_ARN],
            },
            WriteOwnLogs: {
                actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
                resources: [`${logGroupArn("item-commands")}:*`],
            },
        },
        "project-events-items": {
            WriteReadModel: { actions: ["dynamodb:GetItem", "dynamodb:PutItem"], resources: [ITEMS_ARN] },
        },
        "project-events": {
            ReadItemHistory: { actions: ["dynamodb:Query"], resources: [EVENTS_ARN] },
            ReadEventStream: {
                actions: ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"],
                resources: [EVENTS_STREAM_ARN],
            },
            ListEventStreams: { actions: ["dynamodb:ListStreams"], resources: ["*"] },
            SetAsidePoison: { actions: ["dynamodb:PutItem"], resources: [EVENTS_ARN] },
            SendFailuresToDlq: { actions: ["sqs:SendMessage"], resources: [DLQ_ARN] },
            WriteOwnLogs: {
                actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
                resources: [`${logGroupArn("project-events")}:*`],
            },
        },
    };
    const policies = p.ofType(ROLE_POLICY);
    assert.deepEqual(policies.map((r) => r.name).sort(), [
        "get-items-items-policy",
        "get-items-policy",
        "item-commands-policy",
        "post-item-policy",
        "project-events-items-policy",
        "project-events-policy",
    ]);
    for (const pol of policies) {
        const key = pol.name.replace(/-policy$/, "");
        const fn = LAMBDA_NAMES.find((f) => key === f || key === `${f}-items`)!;
        assert.equal(pol.inputs.role, `${fn}-role-1a2b3c4`, `policy ${pol.name} attached to its own role`);
        const statements = parsePolicy(pol.inputs.policy);
        const actual = Object.fromEntries(
            [...statements].map(([sid, s]) => [sid, { actions: [...s.actions].sort(), resources: [...s.resources].sort() }]),
        );
        assert.deepEqual(actual, expected[key], `statements of ${pol.name}`);
        for (const s of statements.values()) {
            for (const a of s.actions) assert.ok(!a.includes("*"), `wildcard action ${a} in ${pol.name}`);
            for (const r of s.resources) {
                const typeless = r === "*" && [...s.actions].every((a) => a === "dynamodb:ListStreams");
                const allowed = r === `${logGroupArn(fn)}:*` || typeless;
                assert.ok(allowed || !r.includes("*"), `wildcard resource ${r} in ${pol.name}`);
            }
        }
    }
});

test("every non-OPTIONS method uses the Cognito authorizer with the right scopes", () => {
    const authorizer = p.get("aws:apigateway/authorizer:Authorizer", "cognito");
    const methods = p.ofType(METHOD).filter((m) => m.inputs.httpMethod !== "OPTIONS");
    const seen = methods.map((m) => `${m.inputs.httpMethod} ${resourcePath(m)}`).sort();
    assert.deepEqual(seen, [
        "DELETE /items/{id}",
        "GET /items",
        "GET /items/{id}",
        "GET /items/{id}/events",
        "PATCH /items/{id}",
        "POST /items",
    ]);
    const expectedScopes: Record<string, string[]> = {
        "GET /items": ["items/read"],
        "GET /items/{id}": ["items/read"],
        "GET /items/{id}/events": ["items/read"],
        "POST /items": ["items/write"],
        "PATCH /items/{id}": ["items/write"],
        "DELETE /items/{id}": ["items/write"],
    };
    for (const m of methods) {
        const key = `${m.inputs.httpMethod} ${resourcePath(m)}`;
        assert.equal(m.inputs.restApi, "abc123api");
        assert.equal(m.inputs.authorization, "COGNITO_USER_POOLS", key);
        assert.equal(m.inputs.authorizerId, authorizer.id, key);
        assert.deepEqual(m.inputs.authorizationScopes, expectedScopes[key], key);
    }
});

test("the declared methods are exactly the route table's (routes.json, written by items_aws::routes)", () => {
    const table = JSON.parse(fs.readFileSync(path.join(PROJECT_DIR, "routes.json"), "utf8"));
    const methods = p.ofType(METHOD).filter((m) => m.inputs.httpMethod !== "OPTIONS");
    assert.equal(methods.length, table.routes.length);
    for (const r of table.routes) {
        const m = p.get(METHOD, `${r.operation}-method`).inputs;
        assert.equal(`${m.httpMethod} ${resourcePath({ inputs: m } as Registered)}`, `${r.method} ${r.resource}`);
        assert.deepEqual(m.authorizationScopes, [r.scope], r.operation);
        const i = p.get(INTEGRATION, `${r.operation}-integration`).inputs;
        assert.equal(i.uri, invokeArn(r.function), r.operation);
    }
    const preflight = p.ofType("aws:apigateway/integrationResponse:IntegrationResponse");
    for (const resource of new Set<string>(table.routes.map((r: any) => r.resource))) {
        const methods = table.routes.filter((r: any) => r.resource === resource).map((r: any) => r.method);
        const answer = preflight.find((x) => resourcePath(x) === resource)!.inputs.responseParameters;
        assert.equal(answer["method.response.header.Access-Control-Allow-Methods"], `'${[...methods, "OPTIONS"]}'`);
        assert.equal(answer["method.response.header.Access-Control-Allow-Headers"], `'${table.allowHeaders}'`);
        assert.equal(answer["method.response.header.Access-Control-Max-Age"], `'${table.preflightMaxAge}'`);
    }
});

test("every OPTIONS method is unauthenticated", () => {
    const options = p.ofType(METHOD).filter((m) => m.inputs.httpMethod === "OPTIONS");
    assert.deepEqual(options.map(resourcePath).sort(), ["/items", "/items/{id}", "/items/{id}/events"]);
    for (const m of options) {
        assert.equal(m.inputs.authorization, "NONE");
        assert.equal(m.inputs.authorizerId, undefined);
        assert.equal(m.inputs.authorizationScopes, undefined);
    }
});

test("the authorizer trusts the user pool's Authorization header", () => {
    const a = p.get("aws:apigateway/authorizer:Authorizer", "cognito").inputs;
    assert.equal(a.type, "COGNITO_USER_POOLS");
    assert.deepEqual(a.providerArns, [`arn:aws:cognito-idp:${REGION}:${ACCOUNT}:userpool/${REGION}_Pool123`]);
    assert.equal(a.identitySource, "method.request.header.Authorization");
    assert.equal(a.restApi, "abc123api");
});

test("integrations: Lambda proxy to the right function, MOCK for preflight", () => {
    const target: Record<string, string> = {
        "GET /items": "get-items",
        "POST /items": "post-item",
        "GET /items/{id}": "get-items",
        "PATCH /items/{id}": "item-commands",
        "DELETE /items/{id}": "item-commands",
        "GET /items/{id}/events": "item-commands",
    };
    const integrations = p.ofType(INTEGRATION);
    assert.equal(integrations.length, 9);
    for (const i of integrations) {
        const key = `${i.inputs.httpMethod} ${resourcePath(i)}`;
        if (i.inputs.httpMethod === "OPTIONS") {
            assert.equal(i.inputs.type, "MOCK", key);
            assert.deepEqual(i.inputs.requestTemplates, { "application/json": '{"statusCode": 200}' });
            continue;
        }
        assert.equal(i.inputs.type, "AWS_PROXY", key);
        assert.equal(i.inputs.integrationHttpMethod, "POST", key);
        assert.equal(i.inputs.uri, invokeArn(target[key]), key);
    }
});

test("Lambda permissions are limited to their method and path", () => {
    const exec = `arn:aws:execute-api:${REGION}:${ACCOUNT}:abc123api`;
    const perms = p
        .ofType("aws:lambda/permission:Permission")
        .map((x) => [x.inputs.function, x.inputs.sourceArn, x.inputs.principal, x.inputs.action].join(" "))
        .sort();
    assert.deepEqual(perms, [
        `items-api-test-get-items ${exec}/*/GET/items apigateway.amazonaws.com lambda:InvokeFunction`,
        `items-api-test-get-items ${exec}/*/GET/items/* apigateway.amazonaws.com lambda:InvokeFunction`,
        `items-api-test-item-commands ${exec}/*/DELETE/items/* apigateway.amazonaws.com lambda:InvokeFunction`,
        `items-api-test-item-commands ${exec}/*/GET/items/*/events apigateway.amazonaws.com lambda:InvokeFunction`,
        `items-api-test-item-commands ${exec}/*/PATCH/items/* apigateway.amazonaws.com lambda:InvokeFunction`,
        `items-api-test-post-item ${exec}/*/POST/items apigateway.amazonaws.com lambda:InvokeFunction`,
    ]);
});

test("CORS: preflight answers and gateway error responses carry the headers", () => {
    const origin = "'http://localhost:3000'";
    const headers = "'Authorization,Content-Type,Idempotency-Key,If-Match'";
    const methodsOf: Record<string, string> = {
        "/items": "'GET,POST,OPTIONS'",
        "/items/{id}": "'GET,PATCH,DELETE,OPTIONS'",
        "/items/{id}/events": "'GET,OPTIONS'",
    };
    const responses = p.ofType("aws:apigateway/integrationResponse:IntegrationResponse");
    assert.equal(responses.length, 3);
    for (const r of responses) {
        const params = r.inputs.responseParameters;
        assert.equal(r.inputs.statusCode, "200");
        assert.equal(params["method.response.header.Access-Control-Allow-Origin"], origin);
        assert.equal(params["method.response.header.Access-Control-Allow-Headers"], headers);
        assert.equal(
            params["method.response.header.Access-Control-Allow-Methods"],
            methodsOf[resourcePath(r)],
        );
    }
    for (const mr of p.ofType("aws:apigateway/methodResponse:MethodResponse")) {
        assert.equal(mr.inputs.responseParameters["method.response.header.Access-Control-Allow-Origin"], true);
    }
    const gw = p.ofType("aws:apigateway/response:Response");
    assert.deepEqual(gw.map((g) => g.inputs.responseType).sort(), [
        "DEFAULT_4XX",
        "DEFAULT_5XX",
        "MISSING_AUTHENTICATION_TOKEN",
    ]);
    for (const g of gw) {
        assert.equal(g.inputs.responseParameters["gatewayresponse.header.Access-Control-Allow-Origin"], origin);
        assert.equal(g.inputs.responseParameters["gatewayresponse.header.Access-Control-Allow-Headers"], headers);
        assert.equal(g.inputs.restApiId, "abc123api");
    }
});

test("an unknown path or method gets 404 {message: Not found}, as items serve answers", () => {
    const notFound = p.get("aws:apigateway/response:Response", "not-found").inputs;
    assert.equal(notFound.responseType, "MISSING_AUTHENTICATION_TOKEN");
    assert.equal(notFound.statusCode, "404");
    assert.deepEqual(JSON.parse(notFound.responseTemplates["application/json"]), { message: "Not found" });
});

test("REST API is regional; deployment has a trigger hash; stage v1 logs and throttles", () => {
    const api = p.get("aws:apigateway/restApi:RestApi", "api").inputs;
    assert.deepEqual(api.endpointConfiguration, { types: "REGIONAL" });

    const deployment = p.get("aws:apigateway/deployment:Deployment", "deployment").inputs;
    assert.match(deployment.triggers.redeployment, /^[0-9a-f]{64}$/);

    const stage = p.get("aws:apigateway/stage:Stage", "v1").inputs;
    assert.equal(stage.stageName, "v1");
    assert.equal(stage.deployment, "deployment-id");
    // Access logs need the account's CloudWatch role, which a fresh account
    // lacks: off by default, so the default deploy goes through.
    assert.equal(stage.accessLogSettings, undefined);
    assert.equal(p.ofType("aws:cloudwatch/logGroup:LogGroup").filter((g) => g.name === "api-access-logs").length, 0);
    assert.equal(stage.xrayTracingEnabled, false, "X-Ray is off by default");

    const ms = p.get("aws:apigateway/methodSettings:MethodSettings", "v1-method-settings").inputs;
    assert.equal(ms.stageName, "v1");
    assert.equal(ms.methodPath, "*/*");
    assert.equal(ms.settings.metricsEnabled, false, "per-method metrics are billed and nothing reads them");
    assert.equal(ms.settings.throttlingBurstLimit, 100);
    assert.equal(ms.settings.throttlingRateLimit, 50);

    // manageApiGatewayAccount defaults to false.
    assert.equal(p.ofType("aws:apigateway/account:Account").length, 0);
});

test("the items-admins group exists in the user pool (it may change anyone's items)", () => {
    const groups = p.ofType("aws:cognito/userGroup:UserGroup");
    assert.deepEqual(groups.map((g) => g.inputs.name), ["items-admins"]);
    assert.equal(groups[0].inputs.userPoolId, `${REGION}_Pool123`);
});

test("user pool: email sign-in, strong passwords, optional TOTP MFA, deletion protection", () => {
    const pool = p.get("aws:cognito/userPool:UserPool", "users").inputs;
    assert.deepEqual(pool.usernameAttributes, ["email"]);
    assert.deepEqual(pool.autoVerifiedAttributes, ["email"]);
    assert.deepEqual(pool.passwordPolicy, {
        minimumLength: 12,
        requireUppercase: true,
        requireLowercase: true,
        requireNumbers: true,
        requireSymbols: true,
        temporaryPasswordValidityDays: 7,
    });
    assert.equal(pool.mfaConfiguration, "OPTIONAL");
    assert.deepEqual(pool.softwareTokenMfaConfiguration, { enabled: true });
    assert.equal(pool.deletionProtection, "ACTIVE");
    assert.deepEqual(pool.adminCreateUserConfig, { allowAdminCreateUserOnly: true });
    // Cognito's own sender (COGNITO_DEFAULT) unless sesEmailIdentityArn is set.
    assert.equal(pool.emailConfiguration, undefined);

    const domain = p.get("aws:cognito/userPoolDomain:UserPoolDomain", "hosted-ui").inputs;
    assert.equal(domain.domain, "items-test");
    assert.equal(domain.userPoolId, `${REGION}_Pool123`);

    const rs = p.get("aws:cognito/resourceServer:ResourceServer", "items-resource-server").inputs;
    assert.equal(rs.identifier, "items");
    assert.deepEqual(rs.scopes.map((s: any) => s.scopeName).sort(), ["read", "write"]);
});

test("user pool client: flows, scopes, callback URLs and default redirect URI", () => {
    const c = p.get("aws:cognito/userPoolClient:UserPoolClient", "web-client").inputs;
    assert.equal(c.userPoolId, `${REGION}_Pool123`);
    assert.equal(c.generateSecret, false);
    assert.equal(c.allowedOauthFlowsUserPoolClient, true);
    assert.deepEqual(c.allowedOauthFlows, ["code"], "the authorization code flow (with PKCE), no implicit grant");
    assert.deepEqual(c.allowedOauthScopes, ["openid", "email", "items/read", "items/write"]);
    assert.deepEqual(c.supportedIdentityProviders, ["COGNITO"]);
    assert.deepEqual(c.callbackUrls, ["http://localhost:3000/"]);
    assert.deepEqual(c.logoutUrls, ["http://localhost:3000/"]);
    assert.equal(c.defaultRedirectUri, "http://localhost:3000/");
    assert.deepEqual([...c.explicitAuthFlows].sort(), ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_SRP_AUTH"]);
    assert.equal(c.preventUserExistenceErrors, "ENABLED");
    assert.equal(c.accessTokenValidity, 60);
    assert.deepEqual(c.tokenValidityUnits, { accessToken: "minutes", idToken: "minutes", refreshToken: "days" });
});

test("stack outputs are present with the right shapes", () => {
    const o = p.outputs;
    assert.deepEqual(
        Object.keys(o).sort(),
        [
            "alarmTopicArn",
            "apiDeploymentUrn",
            "apiUrl",
            "awsRegion",
            "dashboardName",
            "devClientId",
            "dlqUrl",
            "eventsTableName",
            "functionNames",
            "hostedUiDomain",
            "hostedUiReadOnlySignInUrl",
            "hostedUiSignInUrl",
            "issuer",
            "itemsRebuildTableName",
            "itemsTableName",
            "machineClientId",
            "machineClientSecret",
            "userPoolClientId",
            "userPoolId",
        ],
    );
    assert.equal(o.awsRegion, REGION);
    assert.equal(o.hostedUiDomain, `https://items-test.auth.${REGION}.amazoncognito.com`);
    assert.equal(o.machineClientId, "machine123");
    assert.equal(o.machineClientSecret, "machine-secret");
    assert.equal(o.alarmTopicArn, `arn:aws:sns:${REGION}:${ACCOUNT}:items-api-test-alarms`);
    assert.equal(o.dashboardName, "items-api-test");
    assert.equal(o.apiUrl, `https://abc123api.execute-api.${REGION}.amazonaws.com/v1`);
    assert.match(String(o.apiUrl), /^https:\/\/[a-z0-9]+\.execute-api\.[a-z0-9-]+\.amazonaws\.com\/v1$/);
    assert.equal(o.hostedUiSignInUrl, undefined, "implicit-grant URLs only with implicitGrant");
    assert.equal(o.hostedUiReadOnlySignInUrl, undefined);
    assert.equal(o.devClientId, undefined, "no development client unless devCallbackUrls");
    assert.equal(o.apiDeploymentUrn, "urn:pulumi:test::items-api::aws:apigateway/deployment:Deployment::deployment");
    assert.equal(o.userPoolId, `${REGION}_Pool123`);
    assert.equal(o.userPoolClientId, "client123");
    assert.equal(o.issuer, `https://cognito-idp.${REGION}.amazonaws.com/${REGION}_Pool123`);
    assert.equal(o.eventsTableName, "events-1a2b3c4");
    assert.equal(o.itemsTableName, "items-1a2b3c4");
    assert.equal(o.itemsRebuildTableName, undefined, "no rebuild table unless itemsRebuildGeneration is set");
    assert.equal(o.dlqUrl, `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/projector-dlq-1a2b3c4`);
    assert.deepEqual(o.functionNames, {
        postItem: "items-api-test-post-item",
        getItems: "items-api-test-get-items",
        itemCommands: "items-api-test-item-commands",
        projectEvents: "items-api-test-project-events",
    });
});

test("the events table, the source of truth, has deletion protection on by default", () => {
    assert.equal(p.get("aws:dynamodb/table:Table", "events").inputs.deletionProtectionEnabled, true);
});

test("functions pass X-Ray traces through and get no X-Ray grant while tracing is off", () => {
    for (const f of p.ofType(FN)) {
        assert.deepEqual(f.inputs.tracingConfig, { mode: "PassThrough" }, f.name);
    }
    for (const pol of p.ofType(ROLE_POLICY)) {
        assert.ok(!parsePolicy(pol.inputs.policy).has("WriteTraces"), pol.name);
    }
});

test("the projector writes to the events table only under its quarantine prefix", () => {
    const doc = JSON.parse(p.get(ROLE_POLICY, "project-events-policy").inputs.policy);
    const statements = doc.Statement.filter((s: { Resource: string | string[] }) => [s.Resource].flat().includes(EVENTS_ARN));
    const writes = statements.filter((s: { Action: string[] }) => s.Action.some((a) => a !== "dynamodb:Query"));
    assert.deepEqual(writes.map((s: { Sid: string }) => s.Sid), ["SetAsidePoison"]);
    assert.deepEqual(writes[0].Condition, {
        "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["quarantine#*"] },
    });
    // The other conditions: reads of item streams only (below).
    for (const pol of p.ofType(ROLE_POLICY)) {
        for (const st of JSON.parse(pol.inputs.policy).Statement) {
            assert.ok(["SetAsidePoison", ...Object.keys(ITEM_STREAM_READS[pol.name] ?? {})].includes(st.Sid) || st.Condition === undefined, `${pol.name} ${st.Sid}`);
        }
    }
});

/**
 * Statements (by policy, then Sid) that read one kind of the events table's
 * partitions only: their actions and the partition key prefix.
 */
const ITEM_STREAM_READS: Record<string, Record<string, [string[], string]>> = {
    // Deploy review N10: the head of the stream after a refused write.
    "post-item-policy": { ReadStreamHead: [["dynamodb:Query"], "item#*"] },
    // Security review N10: the read function, the most exposed, reads no
    // idempotency record (every caller's keys and stored answers): ?version
    // and ?at fold an item's stream, from its snapshot when they can.
    "get-items-policy": { ReadItemStreams: [["dynamodb:Query"], "item#*"], ReadSnapshots: [["dynamodb:GetItem"], "snap#*"] },
    "project-events-policy": { ReadItemHistory: [["dynamodb:Query"], "item#*"] },
};

test("reads of the events table that need item streams (or snapshots) only are limited to them (dynamodb:LeadingKeys)", () => {
    for (const [policy, statements] of Object.entries(ITEM_STREAM_READS)) {
        const doc = JSON.parse(p.get(ROLE_POLICY, policy).inputs.policy);
        for (const [sid, [actions, prefix]] of Object.entries(statements)) {
            const st = doc.Statement.find((x: { Sid: string }) => x.Sid === sid);
            assert.ok(st, `${policy} ${sid}`);
            assert.deepEqual([st.Action, st.Resource], [actions, [EVENTS_ARN]], `${policy} ${sid}`);
            assert.deepEqual(st.Condition, { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [prefix] } }, `${policy} ${sid}`);
        }
    }
    // get-items and project-events touch the events table through these statements only.
    for (const fn of ["get-items", "project-events"]) {
        const doc = JSON.parse(p.get(ROLE_POLICY, `${fn}-policy`).inputs.policy);
        for (const st of doc.Statement.filter((x: { Resource: string[] }) => x.Resource.includes(EVENTS_ARN))) {
            assert.ok(st.Condition, `${fn} ${st.Sid} reads the events table without a LeadingKeys condition`);
        }
    }
});

test("a machine app client: a secret and client_credentials for items/read and items/write only", () => {
    const m = p.get("aws:cognito/userPoolClient:UserPoolClient", "machine-client").inputs;
    assert.equal(m.generateSecret, true);
    assert.deepEqual(m.allowedOauthFlows, ["client_credentials"]);
    assert.deepEqual([...m.allowedOauthScopes].sort(), ["items/read", "items/write"]);
    assert.equal(m.allowedOauthFlowsUserPoolClient, true);
    assert.equal(m.userPoolId, `${REGION}_Pool123`);
    assert.equal(m.callbackUrls, undefined, "no browser sign-in");
    const web = p.get("aws:cognito/userPoolClient:UserPoolClient", "web-client").inputs;
    assert.equal(web.generateSecret, false, "the page's client stays public");
});

test("the Hosted UI domain is pinned to the classic Hosted UI (managed login version 1)", () => {
    assert.equal(p.get("aws:cognito/userPoolDomain:UserPoolDomain", "hosted-ui").inputs.managedLoginVersion, 1);
});

// Review finding 2: a pool has one prefix domain, so a new prefix must wait for the old one's deletion.
test("a new Hosted UI prefix replaces the domain delete-before-create", () => {
    assert.equal(p.get("aws:cognito/userPoolDomain:UserPoolDomain", "hosted-ui").options.deleteBeforeReplace, true);
    assert.equal(p.get("aws:cognito/userPool:UserPool", "users").options.deleteBeforeReplace, false, "the harness reads options");
});

test("alarms: projector iterator age, DLQ, each function's errors and throttles, API 5XX rate and p99 latency", () => {
    const alarms = new Map(p.ofType("aws:cloudwatch/metricAlarm:MetricAlarm").map((a) => [a.name, a.inputs]));
    const functions = ["post-item", "get-items", "item-commands", "project-events"];
    assert.deepEqual(
        [...alarms.keys()].sort(),
        [
            "api-5xx-rate",
            "api-p99-latency",
            ...functions.flatMap((f) => [`${f}-errors`, `${f}-throttles`]),
            "projector-destination-failures",
            "projector-dlq-visible",
            "projector-iterator-age",
            "projector-newer-code",
            "projector-quarantined",
            "items-write-throttles",
            "items-by-creator-write-throttles",
        ].sort(),
    );
    const topic = p.get("aws:sns/topic:Topic", "alarms").state.arn;
    for (const [name, a] of alarms) {
        assert.deepEqual(a.alarmActions, [topic], name);
        assert.deepEqual(a.okActions, [topic], name);
        assert.equal(a.name, `items-api-test-${name}`);
        assert.ok(a.alarmDescription, name);
    }
    const age = alarms.get("projector-iterator-age")!;
    assert.deepEqual([age.namespace, age.metricName, age.statistic, age.threshold], ["AWS/Lambda", "IteratorAge", "Maximum", 60000]);
    assert.deepEqual(age.dimensions, { FunctionName: "items-api-test-project-events" });
    const dlq = alarms.get("projector-dlq-visible")!;
    assert.deepEqual([dlq.namespace, dlq.metricName, dlq.threshold, dlq.comparisonOperator], ["AWS/SQS", "ApproximateNumberOfMessagesVisible", 0, "GreaterThanThreshold"]);
    assert.deepEqual(dlq.dimensions, { QueueName: "projector-dlq-1a2b3c4" });
    // Review finding 11: a batch that could not be described in the DLQ either.
    const lost = alarms.get("projector-destination-failures")!;
    assert.deepEqual([lost.namespace, lost.metricName, lost.statistic, lost.threshold], ["AWS/Lambda", "DestinationDeliveryFailures", "Sum", 0]);
    assert.deepEqual(lost.dimensions, { FunctionName: "items-api-test-project-events" });
    for (const f of functions) {
        for (const metric of ["Errors", "Throttles"]) {
            const a = alarms.get(`${f}-${metric.toLowerCase()}`)!;
            assert.deepEqual([a.namespace, a.metricName, a.statistic, a.threshold], ["AWS/Lambda", metric, "Sum", 0]);
            assert.deepEqual(a.dimensions, { FunctionName: `items-api-test-${f}` });
        }
    }
    // The projector's own counts: a record set aside, and one of newer code.
    for (const [key, metric] of [["projector-quarantined", "RecordsQuarantined"], ["projector-newer-code", "RecordsOfNewerCode"]]) {
        const a = alarms.get(key)!;
        assert.deepEqual([a.namespace, a.metricName, a.statistic, a.threshold], ["ItemsApi", metric, "Sum", 0]);
        assert.deepEqual(a.dimensions, { Function: "project-events" });
    }
    const fivexx = alarms.get("api-5xx-rate")!;
    assert.deepEqual([fivexx.namespace, fivexx.metricName, fivexx.statistic, fivexx.threshold], ["AWS/ApiGateway", "5XXError", "Average", 0.01]);
    assert.deepEqual(fivexx.dimensions, { ApiName: "items-api-test-api", Stage: "v1" });
    const p99 = alarms.get("api-p99-latency")!;
    assert.deepEqual([p99.metricName, p99.extendedStatistic, p99.threshold], ["Latency", "p99", 2000]);
    // docs/scaling.md prices them.
    const scaling = fs.readFileSync(path.join(PROJECT_DIR, "..", "docs", "scaling.md"), "utf8");
    assert.match(scaling, new RegExp(`^\\| CloudWatch alarms \\| ${alarms.size} \\(\`monitoring.ts\`\\)`, "m"), "scaling.md's alarm count");
    assert.equal(p.ofType("aws:sns/topicSubscription:TopicSubscription").length, 0, "no e-mail unless configured");
});

// Deploy review N2: one creator's items share a by-creator index partition;
// when the index cannot take a write, the table write is throttled with it.
test("the live read table's and its by-creator index's write throttles alarm", () => {
    const alarms = new Map(p.ofType("aws:cloudwatch/metricAlarm:MetricAlarm").map((a) => [a.name, a.inputs]));
    const table = alarms.get("items-write-throttles")!;
    const index = alarms.get("items-by-creator-write-throttles")!;
    for (const a of [table, index]) {
        assert.deepEqual(
            [a.namespace, a.metricName, a.statistic, a.threshold, a.comparisonOperator, a.treatMissingData],
            ["AWS/DynamoDB", "WriteThrottleEvents", "Sum", 0, "GreaterThanThreshold", "notBreaching"],
        );
    }
    // The table's own events under TableName alone; the index's only with its name too.
    assert.deepEqual(table.dimensions, { TableName: "items-1a2b3c4" });
    assert.deepEqual(index.dimensions, { TableName: "items-1a2b3c4", GlobalSecondaryIndexName: ITEMS_BY_CREATOR_INDEX });
    const body = JSON.parse(p.get("aws:cloudwatch/dashboard:Dashboard", "dashboard").inputs.dashboardBody);
    const dynamo = body.widgets.flatMap((w: any) => w.properties.metrics).filter((m: any[]) => m[0] === "AWS/DynamoDB");
    assert.deepEqual(dynamo.map((m: any[]) => m.slice(1, -1)), [
        ["WriteThrottleEvents", "TableName", "items-1a2b3c4"],
        ["WriteThrottleEvents", "TableName", "items-1a2b3c4", "GlobalSecondaryIndexName", "by-creator-shard"],
        ["WriteKeyRangeThroughputThrottleEvents", "TableName", "items-1a2b3c4", "GlobalSecondaryIndexName", "by-creator-shard"],
    ]);
});

test("a dashboard shows the alarms' figures and the functions' own metrics", () => {
    const body = JSON.parse(p.get("aws:cloudwatch/dashboard:Dashboard", "dashboard").inputs.dashboardBody);
    const titles = body.widgets.map((w: any) => w.properties.title);
    for (const title of ["API requests and 5XX", "API latency p99 (ms)", "Function errors and throttles", "Projector iterator age (ms)", "Projector DLQ messages and failed deliveries to it", "Items created, changed and projected", "Projection lag (ms, event time to projection)"]) {
        assert.ok(titles.includes(title), title);
    }
    const metrics: any[][] = body.widgets.flatMap((w: any) => w.properties.metrics);
    for (const name of ["ProjectionLag", "items-api-test-item-commands"]) {
        assert.ok(JSON.stringify(metrics).includes(name), name);
    }
    // Review finding 7: every count each function emits (the Rust side's names
    // and Function dimension values), under the namespace the Rust side writes.
    const own = metrics.filter((m) => m[0] === METRICS_NAMESPACE).map((m) => `${m[3]}/${m[1]}`);
    const rust = fs.readFileSync(path.join(PROJECT_DIR, "..", "adapters", "aws", "src", "metrics.rs"), "utf8");
    assert.match(rust, new RegExp(`pub const NAMESPACE: &str = "${METRICS_NAMESPACE}";`));
    for (const expected of ["post-item/ItemsCreated", "post-item/IdempotentRepeats", "item-commands/ItemsUpdated", "item-commands/ItemsDeleted", "item-commands/IdempotentRepeats", "project-events/RecordsProjected", "project-events/RecordsAlreadyNewer", "project-events/RecordsFailed", "project-events/ProjectionLag"]) {
        assert.ok(own.includes(expected), expected);
        assert.ok(rust.includes(`"${expected.split("/")[1]}"`), `${expected} is a name metrics.rs emits`);
    }
    for (const w of body.widgets) assert.equal(w.properties.region, REGION);
});

test("every resource carries the project's default tags (provider config in Pulumi.yaml)", () => {
    const project = fs.readFileSync(path.join(PROJECT_DIR, "Pulumi.yaml"), "utf8");
    assert.match(project, /^config:\n(?:  #.*\n)*  aws:defaultTags:\n    value:\n      tags:\n        project: items-api\n        managed-by: pulumi\n/m);
});

test("its policy documents are written for the IAM linter (scripts/lint-policies)", () => {
    // Every role's trust policy and every inline policy: a new kind of
    // policy document (a queue or topic policy) must be added here too.
    const documents = p.ofType("aws:iam/role:Role").length + p.ofType("aws:iam/rolePolicy:RolePolicy").length;
    assert.equal(writePolicies(p, "default"), documents);
});
