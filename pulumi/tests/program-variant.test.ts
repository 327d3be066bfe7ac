// The program with every optional setting changed, against mocks.

import assert from "node:assert/strict";
import * as path from "node:path";
import { before, test } from "node:test";
import { PROJECT_DIR } from "../config";
import { ACCOUNT, Program, REGION, loadProgram, makeArtifactsDir, parsePolicy, unsecret, writePolicies } from "./harness";

let p: Program;
let artifacts: string;

before(async () => {
    artifacts = makeArtifactsDir("arm64");
    p = await loadProgram({
        cognitoDomainPrefix: "items-prod",
        callbackUrls: JSON.stringify(["https://app.example.com/callback", "https://app.example.com/other"]),
        logoutUrls: JSON.stringify(["https://app.example.com/"]),
        defaultRedirectUri: "https://app.example.com/other",
        // A development stack with https pages and a separate localhost client.
        localhostCallbacks: "true",
        devCallbackUrls: JSON.stringify(["http://localhost:3000/"]),
        implicitGrant: "true",
        detailedMetrics: "true",
        itemsPointInTimeRecovery: "true",
        corsAllowedOrigin: "https://app.example.com",
        // Relative to the Pulumi project directory, like the default.
        lambdaArtifactsDir: path.relative(PROJECT_DIR, artifacts),
        architecture: "arm64",
        logLevel: "debug",
        logRetentionDays: "30",
        apiMemorySizeMb: "512",
        apiTimeoutSeconds: "20",
        projectorMemorySizeMb: "1024",
        projectorTimeoutSeconds: "60",
        idempotencyTtlSeconds: "3600",
        writeEventSchemas: "1",
        batchSize: "10",
        maximumBatchingWindowInSeconds: "0",
        maximumRetryAttempts: "2",
        maximumRecordAgeInSeconds: "600",
        throttlingBurstLimit: "20",
        throttlingRateLimit: "10",
        deletionProtection: "false",
        selfSignUpEnabled: "true",
        sesEmailIdentityArn: "arn:aws:ses:eu-west-1:123456789012:identity/noreply@example.com",
        emailFromAddress: "Items <noreply@example.com>",
        manageApiGatewayAccount: "true",
        accessLogging: "true",
        tracing: "true",
        eventsTableDeletionProtection: "false",
        alarmEmail: "ops@example.com",
        iteratorAgeAlarmMs: "30000",
        api5xxAlarmPercent: "5",
        apiP99LatencyAlarmMs: "800",
    });
});

test("functions follow architecture, sizing, log level, retention and a relative artifacts dir", async () => {
    for (const f of p.ofType("aws:lambda/function:Function")) {
        const i = f.inputs;
        assert.deepEqual(i.architectures, ["arm64"]);
        // Relative in the state (machine-independent), resolved from the project directory.
        const archive = await i.code.path;
        assert.ok(!path.isAbsolute(archive), archive);
        assert.equal(path.resolve(archive), path.join(artifacts, f.name, "bootstrap.zip"));
        assert.equal(i.memorySize, f.name === "project-events" ? 1024 : 512);
        assert.equal(i.timeout, f.name === "project-events" ? 60 : 20);
        assert.equal(i.loggingConfig.applicationLogLevel, "DEBUG");
        assert.equal(i.loggingConfig.systemLogLevel, "INFO");
        assert.equal(p.get("aws:cloudwatch/logGroup:LogGroup", `${f.name}-logs`).inputs.retentionInDays, 30);
    }
    const post = p.get("aws:lambda/function:Function", "post-item").inputs;
    assert.equal(post.environment.variables.IDEMPOTENCY_TTL_SECONDS, "3600");
});

test("writeEventSchemas 1 reaches the writers (post-item, item-commands) as WRITE_EVENT_SCHEMAS, no reader", () => {
    const schemas: Record<string, string | undefined> = {};
    for (const f of p.ofType("aws:lambda/function:Function")) {
        schemas[f.name] = unsecret(f.inputs.environment).value.variables.WRITE_EVENT_SCHEMAS;
    }
    assert.deepEqual(schemas, {
        "post-item": "1",
        "item-commands": "1",
        "get-items": undefined,
        "project-events": undefined,
    });
});

