// Cognito: user pool, Hosted UI domain, the `items` resource server and the SPA client.

import * as aws from "@pulumi/aws";
import { AuthUrls, READ_SCOPE, Settings, WRITE_SCOPE, namePrefix } from "./config";
import routeTable from "./routes.json";

export const RESOURCE_SERVER_ID = "items";
/** Members may rename and delete anyone's items (the access token's `cognito:groups`). */
export const ADMIN_GROUP: string = routeTable.adminGroup;

export interface Cognito {
    userPool: aws.cognito.UserPool;
    domain: aws.cognito.UserPoolDomain;
    resourceServer: aws.cognito.ResourceServer;
    client: aws.cognito.UserPoolClient;
    /** A public client for development (http://localhost), when `devCallbackUrls` is set (development stacks only). */
    devClient?: aws.cognito.UserPoolClient;
    /** For CI and back-end callers: a secret and the client_credentials grant. */
    machineClient: aws.cognito.UserPoolClient;
    adminGroup: aws.cognito.UserGroup;
}

export function createCognito(settings: Settings): Cognito {
    const c = settings.cognito;
    const userPool = new aws.cognito.UserPool("users", {
        name: `${namePrefix()}-users`,
        usernameAttributes: ["email"],
        autoVerifiedAttributes: ["email"],
        passwordPolicy: {
            minimumLength: 12,
            requireUppercase: true,
            requireLowercase: true,
            requireNumbers: true,
            requireSymbols: true,
            temporaryPasswordValidityDays: 7,
        },
        mfaConfiguration: "OPTIONAL",
        softwareTokenMfaConfiguration: { enabled: true },
        accountRecoverySetting: {
            recoveryMechanisms: [{ name: "verified_email", priority: 1 }],
        },
        adminCreateUserConfig: { allowAdminCreateUserOnly: !c.selfSignUpEnabled },
        deletionProtection: c.deletionProtection ? "ACTIVE" : "INACTIVE",
        // Verification and password-reset codes. Unset, Cognito sends them
        // itself (COGNITO_DEFAULT), a limited number a day, "below the
        // required delivery volume" of "typical production environments";
        // DEVELOPER sends them through the stack's SES identity, within its
        // SES quota (Cognito API reference, EmailConfigurationType).
        emailConfiguration: c.email
            ? {
                  emailSendingAccount: "DEVELOPER",
                  sourceArn: c.email.sourceArn,
                  ...(c.email.from ? { fromEmailAddress: c.email.from } : {}),
              }
            : undefined,
    });

    // Classic Hosted UI at https://<prefix>.auth.<region>.amazoncognito.com
    const domain = new aws.cognito.UserPoolDomain(
        "hosted-ui",
        {
            domain: c.domainPrefix,
            userPoolId: userPool.id,
            // 1 = the classic Hosted UI that docs/deploy.md describes (2 is managed login).
            managedLoginVersion: 1,
        },
        // A pool has one prefix domain: a new prefix can only be created once
        // the old one is gone ("User pool already has a domain configured").
        { deleteBeforeReplace: true },
    );

    const resourceServer = new aws.cognito.ResourceServer("items-resource-server", {
        userPoolId: userPool.id,
        identifier: RESOURCE_SERVER_ID,
        name: "Items API",
        scopes: [
            { scopeName: "read", scopeDescription: "List and read items" },
            { scopeName: "write", scopeDescription: "Create, rename and delete items" },
        ],
    });

    // A browser page's client: public (no secret), the authorization code
    // flow with PKCE (the web page's default); the implicit grant, which
    // puts the tokens in the address bar, only when asked for.
    const flows = c.implicitGrant ? ["code", "implicit"] : ["code"];
    const browserClient = (logical: string, name: string, urls: AuthUrls) =>
        new aws.cognito.UserPoolClient(
            logical,
            {
                name,
                userPoolId: userPool.id,
                generateSecret: false,
                allowedOauthFlowsUserPoolClient: true,
                allowedOauthFlows: flows,
                allowedOauthScopes: ["openid", "email", READ_SCOPE, WRITE_SCOPE],
                supportedIdentityProviders: ["COGNITO"],
                callbackUrls: urls.callbackUrls,
                logoutUrls: urls.logoutUrls,
                defaultRedirectUri: urls.defaultRedirectUri,
                explicitAuthFlows: ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_SRP_AUTH"],
                preventUserExistenceErrors: "ENABLED",
                enableTokenRevocation: true,
                accessTokenValidity: c.accessTokenValidityMinutes,
                idTokenValidity: c.accessTokenValidityMinutes,
                refreshTokenValidity: 30,
                tokenValidityUnits: { accessToken: "minutes", idToken: "minutes", refreshToken: "days" },
            },
            // The custom scopes only exist once the resource server does.
            { dependsOn: [resourceServer] },
        );
    const client = browserClient("web-client", `${namePrefix()}-web`, c);
    // Development pages on http://localhost may get their own client, on a
    // development stack only (config.ts refuses it elsewhere): the Hosted UI
    // session is the pool's, not a client's, and Cognito cannot make a public
    // client require PKCE, so on a production pool anyone could use this
    // client's id to send a signed-in user's code to that localhost port.
    const devClient = c.devCallbackUrls
        ? browserClient("dev-web-client", `${namePrefix()}-web-dev`, {
              callbackUrls: c.devCallbackUrls,
              logoutUrls: c.devCallbackUrls,
              defaultRedirectUri: c.devCallbackUrls[0],
          })
        : undefined;

    // A machine caller's access token has `sub` = this client's id and no user.
    const machineClient = new aws.cognito.UserPoolClient(
        "machine-client",
        {
            name: `${namePrefix()}-machine`,
            userPoolId: userPool.id,
            generateSecret: true,
            allowedOauthFlowsUserPoolClient: true,
            allowedOauthFlows: ["client_credentials"],
            allowedOauthScopes: [READ_SCOPE, WRITE_SCOPE],
            supportedIdentityProviders: ["COGNITO"],
            explicitAuthFlows: ["ALLOW_REFRESH_TOKEN_AUTH"],
            preventUserExistenceErrors: "ENABLED",
            enableTokenRevocation: true,
            accessTokenValidity: c.accessTokenValidityMinutes,
            tokenValidityUnits: { accessToken: "minutes" },
        },
        { dependsOn: [resourceServer] },
    );

    const adminGroup = new aws.cognito.UserGroup("items-admins", {
        userPoolId: userPool.id,
        name: ADMIN_GROUP,
        description: "May rename and delete any item, not only their own",
    });

    return { userPool, domain, resourceServer, client, devClient, machineClient, adminGroup };
}
