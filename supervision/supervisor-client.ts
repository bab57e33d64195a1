/**
 * A typed, promise-returning handle on a supervisor's API (OTP's supervisor:start_child and
 * friends). Errors come back as the same classes the supervisor raised.
 */
import type { ActorRef, AskOptions } from '../runtime/actor-ref.ts';
import { errorFromWire } from '../runtime/errors.ts';
import type { ChildSpec } from './child-spec.ts';
import type { ChildCounts, ChildInfo, SupervisorCommand, SupervisorReply } from './supervisor.ts';

export class SupervisorClient {
  readonly ref: ActorRef<SupervisorCommand>;
  readonly #options: AskOptions | undefined;

  constructor(ref: ActorRef<SupervisorCommand>, options?: AskOptions) {
    this.ref = ref;
    this.#options = options;
  }

  startChild<TMsg>(spec: ChildSpec<TMsg>, options?: AskOptions): Promise<ActorRef<TMsg>> {
    return this.#call<ActorRef<never>>(
      (replyTo) => ({ type: 'StartChild', spec: spec as ChildSpec<unknown>, replyTo }),
      options,
    ) as Promise<ActorRef<TMsg>>;
  }

  restartChild(id: string, options?: AskOptions): Promise<ActorRef<never>> {
    return this.#call((replyTo) => ({ type: 'RestartChild', id, replyTo }), options);
  }

  terminateChild(id: string, options?: AskOptions): Promise<void> {
    return this.#call<null>((replyTo) => ({ type: 'TerminateChild', id, replyTo }), options).then(
      () => undefined,
    );
  }

  deleteChild(id: string, options?: AskOptions): Promise<void> {
    return this.#call<null>((replyTo) => ({ type: 'DeleteChild', id, replyTo }), options).then(
      () => undefined,
    );
  }

  whichChildren(options?: AskOptions): Promise<ChildInfo[]> {
    return this.#call((replyTo) => ({ type: 'WhichChildren', replyTo }), options);
  }

  countChildren(options?: AskOptions): Promise<ChildCounts> {
    return this.#call((replyTo) => ({ type: 'CountChildren', replyTo }), options);
  }

  async #call<TValue>(
    build: (replyTo: ActorRef<SupervisorReply<TValue>>) => SupervisorCommand,
    options: AskOptions | undefined,
  ): Promise<TValue> {
    const reply = await this.ref.ask(build, options ?? this.#options);
    if (reply.ok) return reply.value;
    throw errorFromWire(reply.error);
  }
}
