// Pure configuration logic: validation, defaults, URL builders. No mocks needed.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, test } from "node:test";
import * as pulumi from "@pulumi/pulumi";
import { redeploymentHash } from "../api";
import {
    CONFIG_DEFAULTS,
    ConfigError,
    bootstrapArchitecture,
    hostedUiSignInUrl,
    intInRange,
    issuerUrl,
    lambdaArchivePath,
    loadSettings,
    resolveCorsOrigin,
    validateAuthUrls,
    validateDomainPrefix,
    validateTableGenerations,
    validateDevCallbackUrls,
    validateEmailSending,
    validateNamePrefix,
    validateWriteEventSchemas,
    PROJECT_DIR,
    type ConfigReader,
} from "../config";
import { policyDocument, renderPolicy } from "../iam";
import { itemsTableLogicalName } from "../tables";
import { fakeElf, lambdaZip, makeZip } from "./harness";

/** A development stack's option: http://localhost allowed on the web client. */
const DEV = { localhostCallbacks: true };

describe("validateAuthUrls", () => {
    test("fills in logoutUrls and defaultRedirectUri from callbackUrls", () => {
        assert.deepEqual(validateAuthUrls({ callbackUrls: ["https://app.example.com/cb", "http://localhost:3000/"] }, DEV), {
            callbackUrls: ["https://app.example.com/cb", "http://localhost:3000/"],
            logoutUrls: ["https://app.example.com/cb", "http://localhost:3000/"],
            defaultRedirectUri: "https://app.example.com/cb",
        });
    });

    test("keeps explicit logoutUrls and a defaultRedirectUri that is a callback URL", () => {
        const r = validateAuthUrls({
            callbackUrls: ["https://app.example.com/cb", "http://localhost:8080/cb"],
            logoutUrls: ["https://app.example.com/"],
            defaultRedirectUri: "http://localhost:8080/cb",
        }, DEV);
        assert.deepEqual(r.logoutUrls, ["https://app.example.com/"]);
        assert.equal(r.defaultRedirectUri, "http://localhost:8080/cb");
    });

    test("rejects a defaultRedirectUri that is not one of callbackUrls", () => {
        assert.throws(
            () =>
                validateAuthUrls({
                    callbackUrls: ["https://app.example.com/cb"],
                    defaultRedirectUri: "https://app.example.com/other",
                }),
            (e: unknown) =>
                e instanceof ConfigError &&
                /defaultRedirectUri "https:\/\/app\.example\.com\/other" must be one of callbackUrls/.test(e.message),
        );
        // Exact match only: a missing trailing slash is a different URL to Cognito.
        assert.throws(
            () => validateAuthUrls({ callbackUrls: ["http://localhost:3000/"], defaultRedirectUri: "http://localhost:3000" }, DEV),
            ConfigError,
        );
    });

    test("rejects plain http except on localhost (as Cognito: not even 127.0.0.1)", () => {
        for (const bad of [
            "http://127.0.0.1:5173/",
            "http://app.example.com/cb",
            "http://localhost.example.com/cb",
            "http://10.0.0.1/cb",
            "http://[::1]:3000/",
        ]) {
            assert.throws(
                () => validateAuthUrls({ callbackUrls: [bad] }, DEV),
                (e: unknown) => e instanceof ConfigError && e.message.includes("must use https") && e.message.includes(bad),
                bad,
            );
        }
        assert.throws(
            () => validateAuthUrls({ callbackUrls: ["https://app.example.com/"], logoutUrls: ["http://app.example.com/"] }),
            /logoutUrls\[0\] = "http:\/\/app\.example\.com\/" must use https/,
        );
        for (const good of ["http://localhost/", "http://localhost:3000/cb", "https://127.0.0.1:5173/", "https://x.example/"]) {
            assert.doesNotThrow(() => validateAuthUrls({ callbackUrls: [good] }, DEV), good);
        }
    });

    // Issue 25, point 9: no http://localhost on the production web client
    // unless a development stack asks for it; a separate client is the usual way.
    test("refuses http://localhost on the production client unless localhostCallbacks", () => {
        for (const urls of [
            { callbackUrls: ["http://localhost:3000/"] },
            { callbackUrls: ["https://app.example.com/"], logoutUrls: ["http://localhost:3000/"] },
        ]) {
            assert.throws(
                () => validateAuthUrls(urls),
                (e: unknown) =>
                    e instanceof ConfigError &&
                    e.message.includes('"http://localhost:3000/" is a development address') &&
                    !e.message.includes("devCallbackUrls") &&
                    e.message.includes("localhostCallbacks"),
            );
            assert.doesNotThrow(() => validateAuthUrls(urls, DEV));
        }
        assert.deepEqual(validateDevCallbackUrls(["http://localhost:3000/", "https://dev.example.com/"], DEV), [
            "http://localhost:3000/",
            "https://dev.example.com/",
        ]);
        assert.equal(validateDevCallbackUrls(undefined), undefined);
        assert.throws(() => validateDevCallbackUrls([], DEV), /devCallbackUrls must not be empty/);
        assert.throws(() => validateDevCallbackUrls(["http://127.0.0.1:3000/"], DEV), /devCallbackUrls\[0\] .* must use https/);
    });

    // Security review N2: Cognito cannot make a public client require PKCE,
    // and the Hosted UI session is the pool's: a localhost client on the
    // production pool hands a signed-in user's code to whatever listens there.
    test("devCallbackUrls is refused on a production stack (localhostCallbacks false)", () => {
        for (const urls of [["http://localhost:3000/"], ["https://dev.example.com/"]]) {
            assert.throws(
                () => validateDevCallbackUrls(urls),
                (e: unknown) =>
                    e instanceof ConfigError &&
                    e.message.includes("devCallbackUrls is refused on a production stack") &&
                    e.message.includes("PKCE") &&
                    e.message.includes("pulumi config rm items-api:devCallbackUrls"),
            );
        }
        assert.equal(validateDevCallbackUrls(undefined), undefined, "not set: nothing to refuse");
    });

    // Deploy review N12: the error once suggested a URL the same check refuses.
    test("the missing-callbackUrls error suggests a URL a production stack accepts", () => {
        let message = "";
        try {
            validateAuthUrls({});
        } catch (e) {
            message = (e as Error).message;
        }
        const suggested = /callbackUrls\[0\]' (\S+?);/.exec(message);
        assert.ok(suggested, message);
        assert.deepEqual(validateAuthUrls({ callbackUrls: [suggested[1]] }).callbackUrls, [suggested[1]]);
        assert.match(message, /localhostCallbacks true/);
    });

    test("rejects other malformed input", () => {
        assert.throws(() => validateAuthUrls({}), /callbackUrls must be a non-empty array/);
        assert.throws(() => validateAuthUrls({ callbackUrls: [] }), /callbackUrls must be a non-empty array/);
        assert.throws(() => validateAuthUrls({ callbackUrls: "https://a.example/" }), /must be an array of strings/);
        assert.throws(() => validateAuthUrls({ callbackUrls: ["not a url"] }), /is not an absolute URL/);
        assert.throws(() => validateAuthUrls({ callbackUrls: ["ftp://a.example/"] }), /must use https/);
        assert.throws(() => validateAuthUrls({ callbackUrls: ["https://a.example/#x"] }), /fragment/);
        assert.throws(
            () => validateAuthUrls({ callbackUrls: ["https://a.example/", "https://a.example/"] }),
            /listed twice/,
        );
    });
});

