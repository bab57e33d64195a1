import { expect } from 'chai';
import { mulberry32 } from '../../actors/raft/mulberry32.ts';
import { InvalidRequestError } from '../../runtime/errors.ts';
import {
  type KvModelInput,
  type KvModelOutput,
  type KvOperation,
  kvModel,
  partitionByKey,
} from './kv-model.ts';
import { checkLinearizable, type LinearizabilityResult } from './linearizability.ts';

type Result = LinearizabilityResult<KvModelInput, KvModelOutput>;

function op(
  clientId: number,
  input: KvModelInput,
  output: KvModelOutput | { type: 'unknown' } | undefined,
  call: number,
  ret: number | undefined,
): KvOperation {
  return output === undefined
    ? { clientId, input, call, return: ret }
    : { clientId, input, output, call, return: ret };
}

const put = (
  clientId: number,
  key: string,
  value: string,
  call: number,
  ret: number | undefined,
): KvOperation =>
  op(clientId, { type: 'put', key, value }, ret === undefined ? undefined : { type: 'put' }, call, ret);

const get = (clientId: number, key: string, value: string | null, call: number, ret: number): KvOperation =>
  op(clientId, { type: 'get', key }, { type: 'get', value }, call, ret);

const del = (clientId: number, key: string, call: number, ret: number): KvOperation =>
  op(clientId, { type: 'delete', key }, { type: 'delete' }, call, ret);

/** Compare-and-swap on the version: if version(key) = expected then put value. */
const casVersion = (
  clientId: number,
  key: string,
  expected: number,
  value: string,
  succeeded: boolean | undefined,
  call: number,
  ret: number | undefined,
): KvOperation =>
  op(
    clientId,
    {
      type: 'txn',
      compare: [{ key, target: 'version', op: '=', value: expected }],
      success: [{ type: 'put', key, value }],
      failure: [],
    },
    succeeded === undefined ? { type: 'unknown' } : { type: 'txn', succeeded },
    call,
    ret,
  );

/** Compare-and-swap on the value: if value(key) = expected then put value. */
const casValue = (
  clientId: number,
  key: string,
  expected: string,
  value: string,
  succeeded: boolean,
  call: number,
  ret: number,
): KvOperation =>
  op(
    clientId,
    {
      type: 'txn',
      compare: [{ key, target: 'value', op: '=', value: expected }],
      success: [{ type: 'put', key, value }],
      failure: [{ type: 'get', key }],
    },
    { type: 'txn', succeeded },
    call,
    ret,
  );

function check(history: readonly KvOperation[], timeoutMs = 5000): Result {
  return checkLinearizable(history, kvModel, { timeoutMs });
}

function expectOk(result: Result): void {
  expect(result.ok, result.ok === false ? result.description : JSON.stringify(result)).to.equal(true);
}

function expectViolation(result: Result, key: string): void {
  expect(result.ok).to.equal(false);
  if (result.ok === false) expect(result.key).to.equal(key);
}

// ---------------------------------------------------------------------------------------------
// Random histories from a real sequential execution.

interface GeneratorInit {
  readonly ops: number;
  readonly keys: readonly string[];
  readonly clients: number;
  /** Share of operations whose client times out (they take effect half of the time). */
  readonly timeoutRate: number;
}

interface InFlight {
  readonly index: number;
  readonly client: number;
  readonly timesOut: boolean;
  output?: KvModelOutput;
}

/**
 * Runs clients against a plain Map (a reference store written independently of kv-model) and
 * records each operation's interval around the instant it was applied, so the history is
 * linearizable by construction: the application order is a witness.
 */