test("stream mapping uses the configured batching and bounds", () => {
    const m = p.ofType("aws:lambda/eventSourceMapping:EventSourceMapping")[0].inputs;
    assert.equal(m.batchSize, 10);
    assert.equal(m.maximumBatchingWindowInSeconds, 0);
    assert.equal(m.maximumRetryAttempts, 2);
    assert.equal(m.maximumRecordAgeInSeconds, 600);
    assert.equal(m.bisectBatchOnFunctionError, true);
    assert.equal(m.startingPosition, "TRIM_HORIZON");
});

test("Cognito follows the URL, deletion-protection and sign-up settings", () => {
    const pool = p.get("aws:cognito/userPool:UserPool", "users").inputs;
    assert.equal(pool.deletionProtection, "INACTIVE");
    assert.deepEqual(pool.adminCreateUserConfig, { allowAdminCreateUserOnly: false });
    const c = p.get("aws:cognito/userPoolClient:UserPoolClient", "web-client").inputs;
    assert.deepEqual(c.callbackUrls, ["https://app.example.com/callback", "https://app.example.com/other"]);
    assert.deepEqual(c.logoutUrls, ["https://app.example.com/"]);
    assert.equal(c.defaultRedirectUri, "https://app.example.com/other");
    assert.match(String(p.outputs.hostedUiSignInUrl), /^https:\/\/items-prod\.auth\.eu-west-1\.amazoncognito\.com\/oauth2\/authorize\?/);
    assert.ok(String(p.outputs.hostedUiSignInUrl).includes("response_type=token"), "implicitGrant: the classic URL");
    assert.ok(String(p.outputs.hostedUiSignInUrl).endsWith("&redirect_uri=https%3A%2F%2Fapp.example.com%2Fother"));
});

// Issue 25, point 9: localhost pages may get their own client (on a
// development stack: security review N2); implicitGrant adds the implicit
// grant to both browser clients.
test("devCallbackUrls: a separate public development client; implicitGrant on both browser clients", () => {
    const web = p.get("aws:cognito/userPoolClient:UserPoolClient", "web-client").inputs;
    const dev = p.get("aws:cognito/userPoolClient:UserPoolClient", "dev-web-client").inputs;
    assert.equal(dev.name, "items-api-test-web-dev");
    assert.equal(dev.generateSecret, false);
    assert.deepEqual(dev.callbackUrls, ["http://localhost:3000/"]);
    assert.deepEqual(dev.logoutUrls, ["http://localhost:3000/"]);
    assert.equal(dev.defaultRedirectUri, "http://localhost:3000/");
    for (const client of [web, dev]) {
        assert.deepEqual([...client.allowedOauthFlows].sort(), ["code", "implicit"]);
        assert.deepEqual(client.allowedOauthScopes, ["openid", "email", "items/read", "items/write"]);
    }
    assert.ok(!web.callbackUrls.some((u: string) => u.startsWith("http://")), "no development address on the production client");
    assert.equal(p.outputs.devClientId, "client123");
});

// Deploy review N5: production mail through SES, not Cognito's test quota.
test("sesEmailIdentityArn sends the pool's mail through SES (DEVELOPER), from emailFromAddress", () => {
    const pool = p.get("aws:cognito/userPool:UserPool", "users").inputs;
    assert.deepEqual(pool.emailConfiguration, {
        emailSendingAccount: "DEVELOPER",
        sourceArn: "arn:aws:ses:eu-west-1:123456789012:identity/noreply@example.com",
        fromEmailAddress: "Items <noreply@example.com>",
    });
});

test("detailedMetrics turns on per-method metrics; itemsPointInTimeRecovery the read table's PITR", () => {
    const settings = p.ofType("aws:apigateway/methodSettings:MethodSettings")[0].inputs.settings;
    assert.equal(settings.metricsEnabled, true);
    assert.deepEqual(p.get("aws:dynamodb/table:Table", "items").inputs.pointInTimeRecovery, { enabled: true });
});

test("CORS uses the configured origin; throttling follows config", () => {
    for (const r of p.ofType("aws:apigateway/integrationResponse:IntegrationResponse")) {
        assert.equal(r.inputs.responseParameters["method.response.header.Access-Control-Allow-Origin"], "'https://app.example.com'");
    }
    for (const g of p.ofType("aws:apigateway/response:Response")) {
        assert.equal(g.inputs.responseParameters["gatewayresponse.header.Access-Control-Allow-Origin"], "'https://app.example.com'");
    }
    const ms = p.get("aws:apigateway/methodSettings:MethodSettings", "v1-method-settings").inputs;
    assert.equal(ms.settings.throttlingBurstLimit, 20);
    assert.equal(ms.settings.throttlingRateLimit, 10);
});