describe("other validators", () => {
    test("CORS origin defaults to the first callback URL's origin and must be a bare origin", () => {
        assert.equal(resolveCorsOrigin(undefined, ["http://localhost:3000/cb"]), "http://localhost:3000");
        assert.equal(resolveCorsOrigin("https://app.example.com", ["http://localhost:3000/"]), "https://app.example.com");
        assert.equal(resolveCorsOrigin("*", ["http://localhost:3000/"]), "*");
        assert.throws(() => resolveCorsOrigin("https://app.example.com/", []), /bare origin/);
        assert.throws(() => resolveCorsOrigin("http://app.example.com", []), /must use https/);
    });

    test("Cognito domain prefix rules", () => {
        assert.equal(validateDomainPrefix("items-dev-42"), "items-dev-42");
        for (const bad of ["Items", "-items", "items-", "my_items", "", "myaws", "cognito-x", "a".repeat(64)]) {
            assert.throws(() => validateDomainPrefix(bad), ConfigError, bad);
        }
    });

    test("integer bounds", () => {
        assert.equal(intInRange("batchSize", 1000, 1, 1000), 1000);
        assert.throws(() => intInRange("batchSize", 1001, 1, 1000), /batchSize must be an integer between 1 and 1000, got 1001/);
        assert.throws(() => intInRange("batchSize", 0, 1, 1000), ConfigError);
        assert.throws(() => intInRange("batchSize", 2.5, 1, 1000), ConfigError);
    });

    test("writeEventSchemas: 1 or 2, nothing else", () => {
        assert.equal(validateWriteEventSchemas(1), 1);
        assert.equal(validateWriteEventSchemas(2), 2);
        for (const bad of [0, 3, 1.5, -1]) {
            assert.throws(
                () => validateWriteEventSchemas(bad),
                (e: unknown) =>
                    e instanceof ConfigError &&
                    e.message.startsWith(`items-api configuration: writeEventSchemas must be 1 or 2 `) &&
                    e.message.endsWith(`, got ${bad}`),
                String(bad),
            );
        }
    });

    test("read table generations: integers of at least 1, the rebuild one different from the live one", () => {
        assert.deepEqual(validateTableGenerations(1, undefined), { live: 1 });
        assert.deepEqual(validateTableGenerations(1, 2), { live: 1, rebuild: 2 });
        // Going back to an earlier generation is a rebuild like any other.
        assert.deepEqual(validateTableGenerations(3, 1), { live: 3, rebuild: 1 });
        assert.throws(
            () => validateTableGenerations(2, 2),
            (e: unknown) =>
                e instanceof ConfigError &&
                e.message.startsWith(
                    "items-api configuration: itemsRebuildGeneration must differ from itemsTableGeneration (both are 2)",
                ) &&
                e.message.includes("pulumi config rm items-api:itemsRebuildGeneration"),
        );
        assert.throws(() => validateTableGenerations(0, undefined), /itemsTableGeneration must be an integer of at least 1, got 0/);
        assert.throws(() => validateTableGenerations(1.5, undefined), /itemsTableGeneration must be an integer of at least 1/);
        assert.throws(() => validateTableGenerations(1, 0), /itemsRebuildGeneration must be an integer of at least 1, got 0/);
        assert.throws(() => validateTableGenerations(1, -2), ConfigError);
    });

    test("read table logical names: generation 1 keeps \"items\" (no replacement), N > 1 is items-v<N>", () => {
        assert.equal(itemsTableLogicalName(1), "items");
        assert.equal(itemsTableLogicalName(2), "items-v2");
        assert.equal(itemsTableLogicalName(10), "items-v10");
    });

    test("Lambda archive path: relative stays relative, missing zip is a clear error", () => {
        const exists = () => true;
        assert.equal(
            lambdaArchivePath("../target/lambda", "post-item", { projectDir: "/repo/pulumi", cwd: "/repo/pulumi", exists }),
            path.join("..", "target", "lambda", "post-item", "bootstrap.zip"),
        );
        assert.equal(
            lambdaArchivePath("/abs/lambda", "get-items", { projectDir: "/repo/pulumi", cwd: "/elsewhere", exists }),
            "/abs/lambda/get-items/bootstrap.zip",
        );
        assert.throws(
            () => lambdaArchivePath("../target/lambda", "post-item", { projectDir: "/repo/pulumi", exists: () => false }),
            (e: unknown) =>
                e instanceof ConfigError &&
                e.message.includes("/repo/target/lambda/post-item/bootstrap.zip does not exist") &&
                e.message.includes("scripts/build-lambdas"),
        );
    });

    // Review (deploy) N1: a zip of the other architecture deploys, then every
    // invocation fails with Runtime.InvalidEntrypoint.
    test("the architecture of a zip's bootstrap: its ELF e_machine, stored or deflated", () => {
        for (const method of ["deflate", "store"] as const) {
            assert.equal(bootstrapArchitecture(lambdaZip("x86_64", { method })), "x86_64", method);
            assert.equal(bootstrapArchitecture(lambdaZip("arm64", { method })), "arm64", method);
        }
        // Other entries before it are skipped.
        const two = makeZip({ "README": Buffer.from("not this"), bootstrap: fakeElf(0xb7) });
        assert.equal(bootstrapArchitecture(two), "arm64");
        const refused: [Buffer, RegExp][] = [
            [Buffer.from("not a zip at all, just some text that is long enough"), /is not a zip file/],
            [makeZip({ "post-item": fakeElf(0x3e) }), /holds no `bootstrap`/],
            [makeZip({ bootstrap: Buffer.from("#!/bin/sh\necho hello\n") }), /not an ELF executable/],
            [makeZip({ bootstrap: fakeElf(0x3e, { elfClass: 1 }) }), /not a 64-bit little-endian ELF/],
            [makeZip({ bootstrap: fakeElf(0x28) }), /ELF machine 0x28, neither x86_64 nor arm64/],
        ];
        for (const [zip, reason] of refused) {
            assert.throws(() => bootstrapArchitecture(zip), reason);
        }
    });

    test("Lambda archive path: a zip built for another architecture than items-api:architecture is refused", () => {
        const opts = (zip: Buffer) => ({ projectDir: "/repo/pulumi", cwd: "/repo/pulumi", exists: () => true, read: () => zip });
        const zipPath = path.join("..", "target", "lambda", "post-item", "bootstrap.zip");
        assert.equal(lambdaArchivePath("../target/lambda", "post-item", { ...opts(lambdaZip("x86_64")), architecture: "x86_64" }), zipPath);
        assert.equal(lambdaArchivePath("../target/lambda", "post-item", { ...opts(lambdaZip("arm64")), architecture: "arm64" }), zipPath);
        assert.throws(
            () => lambdaArchivePath("../target/lambda", "post-item", { ...opts(lambdaZip("arm64")), architecture: "x86_64" }),
            (e: unknown) =>
                e instanceof ConfigError &&
                e.message.includes("/repo/target/lambda/post-item/bootstrap.zip was built for arm64") &&
                e.message.includes("items-api:architecture is x86_64") &&
                e.message.includes("LAMBDA_ARCH=x86_64 scripts/build-lambdas"),
        );
        assert.throws(
            () => lambdaArchivePath("../target/lambda", "get-items", { ...opts(lambdaZip("x86_64")), architecture: "arm64" }),
            /was built for x86_64, but items-api:architecture is arm64.*LAMBDA_ARCH=arm64/,
        );
        assert.throws(
            () => lambdaArchivePath("../target/lambda", "get-items", { ...opts(Buffer.from("")), architecture: "arm64" }),
            (e: unknown) => e instanceof ConfigError && /get-items\/bootstrap\.zip is not a zip file: rebuild it/.test(e.message),
        );
    });
});