function generateHistory(seed: number, init: GeneratorInit): KvOperation[] {
  let rng = seed;
  const random = (): number => {
    const { value, next } = mulberry32(rng);
    rng = next;
    return value;
  };
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  const store = new Map<string, { value: string; version: number }>();
  const history: {
    clientId: number;
    input: KvModelInput;
    output?: KvModelOutput;
    call: number;
    return?: number;
  }[] = [];
  const idle = new Set(Array.from({ length: init.clients }, (_, i) => i));
  let unapplied: InFlight[] = [];
  let applied: InFlight[] = [];
  let orphans: InFlight[] = []; // timed out, client gone, may still apply
  let time = 0;
  let values = 0;

  const apply = (input: KvModelInput): KvModelOutput => {
    const key = input.type === 'txn' ? (input.compare[0]?.key as string) : input.key;
    const current = store.get(key);
    switch (input.type) {
      case 'get':
        return current === undefined
          ? { type: 'get', value: null }
          : { type: 'get', value: current.value, version: current.version };
      case 'put':
        store.set(key, { value: input.value, version: (current?.version ?? 0) + 1 });
        return { type: 'put' };
      case 'delete':
        store.delete(key);
        return { type: 'delete', deleted: current === undefined ? 0 : 1 };
      case 'txn': {
        const compare = input.compare[0];
        const succeeded =
          compare?.target === 'version'
            ? (current?.version ?? 0) === compare.value
            : current !== undefined && current.value === compare?.value;
        const put = input.success[0];
        if (succeeded && put?.type === 'put')
          store.set(key, { value: put.value, version: (current?.version ?? 0) + 1 });
        return { type: 'txn', succeeded };
      }
    }
  };

  const newInput = (): KvModelInput => {
    const key = pick(init.keys);
    const roll = random();
    if (roll < 0.4) return { type: 'get', key };
    if (roll < 0.7) return { type: 'put', key, value: `v${values++}` };
    if (roll < 0.8) return { type: 'delete', key };
    const current = store.get(key);
    if (roll < 0.9) {
      const expected = random() < 0.5 ? (current?.version ?? 0) : Math.floor(random() * 3);
      return {
        type: 'txn',
        compare: [{ key, target: 'version', op: '=', value: expected }],
        success: [{ type: 'put', key, value: `v${values++}` }],
        failure: [],
      };
    }
    const expected =
      random() < 0.5 && current !== undefined ? current.value : `v${Math.floor(random() * values)}`;
    return {
      type: 'txn',
      compare: [{ key, target: 'value', op: '=', value: expected }],
      success: [{ type: 'put', key, value: `v${values++}` }],
      failure: [],
    };
  };

  while (history.length < init.ops || unapplied.length > 0 || applied.length > 0) {
    const actions: (() => void)[] = [];
    if (history.length < init.ops && idle.size > 0) {
      actions.push(() => {
        const client = pick([...idle]);
        idle.delete(client);
        history.push({ clientId: client, input: newInput(), call: time++ });
        unapplied.push({ index: history.length - 1, client, timesOut: random() < init.timeoutRate });
      });
    }
    if (unapplied.length > 0) {
      actions.push(() => {
        const chosen = pick(unapplied);
        unapplied = unapplied.filter((f) => f !== chosen);
        chosen.output = apply((history[chosen.index] as (typeof history)[number]).input);
        applied.push(chosen);
        time++;
      });
      actions.push(() => {
        // A client gives up on an operation not yet applied: it may apply later or never.
        const chosen = pick(unapplied);
        if (!chosen.timesOut) return;
        unapplied = unapplied.filter((f) => f !== chosen);
        orphans.push(chosen);
        idle.add(chosen.client);
      });
    }
    if (applied.length > 0) {
      actions.push(() => {
        const chosen = pick(applied);
        applied = applied.filter((f) => f !== chosen);
        const record = history[chosen.index] as (typeof history)[number];
        if (!chosen.timesOut) {
          record.output = chosen.output;
          record.return = time++;
        }
        idle.add(chosen.client);
      });
    }
    if (orphans.length > 0) {
      actions.push(() => {
        const chosen = pick(orphans);
        orphans = orphans.filter((f) => f !== chosen);
        if (random() < 0.5) apply((history[chosen.index] as (typeof history)[number]).input);
        time++;
      });
    }
    pick(actions)();
  }
  return history.map((record) =>
    record.return === undefined
      ? { clientId: record.clientId, input: record.input, call: record.call, return: undefined }
      : {
          clientId: record.clientId,
          input: record.input,
          output: record.output as KvModelOutput,
          call: record.call,
          return: record.return,
        },
  );
}

