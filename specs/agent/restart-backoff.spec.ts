import { expect } from 'chai';
import type { ReplicaRunOutcome, RestartDecision } from '../../actors/agent/restart-backoff.ts';
import { backoffDelayMs, decideRestart } from '../../actors/agent/restart-backoff.ts';
import type { RestartPolicy } from '../../actors/coordinator/workload-spec.ts';

const base: Omit<RestartPolicy, 'policy'> = { initialBackoffMs: 100, maxBackoffMs: 1000, multiplier: 2 };
const policy = (name: RestartPolicy['policy'], maxRetries?: number): RestartPolicy => ({
  ...base,
  policy: name,
  ...(maxRetries === undefined ? {} : { maxRetries }),
});
const run = (over: Partial<ReplicaRunOutcome>): ReplicaRunOutcome => ({
  kind: 'service',
  consecutiveFailures: 0,
  exitCode: 1,
  ranForMs: 1000,
  ...over,
});
/** random() = 1 − ε gives the largest jitter factor, just under 1; 0 gives 0.5. */
const noJitter = { random: () => 0.999_999 };

describe('agent restart backoff', () => {
  const table: [string, RestartPolicy, ReplicaRunOutcome, Partial<RestartDecision>][] = [
    [
      'always restarts a service after a success',
      policy('always'),
      run({ exitCode: 0 }),
      { action: 'restart', delayMs: 100, consecutiveFailures: 0 },
    ],
    [
      'always restarts a failed service',
      policy('always'),
      run({}),
      { action: 'restart', delayMs: 100, consecutiveFailures: 1 },
    ],
    [
      'always does not rerun a batch task that succeeded',
      policy('always'),
      run({ kind: 'batch', exitCode: 0 }),
      { action: 'give-up', state: 'succeeded' },
    ],
    [
      'on-failure restarts a non-zero exit',
      policy('on-failure'),
      run({ exitCode: 2 }),
      { action: 'restart', delayMs: 100 },
    ],
    [
      'on-failure restarts a replica killed by a signal',
      policy('on-failure'),
      run({ exitCode: undefined }),
      { action: 'restart' },
    ],
    [
      'on-failure gives up a success as succeeded',
      policy('on-failure'),
      run({ exitCode: 0 }),
      { action: 'give-up', state: 'succeeded' },
    ],
    ['never gives up a failure as failed', policy('never'), run({}), { action: 'give-up', state: 'failed' }],
    [
      'never gives up a success as succeeded',
      policy('never'),
      run({ exitCode: 0, kind: 'batch' }),
      { action: 'give-up', state: 'succeeded' },
    ],
    [
      'the third failure in a row waits initial × 2²',
      policy('on-failure'),
      run({ consecutiveFailures: 2 }),
      { action: 'restart', delayMs: 400, consecutiveFailures: 3 },
    ],
    [
      'the delay is capped at maxBackoffMs',
      policy('on-failure'),
      run({ consecutiveFailures: 9 }),
      { action: 'restart', delayMs: 1000, consecutiveFailures: 10 },
    ],
    [
      'maxRetries bounds restarts in a row',
      policy('on-failure', 3),
      run({ consecutiveFailures: 3 }),
      { action: 'give-up', state: 'failed', consecutiveFailures: 4 },
    ],
    [
      'the last allowed retry still restarts',
      policy('on-failure', 3),
      run({ consecutiveFailures: 2 }),
      { action: 'restart', consecutiveFailures: 3 },
    ],
    ['maxRetries 0 never restarts', policy('on-failure', 0), run({}), { action: 'give-up', state: 'failed' }],
    [
      'a long run resets the failure count',
      policy('on-failure', 3),
      run({ consecutiveFailures: 3, ranForMs: 60_000 }),
      { action: 'restart', delayMs: 100, consecutiveFailures: 1 },
    ],
  ];
  for (const [name, restartPolicy, outcome, expected] of table) {
    it(name, () => {
      const decision = decideRestart(restartPolicy, outcome, noJitter);
      expect(decision).to.include(expected);
    });
  }

  it('applies jitter in [0.5, 1) of the delay from the injected random source', () => {
    const at = (r: number) =>
      decideRestart(policy('always'), run({ consecutiveFailures: 1 }), { random: () => r });
    expect(at(0)).to.include({ action: 'restart', delayMs: 100 });
    expect(at(0.5)).to.include({ action: 'restart', delayMs: 150 });
    expect(at(0.999_999)).to.include({ action: 'restart', delayMs: 200 });
  });

  it('takes the stable-run threshold from the options', () => {
    const decision = decideRestart(policy('on-failure', 1), run({ consecutiveFailures: 1, ranForMs: 5000 }), {
      ...noJitter,
      stableAfterMs: 5000,
    });
    expect(decision).to.include({ action: 'restart', consecutiveFailures: 1 });
  });

  it('computes the raw backoff without overflowing', () => {
    expect(backoffDelayMs(policy('always'), 1)).to.equal(100);
    expect(backoffDelayMs(policy('always'), 5000)).to.equal(1000);
  });
});
