import { expect } from 'chai';
import { specDigest } from '../../actors/coordinator/spec-digest.ts';
import {
  InvalidSpecError,
  maxReportedProblems,
  rootField,
  type SpecProblem,
  workloadErrorFromWire,
} from '../../actors/coordinator/workload-errors.ts';
import type { WorkloadSpec } from '../../actors/coordinator/workload-spec.ts';
import { validateWorkloadSpec, workloadSpecLimits } from '../../actors/coordinator/workload-validate.ts';
import { errorFromWire, InvalidRequestError } from '../../runtime/errors.ts';

const mib = 1024 * 1024;

function minimal(): Record<string, unknown> {
  return { name: 'web', driver: { type: 'process', command: 'node' } };
}

function problemsOf(input: unknown): readonly SpecProblem[] {
  try {
    validateWorkloadSpec(input);
  } catch (error) {
    expect(error).to.be.instanceOf(InvalidSpecError);
    expect(error).to.be.instanceOf(InvalidRequestError);
    expect((error as InvalidSpecError).code).to.equal('INVALID_REQUEST');
    expect((error as InvalidSpecError).reason).to.equal('invalid-spec');
    return (error as InvalidSpecError).problems;
  }
  throw new Error('expected the spec to be refused');
}

function expectProblem(input: unknown, field: string, rule: string): void {
  const problems = problemsOf(input);
  expect(
    problems.map((p) => ({ field: p.field, rule: p.rule })),
    JSON.stringify(problems),
  ).to.deep.include({ field, rule });
}

/** `minimal()` with `patch` merged in at the top level and in `driver`. */
function withTop(patch: Record<string, unknown>): Record<string, unknown> {
  return { ...minimal(), ...patch };
}
function withDriver(patch: Record<string, unknown>): Record<string, unknown> {
  return { ...minimal(), driver: { type: 'process', command: 'node', ...patch } };
}
function withWorker(patch: Record<string, unknown>): Record<string, unknown> {
  return { ...minimal(), driver: { type: 'worker', module: '/srv/app/job.ts', ...patch } };
}
function withHealth(
  patch: Record<string, unknown>,
  probe: Record<string, unknown> = { type: 'tcp', port: 80 },
) {
  return { ...minimal(), healthCheck: { probe, ...patch } };
}

