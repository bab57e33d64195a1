import { createHash } from 'node:crypto';
import { expect } from 'chai';
import { Packr } from 'msgpackr';
import {
  type KvCommand,
  KvCompactedError,
  type KvCompare,
  type KvEvent,
  KvInvalidCommandError,
  KvSnapshotCorruptError,
  KvStaleCommandError,
  KvStore,
  KvTooManyWatchersError,
  type KvTxnOp,
  kvSnapshotVersion,
} from '../../actors/raft/index.ts';
import { mulberry32 } from '../../actors/raft/mulberry32.ts';

/** Applies commands with one client and increasing seqs. */
class Client {
  readonly store: KvStore;
  readonly clientId: string;
  seq = 0;
  constructor(store: KvStore, clientId = 'c1') {
    this.store = store;
    this.clientId = clientId;
  }
  run(command: KvCommand) {
    this.seq++;
    return this.store.apply(command, { clientId: this.clientId, seq: this.seq });
  }
  put(key: string, value: string) {
    return this.run({ type: 'put', key, value });
  }
  del(key: string, prefix = false) {
    return this.run({ type: 'delete', key, prefix });
  }
  txn(compare: KvCompare[], success: KvTxnOp[], failure: KvTxnOp[] = []) {
    return this.run({ type: 'txn', compare, success, failure });
  }
}

function summary(events: readonly KvEvent[]): string[] {
  return events.map((e) => `${e.kv.modRevision}:${e.type}:${e.kv.key}=${e.kv.value}`);
}