// Deploy review N5: Cognito's built-in sender is for testing.
describe("validateEmailSending", () => {
    const arn = "arn:aws:ses:eu-west-1:123456789012:identity/noreply@example.com";
    test("not set: Cognito's own sender; an SES identity, with or without a from address", () => {
        assert.equal(validateEmailSending(undefined, undefined), undefined);
        assert.equal(validateEmailSending("", ""), undefined);
        assert.deepEqual(validateEmailSending(arn, undefined), { sourceArn: arn });
        const domain = "arn:aws:ses:eu-west-1:123456789012:identity/example.com";
        assert.deepEqual(validateEmailSending(domain, "Items <noreply@example.com>"), { sourceArn: domain, from: "Items <noreply@example.com>" });
        assert.deepEqual(validateEmailSending(arn, "noreply@example.com"), { sourceArn: arn, from: "noreply@example.com" });
    });
    test("refuses a from address without an identity, another ARN, a malformed address", () => {
        assert.throws(() => validateEmailSending(undefined, "noreply@example.com"), /emailFromAddress "noreply@example.com" needs sesEmailIdentityArn/);
        assert.throws(() => validateEmailSending("arn:aws:sns:eu-west-1:123456789012:topic", undefined), /is not an SES identity ARN/);
        assert.throws(() => validateEmailSending("noreply@example.com", undefined), /is not an SES identity ARN/);
        assert.throws(() => validateEmailSending(arn, "not an address"), /emailFromAddress "not an address" must be an address/);
    });
});

