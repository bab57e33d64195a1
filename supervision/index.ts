/**
 * Supervision: OTP supervisors (child specs, one_for_one / one_for_all / rest_for_one, restart
 * intensity and period, escalation, ordered start and stop) and, re-exported from the kernel,
 * the per-actor strategies of `Behaviors.supervise`.
 */
export { SupervisorStrategy } from '../runtime/supervisor-strategy.ts';
export type {
  ChildSpec,
  ChildType,
  RestartStrategyName,
  RestartType,
  SupervisorFlags,
} from './child-spec.ts';
export type {
  ChildCounts,
  ChildInfo,
  SupervisorCommand,
  SupervisorInit,
  SupervisorReply,
} from './supervisor.ts';
export { supervisor } from './supervisor.ts';
export { SupervisorClient } from './supervisor-client.ts';
