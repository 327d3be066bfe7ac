// API Gateway (REST): /items, /items/{id} and /items/{id}/events behind a Cognito authorizer, CORS, stage v1.

import * as crypto from "crypto";
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { Settings, namePrefix } from "./config";
import routeTable from "./routes.json";
import { Cognito } from "./cognito";
import { Functions, LambdaBundle } from "./functions";
import { assumeRolePolicy } from "./iam";

export const STAGE_NAME = "v1";

type Method = "GET" | "POST" | "PATCH" | "DELETE";
/** The API's routes as the Rust route table (`items_aws::routes`) writes them. */
export const ROUTE_TABLE = routeTable as {
    routes: { operation: string; method: Method; resource: string; function: string; scope: string }[];
    allowHeaders: string[];
    preflightMaxAge: number;
};
export const CORS_ALLOW_HEADERS = ROUTE_TABLE.allowHeaders.join(",");

/** The methods a resource answers, OPTIONS included, as its preflight lists them. */
export function allowedMethods(path: string): string {
    const methods = ROUTE_TABLE.routes.filter((r) => r.resource === path).map((r) => r.method);
    return [...methods, "OPTIONS"].join(",");
}
/** The body of a 404 for an unknown path or method, as `items serve` answers it. */
export const NOT_FOUND_BODY = '{"message":"Not found"}';

/** One JSON object per request in the access log group ($context variables). */
export const ACCESS_LOG_FORMAT = JSON.stringify({
    requestId: "$context.requestId",
    extendedRequestId: "$context.extendedRequestId",
    requestTime: "$context.requestTime",
    ip: "$context.identity.sourceIp",
    userAgent: "$context.identity.userAgent",
    httpMethod: "$context.httpMethod",
    resourcePath: "$context.resourcePath",
    path: "$context.path",
    status: "$context.status",
    protocol: "$context.protocol",
    responseLength: "$context.responseLength",
    responseLatency: "$context.responseLatency",
    integrationStatus: "$context.integration.status",
    integrationLatency: "$context.integration.latency",
    integrationError: "$context.integration.error",
    authorizerError: "$context.authorizer.error",
    sub: "$context.authorizer.claims.sub",
    errorMessage: "$context.error.message",
    errorType: "$context.error.responseType",
});

/** Deterministic hash used as the Deployment trigger. */
export function redeploymentHash(parts: unknown): string {
    return crypto.createHash("sha256").update(JSON.stringify(parts)).digest("hex");
}

interface Route {
    key: string;
    resource: aws.apigateway.Resource;
    path: string;
    httpMethod: Method;
    target: LambdaBundle;
    scopes: string[];
    /** Tail of the execute-api source ARN allowed to invoke the target. */
    sourceArnPath: string;
    requestParameters?: Record<string, boolean>;
}

export interface RouteResources {
    route: Route;
    method: aws.apigateway.Method;
    integration: aws.apigateway.Integration;
    permission: aws.lambda.Permission;
}

export interface Api {
    restApi: aws.apigateway.RestApi;
    authorizer: aws.apigateway.Authorizer;
    routes: RouteResources[];
    deployment: aws.apigateway.Deployment;
    stage: aws.apigateway.Stage;
    /** Only with `accessLogging`. */
    accessLogGroup?: aws.cloudwatch.LogGroup;
    account?: aws.apigateway.Account;
}

