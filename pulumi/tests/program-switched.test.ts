// The program after the switch to generation 2 (itemsTableGeneration = 2, no
// rebuild generation), against mocks: the functions use items-v2 and the
// generation 1 table is no longer declared, so `pulumi up` deletes it.

import assert from "node:assert/strict";
import { before, test } from "node:test";
import { Program, itemsTableByFunction, loadProgram, parsePolicy, stackConfig, tableArn, urnOf } from "./harness";

const TABLE = "aws:dynamodb/table:Table";
const LIVE = "items-v2-1a2b3c4";
const LIVE_ARN = tableArn(LIVE);
const OLD_ARN = tableArn("items-1a2b3c4");

let p: Program;

before(async () => {
    p = await loadProgram(stackConfig({ itemsTableGeneration: "2" }));
});

test("only the v2 read table exists (the generation 1 table is gone), with the index and the TTL", () => {
    assert.deepEqual(p.ofType(TABLE).map((t) => t.name).sort(), ["events", "items-v2"]);
    const items = p.get(TABLE, "items-v2");
    assert.equal(items.state.name, LIVE);
    assert.equal(items.inputs.hashKey, "id");
    assert.deepEqual(
        [...items.inputs.attributes].sort((a: any, b: any) => a.name.localeCompare(b.name)),
        [
            { name: "createdAt", type: "S" },
            { name: "creatorShard", type: "S" },
            { name: "id", type: "S" },
        ],
    );
    assert.deepEqual(items.inputs.globalSecondaryIndexes, [
        { name: "by-creator-shard", hashKey: "creatorShard", rangeKey: "createdAt", projectionType: "ALL" },
    ]);
    assert.equal(items.inputs.billingMode, "PAY_PER_REQUEST");
    assert.deepEqual(items.inputs.pointInTimeRecovery, { enabled: false });
    assert.deepEqual(items.inputs.serverSideEncryption, { enabled: true });
    assert.deepEqual(items.inputs.ttl, { attributeName: "expires_at", enabled: true });
});

test("every function's ITEMS_TABLE names the v2 table", () => {
    assert.deepEqual(itemsTableByFunction(p), {
        "post-item": LIVE,
        "get-items": LIVE,
        "item-commands": undefined,
        "project-events": LIVE,
    });
});

test("the read-table grants (and the index grant) name the v2 table; no policy names the generation 1 table", () => {
    const policy = (fn: string) => parsePolicy(p.get("aws:iam/rolePolicy:RolePolicy", `${fn}-items-v2-policy`).inputs.policy);
    assert.deepEqual(policy("get-items").get("ReadItems"), {
        actions: ["dynamodb:Scan", "dynamodb:GetItem"],
        resources: [LIVE_ARN],
    });
    assert.deepEqual(policy("get-items").get("QueryItemsByCreator"), {
        actions: ["dynamodb:Query"],
        resources: [`${LIVE_ARN}/index/by-creator-shard`],
    });
    assert.deepEqual(policy("project-events").get("WriteReadModel"), {
        actions: ["dynamodb:PutItem", "dynamodb:GetItem"],
        resources: [LIVE_ARN],
    });
    for (const pol of p.ofType("aws:iam/rolePolicy:RolePolicy")) {
        assert.ok(!pol.inputs.policy.includes(OLD_ARN), `${pol.name} names the generation 1 table`);
    }
});

test("the read table's write-throttle alarms watch the v2 table", () => {
    const alarms = new Map(p.ofType("aws:cloudwatch/metricAlarm:MetricAlarm").map((a) => [a.name, a.inputs]));
    assert.deepEqual(alarms.get("items-write-throttles")!.dimensions, { TableName: LIVE });
    assert.deepEqual(alarms.get("items-by-creator-write-throttles")!.dimensions, { TableName: LIVE, GlobalSecondaryIndexName: "by-creator-shard" });
});

// Deploy review N6: one policy narrowed in place before the function moved
// refused the old table's reads in between. Named by generation, the v2
// grants are a new policy, created before each function is updated; the
// generation 1 policy is no longer declared, so the engine deletes it at the
// end of the same `pulumi up`, after the functions have moved.
test("switching generations: the v2 grants are new policies the functions wait for; the generation 1 ones are gone", () => {
    const ROLE_POLICY = "aws:iam/rolePolicy:RolePolicy";
    const names = p.ofType(ROLE_POLICY).map((r) => r.name);
    for (const fn of ["get-items", "project-events"]) {
        assert.ok(names.includes(`${fn}-items-v2-policy`), fn);
        assert.ok(!names.includes(`${fn}-items-policy`), `${fn}: the generation 1 policy is not declared`);
        const deps = p.get("aws:lambda/function:Function", fn).options.dependencies;
        assert.ok(deps.includes(urnOf(ROLE_POLICY, `${fn}-items-v2-policy`)), `${fn} is updated after its v2 grants exist`);
        // Its main policy (events table, logs) does not change in a switch.
        assert.ok(!p.get(ROLE_POLICY, `${fn}-policy`).inputs.policy.includes("items-v2"), fn);
    }
});

test("outputs: itemsTableName is the v2 table, no rebuild table", () => {
    assert.equal(p.outputs.itemsTableName, LIVE);
    assert.equal(p.outputs.itemsRebuildTableName, undefined);
});
