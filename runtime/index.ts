/**
 * The actor kernel: actor systems, behaviors, refs, mailboxes, dispatch, ask and tell, timers,
 * stash, dead letters, the receptionist, the clock, logging and metrics. It knows nothing of
 * threads or the network; those plug in through `Router`.
 */
export type { ActorContext, PipeOutcome, ShutdownSpec, SpawnOptions } from './actor-context.ts';
export type { ActorAddress, ActorRef, AskOptions } from './actor-ref.ts';
export { formatAddress, isActorAddress } from './actor-ref.ts';
export type { ActorSystemOptions, StopOptions } from './actor-system.ts';
export { ActorSystem } from './actor-system.ts';
export type { ErrorClass, MessageHandler, SignalHandler } from './behavior.ts';
export { Behavior, Behaviors, ReceiveBehavior } from './behavior.ts';
export type { BehaviorRegistry } from './behavior-registry.ts';
export type { Clock, TimerHandle } from './clock.ts';
export { RealClock, SimulatedClock } from './clock.ts';
export * from './compute-exports.ts';
export type { ErrorCode } from './errors.ts';
export {
  AbortError,
  ChildStartError,
  CloudlessError,
  DataCorruptError,
  DeathPactError,
  errorFromWire,
  InvalidBehaviorError,
  InvalidRequestError,
  MaxRestartIntensityError,
  NotFoundError,
  NotLeaderError,
  PolicyViolationError,
  StashOverflowError,
  TimeoutError,
  UnavailableError,
  WorkerThreadDiedError,
} from './errors.ts';
export type { DeadLetter, DeadLetterReason, SystemEvents } from './kernel.ts';
export type { LogLevel } from './logging.ts';
export { createLogger } from './logging.ts';
export type { MailboxOptions, OverflowPolicy } from './mailbox-options.ts';
export type { Listing, ReceptionistCommand, Registered } from './receptionist.ts';
export { Receptionist } from './receptionist.ts';
export type { BehaviorDefinition, RegisteredBehavior } from './registered-behavior.ts';
export { defineBehavior } from './registered-behavior.ts';
export type { Router } from './router.ts';
export { ServiceKey } from './service-key.ts';
export type { ChildFailed, Signal, Terminated } from './signals.ts';
export { PostStop, PreRestart } from './signals.ts';
export type { StashBuffer } from './stash-buffer.ts';
export { failureOf, setChildStopOrder } from './supervision-hooks.ts';
export { SupervisorStrategy } from './supervisor-strategy.ts';
export type { TimerScheduler } from './timer-scheduler.ts';
export type { DispatcherConfig } from './worker-threads.ts';
