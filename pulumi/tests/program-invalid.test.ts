// The program refuses an invalid configuration before registering anything.

import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError } from "../config";
import { loadProgram, makeArtifactsDir } from "./harness";

test("a defaultRedirectUri outside callbackUrls stops the program with a clear error", async () => {
    await assert.rejects(
        loadProgram({
            cognitoDomainPrefix: "items-test",
            callbackUrls: JSON.stringify(["https://app.example.com/callback"]),
            defaultRedirectUri: "https://evil.example.com/callback",
            lambdaArtifactsDir: makeArtifactsDir(),
        }),
        (e: unknown) =>
            e instanceof ConfigError &&
            e.message ===
                'items-api configuration: defaultRedirectUri "https://evil.example.com/callback" must be one of ' +
                    'callbackUrls ("https://app.example.com/callback"); Cognito compares them character for character',
    );
});
