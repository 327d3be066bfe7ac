// Items API infrastructure.
//
//   Cognito Hosted UI -> API Gateway (REST, Cognito authorizer) -> Lambda -> DynamoDB
//   events table stream -> project-events -> items table (failures -> SQS DLQ)
//   (the live items table of `itemsTableGeneration`, plus an empty one of
//   `itemsRebuildGeneration` while a rebuild is prepared)
//
// See ../docs/deploy.md for the walk-through and the configuration reference.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { createApi } from "./api";
import { createCognito } from "./cognito";
import { READ_SCOPE, hostedUiBaseUrl, hostedUiSignInUrl as signInUrl, issuerUrl, loadSettings } from "./config";
import { createFunctions } from "./functions";
import { createMonitoring } from "./monitoring";
import { createDlq, createStreamTrigger } from "./stream";
import { createTables } from "./tables";

const settings = loadSettings();
const region = aws.getRegionOutput().region;

const tables = createTables({
    eventsDeletionProtection: settings.eventsTableDeletionProtection,
    readTables: settings.readTables,
    itemsPointInTimeRecovery: settings.itemsPointInTimeRecovery,
});
const dlq = createDlq();
const fns = createFunctions(settings, tables, dlq);
createStreamTrigger(settings, tables.events, fns.projectEvents.fn, dlq);
const cognito = createCognito(settings);
const api = createApi(settings, cognito, fns);
const monitoring = createMonitoring(settings, fns, api.restApi.name, dlq, tables.items);

const hostedUi = (scopes?: string[]) =>
    pulumi.all([region, cognito.client.id]).apply(([r, clientId]) =>
        signInUrl({
            domainPrefix: settings.cognito.domainPrefix,
            region: r,
            clientId,
            redirectUri: settings.cognito.defaultRedirectUri,
            scopes,
        }),
    );

/** https://<api id>.execute-api.<region>.amazonaws.com/v1 */
export const apiUrl = api.stage.invokeUrl;
/**
 * Implicit-grant sign-in (the classic tutorial's: the access token comes back
 * in the redirect's #fragment); only with `implicitGrant`. The web page signs
 * in with the authorization code flow and PKCE, which needs no such URL.
 */
export const hostedUiSignInUrl = settings.cognito.implicitGrant ? hostedUi() : undefined;
/** Same, asking only for items/read: its access token is refused by POST /items. */
export const hostedUiReadOnlySignInUrl = settings.cognito.implicitGrant ? hostedUi(["openid", READ_SCOPE]) : undefined;
export const userPoolId = cognito.userPool.id;
export const userPoolClientId = cognito.client.id;
/** The development client (`devCallbackUrls`), for a page on http://localhost; undefined when not set. */
export const devClientId = cognito.devClient?.id;
export const issuer = pulumi.all([region, cognito.userPool.id]).apply(([r, id]) => issuerUrl(r, id));
export const eventsTableName = tables.events.name;
/** The live read table (`itemsTableGeneration`), the one the functions use. */
export const itemsTableName = tables.items.name;
/** The empty table of `itemsRebuildGeneration` for `items replay --into`; undefined when not set. */
export const itemsRebuildTableName = tables.itemsRebuild?.name;
export const dlqUrl = dlq.url;
export const awsRegion = region;
/** The Hosted UI's base URL (`/oauth2/authorize`, `/oauth2/token`, `/login`). */
export const hostedUiDomain = region.apply((r) => hostedUiBaseUrl(settings.cognito.domainPrefix, r));
/** client_credentials: POST <hostedUiDomain>/oauth2/token with this client's id and secret. */
export const machineClientId = cognito.machineClient.id;
/** `pulumi stack output --show-secrets machineClientSecret` (scripts/smoke reads it). */
export const machineClientSecret = pulumi.secret(cognito.machineClient.clientSecret);
export const alarmTopicArn = monitoring.topic.arn;
/**
 * After removing a route: `pulumi up --replace "$(pulumi stack output apiDeploymentUrn)"`
 * (Pulumi deletes the removed method after creating the new deployment, which
 * therefore still holds it).
 */
export const apiDeploymentUrn = api.deployment.urn;
export const dashboardName = monitoring.dashboard.dashboardName;
export const functionNames = {
    postItem: fns.postItem.functionName,
    getItems: fns.getItems.functionName,
    itemCommands: fns.itemCommands.functionName,
    projectEvents: fns.projectEvents.functionName,
};
