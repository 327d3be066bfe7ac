// Stack configuration: reading, defaults and validation.
//
// Everything except `loadSettings` is a pure function so it can be unit-tested
// without the Pulumi engine or mocks (see tests/config.test.ts).

import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";
import * as pulumi from "@pulumi/pulumi";
import routeTable from "./routes.json";

/** Pulumi project name; also the config namespace (`items-api:<key>`). */
export const PROJECT_NAME = "items-api";

/** Directory holding Pulumi.yaml; relative config paths are resolved against it. */
export const PROJECT_DIR = __dirname;

export const LAMBDA_NAMES = ["post-item", "get-items", "item-commands", "project-events"] as const;
export type LambdaName = (typeof LAMBDA_NAMES)[number];

export const ARCHITECTURES = ["x86_64", "arm64"] as const;
export type Architecture = (typeof ARCHITECTURES)[number];

/**
 * Event schema sets a writer may be allowed: 1, the first release's shapes
 * only; 2, current (ItemCreated/ItemUpdated carrying a description). See
 * docs/deploy.md, "Event schema changes: two-step rollout".
 */
export const EVENT_SCHEMA_SETS = [1, 2] as const;
export type EventSchemaSet = (typeof EVENT_SCHEMA_SETS)[number];
export const LATEST_EVENT_SCHEMA_SET: EventSchemaSet = 2;

