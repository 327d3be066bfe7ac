// The program refuses, at preview, Lambda zips built for another architecture
// than the stack declares (deploy review N1): they would deploy, and every
// invocation would fail with Runtime.InvalidEntrypoint.

import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError } from "../config";
import { loadProgram, makeArtifactsDir, stackConfig } from "./harness";

test("arm64 zips on a stack of the default architecture (x86_64) stop the program with a clear error", async () => {
    await assert.rejects(
        loadProgram(stackConfig({ lambdaArtifactsDir: makeArtifactsDir("arm64") })),
        (e: unknown) =>
            e instanceof ConfigError &&
            /bootstrap\.zip was built for arm64, but items-api:architecture is x86_64/.test(e.message) &&
            e.message.includes("LAMBDA_ARCH=x86_64 scripts/build-lambdas"),
    );
});