describe("URL builders", () => {
    test("Hosted UI sign-in URL", () => {
        assert.equal(
            hostedUiSignInUrl({
                domainPrefix: "items-dev",
                region: "us-east-1",
                clientId: "abc",
                redirectUri: "https://app.example.com/cb?x=1",
            }),
            "https://items-dev.auth.us-east-1.amazoncognito.com/oauth2/authorize?client_id=abc&response_type=token" +
                "&scope=openid+items%2Fread+items%2Fwrite&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb%3Fx%3D1",
        );
    });

    test("issuer", () => {
        assert.equal(issuerUrl("eu-west-1", "eu-west-1_AbC"), "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_AbC");
    });

    test("redeployment hash is deterministic and changes with any input", () => {
        const base = [["/items", "GET", ["items/read"], "uri-1"]];
        assert.equal(redeploymentHash(base), redeploymentHash(structuredClone(base)));
        assert.notEqual(redeploymentHash(base), redeploymentHash([["/items", "GET", ["items/write"], "uri-1"]]));
        assert.notEqual(redeploymentHash(base), redeploymentHash([["/items", "GET", ["items/read"], "uri-2"]]));
    });
});

describe("IAM policy rendering", () => {
    test("refuses wildcard actions and resources but allows the log-stream form", () => {
        const table = "arn:aws:dynamodb:eu-west-1:123456789012:table/t";
        assert.throws(() => renderPolicy([{ sid: "X", actions: ["dynamodb:*"], resources: [table] }]), /wildcard action "dynamodb:\*"/);
        assert.throws(() => policyDocument([{ sid: "X", actions: ["*"], resources: [table] }]), /wildcard action/);
        assert.throws(
            () => renderPolicy([{ sid: "X", actions: ["dynamodb:GetItem"], resources: [`${table.slice(0, -1)}*`] }]),
            /wildcard resource/,
        );
        assert.throws(() => renderPolicy([{ sid: "X", actions: ["dynamodb:GetItem"], resources: ["*"] }]), /wildcard resource/);
        // Only the trailing ":*" of one named log group is accepted.
        assert.throws(
            () => renderPolicy([{ sid: "L", actions: ["logs:PutLogEvents"], resources: ["arn:aws:logs:eu-west-1:1:log-group:*:*"] }]),
            /wildcard resource/,
        );
        const logs = "arn:aws:logs:eu-west-1:123456789012:log-group:/aws/lambda/f:*";
        assert.deepEqual(JSON.parse(renderPolicy([{ sid: "L", actions: ["logs:PutLogEvents"], resources: [logs] }])), {
            Version: "2012-10-17",
            Statement: [{ Sid: "L", Effect: "Allow", Action: ["logs:PutLogEvents"], Resource: [logs] }],
        });
    });
});

