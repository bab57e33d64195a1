/**
 * The temporary `replyTo` of an ask (Akka's PromiseActorRef). It is not an actor: its first
 * message settles the promise and later ones are dead letters. It gets a `/temp/…` path, and so
 * becomes resolvable by address, only when something reads its path (to serialize it, say);
 * a purely local ask never pays for that.
 */
import type { ActorAddress, ActorRef, AskOptions } from './actor-ref.ts';
import type { TimerHandle } from './clock.ts';
import { AbortError, TimeoutError } from './errors.ts';
import type { Kernel } from './kernel.ts';

export class PromiseRef<TReply> implements ActorRef<TReply> {
  readonly node: string;
  readonly promise: Promise<TReply>;
  readonly #kernel: Kernel;
  readonly #targetPath: string;
  readonly #timeoutMs: number;
  #path: string | undefined;
  #resolve!: (value: TReply) => void;
  #reject!: (error: Error) => void;
  #timer: TimerHandle | undefined;
  #signal: AbortSignal | undefined;
  #done = false;

  /** Node of the actor that was asked. */
  readonly targetNode: string;

  constructor(
    kernel: Kernel,
    target: { readonly node: string; readonly path: string },
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ) {
    this.#kernel = kernel;
    this.node = kernel.nodeId;
    this.targetNode = target.node;
    this.#targetPath = target.path;
    this.#timeoutMs = timeoutMs;
    this.promise = new Promise<TReply>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#timer = kernel.clock.setTimeout(this.#onTimeout, timeoutMs);
    if (signal !== undefined) {
      this.#signal = signal;
      signal.addEventListener('abort', this.#onAbort, { once: true });
    }
  }

  get path(): string {
    if (this.#path === undefined)
      this.#path = this.#kernel.registerTemp(this as unknown as PromiseRef<unknown>);
    return this.#path;
  }

  /** Path of the actor that was asked. */
  get targetPath(): string {
    return this.#targetPath;
  }

  get settled(): boolean {
    return this.#done;
  }

  tell(message: TReply): void {
    if (this.#done) {
      this.#kernel.deadLetter(this.path, message, 'ask-completed');
      return;
    }
    this.#finish();
    this.#resolve(message);
  }

  ask<TNext>(build: (replyTo: ActorRef<TNext>) => TReply, options?: AskOptions): Promise<TNext> {
    return this.#kernel.ask(this, build, options);
  }

  /** Fails the ask now, for example when the message could not be sent. */
  fail(error: Error): void {
    if (this.#done) return;
    this.#finish();
    this.#reject(error);
  }

  toJSON(): ActorAddress {
    return { node: this.node, path: this.path };
  }

  #finish(): void {
    this.#done = true;
    this.#kernel.pendingAsks.delete(this as unknown as PromiseRef<unknown>);
    if (this.#timer !== undefined) {
      this.#kernel.clock.clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#signal !== undefined) {
      this.#signal.removeEventListener('abort', this.#onAbort);
      this.#signal = undefined;
    }
    if (this.#path !== undefined) this.#kernel.temp.delete(this.#path);
  }

  readonly #onTimeout = (): void => {
    this.#timer = undefined;
    if (this.#done) return;
    this.#kernel.askTimeouts++;
    this.fail(
      new TimeoutError(
        `ask to ${this.#targetPath} got no reply within ${this.#timeoutMs} ms; ` +
          'check that the actor replies to replyTo, or raise timeoutMs',
      ),
    );
  };

  readonly #onAbort = (): void => {
    const reason = this.#signal?.reason;
    this.fail(new AbortError(`ask to ${this.#targetPath} was aborted`, { cause: reason }));
  };
}
