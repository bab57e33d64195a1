import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { canonicalJson, specDigest } from '../../actors/coordinator/spec-digest.ts';
import { InvalidSpecError, rootField, type SpecProblem } from '../../actors/coordinator/workload-errors.ts';
import {
  loadWorkloadSpec,
  parseWorkloadFile,
  resolveSpecPaths,
  workloadFileLimits,
} from '../../actors/coordinator/workload-file.ts';
import { validateWorkloadSpec } from '../../actors/coordinator/workload-validate.ts';

const examples = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../examples');

function refusal(run: () => unknown): InvalidSpecError {
  try {
    run();
  } catch (error) {
    expect(error).to.be.instanceOf(InvalidSpecError);
    return error as InvalidSpecError;
  }
  throw new Error('expected a refusal');
}

function only(error: InvalidSpecError): SpecProblem {
  expect(error.problems).to.have.length.greaterThan(0);
  return error.problems[0] as SpecProblem;
}

const webYaml = `
name: web
replicas: 3
driver:
  type: process
  command: node
  args: [server.js]
  env:
    PORT: 8080
resources:
  memoryBytes: 256Mi
  cpuMillicores: 500m
`;

describe('workload spec files', () => {
  it('reads YAML into plain data, and JSON too', () => {
    expect(parseWorkloadFile(webYaml)).to.deep.include({ name: 'web', replicas: 3 });
    expect(parseWorkloadFile('{"name": "web", "replicas": 2}', 'web.json')).to.deep.equal({
      name: 'web',
      replicas: 2,
    });
    // YAML is a superset of JSON: a JSON document in a .yaml file reads the same.
    expect(parseWorkloadFile('{"name": "web", "replicas": 2}', 'web.yaml')).to.deep.equal({
      name: 'web',
      replicas: 2,
    });
  });

  it('loads a YAML spec with quantities and defaults filled in', () => {
    const spec = loadWorkloadSpec(webYaml);
    expect(spec.resources).to.deep.equal({ cpuMillicores: 500, memoryBytes: 256 * 1024 * 1024 });
    expect(spec.driver).to.deep.equal({
      type: 'process',
      command: 'node',
      args: ['server.js'],
      env: { PORT: '8080' },
    });
    expect(spec.namespace).to.equal('default');
  });

  it('reads YAML 1.2: yes/no/on stay strings', () => {
    expect(parseWorkloadFile('a: yes\nb: on\nc: true\n')).to.deep.equal({ a: 'yes', b: 'on', c: true });
  });

  it('gives the line and column of a YAML syntax error', () => {
    const problem = only(
      refusal(() => parseWorkloadFile('name: web\ndriver:\n  args: [a, b\nreplicas: 3\n', 'w.yaml')),
    );
    expect(problem.rule).to.equal('syntax');
    expect(problem.field).to.equal(rootField);
    expect(problem.line).to.be.a('number').and.to.be.within(3, 4);
    expect(problem.column).to.be.a('number');
  });

  it('gives the line and column of a JSON syntax error', () => {
    const problem = only(
      refusal(() => parseWorkloadFile('{\n  "name": "web",\n  "replicas": 3,\n}\n', 'w.json')),
    );
    expect(problem).to.include({ field: rootField, rule: 'syntax', line: 4, column: 1 });
    const truncated = only(refusal(() => parseWorkloadFile('{\n  "name": "web"', 'w.json')));
    expect(truncated).to.include({ rule: 'syntax', line: 2 });
  });

  it('refuses a duplicate key', () => {
    const problem = only(refusal(() => parseWorkloadFile('name: a\nreplicas: 1\nname: b\n')));
    expect(problem).to.include({ rule: 'duplicate-key', line: 3 });
  });

  it('refuses a file with more than one document, and an empty one', () => {
    const problem = only(refusal(() => parseWorkloadFile('name: a\n---\nname: b\n')));
    expect(problem).to.include({ field: rootField, rule: 'single-document', line: 2 });
    expect(only(refusal(() => parseWorkloadFile('')))).to.include({ rule: 'required' });
    // One document after a leading '---' is fine.
    expect(parseWorkloadFile('---\nname: a\n')).to.deep.equal({ name: 'a' });
    expect(parseWorkloadFile('name: a\n---\n')).to.deep.equal({ name: 'a' });
    expect(only(refusal(() => parseWorkloadFile('# nothing here\n')))).to.include({ rule: 'required' });
  });

  it('refuses an alias expansion bomb', () => {
    const bomb = [
      'a: &a [x, x, x, x, x, x, x, x, x]',
      'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]',
      'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]',
      'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]',
      'e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]',
    ].join('\n');
    expect(only(refusal(() => parseWorkloadFile(bomb)))).to.include({ rule: 'alias-limit' });
    // A few aliases are fine.
    expect(parseWorkloadFile('a: &x [1]\nb: *x\n')).to.deep.equal({ a: [1], b: [1] });
  });

  it('refuses a file over the size limit before parsing it', () => {
    const text = `name: web\n# ${'x'.repeat(workloadFileLimits.maxFileBytes)}\n`;
    expect(only(refusal(() => parseWorkloadFile(text)))).to.include({ field: rootField, rule: 'max-size' });
  });

  it('refuses a deeply nested file without blowing the stack', () => {
    const text = `name: web\nextra: ${'['.repeat(50_000)}${']'.repeat(50_000)}\n`;
    const error = refusal(() => loadWorkloadSpec(text));
    expect(error.problems.map((p) => p.rule)).to.include.oneOf(['max-depth', 'syntax']);
  });

  it('reports validation problems of a loaded file with their fields', () => {
    const error = refusal(() =>
      loadWorkloadSpec('name: Web\nreplicas: 2.5\ndriver: { type: process }\n', 'web.yaml'),
    );
    expect(error.problems.map((p) => `${p.field} ${p.rule}`)).to.have.members([
      'name dns-1123-label',
      'replicas integer',
      'driver.command required',
    ]);
  });

  describe('resolveSpecPaths', () => {
    it('makes a relative worker module absolute against the spec directory, without changing the input', () => {
      const input = { name: 'w', driver: { type: 'worker', module: './mod.ts' } };
      const resolved = resolveSpecPaths(input, '/srv/specs') as { driver: { module: string } };
      expect(resolved.driver.module).to.equal(path.resolve('/srv/specs', 'mod.ts'));
      expect(input.driver.module).to.equal('./mod.ts');
    });

    it('leaves absolute paths, URLs, process drivers and malformed input alone', () => {
      for (const input of [
        { driver: { type: 'worker', module: '/abs/mod.ts' } },
        { driver: { type: 'worker', module: 'file:///abs/mod.ts' } },
        { driver: { type: 'process', command: './run.sh' } },
        { driver: 'worker' },
        'text',
        null,
      ]) {
        expect(resolveSpecPaths(input, '/srv')).to.equal(input);
      }
    });

    it('is applied by loadWorkloadSpec when the file name is known, and not otherwise', () => {
      const text = 'name: w\ndriver:\n  type: worker\n  module: lib/mod.ts\n';
      const spec = loadWorkloadSpec(text, '/srv/specs/w.yaml');
      expect(spec.driver).to.include({ type: 'worker', module: path.resolve('/srv/specs/lib/mod.ts') });
      expect(refusal(() => loadWorkloadSpec(text)).problems[0]).to.include({
        field: 'driver.module',
        rule: 'module-path',
      });
    });
  });

  describe('the examples', () => {
    for (const file of ['web.yaml', 'batch.yaml', 'worker.yaml']) {
      it(`validates examples/${file}`, async () => {
        const fileName = path.join(examples, file);
        const spec = loadWorkloadSpec(await readFile(fileName, 'utf8'), fileName);
        expect(validateWorkloadSpec(spec)).to.deep.equal(spec);
      });
    }

    it('has web as a 3-replica process service, batch as a batch job, worker on the example module', async () => {
      const load = async (file: string) => {
        const fileName = path.join(examples, file);
        return loadWorkloadSpec(await readFile(fileName, 'utf8'), fileName);
      };
      const web = await load('web.yaml');
      expect(web).to.deep.include({ kind: 'service', replicas: 3 });
      expect(web.driver).to.include({ type: 'process', command: 'node' });
      const batch = await load('batch.yaml');
      expect(batch.kind).to.equal('batch');
      expect(batch.restartPolicy.policy).to.not.equal('always');
      const worker = await load('worker.yaml');
      expect(worker.driver).to.include({ type: 'worker', module: path.join(examples, 'worker-module.ts') });
    });

    it('runs the worker module until its signal is aborted', async () => {
      const { default: run } = await import(path.join(examples, 'worker-module.ts'));
      const controller = new AbortController();
      const lines: string[] = [];
      const done = run({
        env: { TICK_MS: '10' },
        signal: controller.signal,
        log: (line: string) => lines.push(line),
      });
      await new Promise((resolve) => setTimeout(resolve, 35));
      controller.abort();
      await done;
      expect(lines.length).to.be.greaterThan(2);
    });
  });

  describe('specDigest', () => {
    it('is the same for the same spec with keys in another order or defaults written out', () => {
      const short = validateWorkloadSpec({ name: 'web', driver: { command: 'node', type: 'process' } });
      const reordered = validateWorkloadSpec({ driver: { type: 'process', command: 'node' }, name: 'web' });
      const explicit = loadWorkloadSpec(
        [
          'priority: 0',
          'constraints: { zones: [], nodeLabels: {}, spreadAcrossZones: false }',
          'restartPolicy: { policy: always, multiplier: 2, initialBackoffMs: 200, maxBackoffMs: 30000 }',
          'resources: { memoryBytes: 128Mi, cpuMillicores: 100 }',
          'driver: { env: {}, args: [], command: node, type: process }',
          'replicas: 1',
          'kind: service',
          'namespace: default',
          'name: web',
        ].join('\n'),
      );
      expect(specDigest(reordered)).to.equal(specDigest(short));
      expect(specDigest(explicit)).to.equal(specDigest(short));
      expect(specDigest(short)).to.match(/^[0-9a-f]{64}$/);
    });

    it('changes with any change of a value', () => {
      const base = { name: 'web', driver: { type: 'process', command: 'node', args: ['a', 'b'] } };
      const digest = specDigest(validateWorkloadSpec(base));
      const variants = [
        { ...base, name: 'web2' },
        { ...base, replicas: 2 },
        { ...base, driver: { ...base.driver, args: ['b', 'a'] } },
        { ...base, driver: { ...base.driver, env: { A: '' } } },
        { ...base, resources: { memoryBytes: '129Mi' } },
        { ...base, restartPolicy: { maxRetries: 0 } },
      ];
      const digests = new Set(variants.map((variant) => specDigest(validateWorkloadSpec(variant))));
      expect(digests.size).to.equal(variants.length);
      expect(digests.has(digest)).to.equal(false);
    });

    it('writes canonical JSON with sorted keys at every level', () => {
      expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: undefined } })).to.equal(
        '{"a":{"d":[3,{"y":2,"z":1}]},"b":1}',
      );
    });
  });
});
