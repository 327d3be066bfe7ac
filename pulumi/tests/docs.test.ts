// What docs/deploy.md and docs/scaling.md say against what the program does
// and what AWS documents: the deploy review's findings on the docs.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { PROJECT_DIR } from "../config";

const doc = (name: string) => fs.readFileSync(path.join(PROJECT_DIR, "..", "docs", name), "utf8");
const scaling = doc("scaling.md");
const deploy = doc("deploy.md");

// Deploy review N4: every projected write is also a write to the index.
test("scaling.md prices the by-creator index write", () => {
    assert.match(scaling, /^\| index write \(1 WRU\) \| \$0\.63 \| – \|$/m);
    assert.match(scaling, /^\| \*\*total\*\* \| \*\*≈ \$6\.10\*\* \| \*\*≈ \$4\.50\*\* \|$/m);
    assert.match(scaling, /^\| `GET \/items\?createdBy=` \|/m);
    assert.doesNotMatch(scaling, /a GSI on `createdBy`/);
});

// Deploy review N7: figures that no longer matched the code.
test("scaling.md: a change is one conditional PutItem; keyed writes, START/REPORT records and API Gateway tiers are counted", () => {
    assert.doesNotMatch(scaling, /TransactWriteItems` of a check and a put \(2 WRU each: 4 WRU\)/);
    assert.match(scaling, /^\| `PATCH`\/`DELETE` \|[^|]*one conditional `PutItem` of the event \(1 WRU/m);
    assert.match(scaling, /^\| with `Idempotency-Key` \|/m);
    assert.match(scaling, /^\| logs: Lambda's START and REPORT records/m);
    assert.match(scaling, /volume tiers apply past 333 M requests/);
});

// Deploy review N8: SNS deletes an unconfirmed subscription after 48 hours.
test("deploy.md: a pending alarm subscription goes after 48 hours", () => {
    assert.doesNotMatch(deploy, /after 3 days/);
    assert.match(deploy, /unconfirmed\s+subscription after 48 hours/);
});

// Deploy review N13: the old domain is deleted before the new prefix is tried.
test("deploy.md: check a new Hosted UI prefix is free before changing it", () => {
    const paragraph = deploy.slice(deploy.indexOf("Changing `cognitoDomainPrefix` on a live stack"), deploy.indexOf("### Upgrading a stack from before `localhostCallbacks`"));
    assert.match(paragraph, /aws cognito-idp describe-user-pool-domain --domain <new prefix>/);
    assert.match(paragraph, /set the old prefix back/);
});

// Deploy review N14: new accounts start with a reduced memory quota.
test("deploy.md: the memory settings mention a new account's memory quota", () => {
    for (const key of ["apiMemorySizeMb", "projectorMemorySizeMb"]) {
        assert.match(deploy, new RegExp("^\\| `" + key + "` \\|[^\\n]*memory quota", "m"), key);
    }
});

// Deploy review N12: stacks made with the older guide stop at preview.
test("deploy.md: an upgrade note for stacks from before localhostCallbacks", () => {
    assert.match(deploy, /^### Upgrading a stack from before `localhostCallbacks`$/m);
});

// Security review N11: the forms of `cognito:groups` the docs give are the
// ones items_aws::apigw::caller::groups_claim reads.
test("deploy.md gives the cognito:groups forms the handler reads", () => {
    const caller = fs.readFileSync(path.join(PROJECT_DIR, "..", "adapters", "aws", "src", "apigw", "caller.rs"), "utf8");
    const parser = caller.slice(caller.indexOf("pub fn groups_claim"), caller.indexOf("impl Caller"));
    // A JSON array, or one string split at commas; names of [A-Za-z0-9_-] only.
    assert.match(parser, /serde_json::Value::Array\(groups\)/);
    assert.match(parser, /text\.split\(','\)/);
    assert.match(parser, /is_ascii_alphanumeric\(\) \|\| b == b'-' \|\| b == b'_'/);
    const section = deploy.slice(deploy.indexOf("The functions read `cognito:groups`"), deploy.indexOf("## 6. Sign in"));
    assert.match(section, /a JSON array of names, or one string of\s+names separated by commas/);
    assert.match(section, /Only names of letters,\s+digits, `-` and `_` are read/);
    // Named only as forms that grant nothing.
    assert.match(section, /JSON array text such as `\["items-admins"\]`, a bracketed space-separated\s+list such as `\[items-admins other\]`\), grants no group/);
});
