// IAM helpers: one role per function, each with least-privilege inline policies.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface PolicyStatement {
    sid: string;
    actions: string[];
    resources: pulumi.Input<string>[];
    /** IAM condition block, as IAM takes it (e.g. `dynamodb:LeadingKeys`). */
    condition?: Record<string, Record<string, string[]>>;
}

/** Trust policy letting a service (lambda.amazonaws.com by default) assume the role. */
export function assumeRolePolicy(service = "lambda.amazonaws.com"): string {
    return JSON.stringify({
        Version: "2012-10-17",
        Statement: [
            {
                Effect: "Allow",
                Principal: { Service: service },
                Action: "sts:AssumeRole",
            },
        ],
    });
}

/**
 * X-Ray's write actions have no resource-level permissions: `*` is the only
 * resource they take, so this statement is an exception to the no-wildcard rule.
 */
export const XRAY_ACTIONS = ["xray:PutTraceSegments", "xray:PutTelemetryRecords"];

/**
 * Actions IAM evaluates against no resource type (the Service Authorization
 * Reference lists none for them): a statement of only these may, and must,
 * name `*`. A stream ARN there would make the grant inert.
 */
export const ACTIONS_WITHOUT_RESOURCE_TYPE = [...XRAY_ACTIONS, "dynamodb:ListStreams"];

export function xrayStatement(): PolicyStatement {
    return { sid: "WriteTraces", actions: XRAY_ACTIONS, resources: ["*"] };
}

/**
 * Renders an IAM policy document from resolved statements. Refuses any `*` in
 * actions or resources so that a typo cannot silently widen a grant. The
 * log-stream form `<logGroupArn>:*` is one exception: it is how CloudWatch
 * Logs names "every stream of this one log group"; actions that have no
 * resource type (X-Ray's writes, `dynamodb:ListStreams`) on `*` the other.
 */
export function renderPolicy(
    statements: { sid: string; actions: string[]; resources: string[]; condition?: Record<string, Record<string, string[]>> }[],
): string {
    const rendered = statements.map((s) => {
        for (const a of s.actions) {
            if (a.includes("*")) {
                throw new Error(`policy statement ${s.sid}: wildcard action "${a}" is not allowed`);
            }
        }
        const typeless = s.actions.length > 0 && s.actions.every((a) => ACTIONS_WITHOUT_RESOURCE_TYPE.includes(a));
        for (const r of s.resources) {
            if (r === "*" && typeless) {
                continue;
            }
            if (r.includes("*") && !isLogStreamArn(r)) {
                throw new Error(`policy statement ${s.sid}: wildcard resource "${r}" is not allowed`);
            }
        }
        return {
            Sid: s.sid,
            Effect: "Allow",
            Action: s.actions,
            Resource: s.resources,
            ...(s.condition ? { Condition: s.condition } : {}),
        };
    });
    return JSON.stringify({ Version: "2012-10-17", Statement: rendered });
}

/** renderPolicy over statements whose resources are still Outputs (ARNs). */
export function policyDocument(statements: PolicyStatement[]): pulumi.Output<string> {
    // Actions are plain strings: check them now, at the call site.
    renderPolicy(statements.map((s) => ({ ...s, resources: [] })));
    return pulumi
        .all(statements.map((s) => pulumi.all(s.resources)))
        .apply((resolved) => renderPolicy(statements.map((s, i) => ({ ...s, resources: resolved[i] }))));
}

/** `arn:...:log-group:<name>:*` with no other wildcard. */
function isLogStreamArn(resource: string): boolean {
    return /^arn:[^*]+:logs:[^*]+:log-group:[^*]+:\*$/.test(resource);
}

/** Lets a function write to its own (pre-created) log group and nothing else. */
export function logStatement(logGroupArn: pulumi.Input<string>): PolicyStatement {
    return {
        sid: "WriteOwnLogs",
        actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
        resources: [pulumi.interpolate`${logGroupArn}:*`],
    };
}

export interface FunctionRole {
    role: aws.iam.Role;
    policy: aws.iam.RolePolicy;
    /** The role's other inline policies (`own`), in the order given. */
    policies: aws.iam.RolePolicy[];
}

/**
 * Creates `<name>-role` with the Lambda trust policy and one inline policy
 * `<name>-policy`, plus one inline policy per entry of `own` under its own
 * logical name (a read table's grants, named by the table's generation: a
 * switch creates the new one and deletes the old one at the end of the same
 * `pulumi up`, instead of narrowing one policy before the function moves).
 * `<name>-policy` waits for them, so a grant that moves out of it into one
 * of them exists there first.
 */
export function createFunctionRole(
    name: string,
    statements: PolicyStatement[],
    own: { logical: string; statements: PolicyStatement[] }[] = [],
): FunctionRole {
    const role = new aws.iam.Role(`${name}-role`, {
        assumeRolePolicy: assumeRolePolicy(),
        description: `Execution role of the ${name} Lambda function`,
    });
    const policies = own.map(
        (p) => new aws.iam.RolePolicy(p.logical, { role: role.id, policy: policyDocument(p.statements) }),
    );
    const policy = new aws.iam.RolePolicy(
        `${name}-policy`,
        { role: role.id, policy: policyDocument(statements) },
        { dependsOn: policies },
    );
    return { role, policy, policies };
}
