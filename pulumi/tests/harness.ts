// Runs the Pulumi program against mocks (no CLI, no AWS) and records every
// resource it registers. Each test file that uses this runs in its own process
// under `node --test`, so each can load the program once with its own config.

import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as zlib from "zlib";
import * as pulumi from "@pulumi/pulumi";
import { ELF_MACHINES, LAMBDA_NAMES, type Architecture } from "../config";

export const REGION = "eu-west-1";
export const ACCOUNT = "123456789012";
export const PROJECT = "items-api";
export const STACK = "test";

export interface Registered {
    type: string;
    name: string;
    inputs: Record<string, any>;
    id: string;
    state: Record<string, any>;
    /** The resource options the engine would see that the mocks do not pass on. */
    options: {
        deleteBeforeReplace: boolean;
        replaceOnChanges: string[];
        /**
         * URNs the engine creates or updates before this resource: its
         * `dependsOn` and the resources its inputs come from.
         */
        dependencies: string[];
        /** `customTimeouts` (e.g. `{ update: "4h" }`; "" where not set). */
        customTimeouts: { create: string; update: string; delete: string };
    };
}

/** The URN the mocks give a resource without a parent. */
export function urnOf(type: string, name: string): string {
    return `urn:pulumi:${STACK}::${PROJECT}::${type}::${name}`;
}

export interface Program {
    resources: Registered[];
    outputs: Record<string, unknown>;
    artifactsDir: string;
    /** Resources of one type token, e.g. "aws:lambda/function:Function". */
    ofType(type: string): Registered[];
    /** The single resource with this type and logical name. */
    get(type: string, name: string): Registered;
}

const tempDirs: string[] = [];
process.on("exit", () => {
    for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** CRC-32 (IEEE), as a zip entry records it. */
function crc32(data: Buffer): number {
    let crc = 0xffffffff;
    for (const byte of data) {
        crc ^= byte;
        for (let k = 0; k < 8; k++) crc = (crc >>> 1) ^ (0xedb88320 & -(crc & 1));
    }
    return (crc ^ 0xffffffff) >>> 0;
}

/**
 * The start of a 64-bit little-endian ELF executable for `machine` (its
 * `e_machine`, offset 18), padded: what the program reads of `bootstrap`.
 */
export function fakeElf(machine: number, opts: { elfClass?: number } = {}): Buffer {
    const elf = Buffer.alloc(256, 0x90);
    Buffer.from([0x7f, 0x45, 0x4c, 0x46, opts.elfClass ?? 2, 1, 1, 0]).copy(elf, 0);
    elf.fill(0, 8, 16);
    elf.writeUInt16LE(2, 16); // ET_EXEC
    elf.writeUInt16LE(machine, 18);
    return elf;
}

/**
 * A zip holding `entries` (name -> content), each deflated as cargo-lambda
 * writes `bootstrap` (or stored), with a central directory.
 */
export function makeZip(entries: Record<string, Buffer>, opts: { method?: "deflate" | "store" } = {}): Buffer {
    const method = opts.method === "store" ? 0 : 8;
    const locals: Buffer[] = [];
    const centrals: Buffer[] = [];
    let offset = 0;
    for (const [name, content] of Object.entries(entries)) {
        const data = method === 8 ? zlib.deflateRawSync(content) : content;
        const fileName = Buffer.from(name, "utf8");
        const local = Buffer.alloc(30);
        local.writeUInt32LE(0x04034b50, 0);
        local.writeUInt16LE(20, 4);
        local.writeUInt16LE(method, 8);
        local.writeUInt32LE(crc32(content), 14);
        local.writeUInt32LE(data.length, 18);
        local.writeUInt32LE(content.length, 22);
        local.writeUInt16LE(fileName.length, 26);
        const central = Buffer.alloc(46);
        central.writeUInt32LE(0x02014b50, 0);
        central.writeUInt16LE(0x0314, 4); // made by Unix
        central.writeUInt16LE(20, 6);
        central.writeUInt16LE(method, 10);
        central.writeUInt32LE(crc32(content), 16);
        central.writeUInt32LE(data.length, 20);
        central.writeUInt32LE(content.length, 24);
        central.writeUInt16LE(fileName.length, 28);
        central.writeUInt32LE((0o100755 << 16) >>> 0, 38); // -rwxr-xr-x
        central.writeUInt32LE(offset, 42);
        locals.push(local, fileName, data);
        centrals.push(central, fileName);
        offset += local.length + fileName.length + data.length;
    }
    const directory = Buffer.concat(centrals);
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(Object.keys(entries).length, 8);
    end.writeUInt16LE(Object.keys(entries).length, 10);
    end.writeUInt32LE(directory.length, 12);
    end.writeUInt32LE(offset, 16);
    return Buffer.concat([...locals, directory, end]);
}

/** A Lambda zip whose `bootstrap` starts like an executable built for `architecture`. */
export function lambdaZip(architecture: Architecture, opts: { method?: "deflate" | "store" } = {}): Buffer {
    return makeZip({ bootstrap: fakeElf(ELF_MACHINES[architecture]) }, opts);
}

/**
 * Creates <dir>/<name>/bootstrap.zip for each function: a zip with the start
 * of an ELF executable for `architecture` as `bootstrap` (the program reads
 * its header; FileArchive itself does not read the zips under mocks).
 * Removed when the process exits.
 */
export function makeArtifactsDir(architecture: Architecture = "x86_64"): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "items-api-lambda-"));
    tempDirs.push(dir);
    for (const name of LAMBDA_NAMES) {
        fs.mkdirSync(path.join(dir, name));
        fs.writeFileSync(path.join(dir, name, "bootstrap.zip"), lambdaZip(architecture));
    }
    return dir;
}