export function createApi(settings: Settings, cognito: Cognito, fns: Functions): Api {
    const prefix = namePrefix();
    const origin = settings.api.corsAllowedOrigin;

    const restApi = new aws.apigateway.RestApi("api", {
        name: `${prefix}-api`,
        description: "Items API",
        endpointConfiguration: { types: "REGIONAL" },
    });

    const itemsResource = new aws.apigateway.Resource("items", {
        restApi: restApi.id,
        parentId: restApi.rootResourceId,
        pathPart: "items",
    });
    const itemResource = new aws.apigateway.Resource("item", {
        restApi: restApi.id,
        parentId: itemsResource.id,
        pathPart: "{id}",
    });
    const historyResource = new aws.apigateway.Resource("item-events", {
        restApi: restApi.id,
        parentId: itemResource.id,
        pathPart: "events",
    });

    const authorizer = new aws.apigateway.Authorizer("cognito", {
        name: `${prefix}-cognito`,
        restApi: restApi.id,
        type: "COGNITO_USER_POOLS",
        providerArns: [cognito.userPool.arn],
        identitySource: "method.request.header.Authorization",
    });

    // The route table (`routes.json`, written from the Rust one the handlers
    // and `items serve` follow): one method per entry, named for its operation.
    const resources: Record<string, aws.apigateway.Resource> = {
        "/items": itemsResource,
        "/items/{id}": itemResource,
        "/items/{id}/events": historyResource,
    };
    const targets: Record<string, LambdaBundle> = {
        "post-item": fns.postItem,
        "get-items": fns.getItems,
        "item-commands": fns.itemCommands,
    };
    for (const r of ROUTE_TABLE.routes) {
        if (!resources[r.resource] || !targets[r.function]) {
            throw new Error(`routes.json: ${r.method} ${r.resource} -> ${r.function} has no resource or function here`);
        }
    }
    const routeSpecs: Route[] = ROUTE_TABLE.routes.map((r) => ({
        key: r.operation,
        resource: resources[r.resource],
        path: r.resource,
        httpMethod: r.method,
        target: targets[r.function],
        scopes: [r.scope],
        sourceArnPath: `${r.method}${r.resource.replace(/\{[^}]+\}/g, "*")}`,
        ...(r.resource.includes("{id}") ? { requestParameters: { "method.request.path.id": true } } : {}),
    }));

    const routes: RouteResources[] = routeSpecs.map((route) => {
        const method = new aws.apigateway.Method(`${route.key}-method`, {
            restApi: restApi.id,
            resourceId: route.resource.id,
            httpMethod: route.httpMethod,
            authorization: "COGNITO_USER_POOLS",
            authorizerId: authorizer.id,
            authorizationScopes: route.scopes,
            requestParameters: route.requestParameters,
        });
        const integration = new aws.apigateway.Integration(`${route.key}-integration`, {
            restApi: restApi.id,
            resourceId: route.resource.id,
            httpMethod: method.httpMethod,
            type: "AWS_PROXY",
            integrationHttpMethod: "POST",
            uri: route.target.fn.invokeArn,
        });
        const permission = new aws.lambda.Permission(`${route.key}-permission`, {
            action: "lambda:InvokeFunction",
            function: route.target.fn.name,
            principal: "apigateway.amazonaws.com",
            // Any stage, this method and path only.
            sourceArn: pulumi.interpolate`${restApi.executionArn}/*/${route.sourceArnPath}`,
        });
        return { route, method, integration, permission };
    });

    // CORS preflight: unauthenticated OPTIONS answered by API Gateway itself.
    // (The Lambda proxy responses must carry Access-Control-Allow-Origin too.)
    const corsTargets = [
        { key: "items", path: "/items" },
        { key: "item", path: "/items/{id}" },
        { key: "item-events", path: "/items/{id}/events" },
    ].map((t) => ({ key: t.key, resource: resources[t.path], methods: allowedMethods(t.path) }));
    const cors = corsTargets.map((t) => {
        const headers = {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
            "Access-Control-Allow-Methods": t.methods,
            "Access-Control-Max-Age": String(ROUTE_TABLE.preflightMaxAge),
        };
        const method = new aws.apigateway.Method(`${t.key}-options-method`, {
            restApi: restApi.id,
            resourceId: t.resource.id,
            httpMethod: "OPTIONS",
            authorization: "NONE",
        });
        const integration = new aws.apigateway.Integration(`${t.key}-options-integration`, {
            restApi: restApi.id,
            resourceId: t.resource.id,
            httpMethod: method.httpMethod,
            type: "MOCK",
            requestTemplates: { "application/json": '{"statusCode": 200}' },
        });
        const methodResponse = new aws.apigateway.MethodResponse(`${t.key}-options-200`, {
            restApi: restApi.id,
            resourceId: t.resource.id,
            httpMethod: method.httpMethod,
            statusCode: "200",
            responseModels: { "application/json": "Empty" },
            responseParameters: Object.fromEntries(
                Object.keys(headers).map((h) => [`method.response.header.${h}`, true]),
            ),
        });
        const integrationResponse = new aws.apigateway.IntegrationResponse(
            `${t.key}-options-integration-200`,
            {
                restApi: restApi.id,
                resourceId: t.resource.id,
                httpMethod: method.httpMethod,
                statusCode: methodResponse.statusCode,
                responseParameters: Object.fromEntries(
                    Object.entries(headers).map(([h, v]) => [`method.response.header.${h}`, `'${v}'`]),
                ),
            },
            { dependsOn: [integration] },
        );
        return { target: t, headers, method, integration, methodResponse, integrationResponse };
    });

    // Errors produced by API Gateway itself (401 from the authorizer, 403, 429,
    // 5xx) also need the CORS headers or browsers hide them from the page.
    const corsHeaders = {
        "gatewayresponse.header.Access-Control-Allow-Origin": `'${origin}'`,
        "gatewayresponse.header.Access-Control-Allow-Headers": `'${CORS_ALLOW_HEADERS}'`,
        "gatewayresponse.header.Access-Control-Allow-Methods": "'GET,POST,PATCH,DELETE,OPTIONS'",
    };
    const gatewayResponses = ["DEFAULT_4XX", "DEFAULT_5XX"].map(
        (responseType) =>
            new aws.apigateway.Response(`cors-${responseType.toLowerCase().replace("_", "-")}`, {
                restApiId: restApi.id,
                responseType,
                responseParameters: corsHeaders,
            }),
    );
    // An unknown path or method: API Gateway's default is 403 "Missing
    // Authentication Token", which misleads; answer 404 as `items serve` does.
    gatewayResponses.push(
        new aws.apigateway.Response("not-found", {
            restApiId: restApi.id,
            responseType: "MISSING_AUTHENTICATION_TOKEN",
            statusCode: "404",
            responseTemplates: { "application/json": NOT_FOUND_BODY },
            responseParameters: corsHeaders,
        }),
    );

    // Every input of every method, integration, CORS answer, gateway response
    // and the authorizer goes into this hash: any change replaces the
    // Deployment (and so redeploys v1). Ids alone would miss in-place updates.
    const triggerParts = pulumi.output<unknown[]>([
        pulumi.all(
            routes.map((r) =>
                pulumi.output<unknown[]>([
                    r.route.path,
                    r.route.httpMethod,
                    r.route.scopes,
                    r.route.requestParameters ?? {},
                    r.route.sourceArnPath,
                    r.method.id,
                    r.method.authorization,
                    r.method.authorizerId,
                    r.method.authorizationScopes,
                    r.method.requestParameters,
                    r.integration.id,
                    r.integration.type,
                    r.integration.integrationHttpMethod,
                    r.integration.uri,
                ]),
            ),
        ),
        pulumi.all(
            cors.map((c) =>
                pulumi.output<unknown[]>([
                    c.target.key,
                    c.target.methods,
                    c.headers,
                    c.method.id,
                    c.method.authorization,
                    c.integration.id,
                    c.integration.type,
                    c.integration.requestTemplates,
                    c.methodResponse.responseParameters,
                    c.methodResponse.responseModels,
                    c.integrationResponse.id,
                    c.integrationResponse.responseParameters,
                ]),
            ),
        ),
        pulumi.all(
            gatewayResponses.map((g) =>
                pulumi.output<unknown[]>([g.id, g.responseType, g.statusCode, g.responseParameters, g.responseTemplates]),
            ),
        ),
        pulumi.output<unknown[]>([authorizer.id, authorizer.type, authorizer.providerArns, authorizer.identitySource]),
        cognito.userPool.arn,
    ]);
    const deployment = new aws.apigateway.Deployment(
        "deployment",
        {
            restApi: restApi.id,
            description: "Items API deployment (replaced whenever the trigger hash changes)",
            triggers: { redeployment: triggerParts.apply(redeploymentHash) },
        },
        {
            dependsOn: [
                ...routes.flatMap((r) => [r.method, r.integration]),
                ...cors.flatMap((c) => [c.method, c.integration, c.methodResponse, c.integrationResponse]),
                ...gatewayResponses,
            ],
        },
    );

    const account = settings.api.manageApiGatewayAccount ? createApiGatewayAccount() : undefined;

    // Access logs need the account's CloudWatch Logs role: on a fresh account
    // without it, a Stage with access logs fails ("CloudWatch Logs role ARN
    // must be set"). So they are a switch, off by default.
    const accessLogGroup = settings.api.accessLogging
        ? new aws.cloudwatch.LogGroup("api-access-logs", {
              name: `/aws/apigateway/${prefix}-${STAGE_NAME}-access`,
              retentionInDays: settings.logRetentionDays,
          })
        : undefined;

    const stage = new aws.apigateway.Stage(
        STAGE_NAME,
        {
            restApi: restApi.id,
            deployment: deployment.id,
            stageName: STAGE_NAME,
            description: "Items API, version 1",
            xrayTracingEnabled: settings.tracing,
            accessLogSettings: accessLogGroup
                ? { destinationArn: accessLogGroup.arn, format: ACCESS_LOG_FORMAT }
                : undefined,
        },
        // Access logging needs the account-level CloudWatch role to be set.
        { dependsOn: account ? [account] : [] },
    );

    new aws.apigateway.MethodSettings(`${STAGE_NAME}-method-settings`, {
        restApi: restApi.id,
        stageName: stage.stageName,
        methodPath: "*/*",
        settings: {
            // Per-method ("detailed") metrics are billed as custom metrics and
            // neither the alarms nor the dashboard read them: the stage's own
            // metrics (ApiName + Stage) are always published.
            metricsEnabled: settings.api.detailedMetrics,
            loggingLevel: "OFF",
            // `*/*`: every method's own limits, not a limit of the stage
            // (https://docs.aws.amazon.com/apigateway/latest/developerguide/api-gateway-request-throttling.html).
            throttlingBurstLimit: settings.api.throttlingBurstLimit,
            throttlingRateLimit: settings.api.throttlingRateLimit,
        },
    });

    return { restApi, authorizer, routes, deployment, stage, accessLogGroup, account };
}

