// What docs/deploy.md and docs/scaling.md say against what the program does
// and what AWS documents: the deploy review's findings on the docs.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { test } from "node:test";
import { PROJECT_DIR } from "../config";

const doc = (name: string) => fs.readFileSync(path.join(PROJECT_DIR, "..", "docs", name), "utf8");
const scaling = doc("scaling.md");

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