function fabricate(type: string, name: string, inputs: Record<string, any>): { id: string; state: Record<string, any> } {
    const physical: string = inputs.name ?? `${name}-1a2b3c4`;
    const id = `${name}-id`;
    const arn = (service: string, rest: string) => `arn:aws:${service}:${REGION}:${ACCOUNT}:${rest}`;
    const state: Record<string, any> = { ...inputs, name: physical };
    switch (type) {
        case "aws:dynamodb/table:Table":
            state.arn = arn("dynamodb", `table/${physical}`);
            if (inputs.streamEnabled) {
                state.streamArn = `${state.arn}/stream/2024-01-01T00:00:00.000`;
            }
            return { id: physical, state };
        case "aws:lambda/function:Function":
            state.arn = arn("lambda", `function:${physical}`);
            state.invokeArn = `arn:aws:apigateway:${REGION}:lambda:path/2015-03-31/functions/${state.arn}/invocations`;
            return { id: physical, state };
        case "aws:cloudwatch/logGroup:LogGroup":
            state.arn = arn("logs", `log-group:${physical}`);
            return { id: physical, state };
        case "aws:iam/role:Role":
            state.arn = `arn:aws:iam::${ACCOUNT}:role/${physical}`;
            return { id: physical, state };
        case "aws:sqs/queue:Queue":
            state.arn = arn("sqs", physical);
            state.url = `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/${physical}`;
            return { id: state.url, state };
        case "aws:apigateway/restApi:RestApi":
            state.rootResourceId = "rootres";
            state.executionArn = arn("execute-api", "abc123api");
            return { id: "abc123api", state };
        case "aws:apigateway/stage:Stage":
            state.invokeUrl = `https://${inputs.restApi}.execute-api.${REGION}.amazonaws.com/${inputs.stageName}`;
            return { id: `ags-${inputs.restApi}-${inputs.stageName}`, state };
        case "aws:cognito/userPool:UserPool":
            state.arn = arn("cognito-idp", `userpool/${REGION}_Pool123`);
            state.endpoint = `cognito-idp.${REGION}.amazonaws.com/${REGION}_Pool123`;
            return { id: `${REGION}_Pool123`, state };
        case "aws:cognito/userPoolClient:UserPoolClient":
            if (inputs.generateSecret) {
                state.clientSecret = "machine-secret";
                return { id: "machine123", state };
            }
            return { id: "client123", state };
        case "aws:sns/topic:Topic":
            state.arn = arn("sns", physical);
            return { id: state.arn, state };
        case "random:index/randomPassword:RandomPassword":
            state.result = "k".repeat(inputs.length ?? 16);
            return { id: "none", state };
        default:
            return { id, state };
    }
}