describe('KvStore', () => {
  describe('revisions and versions', () => {
    it('increments the global revision once per write and tracks create/mod revision and version per key', () => {
      const c = new Client(new KvStore());
      expect(c.put('a', '1').result.revision).to.equal(1);
      expect(c.put('b', '1').result.revision).to.equal(2);
      expect(c.put('a', '2').result.revision).to.equal(3);
      expect(c.store.get('a')).to.deep.equal({
        key: 'a',
        value: '2',
        createRevision: 1,
        modRevision: 3,
        version: 2,
      });
      expect(c.store.get('b')).to.deep.equal({
        key: 'b',
        value: '1',
        createRevision: 2,
        modRevision: 2,
        version: 1,
      });
      expect(c.store.revision).to.equal(3);
    });

    it('does not change the revision for a delete of nothing or a read-only txn', () => {
      const c = new Client(new KvStore());
      c.put('a', '1');
      expect(c.del('missing').result).to.deep.equal({ type: 'delete', deleted: 0, revision: 1 });
      const txn = c.txn([], [{ type: 'get', key: 'a' }]);
      expect(txn.result.revision).to.equal(1);
      expect(c.store.revision).to.equal(1);
    });

    it('resets version and createRevision when a key is deleted and re-created', () => {
      const c = new Client(new KvStore());
      c.put('k', 'v1');
      c.put('k', 'v2');
      expect(c.del('k').result).to.deep.equal({ type: 'delete', deleted: 1, revision: 3 });
      expect(c.store.get('k')).to.equal(undefined);
      c.put('k', 'v3');
      expect(c.store.get('k')).to.deep.equal({
        key: 'k',
        value: 'v3',
        createRevision: 4,
        modRevision: 4,
        version: 1,
      });
    });

    it('gives every write of one txn the same revision', () => {
      const c = new Client(new KvStore());
      c.put('x', '0');
      const out = c.txn(
        [],
        [
          { type: 'put', key: 'a', value: '1' },
          { type: 'put', key: 'b', value: '1' },
          { type: 'delete', key: 'x' },
          { type: 'get', key: 'a' },
        ],
      );
      expect(out.result).to.deep.equal({
        type: 'txn',
        revision: 2,
        succeeded: true,
        responses: [
          { type: 'put' },
          { type: 'put' },
          { type: 'delete', deleted: 1 },
          {
            type: 'get',
            kvs: [{ key: 'a', value: '1', createRevision: 2, modRevision: 2, version: 1 }],
            more: false,
          },
        ],
      });
    });

    it('returns previous key-values when asked', () => {
      const c = new Client(new KvStore());
      c.put('p/1', 'a');
      c.put('p/2', 'b');
      expect(c.run({ type: 'put', key: 'p/1', value: 'c', prevKv: true }).result).to.deep.equal({
        type: 'put',
        revision: 3,
        prevKv: { key: 'p/1', value: 'a', createRevision: 1, modRevision: 1, version: 1 },
      });
      const del = c.run({ type: 'delete', key: 'p/', prefix: true, prevKv: true }).result;
      expect(del).to.deep.include({ deleted: 2, revision: 4 });
      expect(
        (del as unknown as { prevKvs: { value: string }[] }).prevKvs.map((kv) => kv.value),
      ).to.deep.equal(['c', 'b']);
    });
  });

  describe('range', () => {
    it('returns keys under a prefix sorted, with limit, more and pagination by nextKey', () => {
      const c = new Client(new KvStore());
      for (const key of ['p/c', 'p/a', 'q/a', 'p/e', 'p/b', 'p', 'p/d']) c.put(key, key.toUpperCase());
      const all = c.store.range('p/');
      expect(all.kvs.map((kv) => kv.key)).to.deep.equal(['p/a', 'p/b', 'p/c', 'p/d', 'p/e']);
      expect(all.more).to.equal(false);
      expect(all.revision).to.equal(7);

      const pages: string[][] = [];
      let fromKey: string | undefined;
      for (;;) {
        const page = c.store.range('p/', { limit: 2, ...(fromKey === undefined ? {} : { fromKey }) });
        pages.push(page.kvs.map((kv) => kv.key));
        if (!page.more) break;
        fromKey = page.nextKey;
      }
      expect(pages).to.deep.equal([['p/a', 'p/b'], ['p/c', 'p/d'], ['p/e']]);
      expect(c.store.range('', { limit: 3 }).kvs.map((kv) => kv.key)).to.deep.equal(['p', 'p/a', 'p/b']);
      expect(c.store.range('zzz').kvs).to.deep.equal([]);
    });

    it('deletes a whole prefix range in one revision and leaves the others', () => {
      const c = new Client(new KvStore());
      for (const key of ['a/1', 'a/2', 'a/3', 'ab', 'b/1']) c.put(key, 'v');
      expect(c.del('a/', true).result).to.deep.equal({ type: 'delete', deleted: 3, revision: 6 });
      expect(c.store.range('').kvs.map((kv) => kv.key)).to.deep.equal(['ab', 'b/1']);
    });
  });

  describe('txn compare-and-swap', () => {
    function seeded(): Client {
      const c = new Client(new KvStore());
      c.put('other', 'o'); // rev 1
      c.put('k', 'v1'); // rev 2
      c.put('k', 'v2'); // rev 3: createRevision 2, modRevision 3, version 2
      return c;
    }
    const cases: [KvCompare, boolean][] = [
      [{ key: 'k', target: 'value', op: '=', value: 'v2' }, true],
      [{ key: 'k', target: 'value', op: '=', value: 'v1' }, false],
      [{ key: 'k', target: 'value', op: '!=', value: 'v1' }, true],
      [{ key: 'k', target: 'value', op: '<', value: 'v3' }, true],
      [{ key: 'k', target: 'value', op: '>', value: 'v3' }, false],
      [{ key: 'k', target: 'version', op: '=', value: 2 }, true],
      [{ key: 'k', target: 'version', op: '>', value: 2 }, false],
      [{ key: 'k', target: 'version', op: '<', value: 3 }, true],
      [{ key: 'k', target: 'version', op: '!=', value: 2 }, false],
      [{ key: 'k', target: 'createRevision', op: '=', value: 2 }, true],
      [{ key: 'k', target: 'createRevision', op: '<', value: 2 }, false],
      [{ key: 'k', target: 'modRevision', op: '=', value: 3 }, true],
      [{ key: 'k', target: 'modRevision', op: '>', value: 3 }, false],
      [{ key: 'missing', target: 'version', op: '=', value: 0 }, true],
      [{ key: 'missing', target: 'createRevision', op: '=', value: 0 }, true],
      [{ key: 'missing', target: 'modRevision', op: '>', value: 0 }, false],
      [{ key: 'missing', target: 'value', op: '!=', value: 'x' }, false],
    ];
    for (const [compare, expected] of cases) {
      it(`runs the ${expected ? 'success' : 'failure'} branch for ${compare.key}.${compare.target} ${compare.op} ${compare.value}`, () => {
        const c = seeded();
        const out = c.txn(
          [compare],
          [{ type: 'put', key: 'res', value: 'then' }],
          [{ type: 'put', key: 'res', value: 'else' }],
        );
        expect(out.result).to.deep.include({ type: 'txn', succeeded: expected, revision: 4 });
        expect(c.store.get('res')?.value).to.equal(expected ? 'then' : 'else');
      });
    }

    it('requires every compare to hold and creates a key only if absent (version = 0)', () => {
      const c = seeded();
      const createIfAbsent = (key: string) =>
        c.txn(
          [{ key, target: 'version', op: '=', value: 0 }],
          [{ type: 'put', key, value: 'new' }],
          [{ type: 'get', key }],
        );
      expect(createIfAbsent('fresh').result).to.deep.include({ succeeded: true });
      const second = createIfAbsent('fresh').result;
      expect(second).to.deep.include({ succeeded: false, revision: 4 });
      const both = c.txn(
        [
          { key: 'k', target: 'value', op: '=', value: 'v2' },
          { key: 'other', target: 'value', op: '=', value: 'nope' },
        ],
        [{ type: 'delete', key: 'k' }],
      );
      expect(both.result).to.deep.include({ succeeded: false });
      expect(c.store.get('k')?.value).to.equal('v2');
    });
  });

  describe('dedup by clientId and seq', () => {
    it('answers a retried command from the cache without applying it twice', () => {
      const store = new KvStore();
      const meta = { clientId: 'retrying', seq: 7 };
      const first = store.apply({ type: 'put', key: 'n', value: '1' }, meta);
      const again = store.apply({ type: 'put', key: 'n', value: '1' }, meta);
      expect(first.duplicate).to.equal(false);
      expect(again.duplicate).to.equal(true);
      expect(again.result).to.deep.equal(first.result);
      expect(again.notifications).to.deep.equal([]);
      expect(store.revision).to.equal(1);
      expect(store.get('n')?.version).to.equal(1);
    });

    it('rejects a seq older than the latest applied one as stale, without changing anything', () => {
      const store = new KvStore();
      store.apply({ type: 'put', key: 'n', value: '1' }, { clientId: 'c', seq: 1 });
      store.apply({ type: 'put', key: 'n', value: '2' }, { clientId: 'c', seq: 3 });
      const stale = () => store.apply({ type: 'put', key: 'n', value: 'old' }, { clientId: 'c', seq: 2 });
      expect(stale).to.throw(KvStaleCommandError).with.property('code', 'INVALID_REQUEST');
      expect(stale).to.throw(KvStaleCommandError).with.property('reason', 'stale-command');
      expect(store.get('n')?.value).to.equal('2');
      expect(store.revision).to.equal(2);
      // Other clients are independent.
      store.apply({ type: 'put', key: 'n', value: 'd' }, { clientId: 'd', seq: 1 });
      expect(store.get('n')?.value).to.equal('d');
    });

    it('evicts the least recently applied client beyond maxClients', () => {
      const store = new KvStore({ maxClients: 2 });
      store.apply({ type: 'put', key: 'a', value: '1' }, { clientId: 'a', seq: 5 });
      store.apply({ type: 'put', key: 'b', value: '1' }, { clientId: 'b', seq: 1 });
      store.apply({ type: 'put', key: 'a', value: '2' }, { clientId: 'a', seq: 6 });
      store.apply({ type: 'put', key: 'c', value: '1' }, { clientId: 'c', seq: 1 });
      // 'a' was applied more recently than 'b', so it is still deduplicated; 'b' was evicted and
      // its retry is applied again.
      expect(() => store.apply({ type: 'put', key: 'a', value: '0' }, { clientId: 'a', seq: 5 })).to.throw(
        KvStaleCommandError,
      );
      expect(
        store.apply({ type: 'put', key: 'b', value: '1' }, { clientId: 'b', seq: 1 }).duplicate,
      ).to.equal(false);
      expect(store.get('b')?.version).to.equal(2);
    });
  });

  describe('watch', () => {
    it('delivers history from a past revision, then live events, in order and without gaps', () => {
      const c = new Client(new KvStore());
      c.put('w/a', '1'); // 1
      c.put('x', '1'); // 2
      c.put('w/b', '1'); // 3
      c.put('w/a', '2'); // 4
      const live: KvEvent[] = [];
      const start = c.store.watch('w/', { fromRevision: 3, onEvents: (events) => live.push(...events) });
      expect(summary(start.history)).to.deep.equal(['3:put:w/b=1', '4:put:w/a=2']);
      expect(start.revision).to.equal(4);
      const deliverAll = (out: ReturnType<Client['run']>) => {
        for (const n of out.notifications) n.deliver();
      };
      deliverAll(c.put('w/c', '1')); // 5
      deliverAll(c.put('y', '1')); // 6, filtered out
      deliverAll(c.del('w/', true)); // 7
      expect(summary(live)).to.deep.equal(['5:put:w/c=1', '7:delete:w/a=', '7:delete:w/b=', '7:delete:w/c=']);
      expect(live[1]?.kv).to.deep.equal({
        key: 'w/a',
        value: '',
        createRevision: 0,
        modRevision: 7,
        version: 0,
      });
      expect(live[1]).to.not.have.property('prevKv');
      expect(c.store.cancelWatch(start.watchId)).to.equal(true);
      expect(c.put('w/d', '1').notifications).to.deep.equal([]);
    });

    it('includes prevKv in events when asked', () => {
      const c = new Client(new KvStore());
      c.put('k', 'old');
      const got: KvEvent[] = [];
      c.store.watch('k', { prevKv: true, onEvents: (events) => got.push(...events) });
      for (const n of c.put('k', 'new').notifications) n.deliver();
      expect(got).to.have.length(1);
      expect(got[0]?.prevKv?.value).to.equal('old');
    });

    it('resumes after a reconnect from the last seen revision + 1 with nothing lost or repeated', () => {
      const c = new Client(new KvStore());
      const seen: KvEvent[] = [];
      const first = c.store.watch('', { fromRevision: 1, onEvents: (events) => seen.push(...events) });
      for (let i = 0; i < 3; i++) for (const n of c.put(`k${i}`, 'v').notifications) n.deliver();
      c.store.cancelWatch(first.watchId); // the connection drops
      for (let i = 3; i < 6; i++) c.put(`k${i}`, 'v');
      const last = seen.at(-1)?.kv.modRevision ?? 0;
      const resumed = c.store.watch('', {
        fromRevision: last + 1,
        onEvents: (events) => seen.push(...events),
      });
      seen.push(...resumed.history);
      for (const n of c.put('k6', 'v').notifications) n.deliver();
      expect(seen.map((e) => e.kv.modRevision)).to.deep.equal([1, 2, 3, 4, 5, 6, 7]);
    });

    it('pages events by whole revisions through eventsSince', () => {
      const c = new Client(new KvStore());
      c.txn(
        [],
        [
          { type: 'put', key: 'a', value: '1' },
          { type: 'put', key: 'b', value: '1' },
          { type: 'put', key: 'c', value: '1' },
        ],
      ); // 1
      c.put('d', '1'); // 2
      const page1 = c.store.eventsSince('', 1, 2);
      expect(summary(page1.events)).to.deep.equal(['1:put:a=1', '1:put:b=1', '1:put:c=1']);
      expect(page1).to.deep.include({ nextRevision: 2, more: true });
      const page2 = c.store.eventsSince('', page1.nextRevision, 2);
      expect(summary(page2.events)).to.deep.equal(['2:put:d=1']);
      expect(page2).to.deep.include({ nextRevision: 3, more: false });
    });

    it('fails a watch from a revision older than the retained history with a compacted error', () => {
      const c = new Client(new KvStore({ maxHistoryEvents: 3 }));
      for (let i = 1; i <= 5; i++) c.put(`k${i}`, 'v');
      expect(c.store.compactRevision).to.equal(2);
      const err = (() => {
        try {
          c.store.watch('', { fromRevision: 2, onEvents: () => {} });
        } catch (error) {
          return error;
        }
        return undefined;
      })();
      expect(err).to.be.instanceOf(KvCompactedError);
      expect(err).to.include({ code: 'NOT_FOUND', reason: 'compacted', compactRevision: 2 });
      expect(c.store.watchCount).to.equal(0);
      expect(summary(c.store.watch('', { fromRevision: 3, onEvents: () => {} }).history)).to.have.length(3);
    });

    it('holds back live events below a future fromRevision', () => {
      const c = new Client(new KvStore());
      const got: KvEvent[] = [];
      const start = c.store.watch('', { fromRevision: 3, onEvents: (events) => got.push(...events) });
      expect(start.history).to.deep.equal([]);
      for (let i = 1; i <= 4; i++) for (const n of c.put(`k${i}`, 'v').notifications) n.deliver();
      expect(got.map((e) => e.kv.modRevision)).to.deep.equal([3, 4]);
    });

    it('does not deliver to a watch cancelled between the apply and the delivery', () => {
      const c = new Client(new KvStore());
      const got: KvEvent[] = [];
      const { watchId } = c.store.watch('', { onEvents: (events) => got.push(...events) });
      const out = c.put('k', 'v');
      expect(out.notifications.map((n) => n.watchId)).to.deep.equal([watchId]);
      c.store.cancelWatch(watchId);
      for (const n of out.notifications) n.deliver();
      expect(got).to.deep.equal([]);
    });

    it('drops history by whole revisions so a txn is never half retained', () => {
      const c = new Client(new KvStore({ maxHistoryEvents: 4 }));
      c.put('a', '1'); // 1
      c.txn(
        [],
        [
          { type: 'put', key: 'b', value: '1' },
          { type: 'put', key: 'c', value: '1' },
          { type: 'put', key: 'd', value: '1' },
        ],
      ); // 2: 4 events retained
      c.put('e', '1'); // 3: 5 events, drop revision 1
      expect(c.store.compactRevision).to.equal(1);
      c.put('f', '1'); // 4: 5 events, drop the whole of revision 2
      expect(c.store.compactRevision).to.equal(2);
      expect(summary(c.store.eventsSince('', 3).events)).to.deep.equal(['3:put:e=1', '4:put:f=1']);
      expect(() => c.store.eventsSince('', 2)).to.throw(KvCompactedError);
    });

    it('bounds the number of open watches', () => {
      const store = new KvStore({ maxWatchers: 1 });
      store.watch('', { onEvents: () => {} });
      expect(() => store.watch('', { onEvents: () => {} })).to.throw(KvTooManyWatchersError);
    });
  });

  describe('snapshot and restore', () => {
    function busy(): Client {
      const c = new Client(new KvStore({ maxHistoryEvents: 5, maxClients: 3 }));
      for (let i = 0; i < 6; i++) c.put(`k/${i % 3}`, `v${i}`);
      c.del('k/1');
      c.txn(
        [{ key: 'k/0', target: 'version', op: '=', value: 2 }],
        [{ type: 'put', key: 'k/9', value: 'z' }],
      );
      new Client(c.store, 'c2').put('other', 'x');
      return c;
    }

    it('restores the same state: keys, revisions, history, dedup table and limits', () => {
      const c = busy();
      const bytes = c.store.snapshot();
      const restored = KvStore.restore(bytes);
      expect(restored.snapshot()).to.deep.equal(bytes);
      expect(restored.revision).to.equal(c.store.revision);
      expect(restored.compactRevision).to.equal(c.store.compactRevision);
      expect(restored.range('')).to.deep.equal(c.store.range(''));
      expect(restored.eventsSince('', c.store.compactRevision + 1)).to.deep.equal(
        c.store.eventsSince('', c.store.compactRevision + 1),
      );
      // The dedup table came along: a retry is answered from the cache, an old seq is stale.
      const retry = restored.apply({ type: 'put', key: 'other', value: 'x' }, { clientId: 'c2', seq: 1 });
      expect(retry.duplicate).to.equal(true);
      expect(() =>
        restored.apply({ type: 'put', key: 'k/0', value: 'x' }, { clientId: 'c1', seq: 1 }),
      ).to.throw(KvStaleCommandError);
    });

    it('continues identically after restore', () => {
      const c = busy();
      const twin = new Client(KvStore.restore(c.store.snapshot()));
      twin.seq = c.seq;
      for (let i = 0; i < 10; i++) {
        const command: KvCommand =
          i % 4 === 3
            ? { type: 'delete', key: 'k/', prefix: true }
            : { type: 'put', key: `k/${i}`, value: `${i}` };
        expect(twin.run(command).result).to.deep.equal(c.run(command).result);
      }
      expect(twin.store.snapshot()).to.deep.equal(c.store.snapshot());
    });

    it('rejects damaged, foreign or future-version snapshots', () => {
      const bytes = busy().store.snapshot();
      const flipped = Uint8Array.from(bytes);
      flipped[flipped.length - 5] = (flipped[flipped.length - 5] as number) ^ 0xff;
      expect(() => KvStore.restore(flipped)).to.throw(KvSnapshotCorruptError);
      expect(() => KvStore.restore(new Uint8Array([0xc1]))).to.throw(KvSnapshotCorruptError);
      expect(() => KvStore.restore(new Uint8Array([0x80]))).to.throw(KvSnapshotCorruptError);
    });
  });

  describe('snapshot checks', () => {
    const packr = new Packr({ useRecords: false });
    const envelope = (version: number, body: unknown) => {
      const bytes = Uint8Array.from(packr.pack(body));
      const sha256 = new Uint8Array(createHash('sha256').update(bytes).digest());
      return Uint8Array.from(packr.pack({ format: 'cloudless-kv', version, sha256, body: bytes }));
    };
    const good = {
      maxHistoryEvents: 10,
      maxClients: 10,
      revision: 2,
      compactRevision: 0,
      kvs: [
        { key: 'a', value: '1', createRevision: 1, modRevision: 1, version: 1 },
        { key: 'b', value: '1', createRevision: 2, modRevision: 2, version: 1 },
      ],
      history: [],
      clients: [],
    };

    it('accepts a well-formed hand-made snapshot', () => {
      const store = KvStore.restore(envelope(kvSnapshotVersion, good));
      expect(store.range('').kvs.map((kv) => kv.key)).to.deep.equal(['a', 'b']);
      expect(store.revision).to.equal(2);
    });

    it('rejects an unknown format version even with a valid checksum', () => {
      expect(() => KvStore.restore(envelope(kvSnapshotVersion + 1, good))).to.throw(KvSnapshotCorruptError);
    });

    it('rejects a checksummed body whose state breaks an invariant', () => {
      const unsorted = { ...good, kvs: [...good.kvs].reverse() };
      const future = { ...good, revision: 1 };
      const badHistory = {
        ...good,
        history: [
          { type: 'put', kv: good.kvs[0] },
          { type: 'bogus', kv: good.kvs[1] },
        ],
      };
      for (const body of [unsorted, future, badHistory, { ...good, clients: [['c', 1, { type: 'x' }]] }]) {
        expect(() => KvStore.restore(envelope(kvSnapshotVersion, body))).to.throw(KvSnapshotCorruptError);
      }
    });
  });

  describe('input validation', () => {
    const store = new KvStore();
    const meta = { clientId: 'v', seq: 1 };
    const bad: [string, unknown][] = [
      ['an empty key', { type: 'put', key: '', value: 'x' }],
      ['a key over 1 KiB', { type: 'put', key: 'k'.repeat(1025), value: 'x' }],
      ['a key over 1 KiB in UTF-8 bytes', { type: 'put', key: 'é'.repeat(513), value: 'x' }],
      ['a value over 1 MiB', { type: 'put', key: 'k', value: 'v'.repeat(1024 * 1024 + 1) }],
      ['a lone surrogate', { type: 'put', key: '\ud800', value: 'x' }],
      ['a non-string value', { type: 'put', key: 'k', value: 5 }],
      ['an unknown command', { type: 'increment', key: 'k' }],
      ['a get outside a txn', { type: 'get', key: 'k' }],
      ['an empty delete prefix', { type: 'delete', key: '', prefix: true }],
      [
        'a bad compare op',
        {
          type: 'txn',
          compare: [{ key: 'k', target: 'version', op: '>=', value: 1 }],
          success: [],
          failure: [],
        },
      ],
      [
        'a numeric compare on value',
        {
          type: 'txn',
          compare: [{ key: 'k', target: 'value', op: '=', value: 1 }],
          success: [],
          failure: [],
        },
      ],
      [
        'a negative version compare',
        {
          type: 'txn',
          compare: [{ key: 'k', target: 'version', op: '=', value: -1 }],
          success: [],
          failure: [],
        },
      ],
      ['a txn without branches', { type: 'txn', compare: [] }],
      [
        'too many txn ops',
        { type: 'txn', compare: [], success: Array(129).fill({ type: 'get', key: 'k' }), failure: [] },
      ],
      [
        'a get limit of 0',
        {
          type: 'txn',
          compare: [],
          success: [{ type: 'get', key: 'k', prefix: true, limit: 0 }],
          failure: [],
        },
      ],
    ];
    for (const [what, command] of bad) {
      it(`rejects ${what} without changing anything`, () => {
        expect(() => store.apply(command as KvCommand, meta))
          .to.throw(KvInvalidCommandError)
          .with.property('code', 'INVALID_REQUEST');
        expect(store.revision).to.equal(0);
      });
    }

    it('accepts a key of exactly 1 KiB and a value of exactly 1 MiB', () => {
      const s = new KvStore();
      s.apply({ type: 'put', key: 'k'.repeat(1024), value: 'v'.repeat(1024 * 1024) }, meta);
      expect(s.get('k'.repeat(1024))?.version).to.equal(1);
    });

    it('rejects bad meta, reads and watches', () => {
      expect(() => store.apply({ type: 'put', key: 'k', value: 'v' }, { clientId: '', seq: 1 })).to.throw(
        KvInvalidCommandError,
      );
      expect(() => store.apply({ type: 'put', key: 'k', value: 'v' }, { clientId: 'c', seq: 0 })).to.throw(
        KvInvalidCommandError,
      );
      expect(() => store.get('')).to.throw(KvInvalidCommandError);
      expect(() => store.range('p', { limit: 0 })).to.throw(KvInvalidCommandError);
      expect(() => store.range('p', { limit: 1.5 })).to.throw(KvInvalidCommandError);
      expect(() => store.eventsSince('', -1)).to.throw(KvInvalidCommandError);
      expect(() => store.watch('x'.repeat(1025), { onEvents: () => {} })).to.throw(KvInvalidCommandError);
    });
  });

  describe('determinism', () => {
    function randomCommands(
      seed: number,
      count: number,
    ): { command: KvCommand; clientId: string; seq: number }[] {
      let state = seed;
      const next = (n: number): number => {
        const r = mulberry32(state);
        state = r.next;
        return Math.floor(r.value * n);
      };
      const key = () => `k/${next(3)}/${next(4)}`;
      const seqs = [0, 0, 0];
      const out: { command: KvCommand; clientId: string; seq: number }[] = [];
      let last: { command: KvCommand; clientId: string; seq: number } | undefined;
      for (let i = 0; i < count; i++) {
        if (last !== undefined && next(10) === 0) {
          out.push(last); // a retry
          continue;
        }
        const client = next(3);
        seqs[client] = (seqs[client] as number) + 1;
        const pick = next(5);
        let command: KvCommand;
        if (pick < 2) command = { type: 'put', key: key(), value: `v${next(5)}`, prevKv: next(2) === 0 };
        else if (pick === 2)
          command = { type: 'delete', key: next(2) === 0 ? key() : `k/${next(3)}/`, prefix: next(2) === 0 };
        else {
          const k = key();
          const targets = ['value', 'version', 'createRevision', 'modRevision'] as const;
          const target = targets[next(4)] as (typeof targets)[number];
          command = {
            type: 'txn',
            compare: [
              {
                key: k,
                target,
                op: (['=', '!=', '<', '>'] as const)[next(4)] as '=',
                value: target === 'value' ? `v${next(5)}` : next(20),
              },
            ],
            success: [
              { type: 'put', key: k, value: `t${i}` },
              { type: 'get', key: 'k/', prefix: true, limit: 3 },
            ],
            failure: [{ type: 'delete', key: key() }],
          };
        }
        last = { command, clientId: `client-${client}`, seq: seqs[client] as number };
        out.push(last);
      }
      return out;
    }

    for (const seed of [1, 42, 20261129]) {
      it(`gives identical results and state for seed ${seed} when one store restarts from a mid-way snapshot`, () => {
        const commands = randomCommands(seed, 400);
        const a = new KvStore({ maxHistoryEvents: 50, maxClients: 2 });
        let b = new KvStore({ maxHistoryEvents: 50, maxClients: 2 });
        const outcome = (store: KvStore, c: (typeof commands)[number]) => {
          try {
            const { result, duplicate } = store.apply(c.command, c);
            return { result, duplicate };
          } catch (error) {
            return { error: (error as { name: string }).name };
          }
        };
        commands.forEach((c, i) => {
          if (i === 200) b = KvStore.restore(b.snapshot());
          expect(outcome(b, c), `command ${i}`).to.deep.equal(outcome(a, c));
        });
        expect(b.snapshot()).to.deep.equal(a.snapshot());
        expect(b.range('')).to.deep.equal(a.range(''));
        expect(a.revision).to.be.greaterThan(100);
      });
    }
  });
});