describe("loadSettings", () => {
    const load = (config: Record<string, string>) => {
        const all: Record<string, string> = {};
        for (const [k, v] of Object.entries(config)) all[`items-api:${k}`] = v;
        pulumi.runtime.setAllConfig(all);
        return loadSettings(new pulumi.Config("items-api"));
    };
    const minimal = { cognitoDomainPrefix: "items-dev", callbackUrls: '["https://app.example.com/"]' };

    test("defaults", () => {
        const s = load(minimal);
        assert.equal(s.architecture, "x86_64");
        assert.equal(s.lambdaArtifactsDir, "../target/lambda");
        assert.equal(s.logLevel, "INFO");
        assert.equal(s.logRetentionDays, 14);
        assert.equal(s.apiMemorySizeMb, 256);
        assert.equal(s.apiTimeoutSeconds, 10);
        assert.equal(s.projectorMemorySizeMb, 256);
        assert.equal(s.projectorTimeoutSeconds, 30);
        assert.equal(s.idempotencyTtlSeconds, 86400);
        assert.equal(s.writeEventSchemas, 2);
        assert.deepEqual(s.stream, {
            batchSize: 100,
            parallelizationFactor: 2,
            maximumBatchingWindowInSeconds: 1,
            maximumRetryAttempts: -1,
            maximumRecordAgeInSeconds: 82800,
        });
        assert.deepEqual(s.cognito, {
            callbackUrls: ["https://app.example.com/"],
            logoutUrls: ["https://app.example.com/"],
            defaultRedirectUri: "https://app.example.com/",
            devCallbackUrls: undefined,
            implicitGrant: false,
            domainPrefix: "items-dev",
            deletionProtection: true,
            selfSignUpEnabled: false,
            accessTokenValidityMinutes: 60,
            email: undefined,
        });
        assert.deepEqual(s.api, {
            corsAllowedOrigin: "https://app.example.com",
            throttlingBurstLimit: 100,
            throttlingRateLimit: 50,
            manageApiGatewayAccount: false,
            accessLogging: false,
            detailedMetrics: false,
        });
        assert.equal(s.itemsPointInTimeRecovery, false);
        assert.equal(s.eventsTableDeletionProtection, true);
        assert.deepEqual(s.readTables, { live: 1 });
        assert.equal(s.tracing, false);
        assert.deepEqual(s.monitoring, {
            alarmEmail: undefined,
            iteratorAgeAlarmMs: 60000,
            api5xxAlarmPercent: 1,
            apiP99LatencyAlarmMs: 2000,
        });
        // The documented defaults table agrees with what is applied.
        assert.equal(CONFIG_DEFAULTS.batchSize, s.stream.batchSize);
        assert.equal(CONFIG_DEFAULTS.logRetentionDays, s.logRetentionDays);
    });

    test("overrides", () => {
        const s = load({
            ...minimal,
            architecture: "arm64",
            logLevel: "debug",
            batchSize: "1000",
            parallelizationFactor: "10",
            deletionProtection: "false",
            logRetentionDays: "30",
            itemsTableGeneration: "2",
            itemsRebuildGeneration: "3",
            localhostCallbacks: "true",
            callbackUrls: '["http://localhost:3000/"]',
            devCallbackUrls: '["http://localhost:5173/"]',
            implicitGrant: "true",
            detailedMetrics: "true",
            itemsPointInTimeRecovery: "true",
            writeEventSchemas: "1",
        });
        assert.equal(s.writeEventSchemas, 1);
        assert.deepEqual(s.cognito.callbackUrls, ["http://localhost:3000/"]);
        assert.deepEqual(s.cognito.devCallbackUrls, ["http://localhost:5173/"]);
        assert.equal(s.cognito.implicitGrant, true);
        assert.equal(s.api.detailedMetrics, true);
        assert.equal(s.itemsPointInTimeRecovery, true);
        assert.equal(s.architecture, "arm64");
        assert.equal(s.logLevel, "DEBUG");
        assert.equal(s.stream.batchSize, 1000);
        assert.equal(s.stream.parallelizationFactor, 10);
        assert.equal(s.cognito.deletionProtection, false);
        assert.equal(s.logRetentionDays, 30);
        assert.deepEqual(s.readTables, { live: 2, rebuild: 3 });
    });

    test("rejects invalid stack config with a clear error", () => {
        assert.throws(() => load({ callbackUrls: minimal.callbackUrls }), /cognitoDomainPrefix/);
        assert.throws(() => load({ cognitoDomainPrefix: "items-dev" }), /callbackUrls must be a non-empty array/);
        assert.throws(
            () => load({ ...minimal, defaultRedirectUri: "https://app.example.com/other" }),
            /defaultRedirectUri "https:\/\/app\.example\.com\/other" must be one of callbackUrls/,
        );
        assert.throws(() => load({ ...minimal, callbackUrls: '["http://app.example.com/"]' }), /must use https/);
        assert.throws(() => load({ ...minimal, callbackUrls: '["http://localhost:3000/"]' }), /development address/);
        assert.throws(() => load({ ...minimal, devCallbackUrls: '["http://localhost:3000/"]' }), /devCallbackUrls is refused on a production stack/);
        assert.throws(() => load({ ...minimal, architecture: "arm" }), /architecture must be one of x86_64, arm64/);
        assert.throws(() => load({ ...minimal, batchSize: "0" }), /batchSize must be an integer between 1 and 1000/);
        assert.throws(
            () => load({ ...minimal, parallelizationFactor: "11" }),
            /parallelizationFactor must be an integer between 1 and 10/,
        );
        assert.throws(() => load({ ...minimal, batchSize: "1001" }), /batchSize/);
        assert.throws(() => load({ ...minimal, maximumRetryAttempts: "-2" }), /maximumRetryAttempts/);
        assert.throws(() => load({ ...minimal, maximumRecordAgeInSeconds: "-1" }), /maximumRecordAgeInSeconds/);
        // Past the stream's 24 h a record is trimmed, not retried: refused.
        assert.throws(() => load({ ...minimal, maximumRecordAgeInSeconds: "86401" }), /maximumRecordAgeInSeconds/);
        assert.throws(() => load({ ...minimal, logRetentionDays: "10" }), /logRetentionDays must be one of/);
        assert.throws(() => load({ ...minimal, logLevel: "VERBOSE" }), /logLevel/);
        // A limit of 0 throttles every request.
        assert.throws(() => load({ ...minimal, throttlingRateLimit: "0" }), /throttlingRateLimit must be an integer between 1/);
        assert.throws(() => load({ ...minimal, throttlingBurstLimit: "0" }), /throttlingBurstLimit must be an integer between 1/);
        assert.throws(() => load({ ...minimal, alarmEmail: "ops at example" }), /alarmEmail "ops at example" is not an e-mail/);
        assert.equal(load({ ...minimal, alarmEmail: "ops@example.com" }).monitoring.alarmEmail, "ops@example.com");
        // The default live generation is 1, so a rebuild generation of 1 is refused too.
        assert.throws(() => load({ ...minimal, itemsRebuildGeneration: "1" }), /itemsRebuildGeneration must differ from itemsTableGeneration \(both are 1\)/);
        assert.throws(() => load({ ...minimal, itemsTableGeneration: "0" }), /itemsTableGeneration must be an integer of at least 1/);
        assert.throws(() => load({ ...minimal, writeEventSchemas: "3" }), /writeEventSchemas must be 1 or 2 .*, got 3$/);
        assert.throws(() => load({ ...minimal, writeEventSchemas: "0" }), /writeEventSchemas must be 1 or 2 .*, got 0$/);
        assert.throws(() => load({ ...minimal, writeEventSchemas: "two" }), /writeEventSchemas/);
    });
});

