// The program refuses a rebuild generation equal to the live one before it
// registers anything (a rebuild must fill a table the functions do not use).

import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError } from "../config";
import { loadProgram, stackConfig } from "./harness";

test("itemsRebuildGeneration equal to itemsTableGeneration stops the program with a clear error", async () => {
    await assert.rejects(
        loadProgram(stackConfig({ itemsTableGeneration: "2", itemsRebuildGeneration: "2" })),
        (e: unknown) =>
            e instanceof ConfigError &&
            e.message ===
                "items-api configuration: itemsRebuildGeneration must differ from itemsTableGeneration (both are 2): " +
                    "a rebuild fills a second, empty table beside the live one. Choose another generation to rebuild into, " +
                    "or, to finish switching to generation 2, remove it (pulumi config rm items-api:itemsRebuildGeneration)",
    );
});