export const LOG_LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Retention values accepted by CloudWatch Logs (0 would mean "never expire"; not offered). */
export const LOG_RETENTION_DAYS = [
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;

/** Scopes of the `items` resource server, as they appear in access tokens. */
// The identity names are the Rust route table's (`items_aws::routes`, written to routes.json).
export const READ_SCOPE: string = routeTable.scopes.read;
export const WRITE_SCOPE: string = routeTable.scopes.write;
export const SIGN_IN_SCOPES = ["openid", READ_SCOPE, WRITE_SCOPE];

export class ConfigError extends Error {
    constructor(message: string) {
        super(`items-api configuration: ${message}`);
        this.name = "ConfigError";
    }
}

export interface AuthUrls {
    callbackUrls: string[];
    logoutUrls: string[];
    defaultRedirectUri: string;
}

/** A stack name must give valid Lambda function and dashboard names (`[A-Za-z0-9_-]`). */
const NAME_PREFIX = /^[A-Za-z0-9_-]+$/;

export interface Settings {
    architecture: Architecture;
    /** As configured (relative paths are relative to the Pulumi project directory). */
    lambdaArtifactsDir: string;
    logLevel: LogLevel;
    logRetentionDays: number;
    apiMemorySizeMb: number;
    apiTimeoutSeconds: number;
    projectorMemorySizeMb: number;
    projectorTimeoutSeconds: number;
    idempotencyTtlSeconds: number;
    /**
     * `WRITE_EVENT_SCHEMAS` of the writers (post-item, item-commands): the
     * newest event schema set they may write. Readers take every set.
     */
    writeEventSchemas: EventSchemaSet;
    stream: {
        batchSize: number;
        /** Batches of one shard processed at once (1-10); order is kept per item. */
        parallelizationFactor: number;
        maximumBatchingWindowInSeconds: number;
        maximumRetryAttempts: number;
        maximumRecordAgeInSeconds: number;
    };
    cognito: AuthUrls & {
        /**
         * A separate public client for development (http://localhost), when
         * set: on a development stack (`localhostCallbacks`) only.
         */
        devCallbackUrls?: string[];
        /** The implicit grant besides the authorization code flow with PKCE. */
        implicitGrant: boolean;
        domainPrefix: string;
        deletionProtection: boolean;
        selfSignUpEnabled: boolean;
        accessTokenValidityMinutes: number;
        /**
         * Mail (verification and password-reset codes) through this SES
         * identity (`EmailSendingAccount` DEVELOPER), when set; otherwise
         * Cognito's built-in sender, whose daily quota is meant for testing.
         */
        email?: { sourceArn: string; from?: string };
    };
    api: {
        corsAllowedOrigin: string;
        /**
         * The stage's default method throttling (the method settings of every
         * resource and method): API Gateway applies it to each method on its
         * own (each route and preflight has its own bucket), not to the stage
         * as a whole.
         */
        throttlingBurstLimit: number;
        throttlingRateLimit: number;
        manageApiGatewayAccount: boolean;
        /** Stage access logs; they need the account's CloudWatch role (manageApiGatewayAccount or set by hand). */
        accessLogging: boolean;
        /** Per-method API metrics (billed as custom metrics; the stage's own are always there). */
        detailedMetrics: boolean;
    };
    /** Point-in-time recovery of the read tables (the events table always has it). */
    itemsPointInTimeRecovery: boolean;
    /** Deletion protection of the events table, the source of truth. */
    eventsTableDeletionProtection: boolean;
    /** Which read tables exist (see tables.ts and docs/deploy.md, "Rebuilding into a new table"). */
    readTables: ReadTableGenerations;
    /** X-Ray tracing on the stage and the functions. */
    tracing: boolean;
    monitoring: {
        /** Subscribed to the alarm topic when set (the address confirms by e-mail). */
        alarmEmail?: string;
        /** The projector's iterator age that alarms, in milliseconds. */
        iteratorAgeAlarmMs: number;
        /** API 5XX responses, percent of requests over 5 minutes, that alarm. */
        api5xxAlarmPercent: number;
        /** API p99 latency that alarms, in milliseconds. */
        apiP99LatencyAlarmMs: number;
    };
}

/** Every config key of the `items-api` namespace with its default (`undefined` = required). */
export const CONFIG_DEFAULTS = {
    cognitoDomainPrefix: undefined,
    callbackUrls: undefined,
    logoutUrls: "callbackUrls",
    defaultRedirectUri: "callbackUrls[0]",
    localhostCallbacks: false,
    devCallbackUrls: "not set",
    implicitGrant: false,
    corsAllowedOrigin: "origin of callbackUrls[0]",
    deletionProtection: true,
    selfSignUpEnabled: false,
    accessTokenValidityMinutes: 60,
    sesEmailIdentityArn: "not set",
    emailFromAddress: "not set",
    lambdaArtifactsDir: "../target/lambda",
    architecture: "x86_64",
    logLevel: "INFO",
    logRetentionDays: 14,
    apiMemorySizeMb: 256,
    apiTimeoutSeconds: 10,
    projectorMemorySizeMb: 256,
    projectorTimeoutSeconds: 30,
    idempotencyTtlSeconds: 86400,
    writeEventSchemas: LATEST_EVENT_SCHEMA_SET,
    batchSize: 100,
    parallelizationFactor: 2,
    maximumBatchingWindowInSeconds: 1,
    // Only dependency failures reach Lambda's retries (the handler sets
    // poison aside itself): retried for as long as the record may live, as
    // the local feeds do. 23 h: before DynamoDB Streams trims a record (24 h),
    // Lambda gives up on it and the DLQ says which; trimmed, it would be lost
    // without a word.
    maximumRetryAttempts: -1,
    maximumRecordAgeInSeconds: 82800,
    throttlingBurstLimit: 100,
    throttlingRateLimit: 50,
    manageApiGatewayAccount: false,
    accessLogging: false,
    detailedMetrics: false,
    eventsTableDeletionProtection: true,
    itemsPointInTimeRecovery: false,
    itemsTableGeneration: 1,
    itemsRebuildGeneration: "not set",
    tracing: false,
    alarmEmail: "not set",
    iteratorAgeAlarmMs: 60000,
    api5xxAlarmPercent: 1,
    apiP99LatencyAlarmMs: 2000,
} as const;

/**
 * Cognito accepts plain http callback URLs for `localhost` only (not even
 * 127.0.0.1): https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_CreateUserPoolClient.html
 */
const LOOPBACK_HOSTS = new Set(["localhost"]);

/**
 * Checks one Cognito callback / logout URL: it must be absolute, https, or
 * plain http on localhost (any port), and carry no fragment.
 * Returns a reason when rejected, `undefined` when fine.
 */
export function urlProblem(raw: string): string | undefined {
    let url: URL;
    try {
        url = new URL(raw);
    } catch {
        return "is not an absolute URL";
    }
    if (url.hash !== "" || raw.includes("#")) {
        return "must not contain a fragment (#...)";
    }
    if (url.username !== "" || url.password !== "") {
        return "must not contain credentials";
    }
    if (url.protocol === "https:") {
        return undefined;
    }
    if (url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname)) {
        return undefined;
    }
    return "must use https (Cognito allows plain http only for http://localhost)";
}

