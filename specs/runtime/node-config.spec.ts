import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { InvalidRequestError } from '../../runtime/errors.ts';
import {
  type ConfigLayer,
  configFromEnv,
  configFromFile,
  defaultNodeConfig,
  maskedConfig,
  parseHostPort,
  resolveNodeConfig,
} from '../../runtime/node-config.ts';

const token = 'a1b2c3d4e5f60718.QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZn';

function errorOf(layers: { source: string; values: ConfigLayer }[]): InvalidRequestError {
  try {
    resolveNodeConfig(layers);
  } catch (error) {
    expect(error).to.be.instanceOf(InvalidRequestError);
    return error as InvalidRequestError;
  }
  throw new Error('expected the configuration to be refused');
}

describe('node configuration', () => {
  it('defaults to every role, no token, labels, zone or metrics endpoint, and no leave', () => {
    const config = resolveNodeConfig([]);
    expect(config.roles).to.deep.equal(['coordinator', 'agent', 'storage']);
    expect(config.dataDir).to.equal(path.resolve(defaultNodeConfig.dataDir));
    expect(config.token).to.equal(undefined);
    expect(config.labels).to.deep.equal({});
    expect(config.zone).to.equal(undefined);
    expect(config.metricsAddr).to.equal(undefined);
    expect(config.leaveOnStop).to.equal(false);
  });

  it('takes flags over the environment over the file over the defaults, setting by setting', () => {
    const config = resolveNodeConfig([
      {
        source: 'node.yaml',
        values: { zone: 'from-file', labels: { tier: 'web' }, metricsAddr: '127.0.0.1:1' },
      },
      {
        source: 'environment',
        values: configFromEnv({
          CLOUDLESS_ZONE: 'from-env',
          CLOUDLESS_LABELS: 'tier=db',
          CLOUDLESS_LEAVE_ON_STOP: '1',
        }),
      },
      { source: 'flags', values: { zone: 'from-flag', token } },
    ]);
    expect(config.zone).to.equal('from-flag');
    // Labels are one setting: the environment's map replaces the file's whole.
    expect(config.labels).to.deep.equal({ tier: 'db' });
    expect(config.metricsAddr).to.equal('127.0.0.1:1');
    expect(config.leaveOnStop).to.equal(true);
    expect(config.token).to.equal(token);
  });

  it('reads labels as k=v,k2=v2 from flags and the environment and as a mapping from YAML', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cloudless-config-'));
    try {
      const file = path.join(dir, 'node.yaml');
      await writeFile(file, 'labels:\n  tier: web\n  gpu: true\n  rack: 7\nzone: eu-1a\nleaveOnStop: true\n');
      const fromFile = resolveNodeConfig([{ source: file, values: await configFromFile(file) }]);
      expect(fromFile.labels).to.deep.equal({ tier: 'web', gpu: 'true', rack: '7' });
      expect(fromFile.zone).to.equal('eu-1a');
      expect(fromFile.leaveOnStop).to.equal(true);
      const fromFlag = resolveNodeConfig([{ source: 'flags', values: { labels: ' a=1 , b.c_d=x,empty=' } }]);
      expect(fromFlag.labels).to.deep.equal({ a: '1', 'b.c_d': 'x', empty: '' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('accepts HOST:PORT metrics addresses with IPv4, names and bracketed IPv6, ports 0 to 65535', () => {
    expect(parseHostPort('127.0.0.1:9464')).to.deep.equal({ host: '127.0.0.1', port: 9464 });
    expect(parseHostPort('localhost:0')).to.deep.equal({ host: 'localhost', port: 0 });
    expect(parseHostPort('[::1]:65535')).to.deep.equal({ host: '::1', port: 65535 });
    for (const bad of [
      '9464',
      '127.0.0.1',
      '127.0.0.1:65536',
      ':80',
      'host:-1',
      'a b:80',
      '[::1]',
      'http://x:80',
    ]) {
      expect(() => parseHostPort(bad), bad).to.throw(InvalidRequestError);
    }
  });

  it('names the setting, the exact flag, variable or file it came from, and where to fix it', () => {
    const cases: { layer: { source: string; values: ConfigLayer }; expected: string }[] = [
      { layer: { source: 'flags', values: { labels: '-bad=x' } }, expected: 'labels (from flag --labels)' },
      { layer: { source: 'flags', values: { labels: 'novalue' } }, expected: 'labels (from flag --labels)' },
      {
        layer: { source: 'environment', values: configFromEnv({ CLOUDLESS_LABELS: `k=${'v'.repeat(64)}` }) },
        expected: 'labels (from environment CLOUDLESS_LABELS)',
      },
      { layer: { source: 'node.yaml', values: { labels: ['a'] } }, expected: 'labels (from file node.yaml)' },
      { layer: { source: 'flags', values: { zone: 'a zone' } }, expected: 'zone (from flag --zone)' },
      { layer: { source: 'flags', values: { zone: 'z'.repeat(64) } }, expected: 'zone (from flag --zone)' },
      {
        layer: { source: 'environment', values: configFromEnv({ CLOUDLESS_METRICS_ADDR: '0.0.0.0:99999' }) },
        expected: 'metricsAddr (from environment CLOUDLESS_METRICS_ADDR)',
      },
      {
        layer: { source: 'environment', values: configFromEnv({ CLOUDLESS_LEAVE_ON_STOP: 'perhaps' }) },
        expected: 'leaveOnStop (from environment CLOUDLESS_LEAVE_ON_STOP)',
      },
      { layer: { source: 'flags', values: { token: 'not-a-token' } }, expected: 'token (from flag --token)' },
      {
        layer: { source: 'flags', values: { logLevel: 'loud' } },
        expected: 'logLevel (from flag --log-level)',
      },
    ];
    for (const { layer, expected } of cases) {
      const error = errorOf([layer]);
      expect(error.code).to.equal('INVALID_REQUEST');
      expect(error.message, expected).to.include(expected);
      expect(error.message, expected).to.include('set it with');
    }
  });

  it('never echoes a token in an error, even a malformed one', () => {
    const secret = 'S3cr3tS3cr3tS3cr3tS3cr3t';
    const error = errorOf([{ source: 'flags', values: { token: `bad id!.${secret}` } }]);
    expect(error.message).to.not.include(secret);
  });

  it('does not quote a YAML file it cannot parse, since the bad line may hold the token', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'cloudless-config-'));
    try {
      const file = path.join(dir, 'node.yaml');
      await writeFile(file, `token: ${token}\nlabels: [unclosed\n`);
      const error = await configFromFile(file).then(
        () => undefined,
        (e: unknown) => e as InvalidRequestError,
      );
      expect(error).to.be.instanceOf(InvalidRequestError);
      expect(error?.message).to.include(file);
      expect(error?.message).to.not.include(token.split('.')[1]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('masks secrets in the printable config, keeping the token id', () => {
    const config = resolveNodeConfig([{ source: 'flags', values: { token, labels: 'a=b' } }]);
    const masked = maskedConfig(config);
    expect(masked.token).to.equal('a1b2c3d4e5f60718.<redacted>');
    expect(JSON.stringify(masked)).to.not.include(token.split('.')[1]);
    expect(masked.labels).to.deep.equal({ a: 'b' });
    expect(maskedConfig(resolveNodeConfig([])).token).to.equal(undefined);
  });
});