test("manageApiGatewayAccount creates the CloudWatch role and account setting", () => {
    const account = p.get("aws:apigateway/account:Account", "apigateway-account").inputs;
    const role = p.get("aws:iam/role:Role", "apigateway-cloudwatch-role");
    assert.equal(account.cloudwatchRoleArn, role.state.arn);
    assert.deepEqual(JSON.parse(role.inputs.assumeRolePolicy).Statement[0].Principal, { Service: "apigateway.amazonaws.com" });
    const attachment = p.get("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "apigateway-cloudwatch-logs").inputs;
    assert.equal(attachment.role, role.state.name);
    assert.equal(attachment.policyArn, "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs");
    assert.ok(account.cloudwatchRoleArn.startsWith(`arn:aws:iam::${ACCOUNT}:role/`));
    assert.equal(REGION, "eu-west-1");
});

test("accessLogging: the stage writes JSON access logs to its own log group", () => {
    const stage = p.get("aws:apigateway/stage:Stage", "v1").inputs;
    const accessLogs = p.get("aws:cloudwatch/logGroup:LogGroup", "api-access-logs");
    assert.equal(accessLogs.inputs.name, "/aws/apigateway/items-api-test-v1-access");
    assert.equal(stage.accessLogSettings.destinationArn, accessLogs.state.arn);
    const format = JSON.parse(stage.accessLogSettings.format);
    assert.equal(format.requestId, "$context.requestId");
    assert.equal(format.status, "$context.status");
});

test("tracing: X-Ray on the stage and every function, the X-Ray grant on the only resource it takes", () => {
    assert.equal(p.get("aws:apigateway/stage:Stage", "v1").inputs.xrayTracingEnabled, true);
    for (const f of p.ofType("aws:lambda/function:Function")) {
        assert.deepEqual(f.inputs.tracingConfig, { mode: "Active" }, f.name);
    }
    // Each function's main policy; its read-table policy holds that table's grants only.
    for (const pol of p.ofType("aws:iam/rolePolicy:RolePolicy").filter((r) => !r.name.endsWith("-items-policy"))) {
        const statements = parsePolicy(pol.inputs.policy);
        assert.deepEqual(statements.get("WriteTraces"), {
            actions: ["xray:PutTraceSegments", "xray:PutTelemetryRecords"],
            resources: ["*"],
        }, pol.name);
        // The other `*`: ListStreams, which has no resource type (program.test.ts).
        for (const [sid, st] of statements) {
            if (sid !== "WriteTraces" && sid !== "ListEventStreams") {
                assert.ok(!st.resources.includes("*"), `${pol.name} ${sid}`);
            }
        }
    }
});

test("alarm e-mail, thresholds and the events table's deletion protection follow config", () => {
    const subscription = p.get("aws:sns/topicSubscription:TopicSubscription", "alarms-email").inputs;
    assert.deepEqual([subscription.protocol, subscription.endpoint], ["email", "ops@example.com"]);
    assert.equal(subscription.topic, p.get("aws:sns/topic:Topic", "alarms").state.arn);
    const alarms = new Map(p.ofType("aws:cloudwatch/metricAlarm:MetricAlarm").map((a) => [a.name, a.inputs]));
    assert.equal(alarms.get("projector-iterator-age")!.threshold, 30000);
    assert.equal(alarms.get("api-5xx-rate")!.threshold, 0.05);
    assert.equal(alarms.get("api-p99-latency")!.threshold, 800);
    assert.equal(p.get("aws:dynamodb/table:Table", "events").inputs.deletionProtectionEnabled, false);
});

test("its policy documents are written for the IAM linter (scripts/lint-policies)", () => {
    // Every role's trust policy and every inline policy: a new kind of
    // policy document (a queue or topic policy) must be added here too.
    const documents = p.ofType("aws:iam/role:Role").length + p.ofType("aws:iam/rolePolicy:RolePolicy").length;
    assert.equal(writePolicies(p, "variant"), documents);
});