// Issue 25, point 6 (review finding 8): Pulumi allows "." in stack names,
// Lambda function and dashboard names do not.
describe("validateNamePrefix", () => {
    test("refuses a stack name that would give invalid function or dashboard names", () => {
        assert.equal(validateNamePrefix("items-api", "prod_eu-1"), "items-api-prod_eu-1");
        for (const stack of ["prod.eu", "dev/1", "a b"]) {
            assert.throws(
                () => validateNamePrefix("items-api", stack),
                (e: unknown) => e instanceof ConfigError && e.message.includes(`"${stack}"`) && e.message.includes("pulumi stack rename"),
                stack,
            );
        }
    });
});

// Deploy review N3: `*/*` method settings throttle each method on its own.
describe("the throttle in the docs", () => {
    test("is per method, not stage-wide", () => {
        const deploy = fs.readFileSync(path.join(PROJECT_DIR, "..", "docs", "deploy.md"), "utf8");
        const scaling = fs.readFileSync(path.join(PROJECT_DIR, "..", "docs", "scaling.md"), "utf8");
        assert.doesNotMatch(deploy, /stage-wide/i);
        assert.doesNotMatch(deploy, /per second for\s+the stage/);
        assert.match(deploy, /^\| `throttlingBurstLimit` \| `100` \| Burst of each method/m);
        assert.match(deploy, /^\| `throttlingRateLimit` \| `50` \| Steady requests per second of each method, not of the stage/m);
        assert.doesNotMatch(scaling, /stage throttle/);
        for (const doc of [deploy, scaling]) {
            assert.match(doc, /applied\s+at\s+the\s+API\s+method\s+level\s+for\s+a\s+stage/);
        }
    });
});