/** Whether a URL is plain http on localhost: a development address. */
function isLocalhost(raw: string): boolean {
    const url = new URL(raw);
    return url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname);
}

/**
 * Validates the Hosted UI URLs and fills in the defaults:
 * logoutUrls defaults to callbackUrls, defaultRedirectUri to callbackUrls[0].
 * The production web client takes no http://localhost URL unless
 * `localhostCallbacks` (a development stack) says so: a sign-in would be
 * sent to whatever listens on that port of the user's machine.
 * Throws a ConfigError naming the offending key and value.
 */
export function validateAuthUrls(
    input: {
        callbackUrls?: unknown;
        logoutUrls?: unknown;
        defaultRedirectUri?: unknown;
    },
    opts: { localhostCallbacks: boolean } = { localhostCallbacks: false },
): AuthUrls {
    const callbackUrls = stringList("callbackUrls", input.callbackUrls);
    if (callbackUrls === undefined || callbackUrls.length === 0) {
        throw new ConfigError(
            "callbackUrls must be a non-empty array of URLs " +
                "(pulumi config set --path 'items-api:callbackUrls[0]' https://app.example.com/; " +
                "http://localhost:3000/ only on a development stack, with localhostCallbacks true)",
        );
    }
    const logoutUrls = stringList("logoutUrls", input.logoutUrls) ?? [...callbackUrls];
    if (logoutUrls.length === 0) {
        throw new ConfigError("logoutUrls must not be empty when set");
    }
    for (const [key, list] of [
        ["callbackUrls", callbackUrls],
        ["logoutUrls", logoutUrls],
    ] as const) {
        const seen = new Set<string>();
        list.forEach((u, i) => {
            const problem = urlProblem(u);
            if (problem !== undefined) {
                throw new ConfigError(`${key}[${i}] = "${u}" ${problem}`);
            }
            if (!opts.localhostCallbacks && isLocalhost(u)) {
                throw new ConfigError(
                    `${key}[${i}] = "${u}" is a development address, refused on the production web client: ` +
                        "set localhostCallbacks true on a development stack (a pool of its own), or use the " +
                        "page's https URL",
                );
            }
            if (seen.has(u)) {
                throw new ConfigError(`${key}[${i}] = "${u}" is listed twice`);
            }
            seen.add(u);
        });
    }
    if (input.defaultRedirectUri !== undefined && typeof input.defaultRedirectUri !== "string") {
        throw new ConfigError("defaultRedirectUri must be a string");
    }
    const defaultRedirectUri = input.defaultRedirectUri ?? callbackUrls[0];
    if (!callbackUrls.includes(defaultRedirectUri)) {
        throw new ConfigError(
            `defaultRedirectUri "${defaultRedirectUri}" must be one of callbackUrls ` +
                `(${callbackUrls.map((u) => `"${u}"`).join(", ")}); Cognito compares them character for character`,
        );
    }
    return { callbackUrls, logoutUrls, defaultRedirectUri };
}

/**
 * The development client's URLs (callback and logout), when set: https or
 * http://localhost, on a development stack (`localhostCallbacks`) only.
 * Cognito cannot make a public client require PKCE, and the Hosted UI's
 * session belongs to the pool, not to a client: on a production pool, a page
 * that opens the sign-in URL with this client's (public) id and a localhost
 * redirect gets a signed-in user's code at once, and whatever listens on that
 * port of the user's machine redeems it for their tokens (security review N2).
 */
export function validateDevCallbackUrls(
    value: unknown,
    opts: { localhostCallbacks: boolean } = { localhostCallbacks: false },
): string[] | undefined {
    const urls = stringList("devCallbackUrls", value);
    if (urls === undefined) {
        return undefined;
    }
    if (!opts.localhostCallbacks) {
        throw new ConfigError(
            "devCallbackUrls is refused on a production stack (localhostCallbacks false): a development client on " +
                "the production user pool is public and Cognito cannot make it require PKCE, so whatever listens on " +
                "its localhost port could take a signed-in user's production tokens. Develop against a development " +
                "stack (its own user pool: localhostCallbacks true), and remove it here " +
                "(pulumi config rm items-api:devCallbackUrls)",
        );
    }
    if (urls.length === 0) {
        throw new ConfigError("devCallbackUrls must not be empty when set");
    }
    urls.forEach((u, i) => {
        const problem = urlProblem(u);
        if (problem !== undefined) {
            throw new ConfigError(`devCallbackUrls[${i}] = "${u}" ${problem}`);
        }
    });
    return urls;
}