/**
 * Sets the config (values as the CLI passes them: strings, JSON for objects),
 * installs the mocks, imports ../index and waits until everything registered.
 */
/**
 * The smallest valid stack configuration (a Hosted UI prefix, a localhost
 * callback on a development stack, x86_64 Lambda zips), with `overrides` on top.
 */
export function stackConfig(overrides: Record<string, string> = {}): Record<string, string> {
    return {
        cognitoDomainPrefix: "items-test",
        callbackUrls: JSON.stringify(["http://localhost:3000/"]),
        localhostCallbacks: "true",
        lambdaArtifactsDir: makeArtifactsDir(),
        ...overrides,
    };
}

/** The ARN of a DynamoDB table of the mocked account and region. */
export function tableArn(name: string): string {
    return `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${name}`;
}

/** Each function's `ITEMS_TABLE` (undefined where it has none). */
export function itemsTableByFunction(p: Program): Record<string, string | undefined> {
    const byFunction: Record<string, string | undefined> = {};
    for (const f of p.ofType("aws:lambda/function:Function")) {
        byFunction[f.name] = unsecret(f.inputs.environment).value.variables.ITEMS_TABLE;
    }
    return byFunction;
}

export async function loadProgram(config: Record<string, string>): Promise<Program> {
    const resources: Registered[] = [];
    const requested = new Map<string, Registered["options"]>();
    const env: Record<string, string> = { "aws:region": REGION };
    for (const [k, v] of Object.entries(config)) {
        env[k.includes(":") ? k : `${PROJECT}:${k}`] = v;
    }
    process.env.PULUMI_CONFIG = JSON.stringify(env);

    await pulumi.runtime.setMocks(
        {
            newResource(args: pulumi.runtime.MockResourceArgs) {
                const { id, state } = fabricate(args.type, args.name, args.inputs);
                const options = requested.get(`${args.type}::${args.name}`) ?? {
                    deleteBeforeReplace: false,
                    replaceOnChanges: [],
                    dependencies: [],
                    customTimeouts: { create: "", update: "", delete: "" },
                };
                resources.push({ type: args.type, name: args.name, inputs: args.inputs, id, state, options });
                return { id, state };
            },
            call(args: pulumi.runtime.MockCallArgs) {
                switch (args.token) {
                    case "aws:index/getRegion:getRegion":
                        return { id: REGION, name: REGION, region: REGION, description: "Europe (Ireland)", endpoint: `ec2.${REGION}.amazonaws.com` };
                    case "aws:index/getPartition:getPartition":
                        return { id: "aws", partition: "aws", dnsSuffix: "amazonaws.com", reverseDnsPrefix: "com.amazonaws" };
                    case "aws:index/getCallerIdentity:getCallerIdentity":
                        return { id: ACCOUNT, accountId: ACCOUNT, arn: `arn:aws:iam::${ACCOUNT}:user/test`, userId: "AIDTEST" };
                    default:
                        throw new Error(`unexpected invoke ${args.token}`);
                }
            },
        },
        PROJECT,
        STACK,
        false,
    );
    // The mocks see a resource's inputs, not its options: read those from the
    // request the SDK sends the (mock) engine.
    const monitor = (pulumi.runtime as unknown as { getMonitor(): any }).getMonitor();
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (request: any, callback: unknown) => {
        requested.set(`${request.getType()}::${request.getName()}`, {
            deleteBeforeReplace: request.getDeletebeforereplace(),
            replaceOnChanges: request.getReplaceonchangesList(),
            dependencies: request.getDependenciesList(),
            customTimeouts: {
                create: request.getCustomtimeouts()?.getCreate() ?? "",
                update: request.getCustomtimeouts()?.getUpdate() ?? "",
                delete: request.getCustomtimeouts()?.getDelete() ?? "",
            },
        });
        return register(request, callback);
    };
    // The config store snapshots process.env when first created; make sure it
    // sees ours even if something touched it before.
    pulumi.runtime.setAllConfig(env);

    const mod: Record<string, unknown> = await import("../index");
    const outputs: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(mod)) {
        if (k === "default" || k === "__esModule") continue;
        outputs[k] = await resolve(v);
    }
    await settle(() => resources.length);

    const ofType = (type: string) => resources.filter((r) => r.type === type);
    return {
        resources,
        outputs,
        artifactsDir: config.lambdaArtifactsDir ?? "",
        ofType,
        get(type: string, name: string): Registered {
            const found = ofType(type).filter((r) => r.name === name);
            if (found.length !== 1) {
                throw new Error(`expected one ${type} named ${name}, found ${found.length}`);
            }
            return found[0];
        },
    };
}