/**
 * Replaces the value of one completed get on a key that some put wrote with a value written only
 * to another key (or never written): no order can explain it. Undefined when there is no such get.
 */
function mutateOneRead(
  history: readonly KvOperation[],
  seed: number,
): { history: KvOperation[]; key: string } | undefined {
  const reads = history
    .map((o, index) => ({ o, index }))
    .filter(({ o }) => o.input.type === 'get' && o.return !== undefined && o.output?.type === 'get');
  if (reads.length === 0) return undefined;
  const { o: read, index } = reads[
    Math.floor(mulberry32(seed).value * reads.length)
  ] as (typeof reads)[number];
  const key = (read.input as { key: string }).key;
  const writtenHere = new Set<string>();
  const writtenElsewhere: string[] = [];
  for (const o of history) {
    const input = o.input;
    const puts =
      input.type === 'put' ? [input] : input.type === 'txn' ? [...input.success, ...input.failure] : [];
    for (const p of puts) {
      if (p.type !== 'put') continue;
      if (p.key === key) writtenHere.add(p.value);
      else writtenElsewhere.push(p.value);
    }
  }
  const wrong = writtenElsewhere.find((v) => !writtenHere.has(v)) ?? 'never-written';
  const mutated = [...history];
  mutated[index] = { ...read, output: { type: 'get', value: wrong } };
  return { history: mutated, key };
}

/**
 * The definition, by brute force: some order of the operations that respects real time (a before
 * b when a returned before b was called), in which each completed operation's output is what the
 * model answers and a timed-out one is either placed anywhere after its call or left out.
 */
function bruteForceLinearizable(history: readonly KvOperation[]): boolean {
  const unknown = (o: KvOperation): boolean =>
    o.return === undefined || o.output === undefined || o.output.type === 'unknown';
  const end = (o: KvOperation): number => (unknown(o) ? Number.POSITIVE_INFINITY : (o.return as number));
  const placed = new Array<boolean>(history.length).fill(false);
  const search = (state: ReturnType<typeof kvModel.init>, count: number): boolean => {
    if (history.every((o, i) => placed[i] || unknown(o))) return true;
    for (const [i, o] of history.entries()) {
      if (placed[i]) continue;
      // Every unplaced completed operation that returned before this call must go first.
      if (history.some((p, j) => !placed[j] && !unknown(p) && end(p) < o.call)) continue;
      const output = unknown(o) ? undefined : (o.output as KvModelOutput);
      const next = kvModel.step(state, o.input, output);
      if (next === undefined) continue;
      placed[i] = true;
      const found = search(next, count + 1);
      placed[i] = false;
      if (found) return true;
    }
    return false;
  };
  return search(kvModel.init(), 0);
}

function randomSmallHistory(seed: number): KvOperation[] {
  let rng = seed;
  const random = (): number => {
    const { value, next } = mulberry32(rng);
    rng = next;
    return value;
  };
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)] as T;
  const values = ['a', 'b'];
  return Array.from({ length: 2 + Math.floor(random() * 6) }, (_, i): KvOperation => {
    const call = Math.floor(random() * 10);
    const ret = random() < 0.15 ? undefined : call + Math.floor(random() * 6);
    const kind = random();
    if (kind < 0.4) return get(i, 'x', pick([...values, null]), call, ret ?? call + 1);
    if (kind < 0.7) return put(i, 'x', pick(values), call, ret);
    if (kind < 0.8)
      return ret === undefined
        ? op(i, { type: 'delete', key: 'x' }, undefined, call, undefined)
        : del(i, 'x', call, ret);
    return casVersion(
      i,
      'x',
      Math.floor(random() * 3),
      pick(values),
      ret === undefined ? undefined : random() < 0.5,
      call,
      ret,
    );
  });
}

