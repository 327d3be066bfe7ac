// The program refuses a development client on a production stack before it
// registers anything (security review N2): on the production pool, a public
// client with a localhost callback lets whatever listens there take a
// signed-in user's tokens, and Cognito cannot make it require PKCE.

import assert from "node:assert/strict";
import { test } from "node:test";
import { ConfigError } from "../config";
import { loadProgram, makeArtifactsDir } from "./harness";

test("devCallbackUrls on a production stack (https callbacks, no localhostCallbacks) stops the program", async () => {
    await assert.rejects(
        loadProgram({
            cognitoDomainPrefix: "items-prod",
            callbackUrls: JSON.stringify(["https://app.example.com/"]),
            devCallbackUrls: JSON.stringify(["http://localhost:3000/"]),
            lambdaArtifactsDir: makeArtifactsDir(),
        }),
        (e: unknown) => e instanceof ConfigError && e.message.includes("devCallbackUrls is refused on a production stack"),
    );
});