/**
 * Every IAM policy document the program declared (role policies, trust
 * policies, resource policies: any `policy` or `assumeRolePolicy` input that
 * is a policy document), as `<variant>-<resource name>-<input>.json` in
 * `ITEMS_POLICY_DIR` (default `bin/policies` in the Pulumi project), for the
 * IAM linter (`scripts/lint-policies`). Returns how many were written.
 */
export function writePolicies(p: Program, variant: string): number {
    const dir = process.env.ITEMS_POLICY_DIR ?? path.join(__dirname, "..", "bin", "policies");
    fs.mkdirSync(dir, { recursive: true });
    let written = 0;
    for (const r of p.resources) {
        for (const input of ["policy", "assumeRolePolicy"]) {
            const value = r.inputs[input];
            if (typeof value !== "string" || !value.includes('"Statement"')) continue;
            const file = path.join(dir, `${variant}-${r.name}-${input}.json`);
            fs.writeFileSync(file, JSON.stringify(JSON.parse(value), null, 2) + "\n");
            written += 1;
        }
    }
    return written;
}

/** Resolves an Output (or a plain object of Outputs) to its value. */
export async function resolve(value: unknown): Promise<unknown> {
    if (pulumi.Output.isInstance(value)) {
        return new Promise((res) => (value as pulumi.Output<unknown>).apply((v) => res(v)));
    }
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(value)) out[k] = await resolve(v);
        return out;
    }
    return value;
}

/** Waits for the RPC queue to drain, then until the resource count is stable. */
async function settle(count: () => number): Promise<void> {
    const waitForRPCs = (pulumi.runtime as unknown as { waitForRPCs?: () => Promise<void> }).waitForRPCs;
    if (waitForRPCs) await waitForRPCs();
    let last = -1;
    let stable = 0;
    while (stable < 5) {
        await new Promise((r) => setTimeout(r, 10));
        const now = count();
        stable = now === last ? stable + 1 : 0;
        last = now;
    }
}

/** Unwraps a value the mock monitor received as a secret; reports whether it was one. */
export function unsecret(value: any): { secret: boolean; value: any } {
    if (pulumi.runtime.isRpcSecret(value)) {
        return { secret: true, value: pulumi.runtime.unwrapRpcSecret(value) };
    }
    return { secret: false, value };
}

/** Parses an IAM policy (JSON string) into Sid -> {actions, resources}. */
export function parsePolicy(policy: string): Map<string, { actions: string[]; resources: string[] }> {
    const doc = JSON.parse(policy);
    const out = new Map<string, { actions: string[]; resources: string[] }>();
    for (const s of doc.Statement) {
        const list = (x: string | string[]) => (Array.isArray(x) ? x : [x]);
        if (s.Effect !== "Allow") throw new Error(`unexpected effect ${s.Effect}`);
        out.set(s.Sid, { actions: list(s.Action), resources: list(s.Resource) });
    }
    return out;
}
