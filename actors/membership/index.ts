/**
 * Membership: member records in the Raft store, heartbeats to the coordinator leader, phi-accrual
 * failure detection (a pure core under an injected clock), and the cluster receptionist. See
 * docs/cluster.md.
 */
export {
  findServices,
  registerService,
  type ServiceEntry,
  type ServicesListing,
} from './cluster-receptionist.ts';
export {
  FailureDetectorCore,
  type FailureDetectorInit,
  type FailureDetectorInput,
  type FailureDetectorWrite,
} from './failure-detector.ts';
export {
  decodeMemberRecord,
  encodeMemberRecord,
  type MemberRecord,
  type MemberRole,
  type MemberStatus,
  memberKey,
  membersPrefix,
  type Resources,
  sampleResources,
} from './member-record.ts';
export {
  ensureOwnRecord,
  type MembershipMessage,
  type MembersReply,
  type MemberView,
  membershipPath,
} from './membership-actor.ts';
export { PhiAccrualDetector, type PhiAccrualOptions, phiOf } from './phi-accrual.ts';
export { type Membership, type MembershipInit, startMembership } from './start-membership.ts';