describe('workload spec validation', () => {
  it('fills in every default of a minimal service spec', () => {
    const spec = validateWorkloadSpec(minimal());
    expect(spec).to.deep.equal({
      name: 'web',
      namespace: 'default',
      kind: 'service',
      replicas: 1,
      driver: { type: 'process', command: 'node', args: [], env: {} },
      resources: { cpuMillicores: 100, memoryBytes: 128 * mib },
      restartPolicy: { policy: 'always', initialBackoffMs: 200, maxBackoffMs: 30_000, multiplier: 2 },
      constraints: {
        nodeLabels: {},
        zones: [],
        spreadAcrossZones: false,
        affinity: [],
        antiAffinity: [],
        tolerations: [],
        preferredZones: [],
      },
      priority: 0,
    });
    expect(Object.hasOwn(spec.restartPolicy, 'maxRetries')).to.equal(false);
    expect(Object.hasOwn(spec, 'healthCheck')).to.equal(false);
  });

  it('gives a batch workload on-failure with 3 retries and a worker the default export', () => {
    const spec = validateWorkloadSpec({
      name: 'job',
      kind: 'batch',
      driver: { type: 'worker', module: 'file:///srv/job.ts' },
    });
    expect(spec.restartPolicy).to.deep.equal({
      policy: 'on-failure',
      initialBackoffMs: 200,
      maxBackoffMs: 30_000,
      multiplier: 2,
      maxRetries: 3,
    });
    expect(spec.driver).to.deep.equal({
      type: 'worker',
      module: 'file:///srv/job.ts',
      export: 'default',
      env: {},
    });
  });

  it('keeps a full spec as written, and a second validation changes nothing', () => {
    const full: WorkloadSpec = {
      name: 'api',
      namespace: 'shop',
      kind: 'service',
      replicas: 5,
      driver: {
        type: 'process',
        command: '/usr/bin/node',
        args: ['server.js', '--port', '8080'],
        env: { NODE_ENV: 'production', _X1: '' },
        workingDir: '/srv/api',
      },
      resources: { cpuMillicores: 1500, memoryBytes: 512 * mib },
      restartPolicy: {
        policy: 'on-failure',
        initialBackoffMs: 50,
        maxBackoffMs: 5000,
        multiplier: 1.5,
        maxRetries: 10,
      },
      constraints: {
        nodeLabels: { gpu: 'true', 'disk.type': 'ssd' },
        zones: ['eu-1a', 'eu-1b'],
        spreadAcrossZones: true,
        affinity: ['cache'],
        antiAffinity: ['api'],
        tolerations: ['dedicated'],
        preferredZones: ['eu-1a'],
      },
      priority: 100,
      healthCheck: {
        probe: { type: 'http', port: 8080, host: '127.0.0.1', path: '/healthz' },
        intervalMs: 2000,
        timeoutMs: 500,
        initialDelayMs: 1000,
        failureThreshold: 5,
      },
    };
    const spec = validateWorkloadSpec(full);
    expect(spec).to.deep.equal(full);
    expect(validateWorkloadSpec(JSON.parse(JSON.stringify(spec)))).to.deep.equal(spec);
    expect(specDigest(validateWorkloadSpec(spec))).to.equal(specDigest(full));
  });

  it('fills in the health check defaults for each probe type', () => {
    expect(validateWorkloadSpec(withHealth({}, { type: 'http', port: 80 })).healthCheck).to.deep.equal({
      probe: { type: 'http', port: 80, host: '127.0.0.1', path: '/' },
      intervalMs: 1000,
      timeoutMs: 1000,
      initialDelayMs: 0,
      failureThreshold: 3,
    });
    expect(
      validateWorkloadSpec(withHealth({}, { type: 'tcp', port: 5432 })).healthCheck?.probe,
    ).to.deep.equal({
      type: 'tcp',
      port: 5432,
      host: '127.0.0.1',
    });
    expect(
      validateWorkloadSpec(withHealth({}, { type: 'exec', command: 'true' })).healthCheck?.probe,
    ).to.deep.equal({ type: 'exec', command: 'true', args: [] });
    // A short interval lowers the default timeout with it.
    expect(validateWorkloadSpec(withHealth({ intervalMs: 300 })).healthCheck?.timeoutMs).to.equal(300);
  });

  it('reads quantity strings for memory and CPU', () => {
    const cases: [unknown, unknown, number, number][] = [
      ['500m', '256Mi', 500, 256 * mib],
      ['2', '1Gi', 2000, 1024 * mib],
      ['0.5', '512M', 500, 512_000_000],
      ['1.25', '1.5Gi', 1250, 1.5 * 1024 * mib],
      [250, 2 * mib, 250, 2 * mib],
    ];
    for (const [cpu, memory, cpuMillicores, memoryBytes] of cases) {
      const spec = validateWorkloadSpec(withTop({ resources: { cpuMillicores: cpu, memoryBytes: memory } }));
      expect(spec.resources, `${cpu} / ${memory}`).to.deep.equal({ cpuMillicores, memoryBytes });
    }
  });

  it('turns YAML numbers and booleans in env and labels into strings, and takes null as absent', () => {
    const spec = validateWorkloadSpec({
      name: 'web',
      namespace: null,
      driver: { type: 'process', command: 'node', args: null, env: { PORT: 8080, DEBUG: true } },
      constraints: { nodeLabels: { gpu: true, cores: 8 } },
    });
    expect(spec.namespace).to.equal('default');
    expect(spec.driver).to.deep.equal({
      type: 'process',
      command: 'node',
      args: [],
      env: { PORT: '8080', DEBUG: 'true' },
    });
    expect(spec.constraints.nodeLabels).to.deep.equal({ gpu: 'true', cores: '8' });
  });

  it('takes a restart policy given by its name alone', () => {
    expect(validateWorkloadSpec(withTop({ restartPolicy: 'never' })).restartPolicy.policy).to.equal('never');
  });

  it('keeps a "__proto__" key as a plain key', () => {
    const input = JSON.parse(
      '{"name":"web","driver":{"type":"process","command":"node","env":{"__proto__":"x"}}}',
    );
    const spec = validateWorkloadSpec(input);
    expect(Object.hasOwn(spec.driver.env, '__proto__')).to.equal(true);
    expect(Object.getPrototypeOf(spec.driver.env)).to.equal(Object.prototype);
  });

  describe('refuses each broken rule, naming the field and the rule', () => {
    const long = (n: number, c = 'a') => c.repeat(n);
    const cases: [string, unknown, string, string][] = [
      ['a non-object', 'web', rootField, 'type'],
      ['a list', [], rootField, 'type'],
      ['a missing name', { driver: { type: 'process', command: 'x' } }, 'name', 'required'],
      ['an upper-case name', withTop({ name: 'Web' }), 'name', 'dns-1123-label'],
      ['a name ending in -', withTop({ name: 'web-' }), 'name', 'dns-1123-label'],
      ['a name with a dot', withTop({ name: 'a.b' }), 'name', 'dns-1123-label'],
      ['a name of 64 characters', withTop({ name: long(64) }), 'name', 'max-length'],
      ['an empty name', withTop({ name: '' }), 'name', 'non-empty'],
      ['a numeric name', withTop({ name: 42 }), 'name', 'type'],
      ['a bad namespace', withTop({ namespace: '_sys' }), 'namespace', 'dns-1123-label'],
      ['an unknown kind', withTop({ kind: 'daemon' }), 'kind', 'one-of'],
      ['fractional replicas', withTop({ replicas: 1.5 }), 'replicas', 'integer'],
      ['negative replicas', withTop({ replicas: -1 }), 'replicas', 'range'],
      ['1001 replicas', withTop({ replicas: 1001 }), 'replicas', 'range'],
      ['replicas as a string', withTop({ replicas: '3' }), 'replicas', 'type'],
      ['a missing driver', { name: 'web' }, 'driver', 'required'],
      ['a driver of unknown type', withTop({ driver: { type: 'docker' } }), 'driver.type', 'one-of'],
      ['a driver without type', withTop({ driver: { command: 'x' } }), 'driver.type', 'required'],
      ['a missing command', withTop({ driver: { type: 'process' } }), 'driver.command', 'required'],
      ['an empty command', withDriver({ command: '' }), 'driver.command', 'non-empty'],
      ['a command too long', withDriver({ command: long(4097) }), 'driver.command', 'max-length'],
      ['a command with NUL', withDriver({ command: 'no\0de' }), 'driver.command', 'no-nul'],
      ['args not a list', withDriver({ args: 'a b' }), 'driver.args', 'type'],
      ['257 args', withDriver({ args: Array(257).fill('a') }), 'driver.args', 'max-items'],
      ['an arg too long', withDriver({ args: ['ok', long(4097)] }), 'driver.args[1]', 'max-length'],
      ['a numeric arg', withDriver({ args: [1] }), 'driver.args[0]', 'type'],
      ['a bad env name', withDriver({ env: { '1X': 'a' } }), 'driver.env["1X"]', 'env-name'],
      ['an env name with -', withDriver({ env: { 'MY-VAR': 'a' } }), 'driver.env.MY-VAR', 'env-name'],
      [
        '129 env entries',
        withDriver({ env: Object.fromEntries(Array.from({ length: 129 }, (_, i) => [`V${i}`, 'x'])) }),
        'driver.env',
        'max-items',
      ],
      [
        'an env value too long',
        withDriver({ env: { BIG: long(32 * 1024 + 1) } }),
        'driver.env.BIG',
        'max-length',
      ],
      ['an env value that is a list', withDriver({ env: { A: ['x'] } }), 'driver.env.A', 'type'],
      ['a relative workingDir', withDriver({ workingDir: 'srv/api' }), 'driver.workingDir', 'absolute-path'],
      ['a worker field on a process', withDriver({ module: '/x.ts' }), 'driver.module', 'unknown-field'],
      ['a missing module', withTop({ driver: { type: 'worker' } }), 'driver.module', 'required'],
      ['a relative module', withWorker({ module: 'job.ts' }), 'driver.module', 'module-path'],
      [
        'an http module',
        withWorker({ module: 'https://example.com/job.js' }),
        'driver.module',
        'module-path',
      ],
      [
        'an export that is no identifier',
        withWorker({ export: 'run-job' }),
        'driver.export',
        'js-identifier',
      ],
      ['args on a worker', withWorker({ args: [] }), 'driver.args', 'unknown-field'],
      ['a bad worker env name', withWorker({ env: { 'A B': '' } }), 'driver.env["A B"]', 'env-name'],
      ['cpu 0', withTop({ resources: { cpuMillicores: 0 } }), 'resources.cpuMillicores', 'range'],
      [
        'cpu over 1,000,000',
        withTop({ resources: { cpuMillicores: 1_000_001 } }),
        'resources.cpuMillicores',
        'range',
      ],
      [
        'fractional cpu',
        withTop({ resources: { cpuMillicores: 1.5 } }),
        'resources.cpuMillicores',
        'integer',
      ],
      ['cpu "1.5m"', withTop({ resources: { cpuMillicores: '1.5m' } }), 'resources.cpuMillicores', 'integer'],
      [
        'cpu "2 cores"',
        withTop({ resources: { cpuMillicores: '2 cores' } }),
        'resources.cpuMillicores',
        'quantity',
      ],
      [
        'cpu "500Mi"',
        withTop({ resources: { cpuMillicores: '500Mi' } }),
        'resources.cpuMillicores',
        'quantity',
      ],
      [
        'memory under 1 MiB',
        withTop({ resources: { memoryBytes: mib - 1 } }),
        'resources.memoryBytes',
        'range',
      ],
      ['memory over 1 TiB', withTop({ resources: { memoryBytes: '2Ti' } }), 'resources.memoryBytes', 'range'],
      [
        'fractional memory',
        withTop({ resources: { memoryBytes: 2.5 * mib + 0.5 } }),
        'resources.memoryBytes',
        'integer',
      ],
      ['memory "lots"', withTop({ resources: { memoryBytes: 'lots' } }), 'resources.memoryBytes', 'quantity'],
      ['memory "1Xi"', withTop({ resources: { memoryBytes: '1Xi' } }), 'resources.memoryBytes', 'quantity'],
      ['an unknown resource', withTop({ resources: { gpus: 1 } }), 'resources.gpus', 'unknown-field'],
      [
        'an unknown restart policy',
        withTop({ restartPolicy: { policy: 'sometimes' } }),
        'restartPolicy.policy',
        'one-of',
      ],
      [
        'a batch that always restarts',
        withTop({ kind: 'batch', restartPolicy: { policy: 'always' } }),
        'restartPolicy.policy',
        'batch-always',
      ],
      [
        'a batch that always restarts (short form)',
        withTop({ kind: 'batch', restartPolicy: 'always' }),
        'restartPolicy',
        'batch-always',
      ],
      [
        'an initial backoff under 10 ms',
        withTop({ restartPolicy: { initialBackoffMs: 9 } }),
        'restartPolicy.initialBackoffMs',
        'range',
      ],
      [
        'a fractional backoff',
        withTop({ restartPolicy: { initialBackoffMs: 10.5 } }),
        'restartPolicy.initialBackoffMs',
        'integer',
      ],
      [
        'a max backoff under the initial',
        withTop({ restartPolicy: { initialBackoffMs: 500, maxBackoffMs: 400 } }),
        'restartPolicy.maxBackoffMs',
        'at-least-initial',
      ],
      [
        'a multiplier under 1',
        withTop({ restartPolicy: { multiplier: 0.5 } }),
        'restartPolicy.multiplier',
        'range',
      ],
      [
        'a multiplier over 10',
        withTop({ restartPolicy: { multiplier: 11 } }),
        'restartPolicy.multiplier',
        'range',
      ],
      [
        'a multiplier as a string',
        withTop({ restartPolicy: { multiplier: 'x2' } }),
        'restartPolicy.multiplier',
        'type',
      ],
      [
        'negative maxRetries',
        withTop({ restartPolicy: { maxRetries: -1 } }),
        'restartPolicy.maxRetries',
        'range',
      ],
      [
        'maxRetries over 1000',
        withTop({ restartPolicy: { maxRetries: 1001 } }),
        'restartPolicy.maxRetries',
        'range',
      ],
      [
        'fractional maxRetries',
        withTop({ restartPolicy: { maxRetries: 1.5 } }),
        'restartPolicy.maxRetries',
        'integer',
      ],
      [
        'an unknown restart field',
        withTop({ restartPolicy: { backoff: 1 } }),
        'restartPolicy.backoff',
        'unknown-field',
      ],
      [
        'a label key too long',
        withTop({ constraints: { nodeLabels: { [long(129)]: 'x' } } }),
        `constraints.nodeLabels["${long(64)}…"]`,
        'max-length',
      ],
      [
        'a label value too long',
        withTop({ constraints: { nodeLabels: { gpu: long(129) } } }),
        'constraints.nodeLabels.gpu',
        'max-length',
      ],
      [
        'a label value that is a mapping',
        withTop({ constraints: { nodeLabels: { gpu: { a: 1 } } } }),
        'constraints.nodeLabels.gpu',
        'type',
      ],
      [
        'a label without value',
        withTop({ constraints: { nodeLabels: { gpu: null } } }),
        'constraints.nodeLabels.gpu',
        'required',
      ],
      [
        '33 labels',
        withTop({
          constraints: {
            nodeLabels: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`l${i}`, 'x'])),
          },
        }),
        'constraints.nodeLabels',
        'max-items',
      ],
      [
        'a zone too long',
        withTop({ constraints: { zones: [long(65)] } }),
        'constraints.zones[0]',
        'max-length',
      ],
      ['an empty zone', withTop({ constraints: { zones: [''] } }), 'constraints.zones[0]', 'non-empty'],
      [
        '33 zones',
        withTop({ constraints: { zones: Array(33).fill('z') } }),
        'constraints.zones',
        'max-items',
      ],
      [
        '33 preferred zones',
        withTop({ constraints: { preferredZones: Array(33).fill('z') } }),
        'constraints.preferredZones',
        'max-items',
      ],
      [
        'spreadAcrossZones as a string',
        withTop({ constraints: { spreadAcrossZones: 'yes' } }),
        'constraints.spreadAcrossZones',
        'type',
      ],
      [
        'a bad affinity name',
        withTop({ constraints: { affinity: ['Cache'] } }),
        'constraints.affinity[0]',
        'dns-1123-label',
      ],
      [
        'a bad anti-affinity name',
        withTop({ constraints: { antiAffinity: ['ok', 'no_'] } }),
        'constraints.antiAffinity[1]',
        'dns-1123-label',
      ],
      [
        '33 affinities',
        withTop({ constraints: { affinity: Array(33).fill('a') } }),
        'constraints.affinity',
        'max-items',
      ],
      [
        '33 anti-affinities',
        withTop({ constraints: { antiAffinity: Array(33).fill('a') } }),
        'constraints.antiAffinity',
        'max-items',
      ],
      [
        '33 tolerations',
        withTop({ constraints: { tolerations: Array(33).fill('t') } }),
        'constraints.tolerations',
        'max-items',
      ],
      [
        'an unknown constraint',
        withTop({ constraints: { region: 'x' } }),
        'constraints.region',
        'unknown-field',
      ],
      ['priority over 1000', withTop({ priority: 1001 }), 'priority', 'range'],
      ['negative priority', withTop({ priority: -1 }), 'priority', 'range'],
      ['fractional priority', withTop({ priority: 0.5 }), 'priority', 'integer'],
      ['a health check without probe', withTop({ healthCheck: {} }), 'healthCheck.probe', 'required'],
      ['an unknown probe type', withHealth({}, { type: 'grpc' }), 'healthCheck.probe.type', 'one-of'],
      [
        'an exec probe without command',
        withHealth({}, { type: 'exec' }),
        'healthCheck.probe.command',
        'required',
      ],
      [
        'an exec probe with empty command',
        withHealth({}, { type: 'exec', command: '' }),
        'healthCheck.probe.command',
        'non-empty',
      ],
      ['a tcp probe without port', withHealth({}, { type: 'tcp' }), 'healthCheck.probe.port', 'required'],
      ['a tcp port 0', withHealth({}, { type: 'tcp', port: 0 }), 'healthCheck.probe.port', 'range'],
      [
        'an http port 65536',
        withHealth({}, { type: 'http', port: 65536 }),
        'healthCheck.probe.port',
        'range',
      ],
      [
        'a fractional port',
        withHealth({}, { type: 'http', port: 80.5 }),
        'healthCheck.probe.port',
        'integer',
      ],
      [
        'an http path without /',
        withHealth({}, { type: 'http', port: 80, path: 'healthz' }),
        'healthCheck.probe.path',
        'http-path',
      ],
      [
        'a path on a tcp probe',
        withHealth({}, { type: 'tcp', port: 80, path: '/' }),
        'healthCheck.probe.path',
        'unknown-field',
      ],
      [
        'a bad host',
        withHealth({}, { type: 'tcp', port: 80, host: 'a b' }),
        'healthCheck.probe.host',
        'host',
      ],
      ['an interval under 100 ms', withHealth({ intervalMs: 99 }), 'healthCheck.intervalMs', 'range'],
      ['an interval over an hour', withHealth({ intervalMs: 3_600_001 }), 'healthCheck.intervalMs', 'range'],
      ['a fractional interval', withHealth({ intervalMs: 1000.5 }), 'healthCheck.intervalMs', 'integer'],
      ['a timeout under 100 ms', withHealth({ timeoutMs: 50 }), 'healthCheck.timeoutMs', 'range'],
      [
        'a timeout over the interval',
        withHealth({ intervalMs: 1000, timeoutMs: 2000 }),
        'healthCheck.timeoutMs',
        'at-most-interval',
      ],
      ['a negative initial delay', withHealth({ initialDelayMs: -1 }), 'healthCheck.initialDelayMs', 'range'],
      [
        'a failure threshold of 0',
        withHealth({ failureThreshold: 0 }),
        'healthCheck.failureThreshold',
        'range',
      ],
      ['an unknown health field', withHealth({ retries: 3 }), 'healthCheck.retries', 'unknown-field'],
      ['an unknown top-level field', withTop({ image: 'nginx' }), 'image', 'unknown-field'],
      ['a misspelt field', withTop({ replica: 3 }), 'replica', 'unknown-field'],
    ];
    for (const [what, input, field, rule] of cases) {
      it(`${what}: ${field} [${rule}]`, () => expectProblem(input, field, rule));
    }
  });

  it('reports every problem at once', () => {
    const problems = problemsOf({
      name: 'Bad_Name',
      replicas: 2000,
      driver: { type: 'process', command: '', env: { '9': 'x' } },
      resources: { memoryBytes: '12 parsecs' },
      constraints: { nodeLabels: { gpu: long() } },
      colour: 'blue',
    });
    expect(problems.map((p) => `${p.field} ${p.rule}`)).to.have.members([
      'name dns-1123-label',
      'replicas range',
      'driver.command non-empty',
      'driver.env["9"] env-name',
      'resources.memoryBytes quantity',
      'constraints.nodeLabels.gpu max-length',
      'colour unknown-field',
    ]);
    function long(): string {
      return 'x'.repeat(200);
    }
  });

  it('says in its message every problem, one per line', () => {
    try {
      validateWorkloadSpec({ name: 'Web', replicas: -1 });
      expect.fail('expected a refusal');
    } catch (error) {
      const { message, problems } = error as InvalidSpecError;
      expect(problems).to.have.length(3);
      expect(message.split('\n')).to.have.length(1 + problems.length);
    }
  });

  it('refuses an input larger than the size limit, before looking at its fields', () => {
    const input = withDriver({ args: Array.from({ length: 200 }, () => 'x'.repeat(2000)) });
    const problems = problemsOf(input);
    expect(problems).to.deep.equal([problems[0]]);
    expect(problems[0]).to.include({ field: rootField, rule: 'max-size' });
  });

  it('refuses a document nested too deep, and a cyclic one, without blowing the stack', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expectProblem(withTop({ extra: deep }), rootField, 'max-depth');
    const cyclic: Record<string, unknown> = withTop({});
    cyclic.self = cyclic;
    expectProblem(cyclic, rootField, 'max-depth');
    expect(workloadSpecLimits.maxDepth).to.be.greaterThan(4);
  });

  it('refuses a document that shares one subtree many times (an alias bomb) by its expanded size', () => {
    let shared: unknown = ['x'.repeat(100)];
    for (let i = 0; i < 8; i++) shared = [shared, shared, shared, shared];
    expectProblem(withTop({ constraints: shared }), rootField, 'max-size');
  });

  it('keeps at most the first problems of a document full of them', () => {
    const input = withTop(Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`junk${i}`, 1])));
    try {
      validateWorkloadSpec(input);
      expect.fail('expected a refusal');
    } catch (error) {
      expect((error as InvalidSpecError).problems).to.have.length(maxReportedProblems);
    }
  });

  it('crosses the wire as the same class with the same problems', () => {
    let error: InvalidSpecError | undefined;
    try {
      validateWorkloadSpec({ name: 'Web', driver: { type: 'process', command: 'x', env: { 'A-B': '1' } } });
    } catch (caught) {
      error = caught as InvalidSpecError;
    }
    if (error === undefined) throw new Error('expected a refusal');
    const wire = JSON.parse(JSON.stringify(error));
    const rebuilt = workloadErrorFromWire(wire);
    expect(rebuilt).to.be.instanceOf(InvalidSpecError);
    expect((rebuilt as InvalidSpecError).problems).to.deep.equal(error.problems);
    expect(rebuilt.message).to.equal(error.message);
    // Only { code, message } travelled: the problems are read back from the message.
    const bare = workloadErrorFromWire({ code: wire.code, message: wire.message });
    expect(bare).to.be.instanceOf(InvalidSpecError);
    expect((bare as InvalidSpecError).problems).to.deep.equal(error.problems);
    // The generic rebuild keeps the class family and the code.
    expect(errorFromWire(wire)).to.be.instanceOf(InvalidRequestError);
    // Other errors are rebuilt as errorFromWire does.
    expect(workloadErrorFromWire({ code: 'INVALID_REQUEST', message: 'no such thing' })).to.not.be.instanceOf(
      InvalidSpecError,
    );
  });
});
