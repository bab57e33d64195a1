/**
 * The admission hook: after a request passed validation and before it is written to the store,
 * the coordinator asks the hook whether it is allowed. The policy engine plugs in here later;
 * until then `allowAll` is the default and `denyRules` gives small rule-based denials (tests,
 * simple quotas). `admit` turns a denial into a PolicyViolationError carrying the hook's reason.
 */
import { AbortError, InvalidRequestError, PolicyViolationError } from '../../runtime/errors.ts';
import type { DriverSpec, WorkloadSpec } from './workload-spec.ts';

export const admissionOperations = ['create', 'update', 'delete', 'scale'] as const;
export type AdmissionOperation = (typeof admissionOperations)[number];

export interface AdmissionRequest {
  readonly operation: AdmissionOperation;
  /** The validated spec as it would be stored (for `scale`, with the new replica count); none for `delete`. */
  readonly spec?: WorkloadSpec;
  /** `<namespace>/<name>`. */
  readonly workloadId: string;
  /** Who asks, when the front door knows (an admin credential's name). */
  readonly user?: string;
}

export type AdmissionDecision =
  | { readonly allowed: true }
  | { readonly allowed: false; readonly reason: string };

export interface AdmissionHook {
  review(request: AdmissionRequest, options?: { signal?: AbortSignal }): Promise<AdmissionDecision>;
}

/** The default hook: everything is allowed. */
export const allowAll: AdmissionHook = {
  review: async () => ({ allowed: true }),
};

/**
 * One rule of `denyRules`: it denies a request when every selector it has matches (a rule with no
 * selector denies everything). Selectors that need the spec (`driverTypes`, `over`) never match a
 * request without one (a delete).
 */
export interface DenyRule {
  /** Told to the user on a denial: say what is refused and what to do instead. */
  readonly reason: string;
  /** Default: every operation. */
  readonly operations?: readonly AdmissionOperation[];
  readonly namespaces?: readonly string[];
  /** A glob on the workload name: `*` stands for any run of characters (`batch-*`). */
  readonly namePattern?: string;
  readonly driverTypes?: readonly DriverSpec['type'][];
  readonly users?: readonly string[];
  /** Matches when the spec asks for more than any of these (resources are per replica). */
  readonly over?: {
    readonly replicas?: number;
    readonly cpuMillicores?: number;
    readonly memoryBytes?: number;
    readonly priority?: number;
  };
}

const maxRules = 1000;
const maxPatternLength = 256;

function globToRegExp(pattern: string): RegExp {
  const escaped = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${escaped.join('.*')}$`);
}

function checkRule(rule: DenyRule, index: number): void {
  const where = `deny rule ${index}`;
  if (typeof rule.reason !== 'string' || rule.reason.trim() === '' || rule.reason.length > 1024)
    throw new InvalidRequestError(`${where}: reason must be a non-empty string of at most 1024 characters`);
  if (
    rule.namePattern !== undefined &&
    (typeof rule.namePattern !== 'string' || rule.namePattern.length > maxPatternLength)
  )
    throw new InvalidRequestError(
      `${where}: namePattern must be a string of at most ${maxPatternLength} characters`,
    );
  for (const operation of rule.operations ?? []) {
    if (!(admissionOperations as readonly string[]).includes(operation))
      throw new InvalidRequestError(
        `${where}: unknown operation '${String(operation)}'; use ${admissionOperations.join(', ')}`,
      );
  }
  for (const [key, limit] of Object.entries(rule.over ?? {})) {
    if (typeof limit !== 'number' || !Number.isFinite(limit) || limit < 0)
      throw new InvalidRequestError(
        `${where}: over.${key} must be a number of at least 0, got ${String(limit)}`,
      );
  }
}

function namespaceAndName(request: AdmissionRequest): { namespace: string; name: string } {
  if (request.spec !== undefined) return { namespace: request.spec.namespace, name: request.spec.name };
  const slash = request.workloadId.indexOf('/');
  return slash < 0
    ? { namespace: 'default', name: request.workloadId }
    : { namespace: request.workloadId.slice(0, slash), name: request.workloadId.slice(slash + 1) };
}

function exceeds(spec: WorkloadSpec, over: NonNullable<DenyRule['over']>): boolean {
  return (
    (over.replicas !== undefined && spec.replicas > over.replicas) ||
    (over.cpuMillicores !== undefined && spec.resources.cpuMillicores > over.cpuMillicores) ||
    (over.memoryBytes !== undefined && spec.resources.memoryBytes > over.memoryBytes) ||
    (over.priority !== undefined && spec.priority > over.priority)
  );
}

/** A hook that denies a request when one of `rules` matches it (the first that does gives the reason). */
export function denyRules(rules: readonly DenyRule[]): AdmissionHook {
  if (rules.length > maxRules)
    throw new InvalidRequestError(`at most ${maxRules} deny rules, got ${rules.length}`);
  rules.forEach(checkRule);
  const compiled = rules.map((rule) => ({
    rule,
    name: rule.namePattern === undefined ? undefined : globToRegExp(rule.namePattern),
  }));
  const matches = ({ rule, name }: (typeof compiled)[number], request: AdmissionRequest): boolean => {
    const { spec } = request;
    const target = namespaceAndName(request);
    if (rule.operations !== undefined && !rule.operations.includes(request.operation)) return false;
    if (rule.namespaces !== undefined && !rule.namespaces.includes(target.namespace)) return false;
    if (name !== undefined && !name.test(target.name)) return false;
    if (rule.users !== undefined && (request.user === undefined || !rule.users.includes(request.user)))
      return false;
    if (
      rule.driverTypes !== undefined &&
      (spec === undefined || !rule.driverTypes.includes(spec.driver.type))
    )
      return false;
    if (rule.over !== undefined && (spec === undefined || !exceeds(spec, rule.over))) return false;
    return true;
  };
  return {
    review: async (request) => {
      const hit = compiled.find((entry) => matches(entry, request));
      return hit === undefined ? { allowed: true } : { allowed: false, reason: hit.rule.reason };
    },
  };
}

/**
 * Asks `hook` about `request`; resolves when it is allowed, rejects with PolicyViolationError
 * (naming the operation, the workload and the hook's reason) when it is not. A hook that fails
 * or answers nonsense rejects the request too: admission fails closed.
 */
export async function admit(
  hook: AdmissionHook,
  request: AdmissionRequest,
  options?: { signal?: AbortSignal },
): Promise<void> {
  if (options?.signal?.aborted === true)
    throw new AbortError(`admission of ${request.workloadId} was aborted`);
  const decision: unknown = await hook.review(request, options);
  if (typeof decision === 'object' && decision !== null && (decision as AdmissionDecision).allowed === true)
    return;
  const reason =
    typeof decision === 'object' &&
    decision !== null &&
    (decision as { allowed?: unknown }).allowed === false &&
    typeof (decision as { reason?: unknown }).reason === 'string'
      ? (decision as { reason: string }).reason.slice(0, 1024)
      : 'the admission hook gave no valid decision';
  throw new PolicyViolationError(
    `${request.operation} of workload ${request.workloadId} was denied by policy: ${reason}`,
  );
}
