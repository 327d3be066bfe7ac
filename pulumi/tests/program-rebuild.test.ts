// The program while a rebuild is prepared (itemsRebuildGeneration = 2), against
// mocks: a second, empty read table exists, and nothing uses it yet.

import assert from "node:assert/strict";
import { before, test } from "node:test";
import { Program, itemsTableByFunction, loadProgram, parsePolicy, stackConfig, tableArn, unsecret, writePolicies } from "./harness";

const TABLE = "aws:dynamodb/table:Table";
const LIVE = "items-1a2b3c4";
const REBUILD = "items-v2-1a2b3c4";
const LIVE_ARN = tableArn(LIVE);
const REBUILD_ARN = tableArn(REBUILD);

let p: Program;

before(async () => {
    p = await loadProgram(stackConfig({ itemsRebuildGeneration: "2" }));
});

test("two read tables: generation 1 under its original name and items-v2, with the same settings and TTL", () => {
    assert.deepEqual(p.ofType(TABLE).map((t) => t.name).sort(), ["events", "items", "items-v2"]);
    const live = p.get(TABLE, "items");
    const rebuild = p.get(TABLE, "items-v2");
    assert.equal(live.state.name, LIVE);
    assert.equal(rebuild.state.name, REBUILD);
    assert.deepEqual(rebuild.inputs, live.inputs);
    assert.equal(rebuild.inputs.hashKey, "id");
    assert.deepEqual(
        [...rebuild.inputs.attributes].sort((a: any, b: any) => a.name.localeCompare(b.name)),
        [
            { name: "createdAt", type: "S" },
            { name: "creatorShard", type: "S" },
            { name: "id", type: "S" },
        ],
    );
    assert.deepEqual(rebuild.inputs.ttl, { attributeName: "expires_at", enabled: true });
});

test("the rebuild table has the by-creator index too, so the switch needs no index build", () => {
    assert.deepEqual(p.get(TABLE, "items-v2").inputs.globalSecondaryIndexes, [
        { name: "by-creator-shard", hashKey: "creatorShard", rangeKey: "createdAt", projectionType: "ALL" },
    ]);
});

test("every function's ITEMS_TABLE still names generation 1", () => {
    for (const f of p.ofType("aws:lambda/function:Function")) {
        const vars = unsecret(f.inputs.environment).value.variables;
        assert.ok(!JSON.stringify(vars).includes("items-v2"), `env of ${f.name} names the rebuild table`);
    }
    assert.deepEqual(itemsTableByFunction(p), {
        "post-item": LIVE,
        "get-items": LIVE,
        "item-commands": undefined,
        "project-events": LIVE,
    });
});

test("the read-table grants still name generation 1 only; no policy names the rebuild table", () => {
    const policy = (fn: string) => parsePolicy(p.get("aws:iam/rolePolicy:RolePolicy", `${fn}-items-policy`).inputs.policy);
    assert.deepEqual(policy("get-items").get("ReadItems")!.resources, [LIVE_ARN]);
    assert.deepEqual(policy("get-items").get("QueryItemsByCreator")!.resources, [`${LIVE_ARN}/index/by-creator-shard`]);
    assert.deepEqual(policy("project-events").get("WriteReadModel")!.resources, [LIVE_ARN]);
    for (const pol of p.ofType("aws:iam/rolePolicy:RolePolicy")) {
        assert.ok(!pol.inputs.policy.includes(REBUILD), `${pol.name} names the rebuild table`);
        assert.ok(!pol.inputs.policy.includes(`${REBUILD_ARN}/index/`), `${pol.name} names the rebuild table's index`);
    }
});

test("outputs: itemsTableName is the live table, itemsRebuildTableName the new one", () => {
    assert.equal(p.outputs.itemsTableName, LIVE);
    assert.equal(p.outputs.itemsRebuildTableName, REBUILD);
});

test("its policy documents are written for the IAM linter (scripts/lint-policies)", () => {
    // Every role's trust policy and every inline policy: a new kind of
    // policy document (a queue or topic policy) must be added here too.
    const documents = p.ofType("aws:iam/role:Role").length + p.ofType("aws:iam/rolePolicy:RolePolicy").length;
    assert.equal(writePolicies(p, "rebuild"), documents);
});
