import { expect } from 'chai';
import {
  type AdmissionHook,
  type AdmissionRequest,
  admit,
  allowAll,
  denyRules,
} from '../../actors/coordinator/admission-hook.ts';
import { validateWorkloadSpec } from '../../actors/coordinator/workload-validate.ts';
import { errorFromWire, InvalidRequestError, PolicyViolationError } from '../../runtime/errors.ts';

const web = validateWorkloadSpec({
  name: 'web',
  namespace: 'shop',
  replicas: 3,
  driver: { type: 'process', command: 'node' },
  resources: { cpuMillicores: 500, memoryBytes: '256Mi' },
});
const job = validateWorkloadSpec({
  name: 'batch-nightly',
  kind: 'batch',
  driver: { type: 'worker', module: '/srv/job.ts' },
});

function create(spec = web, user?: string): AdmissionRequest {
  return { operation: 'create', spec, workloadId: `${spec.namespace}/${spec.name}`, user };
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

describe('admission hook', () => {
  it('allowAll allows every operation', async () => {
    for (const operation of ['create', 'update', 'delete', 'scale'] as const) {
      expect(await allowAll.review({ operation, workloadId: 'shop/web' })).to.deep.equal({ allowed: true });
      await admit(allowAll, { operation, workloadId: 'shop/web' });
    }
  });

  it('denies with PolicyViolationError carrying the rule reason, and allows what no rule matches', async () => {
    const hook = denyRules([{ reason: 'the shop namespace is frozen', namespaces: ['shop'] }]);
    expect(await hook.review(create())).to.deep.equal({
      allowed: false,
      reason: 'the shop namespace is frozen',
    });
    const error = await rejection(admit(hook, create()));
    expect(error).to.be.instanceOf(PolicyViolationError);
    expect((error as PolicyViolationError).code).to.equal('POLICY_VIOLATION');
    expect(error.message).to.include('the shop namespace is frozen');
    await admit(hook, create(job));
  });

  it('crosses the wire as PolicyViolationError', async () => {
    const error = await rejection(admit(denyRules([{ reason: 'no' }]), create()));
    const rebuilt = errorFromWire(JSON.parse(JSON.stringify(error)));
    expect(rebuilt).to.be.instanceOf(PolicyViolationError);
    expect(rebuilt.message).to.equal(error.message);
  });

  it('matches on name pattern, driver type, operation and user', async () => {
    const byName = denyRules([{ reason: 'r', namePattern: 'batch-*' }]);
    expect((await byName.review(create(job))).allowed).to.equal(false);
    expect((await byName.review(create(web))).allowed).to.equal(true);

    const byDriver = denyRules([{ reason: 'r', driverTypes: ['worker'] }]);
    expect((await byDriver.review(create(job))).allowed).to.equal(false);
    expect((await byDriver.review(create(web))).allowed).to.equal(true);
    // A selector on the spec never matches a request without one.
    expect(
      (await byDriver.review({ operation: 'delete', workloadId: 'default/batch-nightly' })).allowed,
    ).to.equal(true);

    const byOperation = denyRules([{ reason: 'r', operations: ['delete'], namePattern: 'web' }]);
    expect((await byOperation.review({ operation: 'delete', workloadId: 'shop/web' })).allowed).to.equal(
      false,
    );
    expect((await byOperation.review(create())).allowed).to.equal(true);

    const byUser = denyRules([{ reason: 'r', users: ['intern'] }]);
    expect((await byUser.review(create(web, 'intern'))).allowed).to.equal(false);
    expect((await byUser.review(create(web, 'admin'))).allowed).to.equal(true);
    expect((await byUser.review(create(web))).allowed).to.equal(true);
  });

  it('denies a spec over a resource maximum', async () => {
    const quota = denyRules([
      { reason: 'at most 2 replicas', over: { replicas: 2 } },
      { reason: 'at most 128 MiB per replica', over: { memoryBytes: 128 * 1024 * 1024 } },
    ]);
    expect(await quota.review(create(web))).to.deep.equal({ allowed: false, reason: 'at most 2 replicas' });
    const small = validateWorkloadSpec({
      name: 'small',
      replicas: 2,
      driver: { type: 'process', command: 'x' },
    });
    expect(await quota.review(create(small))).to.deep.equal({ allowed: true });
    const scaled = { ...small, replicas: 5 };
    expect(
      (await quota.review({ operation: 'scale', spec: scaled, workloadId: 'default/small' })).allowed,
    ).to.equal(false);
  });

  it('refuses malformed rules when built', () => {
    expect(() => denyRules([{ reason: '' }])).to.throw(InvalidRequestError);
    expect(() => denyRules([{ reason: 'r', operations: ['launch' as 'create'] }])).to.throw(
      InvalidRequestError,
    );
    expect(() => denyRules([{ reason: 'r', over: { replicas: -1 } }])).to.throw(InvalidRequestError);
  });

  it('fails closed on a hook that answers nonsense, and passes on a hook that throws', async () => {
    const nonsense: AdmissionHook = { review: async () => ({ allowed: 'maybe' }) as never };
    expect(await rejection(admit(nonsense, create()))).to.be.instanceOf(PolicyViolationError);
    const failing: AdmissionHook = {
      review: async () => {
        throw new RangeError('policy engine down');
      },
    };
    expect(await rejection(admit(failing, create()))).to.be.instanceOf(RangeError);
  });

  it('does not ask the hook once the signal is aborted', async () => {
    let asked = false;
    const hook: AdmissionHook = {
      review: async () => {
        asked = true;
        return { allowed: true };
      },
    };
    const controller = new AbortController();
    controller.abort();
    await rejection(admit(hook, create(), { signal: controller.signal }));
    expect(asked).to.equal(false);
  });
});