function stringList(key: string, value: unknown): string[] | undefined {
    if (value === undefined || value === null) {
        return undefined;
    }
    if (!Array.isArray(value) || !value.every((v) => typeof v === "string")) {
        throw new ConfigError(`${key} must be an array of strings (set it with pulumi config set --path '${key}[0]' ...)`);
    }
    return value as string[];
}

/**
 * The CORS origin: the explicit `corsAllowedOrigin` if given (an origin such as
 * https://app.example.com, or "*"), otherwise the origin of the first callback URL.
 */
export function resolveCorsOrigin(explicit: string | undefined, callbackUrls: string[]): string {
    if (explicit === undefined) {
        return new URL(callbackUrls[0]).origin;
    }
    if (explicit === "*") {
        return explicit;
    }
    const problem = urlProblem(explicit);
    if (problem !== undefined) {
        throw new ConfigError(`corsAllowedOrigin "${explicit}" ${problem}`);
    }
    const origin = new URL(explicit).origin;
    if (origin !== explicit) {
        throw new ConfigError(`corsAllowedOrigin "${explicit}" must be a bare origin such as "${origin}" (no path, no trailing slash)`);
    }
    return origin;
}

/** Cognito prefix domain rules: lowercase letters, digits, hyphens; no reserved words. */
export function validateDomainPrefix(prefix: string): string {
    if (!/^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(prefix)) {
        throw new ConfigError(
            `cognitoDomainPrefix "${prefix}" must be 1-63 lowercase letters, digits or hyphens, not starting or ending with a hyphen`,
        );
    }
    for (const reserved of ["aws", "amazon", "cognito"]) {
        if (prefix.includes(reserved)) {
            throw new ConfigError(`cognitoDomainPrefix "${prefix}" must not contain the reserved word "${reserved}"`);
        }
    }
    return prefix;
}

export interface ReadTableGenerations {
    /** The live read table's generation: the functions read and project into it. */
    live: number;
    /** One more, empty table of this generation for `items replay --into` to fill, when set. */
    rebuild?: number;
}

/**
 * Validates `itemsTableGeneration` (default 1) and the optional
 * `itemsRebuildGeneration`: integers of at least 1, and different, since a
 * rebuild must fill a table the functions do not use.
 */
export function validateTableGenerations(live: number, rebuild: number | undefined): ReadTableGenerations {
    const generation = (key: string, value: number): number => {
        if (!Number.isInteger(value) || value < 1) {
            throw new ConfigError(`${key} must be an integer of at least 1, got ${value}`);
        }
        return value;
    };
    generation("itemsTableGeneration", live);
    if (rebuild === undefined) {
        return { live };
    }
    generation("itemsRebuildGeneration", rebuild);
    if (rebuild === live) {
        throw new ConfigError(
            `itemsRebuildGeneration must differ from itemsTableGeneration (both are ${live}): ` +
                "a rebuild fills a second, empty table beside the live one. Choose another generation to rebuild into, " +
                `or, to finish switching to generation ${live}, remove it (pulumi config rm items-api:itemsRebuildGeneration)`,
        );
    }
    return { live, rebuild };
}

/**
 * `writeEventSchemas`: 1 while a rollout of a new event schema is under way
 * (readers first), 2 (the latest) otherwise.
 */
export function validateWriteEventSchemas(value: number): EventSchemaSet {
    if (!(EVENT_SCHEMA_SETS as readonly number[]).includes(value)) {
        throw new ConfigError(
            `writeEventSchemas must be ${EVENT_SCHEMA_SETS.join(" or ")} (the newest event schema set the writers ` +
                `may write: 1 during a two-step rollout, ${LATEST_EVENT_SCHEMA_SET} otherwise), got ${value}`,
        );
    }
    return value as EventSchemaSet;
}