/**
 * API Gateway writes logs with one role per account and region. Only create
 * (and thereby own) that setting when asked: another stack may manage it.
 * The setting is account-wide and other APIs may rely on it, so a `pulumi
 * destroy` leaves it, and the role it names, in place (`retainOnDelete`;
 * @pulumi/aws 7 has no `resetOnDelete`): they leave Pulumi's state and stay
 * in the account until removed by hand (docs/deploy.md, tearing down).
 */
function createApiGatewayAccount(): aws.apigateway.Account {
    const partition = aws.getPartitionOutput().partition;
    const retain = { retainOnDelete: true };
    const role = new aws.iam.Role(
        "apigateway-cloudwatch-role",
        {
            assumeRolePolicy: assumeRolePolicy("apigateway.amazonaws.com"),
            description: "Lets API Gateway write access and execution logs to CloudWatch Logs",
        },
        retain,
    );
    const attachment = new aws.iam.RolePolicyAttachment(
        "apigateway-cloudwatch-logs",
        {
            role: role.name,
            policyArn: pulumi.interpolate`arn:${partition}:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs`,
        },
        retain,
    );
    return new aws.apigateway.Account(
        "apigateway-account",
        { cloudwatchRoleArn: role.arn },
        { ...retain, dependsOn: [attachment] },
    );
}