describe("configuration reference in docs/deploy.md", () => {
    test("documents every key loadSettings reads, with the applied default", () => {
        pulumi.runtime.setAllConfig({
            "items-api:cognitoDomainPrefix": "items-dev",
            "items-api:callbackUrls": '["https://app.example.com/"]',
        });
        const real = new pulumi.Config("items-api");
        const read = new Set<string>();
        const spy: ConfigReader = {
            get: (k: string) => (read.add(k), real.get(k)),
            require: (k: string) => (read.add(k), real.require(k)),
            getObject: <T>(k: string) => (read.add(k), real.getObject<T>(k)),
            getBoolean: (k: string) => (read.add(k), real.getBoolean(k)),
            getNumber: (k: string) => (read.add(k), real.getNumber(k)),
        } as ConfigReader;
        loadSettings(spy);
        assert.deepEqual([...read].sort(), Object.keys(CONFIG_DEFAULTS).sort());

        const doc = fs.readFileSync(path.join(PROJECT_DIR, "..", "docs", "deploy.md"), "utf8");
        for (const [key, def] of Object.entries(CONFIG_DEFAULTS)) {
            const row = new RegExp("^\\| `" + key + "` \\| ([^|]+) \\|", "m").exec(doc);
            assert.ok(row, `docs/deploy.md has no row for ${key}`);
            const cell = row[1].trim();
            if (def === undefined) {
                assert.equal(cell, "*(required)*", key);
            } else if (typeof def !== "string" || !/[ \[]/.test(def)) {
                assert.equal(cell, "`" + String(def) + "`", key);
            }
        }
    });
});