/** An SES identity: `arn:<partition>:ses:<region>:<account>:identity/<address or domain>`. */
const SES_IDENTITY_ARN = /^arn:aws[a-z-]*:ses:[a-z0-9-]+:\d{12}:identity\/[^\s/]+$/;
/** `someone@example.com` or `Display Name <someone@example.com>`. */
const FROM_ADDRESS = /^(?:[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+|[^<>]*<[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+>)$/;

/**
 * The user pool's mail through SES (`sesEmailIdentityArn`, optionally
 * `emailFromAddress`), or undefined for Cognito's built-in sender (the
 * default, COGNITO_DEFAULT: a small daily quota, docs/deploy.md).
 */
export function validateEmailSending(
    sourceArn: string | undefined,
    from: string | undefined,
): { sourceArn: string; from?: string } | undefined {
    if (sourceArn === undefined || sourceArn === "") {
        if (from !== undefined && from !== "") {
            throw new ConfigError(
                `emailFromAddress "${from}" needs sesEmailIdentityArn: Cognito's built-in sender always writes ` +
                    "from no-reply@verificationemail.com",
            );
        }
        return undefined;
    }
    if (!SES_IDENTITY_ARN.test(sourceArn)) {
        throw new ConfigError(
            `sesEmailIdentityArn "${sourceArn}" is not an SES identity ARN ` +
                "(arn:aws:ses:<region>:<account>:identity/<address or domain>)",
        );
    }
    if (from === undefined || from === "") {
        return { sourceArn };
    }
    if (!FROM_ADDRESS.test(from)) {
        throw new ConfigError(`emailFromAddress "${from}" must be an address or "Name <address>"`);
    }
    return { sourceArn, from };
}

/** Validates an integer setting against inclusive bounds. */
export function intInRange(key: string, value: number, min: number, max: number): number {
    if (!Number.isInteger(value) || value < min || value > max) {
        throw new ConfigError(`${key} must be an integer between ${min} and ${max}, got ${value}`);
    }
    return value;
}

export function oneOf<T extends string>(key: string, value: string, allowed: readonly T[]): T {
    if (!(allowed as readonly string[]).includes(value)) {
        throw new ConfigError(`${key} must be one of ${allowed.join(", ")}, got "${value}"`);
    }
    return value as T;
}

/** https://<prefix>.auth.<region>.amazoncognito.com */
export function hostedUiBaseUrl(domainPrefix: string, region: string): string {
    return `https://${domainPrefix}.auth.${region}.amazoncognito.com`;
}

/**
 * The Hosted UI sign-in URL (implicit flow: the tokens come back in the
 * redirect's #fragment). Scopes are space-separated, which URLSearchParams
 * encodes as "+", and "/" becomes "%2F".
 */
export function hostedUiSignInUrl(args: {
    domainPrefix: string;
    region: string;
    clientId: string;
    redirectUri: string;
    scopes?: string[];
}): string {
    const query = new URLSearchParams({
        client_id: args.clientId,
        response_type: "token",
        scope: (args.scopes ?? SIGN_IN_SCOPES).join(" "),
        redirect_uri: args.redirectUri,
    });
    return `${hostedUiBaseUrl(args.domainPrefix, args.region)}/oauth2/authorize?${query.toString()}`;
}

/** The `iss` claim of tokens issued by the pool. */
export function issuerUrl(region: string, userPoolId: string): string {
    return `https://cognito-idp.${region}.amazonaws.com/${userPoolId}`;
}

/**
 * The ELF `e_machine` of each Lambda architecture (the ELF specification's
 * EM_X86_64 and EM_AARCH64): what `bootstrap` must be built for.
 */
export const ELF_MACHINES: Record<Architecture, number> = { x86_64: 0x3e, arm64: 0xb7 };

/** How much of a zip entry's compressed data is inflated: far more than an ELF header needs. */
const ZIP_PREFIX_BYTES = 4096;

/**
 * The architecture `bootstrap` inside a Lambda zip was built for, from its
 * ELF header: a 64-bit little-endian executable whose `e_machine` (offset 18)
 * is 0x3E (x86_64) or 0xB7 (aarch64, Lambda's arm64). Reads the zip's central
 * directory and inflates only the start of the entry (stored or deflated, as
 * cargo-lambda writes it). Throws an Error saying what is wrong otherwise.
 */
export function bootstrapArchitecture(zip: Buffer): Architecture {
    const END = 0x06054b50;
    const CENTRAL = 0x02014b50;
    const LOCAL = 0x04034b50;
    // The end-of-central-directory record: 22 bytes plus a comment of up to 64 KiB.
    let end = -1;
    for (let at = zip.length - 22; at >= Math.max(0, zip.length - 22 - 0xffff); at--) {
        if (zip.readUInt32LE(at) === END) {
            end = at;
            break;
        }
    }
    if (end < 0) {
        throw new Error("is not a zip file");
    }
    const entries = zip.readUInt16LE(end + 10);
    let entry = zip.readUInt32LE(end + 16);
    let local: number | undefined;
    let method = 0;
    for (let i = 0; i < entries && entry + 46 <= zip.length; i++) {
        if (zip.readUInt32LE(entry) !== CENTRAL) {
            throw new Error("has a damaged central directory");
        }
        const nameLength = zip.readUInt16LE(entry + 28);
        const name = zip.toString("utf8", entry + 46, entry + 46 + nameLength);
        if (name === "bootstrap") {
            method = zip.readUInt16LE(entry + 10);
            local = zip.readUInt32LE(entry + 42);
            break;
        }
        entry += 46 + nameLength + zip.readUInt16LE(entry + 30) + zip.readUInt16LE(entry + 32);
    }
    if (local === undefined) {
        throw new Error("holds no `bootstrap` at its root");
    }
    if (local + 30 > zip.length || zip.readUInt32LE(local) !== LOCAL) {
        throw new Error("has a damaged `bootstrap` entry");
    }
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const data = zip.subarray(start, start + ZIP_PREFIX_BYTES);
    let head: Buffer;
    if (method === 0) {
        head = data;
    } else if (method === 8) {
        // A prefix of the deflate stream: a sync flush returns what it holds.
        head = zlib.inflateRawSync(data, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
    } else {
        throw new Error(`stores \`bootstrap\` with compression method ${method} (neither stored nor deflated)`);
    }
    if (head.length < 20 || head.readUInt32BE(0) !== 0x7f454c46) {
        throw new Error("holds a `bootstrap` that is not an ELF executable");
    }
    if (head[4] !== 2 || head[5] !== 1) {
        throw new Error("holds a `bootstrap` that is not a 64-bit little-endian ELF executable");
    }
    const machine = head.readUInt16LE(18);
    const arch = ARCHITECTURES.find((a) => ELF_MACHINES[a] === machine);
    if (arch === undefined) {
        throw new Error(`holds a \`bootstrap\` for ELF machine 0x${machine.toString(16).toUpperCase()}, neither x86_64 nor arm64`);
    }
    return arch;
}

/**
 * Where cargo-lambda put `<name>`'s zip. Returns the path to hand to
 * FileArchive (relative to the working directory when the configured
 * directory is relative, so that the path stored in the state does not depend
 * on the machine) and throws a ConfigError pointing at scripts/build-lambdas
 * when the file is missing or, with `architecture`, when its `bootstrap` was
 * built for another architecture (every invocation would fail with
 * Runtime.InvalidEntrypoint).
 */
export function lambdaArchivePath(
    artifactsDir: string,
    name: string,
    opts: {
        projectDir?: string;
        cwd?: string;
        exists?: (p: string) => boolean;
        architecture?: Architecture;
        read?: (p: string) => Buffer;
    } = {},
): string {
    const projectDir = opts.projectDir ?? PROJECT_DIR;
    const cwd = opts.cwd ?? process.cwd();
    const exists = opts.exists ?? ((p: string) => fs.existsSync(p));
    const read = opts.read ?? ((p: string) => fs.readFileSync(p));
    const absolute = path.resolve(projectDir, artifactsDir, name, "bootstrap.zip");
    if (!exists(absolute)) {
        throw new ConfigError(
            `Lambda artifact ${absolute} does not exist. Build the functions first ` +
                "(scripts/build-lambdas: cargo lambda build --profile release --output-format zip, for LAMBDA_ARCH) " +
                "or point items-api:lambdaArtifactsDir at the directory holding <name>/bootstrap.zip.",
        );
    }
    if (opts.architecture !== undefined) {
        let built: Architecture;
        try {
            built = bootstrapArchitecture(read(absolute));
        } catch (e) {
            throw new ConfigError(`Lambda artifact ${absolute} ${(e as Error).message}: rebuild it with scripts/build-lambdas`);
        }
        if (built !== opts.architecture) {
            throw new ConfigError(
                `Lambda artifact ${absolute} was built for ${built}, but items-api:architecture is ${opts.architecture}: ` +
                    `every invocation would fail (Runtime.InvalidEntrypoint). Rebuild with ` +
                    `LAMBDA_ARCH=${opts.architecture} scripts/build-lambdas, or set items-api:architecture ${built}.`,
            );
        }
    }
    return path.isAbsolute(artifactsDir) ? absolute : path.relative(cwd, absolute) || absolute;
}

/** Minimal view of pulumi.Config used by loadSettings (eases testing). */
export type ConfigReader = Pick<pulumi.Config, "get" | "require" | "getObject" | "getBoolean" | "getNumber">;

/** Reads and validates the whole stack configuration. */
export function loadSettings(cfg: ConfigReader = new pulumi.Config(PROJECT_NAME)): Settings {
    const int = (key: keyof typeof CONFIG_DEFAULTS, def: number, min: number, max: number): number =>
        intInRange(key, cfg.getNumber(key) ?? def, min, max);
    const bool = (key: keyof typeof CONFIG_DEFAULTS, def: boolean): boolean => cfg.getBoolean(key) ?? def;

    const development = { localhostCallbacks: bool("localhostCallbacks", CONFIG_DEFAULTS.localhostCallbacks) };
    const auth = validateAuthUrls(
        {
            callbackUrls: cfg.getObject<unknown>("callbackUrls"),
            logoutUrls: cfg.getObject<unknown>("logoutUrls"),
            defaultRedirectUri: cfg.get("defaultRedirectUri"),
        },
        development,
    );
    const logRetentionDays = cfg.getNumber("logRetentionDays") ?? CONFIG_DEFAULTS.logRetentionDays;
    if (!(LOG_RETENTION_DAYS as readonly number[]).includes(logRetentionDays)) {
        throw new ConfigError(`logRetentionDays must be one of ${LOG_RETENTION_DAYS.join(", ")}, got ${logRetentionDays}`);
    }

    return {
        architecture: oneOf("architecture", cfg.get("architecture") ?? CONFIG_DEFAULTS.architecture, ARCHITECTURES),
        lambdaArtifactsDir: cfg.get("lambdaArtifactsDir") ?? CONFIG_DEFAULTS.lambdaArtifactsDir,
        logLevel: oneOf("logLevel", (cfg.get("logLevel") ?? CONFIG_DEFAULTS.logLevel).toUpperCase(), LOG_LEVELS),
        logRetentionDays,
        apiMemorySizeMb: int("apiMemorySizeMb", CONFIG_DEFAULTS.apiMemorySizeMb, 128, 10240),
        apiTimeoutSeconds: int("apiTimeoutSeconds", CONFIG_DEFAULTS.apiTimeoutSeconds, 1, 900),
        projectorMemorySizeMb: int("projectorMemorySizeMb", CONFIG_DEFAULTS.projectorMemorySizeMb, 128, 10240),
        projectorTimeoutSeconds: int("projectorTimeoutSeconds", CONFIG_DEFAULTS.projectorTimeoutSeconds, 1, 900),
        idempotencyTtlSeconds: int("idempotencyTtlSeconds", CONFIG_DEFAULTS.idempotencyTtlSeconds, 60, 365 * 24 * 3600),
        writeEventSchemas: validateWriteEventSchemas(
            cfg.getNumber("writeEventSchemas") ?? CONFIG_DEFAULTS.writeEventSchemas,
        ),
        stream: {
            batchSize: int("batchSize", CONFIG_DEFAULTS.batchSize, 1, 1000),
            parallelizationFactor: int("parallelizationFactor", CONFIG_DEFAULTS.parallelizationFactor, 1, 10),
            maximumBatchingWindowInSeconds: int(
                "maximumBatchingWindowInSeconds",
                CONFIG_DEFAULTS.maximumBatchingWindowInSeconds,
                0,
                300,
            ),
            // -1: retry until the record's age ends it. The age is bounded by
            // the stream's 24 h: past it the record is trimmed, not retried.
            maximumRetryAttempts: int("maximumRetryAttempts", CONFIG_DEFAULTS.maximumRetryAttempts, -1, 10000),
            maximumRecordAgeInSeconds: int(
                "maximumRecordAgeInSeconds",
                CONFIG_DEFAULTS.maximumRecordAgeInSeconds,
                60,
                86400,
            ),
        },
        cognito: {
            ...auth,
            devCallbackUrls: validateDevCallbackUrls(cfg.getObject<unknown>("devCallbackUrls"), development),
            implicitGrant: bool("implicitGrant", CONFIG_DEFAULTS.implicitGrant),
            domainPrefix: validateDomainPrefix(cfg.require("cognitoDomainPrefix")),
            deletionProtection: bool("deletionProtection", CONFIG_DEFAULTS.deletionProtection),
            selfSignUpEnabled: bool("selfSignUpEnabled", CONFIG_DEFAULTS.selfSignUpEnabled),
            accessTokenValidityMinutes: int(
                "accessTokenValidityMinutes",
                CONFIG_DEFAULTS.accessTokenValidityMinutes,
                5,
                1440,
            ),
            email: validateEmailSending(cfg.get("sesEmailIdentityArn"), cfg.get("emailFromAddress")),
        },
        api: {
            corsAllowedOrigin: resolveCorsOrigin(cfg.get("corsAllowedOrigin"), auth.callbackUrls),
            // 0 would throttle every request: the API would answer nothing but 429.
            throttlingBurstLimit: int("throttlingBurstLimit", CONFIG_DEFAULTS.throttlingBurstLimit, 1, 1_000_000),
            throttlingRateLimit: int("throttlingRateLimit", CONFIG_DEFAULTS.throttlingRateLimit, 1, 1_000_000),
            manageApiGatewayAccount: bool("manageApiGatewayAccount", CONFIG_DEFAULTS.manageApiGatewayAccount),
            accessLogging: bool("accessLogging", CONFIG_DEFAULTS.accessLogging),
            detailedMetrics: bool("detailedMetrics", CONFIG_DEFAULTS.detailedMetrics),
        },
        itemsPointInTimeRecovery: bool("itemsPointInTimeRecovery", CONFIG_DEFAULTS.itemsPointInTimeRecovery),
        eventsTableDeletionProtection: bool(
            "eventsTableDeletionProtection",
            CONFIG_DEFAULTS.eventsTableDeletionProtection,
        ),
        readTables: validateTableGenerations(
            cfg.getNumber("itemsTableGeneration") ?? CONFIG_DEFAULTS.itemsTableGeneration,
            cfg.getNumber("itemsRebuildGeneration"),
        ),
        tracing: bool("tracing", CONFIG_DEFAULTS.tracing),
        monitoring: {
            alarmEmail: validateEmail(cfg.get("alarmEmail")),
            iteratorAgeAlarmMs: int("iteratorAgeAlarmMs", CONFIG_DEFAULTS.iteratorAgeAlarmMs, 1000, 86_400_000),
            api5xxAlarmPercent: int("api5xxAlarmPercent", CONFIG_DEFAULTS.api5xxAlarmPercent, 1, 100),
            apiP99LatencyAlarmMs: int("apiP99LatencyAlarmMs", CONFIG_DEFAULTS.apiP99LatencyAlarmMs, 50, 29_000),
        },
    };
}

/** An e-mail address for the alarm topic, or undefined when not set. */
export function validateEmail(value: string | undefined): string | undefined {
    if (value === undefined || value === "") {
        return undefined;
    }
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(value)) {
        throw new ConfigError(`alarmEmail "${value}" is not an e-mail address`);
    }
    return value;
}

/** `<project>-<stack>`, the prefix of every deterministic physical name. */
export function namePrefix(): string {
    return validateNamePrefix(pulumi.getProject(), pulumi.getStack());
}

/**
 * `<project>-<stack>`, refused (at preview) when Lambda or CloudWatch would
 * refuse the names made from it: Pulumi allows `.` in stack names, a Lambda
 * function name (`[a-zA-Z0-9-_]+`) and a dashboard name do not.
 */
export function validateNamePrefix(project: string, stack: string): string {
    const prefix = `${project}-${stack}`;
    if (!NAME_PREFIX.test(prefix)) {
        throw new ConfigError(
            `the stack name "${stack}" gives the name prefix "${prefix}", which Lambda function and CloudWatch ` +
                "dashboard names do not allow: use letters, digits, '-' and '_' only (pulumi stack rename)",
        );
    }
    return prefix;
}
