import { expect } from 'chai';
import {
  decodeServiceEntry,
  ServiceRegistry,
  serviceEntryKey,
} from '../../actors/membership/cluster-receptionist.ts';
import type { MemberStatus } from '../../actors/membership/member-record.ts';

describe('cluster receptionist registry', () => {
  const entry = (node: string, path: string, key = 'workers') => ({ node, path, key });
  const put = (registry: ServiceRegistry, e: { node: string; path: string; key: string }): void =>
    registry.put(serviceEntryKey(e), JSON.stringify(e));

  it('finds entries by key on alive and suspect members only, dropping down, left and unknown ones', () => {
    const registry = new ServiceRegistry();
    const statuses: Record<string, MemberStatus> = { a: 'alive', b: 'suspect', c: 'down', d: 'left' };
    for (const node of ['a', 'b', 'c', 'd', 'e']) put(registry, entry(node, '/user/w'));
    put(registry, entry('a', '/user/other', 'other'));
    const found = registry.find('workers', (node) => statuses[node]);
    expect(found.map((e) => e.node)).to.deep.equal(['a', 'b']);
    statuses.b = 'down';
    expect(registry.find('workers', (node) => statuses[node]).map((e) => e.node)).to.deep.equal(['a']);
  });

  it('forgets deleted entries and skips malformed ones', () => {
    const registry = new ServiceRegistry();
    const e = entry('a', '/user/w');
    put(registry, e);
    registry.delete(serviceEntryKey(e));
    expect(registry.size).to.equal(0);
    expect(decodeServiceEntry(serviceEntryKey(e), '{"node":"b","path":"/user/w","key":"workers"}')).to.equal(
      undefined,
    );
    expect(decodeServiceEntry(serviceEntryKey(e), 'not json')).to.equal(undefined);
    expect(decodeServiceEntry(serviceEntryKey(e), JSON.stringify(e))).to.deep.equal(e);
  });
});