describe('linearizability checker', () => {
  it('agrees with a brute-force search over every order on 2,000 small random histories', () => {
    const verdicts = { ok: 0, violation: 0 };
    for (let seed = 1; seed <= 2000; seed++) {
      const history = randomSmallHistory(seed);
      const expected = bruteForceLinearizable(history);
      const result = check(history);
      expect(result.ok, `seed ${seed}: ${JSON.stringify(history)}`).to.equal(expected);
      verdicts[expected ? 'ok' : 'violation']++;
    }
    expect(verdicts.ok).to.be.above(200);
    expect(verdicts.violation).to.be.above(200);
  });

  describe('register histories', () => {
    it('accepts an empty history', () => {
      expectOk(check([]));
    });

    it('accepts a read of the missing initial value concurrent with the first write', () => {
      expectOk(check([put(1, 'x', 'a', 0, 10), get(2, 'x', null, 5, 15), get(3, 'x', 'a', 6, 16)]));
    });

    it('rejects a read that returns a value before it was written', () => {
      expectViolation(check([get(2, 'x', 'a', 0, 5), put(1, 'x', 'a', 10, 20)]), 'x');
    });

    it('rejects a read of a value that was never written', () => {
      expectViolation(check([put(1, 'x', 'a', 0, 5), get(2, 'x', 'b', 6, 7)]), 'x');
    });

    it('accepts concurrent writes with concurrent reads observing either order', () => {
      expectOk(
        check([
          put(1, 'x', 'a', 0, 10),
          put(2, 'x', 'b', 0, 10),
          get(3, 'x', 'a', 2, 8),
          get(4, 'x', 'b', 3, 9),
          get(3, 'x', 'b', 11, 12),
        ]),
      );
      expectOk(
        check([
          put(1, 'x', 'a', 0, 10),
          put(2, 'x', 'b', 0, 10),
          get(3, 'x', 'b', 2, 8),
          get(3, 'x', 'a', 11, 12),
        ]),
      );
    });

    it('rejects reads that disagree on the order of two writes after both completed', () => {
      expectViolation(
        check([
          put(1, 'x', 'a', 0, 10),
          put(2, 'x', 'b', 0, 10),
          get(3, 'x', 'a', 11, 12),
          get(4, 'x', 'b', 13, 14),
        ]),
        'x',
      );
    });

    it('rejects a stale read after a completed write', () => {
      const stale = get(3, 'x', 'a', 4, 5);
      const result = check([put(1, 'x', 'a', 0, 1), put(2, 'x', 'b', 2, 3), stale]);
      expectViolation(result, 'x');
      if (result.ok !== false) return;
      expect(result.blockedBy).to.equal(stale);
      expect(result.unordered).to.include(stale);
      expect(result.description).to.be.a('string').and.not.equal('');
    });

    it('rejects a new-then-old read inversion during a write (Knossos)', () => {
      expectViolation(check([put(1, 'x', 'a', 0, 10), get(2, 'x', 'a', 1, 2), get(3, 'x', null, 3, 4)]), 'x');
    });

    it('checks deletes and versions', () => {
      expectOk(check([put(1, 'x', 'a', 0, 1), del(2, 'x', 2, 3), get(3, 'x', null, 4, 5)]));
      expectViolation(check([put(1, 'x', 'a', 0, 1), del(2, 'x', 2, 3), get(3, 'x', 'a', 4, 5)]), 'x');
      const versioned = (version: number): KvOperation =>
        op(3, { type: 'get', key: 'x' }, { type: 'get', value: 'a', version }, 6, 7);
      const history = [put(1, 'x', 'a', 0, 1), put(1, 'x', 'a', 2, 3)];
      expectOk(check([...history, versioned(2)]));
      expectViolation(check([...history, versioned(1)]), 'x');
    });
  });

  describe('compare-and-swap histories', () => {
    it('accepts one of two concurrent creates succeeding', () => {
      expectOk(
        check([
          casVersion(1, 'x', 0, 'a', true, 0, 10),
          casVersion(2, 'x', 0, 'b', false, 0, 10),
          get(3, 'x', 'a', 11, 12),
        ]),
      );
    });

    it('rejects two concurrent creates both succeeding', () => {
      expectViolation(
        check([casVersion(1, 'x', 0, 'a', true, 0, 10), casVersion(2, 'x', 0, 'b', true, 0, 10)]),
        'x',
      );
    });

    it('rejects a create that succeeds after a completed create', () => {
      expectViolation(
        check([casVersion(1, 'x', 0, 'a', true, 0, 1), casVersion(2, 'x', 0, 'b', true, 2, 3)]),
        'x',
      );
    });

    it('rejects a swap reported failed when its compare held and nothing ran concurrently', () => {
      expectViolation(check([put(1, 'x', 'a', 0, 1), casValue(2, 'x', 'a', 'b', false, 2, 3)]), 'x');
    });

    it('accepts a swap on the value and a read of the new value', () => {
      expectOk(
        check([put(1, 'x', 'a', 0, 1), casValue(2, 'x', 'a', 'b', true, 2, 3), get(3, 'x', 'b', 4, 5)]),
      );
      expectViolation(
        check([put(1, 'x', 'a', 0, 1), casValue(2, 'x', 'a', 'b', true, 2, 3), get(3, 'x', 'a', 4, 5)]),
        'x',
      );
    });

    it('accepts a failed swap that a concurrent write explains', () => {
      expectOk(
        check([put(1, 'x', 'a', 0, 1), put(2, 'x', 'c', 2, 6), casValue(3, 'x', 'a', 'b', false, 3, 5)]),
      );
    });
  });

  describe('timed-out operations', () => {
    it('accepts a timed-out write that took effect', () => {
      expectOk(check([put(1, 'x', 'a', 0, 1), put(2, 'x', 'b', 2, undefined), get(3, 'x', 'b', 10, 11)]));
    });

    it('accepts a timed-out write that did not take effect', () => {
      expectOk(check([put(1, 'x', 'a', 0, 1), put(2, 'x', 'b', 2, undefined), get(3, 'x', 'a', 10, 11)]));
    });

    it('accepts a timed-out write taking effect long after its call, between two reads', () => {
      expectOk(
        check([
          put(1, 'x', 'a', 0, 1),
          put(2, 'x', 'b', 2, undefined),
          get(3, 'x', 'a', 10, 11),
          get(3, 'x', 'b', 20, 21),
        ]),
      );
    });

    it('still rejects reads that would need a timed-out write to be undone', () => {
      expectViolation(
        check([
          put(1, 'x', 'a', 0, 1),
          put(2, 'x', 'b', 2, undefined),
          get(3, 'x', 'b', 10, 11),
          get(3, 'x', 'a', 12, 13),
        ]),
        'x',
      );
    });

    it('rejects a read of a timed-out write before the write was called', () => {
      expectViolation(check([get(3, 'x', 'b', 0, 1), put(2, 'x', 'b', 2, undefined)]), 'x');
    });

    it('treats an unknown output with a return time as timed out, for either outcome', () => {
      const unknownCas = casVersion(2, 'x', 0, 'b', undefined, 0, 3);
      expectOk(check([unknownCas, get(3, 'x', 'b', 5, 6)]));
      expectOk(check([unknownCas, get(3, 'x', null, 5, 6)]));
      expectOk(check([unknownCas, get(3, 'x', null, 5, 6), get(3, 'x', 'b', 7, 8)]));
    });
  });

  describe('partitioning', () => {
    it('groups operations by key, a compare-and-swap with its key', () => {
      const history = [
        put(1, 'x', 'a', 0, 1),
        get(2, 'y', null, 0, 1),
        casVersion(3, 'x', 1, 'b', true, 2, 3),
      ];
      const partitions = partitionByKey(history);
      expect([...partitions.keys()]).to.have.members(['x', 'y']);
      expect(partitions.get('x')).to.deep.equal([history[0], history[2]]);
    });

    it('checks keys independently and names the key that fails', () => {
      // Each key alone is linearizable and so is the whole, though x and y interleave.
      expectOk(
        check([
          put(1, 'x', 'a', 0, 10),
          put(2, 'y', 'a', 0, 10),
          get(3, 'x', 'a', 2, 3),
          get(3, 'y', null, 4, 5),
        ]),
      );
      expectViolation(
        check([
          put(1, 'x', 'a', 0, 1),
          get(2, 'x', 'a', 2, 3),
          put(1, 'y', 'b', 0, 1),
          get(2, 'y', null, 2, 3),
        ]),
        'y',
      );
    });

    it('refuses an operation that returns before it is called', () => {
      expect(() => check([get(1, 'x', null, 5, 4)])).to.throw(InvalidRequestError);
    });

    it('refuses operations a per-key model cannot check', () => {
      const prefix = op(1, { type: 'get', key: 'x', prefix: true }, { type: 'get', value: null }, 0, 1);
      expect(() => check([prefix])).to.throw(InvalidRequestError);
      const twoKeys = op(
        1,
        {
          type: 'txn',
          compare: [{ key: 'x', target: 'version', op: '=', value: 0 }],
          success: [{ type: 'put', key: 'y', value: 'a' }],
          failure: [],
        },
        { type: 'txn', succeeded: true },
        0,
        1,
      );
      expect(() => check([twoKeys])).to.throw(InvalidRequestError);
    });
  });

  describe('bounded work', () => {
    it('memoises configurations so that exhausting 12 concurrent writes is quick', () => {
      // 12! orders, but only 2^12 distinct (linearized set, state) pairs.
      const history = Array.from({ length: 12 }, (_, i) => put(i, 'x', `v${i}`, 0, 100));
      history.push(get(99, 'x', 'never', 0, 100));
      expectViolation(check(history, 5000), 'x');
    });

    it('answers unknown when the search exceeds its time budget', () => {
      // 30 concurrent writes and a read of a value none wrote: every subset of writes is tried.
      const history = Array.from({ length: 30 }, (_, i) => put(i, 'x', `v${i}`, 0, 100));
      history.push(get(99, 'x', 'never', 0, 100));
      const started = performance.now();
      const result = check(history, 50);
      expect(result).to.deep.equal({ ok: 'unknown', reason: 'timeout' });
      expect(performance.now() - started).to.be.below(1000);
    });
  });

  describe('randomized histories', () => {
    const init: GeneratorInit = { ops: 50, keys: ['a', 'b', 'c'], clients: 5, timeoutRate: 0.1 };

    it('accepts 200 histories recorded around a real sequential execution', () => {
      for (let seed = 1; seed <= 200; seed++) {
        const result = check(generateHistory(seed, init));
        expect(
          result.ok,
          `seed ${seed}: ${result.ok === false ? result.description : JSON.stringify(result)}`,
        ).to.equal(true);
      }
    });

    it('rejects each of them with one read changed to a value its key never held', () => {
      let mutated = 0;
      for (let seed = 1; seed <= 200; seed++) {
        const mutation = mutateOneRead(generateHistory(seed, init), seed);
        if (mutation === undefined) continue;
        mutated++;
        const result = check(mutation.history);
        expect(result.ok, `seed ${seed}`).to.equal(false);
        if (result.ok === false) expect(result.key, `seed ${seed}`).to.equal(mutation.key);
      }
      expect(mutated).to.be.above(150);
    });

    it('checks 1,000 operations over 5 keys with 8 concurrent clients well under 2 s', () => {
      const history = generateHistory(7, {
        ops: 1000,
        keys: ['a', 'b', 'c', 'd', 'e'],
        clients: 8,
        timeoutRate: 0.05,
      });
      expect(history).to.have.length(1000);
      const started = performance.now();
      const result = check(history, 10_000);
      const elapsed = performance.now() - started;
      expectOk(result);
      expect(elapsed).to.be.below(2000);
    });
  });
});
