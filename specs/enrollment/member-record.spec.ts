import { expect } from 'chai';
import { checkMemberDescription, memberLimits } from '../../actors/enrollment/member-record.ts';
import {
  decodeMemberRecord,
  encodeMemberRecord,
  type MemberRecord,
} from '../../actors/membership/member-record.ts';

/**
 * Enrollment accepts a joining node's description and the membership part reads the record made
 * of it: the two must agree on the bounds, or a node could enroll and then be unreadable.
 */
describe('member descriptions and records agree on their bounds', () => {
  it('reads back the record of the largest description enrollment accepts', () => {
    const labels: Record<string, string> = {};
    for (let i = 0; i < memberLimits.maxLabels; i++)
      labels[`k${String(i).padStart(2, '0')}${'a'.repeat(memberLimits.maxLabelKeyLength - 3)}`] = 'v'.repeat(
        memberLimits.maxLabelValueLength,
      );
    const address = `/dns4/${'h'.repeat(memberLimits.maxAddressLength - 20)}/tcp/7000`;
    const description = checkMemberDescription(
      {
        roles: ['agent', 'storage'],
        addresses: Array.from({ length: memberLimits.maxAddresses }, () => address),
        labels,
        zone: 'z'.repeat(memberLimits.maxZoneLength),
        resources: {
          cpuCores: 64,
          cpuLoad1m: 1.5,
          memoryBytes: 2 ** 40,
          memoryFreeBytes: 2 ** 39,
          diskBytes: 2 ** 42,
          diskFreeBytes: 2 ** 41,
        },
      },
      'description',
    );
    const id = '12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo';
    const record: MemberRecord = {
      id,
      ...description,
      status: 'alive',
      joinedAt: 1,
      statusSince: 1,
      tokenId: 'a'.repeat(32),
    };
    const decoded = decodeMemberRecord(encodeMemberRecord(record), id);
    expect(Object.keys(decoded.labels)).to.have.length(memberLimits.maxLabels);
    expect(decoded.addresses).to.have.length(memberLimits.maxAddresses);
    expect(decoded.zone).to.equal(description.zone);
  });

  it('refuses a description past the bounds, naming the field', () => {
    expect(() =>
      checkMemberDescription(
        { roles: ['agent'], addresses: [], labels: { a: 'x'.repeat(300) } },
        'description',
      ),
    ).to.throw(/description\.labels/);
    expect(() =>
      checkMemberDescription({ roles: ['agent'], addresses: [], resources: { cpuCores: -1 } }, 'description'),
    ).to.throw(/description\.resources/);
  });
});
