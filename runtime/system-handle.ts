/**
 * The system handle: code on a raw worker thread (not an actor; later, the workload modules the
 * node agent's `worker` driver runs) reaches the actor system through a comlink proxy over a
 * `MessagePort`. The main thread calls `exposeSystemHandle(system, port)`; the worker calls
 * `connectSystemHandle(otherPort)` and gets `tell`, `ask`, `find` and `nodeId`.
 *
 * What crosses is structured-cloned plain data. A worker cannot hold a live ref: it names actors
 * by address (`{ node, path }`), `ask` puts the temporary reply ref into the message field the
 * caller names, and refs in a reply (the reply itself, its top-level fields, and the elements of
 * top-level arrays) come back as addresses.
 *
 * Errors cross as `{ code, message }`. Each handle method catches what it throws and throws the
 * plain `{ code, message }` instead: comlink sends a thrown `Error` as a plain `Error` that has
 * lost its code, but sends a thrown non-Error value unchanged. The worker-side client catches
 * that value and rebuilds the same class with `errorFromWire`, so `error.code` and `instanceof
 * InvalidRequestError` hold in the worker.
 *
 * Everything arriving on the port is checked before it reaches an actor: the comlink request
 * itself (only calls of the four methods with plain arguments; comlink would otherwise let the
 * worker read or write properties, open further channels, or make the main thread throw while
 * decoding an argument), the address shape, the paths a worker may address, and the message
 * size (1 MiB estimated serialized size, nesting depth 64).
 */
import type { MessagePort } from 'node:worker_threads';
import { type Endpoint, expose, releaseProxy, wrap } from 'comlink';
import nodeAdapter from 'comlink/dist/umd/node-adapter.js';
import { type ActorAddress, type ActorRef, isActorAddress } from './actor-ref.ts';
import type { ActorSystem } from './actor-system.ts';
import {
  AbortError,
  CloudlessError,
  type ErrorCode,
  errorFromWire,
  InvalidRequestError,
  TimeoutError,
  UnavailableError,
} from './errors.ts';
import { type Listing, Receptionist } from './receptionist.ts';
import { ServiceKey } from './service-key.ts';

/**
 * comlink's Node adapter. Its UMD build declares `export default`, but Node hands an ES module
 * importing that CommonJS file `module.exports`, which is the adapter function itself; the ESM
 * build (`node-adapter.mjs`) ships no declarations. So import the UMD build and take its type
 * from the declaration's default export.
 */
const nodeEndpoint = nodeAdapter as unknown as typeof nodeAdapter.default;

export interface SystemHandleAskOptions {
  /** The message field set to the temporary reply ref; default `replyTo`. */
  replyField?: string;
  /** Reject with `TimeoutError` when no reply arrives in time; default the system's `askTimeoutMs`. */
  timeoutMs?: number;
}

/** What the main thread exposes on the port. Use it through `connectSystemHandle`. */
export interface SystemHandle {
  tell(address: ActorAddress, message: unknown): Promise<void>;
  ask(address: ActorAddress, message: object, options?: SystemHandleAskOptions): Promise<unknown>;
  find(serviceKeyId: string): Promise<ActorAddress[]>;
  nodeId(): Promise<string>;
}

export interface SystemHandleInit {
  /** Largest message (and reply) by estimated serialized size; default 1 MiB. */
  maxMessageBytes?: number;
  /** Asks from this worker waiting at once; one more is refused with `UnavailableError`. Default 1024. */
  maxPendingAsks?: number;
  /**
   * Path prefixes the worker may address; default `/user/` and `/temp/` (replying to an actor's
   * ask). System actors expect live refs in their messages, which plain data cannot carry.
   */
  allowedPaths?: readonly string[];
}

/** A thrown value as it crosses the port. */
export interface WireError {
  readonly code?: ErrorCode;
  readonly message: string;
}

const methods: ReadonlySet<string> = new Set(['tell', 'ask', 'find', 'nodeId']);
const maxDepth = 64;
const maxNodeLength = 256;
const maxPathLength = 1024;
const maxReplyFieldLength = 64;
const maxDelayMs = 2_147_483_647;
// biome-ignore lint/suspicious/noControlCharactersInRegex: rejecting control characters is the point
const controlCharacters = /[\u0000-\u001f\u007f]/;

function toWire(error: unknown): WireError {
  if (error instanceof CloudlessError) return error.toJSON();
  return { message: error instanceof Error ? error.message : String(error) };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function isActorRef(value: unknown): value is ActorRef<unknown> {
  return (
    isActorAddress(value) &&
    typeof (value as ActorRef<unknown>).tell === 'function' &&
    typeof (value as ActorRef<unknown>).toJSON === 'function'
  );
}

/**
 * Estimates the structured-clone size of `value` and throws `InvalidRequestError` as soon as it
 * passes `limit`, nests deeper than 64 levels, or holds something that cannot cross (a function,
 * a symbol, a live actor ref).
 */
export function checkMessageSize(value: unknown, limit: number, what: string): number {
  let total = 0;
  const seen = new Set<object>();
  const add = (bytes: number): void => {
    total += bytes;
    if (total > limit) {
      throw new InvalidRequestError(
        `${what} is larger than ${limit} bytes (estimated serialized size); send less, or a reference to the data`,
      );
    }
  };
  /** Bytes of a value that holds no others, or undefined for an object to walk. */
  const leafBytes = (item: unknown): number | undefined => {
    switch (typeof item) {
      case 'undefined':
      case 'boolean':
        return 1;
      case 'number':
        return 9;
      case 'bigint':
        return 9 + Math.ceil(item.toString(16).length / 2);
      case 'string':
        // Count the length first so a huge string is refused without being scanned.
        add(5 + item.length);
        return Buffer.byteLength(item) - item.length;
      case 'function':
      case 'symbol':
        throw new InvalidRequestError(`${what} holds a ${typeof item}, which cannot cross threads`);
    }
    if (item === null) return 1;
    if (ArrayBuffer.isView(item)) return 9 + item.byteLength;
    if (item instanceof ArrayBuffer || item instanceof SharedArrayBuffer) return 9 + item.byteLength;
    if (item instanceof Date) return 9;
    if (item instanceof RegExp) return 5 + item.source.length;
    return undefined;
  };
  const visit = (item: unknown, depth: number): void => {
    const bytes = leafBytes(item);
    if (bytes !== undefined) {
      add(bytes);
      return;
    }
    const object = item as object;
    if (seen.has(object)) {
      add(5);
      return;
    }
    seen.add(object);
    if (depth >= maxDepth) throw new InvalidRequestError(`${what} is nested deeper than ${maxDepth} levels`);
    if (isActorRef(object)) {
      throw new InvalidRequestError(
        `${what} holds the actor ref ${object.path} below its top level; only refs in the reply, its ` +
          'fields and its top-level arrays become addresses. Reply with addresses ({ node, path }) instead',
      );
    }
    add(5);
    if (object instanceof Map) {
      for (const [key, entry] of object) {
        visit(key, depth + 1);
        visit(entry, depth + 1);
      }
    } else if (object instanceof Set) {
      for (const entry of object) visit(entry, depth + 1);
    } else if (Array.isArray(object)) {
      add(object.length); // each element, even a hole, costs at least a byte
      for (const entry of object) visit(entry, depth + 1);
    } else {
      for (const key of Object.keys(object)) {
        add(key.length);
        visit((object as Record<string, unknown>)[key], depth + 1);
      }
    }
  };
  visit(value, 0);
  return total;
}

/** A reply with its refs as addresses: the reply itself, its top-level fields and top-level arrays. */
function replyToWire(reply: unknown): unknown {
  const plain = (value: unknown): unknown => (isActorRef(value) ? value.toJSON() : value);
  if (isActorRef(reply)) return reply.toJSON();
  if (Array.isArray(reply)) return reply.map(plain);
  if (!isPlainObject(reply)) return reply;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(reply))
    out[key] = Array.isArray(value) ? value.map(plain) : plain(value);
  return out;
}

/** The comlink reply for a refused request: what comlink itself sends for a thrown non-Error value. */
function refusal(id: unknown, error: WireError): unknown {
  return { id, type: 'HANDLER', name: 'throw', value: { isError: false, value: error } };
}

type RequestCheck =
  | { readonly type: 'pass' }
  | { readonly type: 'release' }
  | { readonly type: 'refuse'; readonly reason: string };

/** Whether a comlink request may reach the handle, is a release, or is refused (and why). */
function checkRequest(data: unknown): RequestCheck {
  const refuse = (reason: string): RequestCheck => ({ type: 'refuse', reason });
  if (typeof data !== 'object' || data === null) return refuse('a system handle request must be an object');
  const { type, path, argumentList } = data as { type?: unknown; path?: unknown; argumentList?: unknown };
  if (type === 'RELEASE') return { type: 'release' };
  if (type !== 'APPLY') {
    return refuse(
      `the system handle only answers calls of ${[...methods].join(', ')}; got a ${String(type).slice(0, 20)} request`,
    );
  }
  if (!Array.isArray(path) || path.length !== 1 || !methods.has(path[0] as string)) {
    return refuse(
      `the system handle has methods ${[...methods].join(', ')}; got a call of ${String(path).slice(0, 100)}`,
    );
  }
  if (
    !Array.isArray(argumentList) ||
    argumentList.length > 3 ||
    !argumentList.every((argument) => (argument as { type?: unknown } | null)?.type === 'RAW')
  ) {
    return refuse(
      'system handle arguments must be at most three plain values (no proxies, ports or transfer handlers)',
    );
  }
  return { type: 'pass' };
}

/**
 * comlink's node endpoint for `port`, letting through only calls of the handle's methods with
 * plain arguments. Anything else is answered with an `INVALID_REQUEST` error before comlink sees
 * it; a `RELEASE` closes the handle.
 */
function guardedEndpoint(port: MessagePort, onRelease: () => void): Endpoint {
  const inner = nodeEndpoint(port as unknown as Parameters<typeof nodeEndpoint>[0]);
  type Listener = Parameters<Endpoint['addEventListener']>[1];
  const guards = new WeakMap<Listener, (event: { data: unknown }) => void>();
  return {
    postMessage: (message: unknown, transfer?: Parameters<Endpoint['postMessage']>[1]) =>
      inner.postMessage(message, transfer),
    start: () => port.start(),
    addEventListener(type, listener) {
      const guard = (event: { data: unknown }): void => {
        const check = checkRequest(event.data);
        if (check.type === 'release') {
          onRelease();
          return;
        }
        if (check.type === 'refuse') {
          const id = (event.data as { id?: unknown } | null)?.id;
          inner.postMessage(refusal(id, { code: 'INVALID_REQUEST', message: check.reason }));
          return;
        }
        if (typeof listener === 'function') listener(event as unknown as Event);
        else listener.handleEvent(event as unknown as Event);
      };
      guards.set(listener, guard);
      inner.addEventListener(type, guard as unknown as Listener);
    },
    removeEventListener(type, listener) {
      const guard = guards.get(listener);
      if (guard === undefined) return;
      guards.delete(listener);
      inner.removeEventListener(type, guard as unknown as Listener);
    },
  };
}

function checkLimit(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new InvalidRequestError(
      `system handle option ${name} must be a positive integer, got ${String(value)}`,
    );
  }
  return value;
}

/**
 * Serves the actor system on `port` to a worker thread (which calls `connectSystemHandle` on the
 * other end). Returns a function that closes the handle: asks in flight are aborted and the port
 * is closed. The handle also closes itself when the worker releases it or its end of the port
 * closes (the worker exited). Close it before stopping the system.
 */
export function exposeSystemHandle(
  system: ActorSystem,
  port: MessagePort,
  init: SystemHandleInit = {},
): () => void {
  const maxMessageBytes = checkLimit('maxMessageBytes', init.maxMessageBytes, 1024 * 1024);
  const maxPendingAsks = checkLimit('maxPendingAsks', init.maxPendingAsks, 1024);
  const allowedPaths = init.allowedPaths ?? ['/user/', '/temp/'];
  if (
    !Array.isArray(allowedPaths) ||
    !allowedPaths.every((p) => typeof p === 'string' && p.startsWith('/'))
  ) {
    throw new InvalidRequestError(
      'system handle option allowedPaths must be an array of paths starting with /',
    );
  }
  const closing = new AbortController();
  let pendingAsks = 0;

  const checkOpen = (): void => {
    if (closing.signal.aborted) throw new UnavailableError('the system handle is closed');
  };
  const checkAddress = (address: unknown): ActorAddress => {
    if (!isActorAddress(address)) {
      throw new InvalidRequestError(
        `an actor address is { node: string, path: string }, got ${address === null ? 'null' : typeof address}`,
      );
    }
    const { node, path } = address;
    if (
      node.length === 0 ||
      node.length > maxNodeLength ||
      node.includes('/') ||
      controlCharacters.test(node)
    ) {
      throw new InvalidRequestError(
        `address node must be 1-${maxNodeLength} characters without '/' or control characters, got '${node.slice(0, 80)}'`,
      );
    }
    if (path.length > maxPathLength || !path.startsWith('/') || controlCharacters.test(path)) {
      throw new InvalidRequestError(
        `address path must start with '/' and have at most ${maxPathLength} characters without control characters, got '${path.slice(0, 80)}'`,
      );
    }
    if (!allowedPaths.some((prefix) => path.startsWith(prefix))) {
      throw new InvalidRequestError(
        `a worker may address actors under ${allowedPaths.join(', ')}, not ${path.slice(0, 80)}`,
      );
    }
    return { node, path };
  };
  const checkAskOptions = (options: unknown): { replyField: string; timeoutMs: number | undefined } => {
    if (options === undefined) return { replyField: 'replyTo', timeoutMs: undefined };
    if (!isPlainObject(options)) throw new InvalidRequestError('ask options must be an object');
    const { replyField = 'replyTo', timeoutMs } = options as SystemHandleAskOptions;
    if (
      typeof replyField !== 'string' ||
      replyField.length === 0 ||
      replyField.length > maxReplyFieldLength ||
      replyField === '__proto__'
    ) {
      throw new InvalidRequestError(
        `ask replyField must be a field name of 1-${maxReplyFieldLength} characters, got ${String(replyField).slice(0, 80)}`,
      );
    }
    if (
      timeoutMs !== undefined &&
      !(typeof timeoutMs === 'number' && timeoutMs > 0 && timeoutMs <= maxDelayMs)
    ) {
      throw new InvalidRequestError(
        `ask timeoutMs must be a positive number up to ${maxDelayMs}, got ${String(timeoutMs)}`,
      );
    }
    return { replyField, timeoutMs };
  };

  /** Runs `body`, throwing what it throws as `{ code, message }` (see the module comment). */
  const wired =
    <TArgs extends unknown[], TResult>(body: (...args: TArgs) => Promise<TResult> | TResult) =>
    async (...args: TArgs): Promise<TResult> => {
      try {
        checkOpen();
        return await body(...args);
      } catch (error) {
        throw toWire(error);
      }
    };

  const handle: SystemHandle = Object.freeze({
    __proto__: null,
    tell: wired((address: ActorAddress, message: unknown): void => {
      const target = checkAddress(address);
      checkMessageSize(message, maxMessageBytes, `the message to ${target.path}`);
      system.resolve(target).tell(message);
    }),
    ask: wired(async (address: ActorAddress, message: object, options?: SystemHandleAskOptions) => {
      const target = checkAddress(address);
      if (!isPlainObject(message)) {
        throw new InvalidRequestError(
          `an ask message must be a plain object to put the reply ref in, got ${typeof message}`,
        );
      }
      const { replyField, timeoutMs } = checkAskOptions(options);
      checkMessageSize(message, maxMessageBytes, `the message to ${target.path}`);
      if (pendingAsks >= maxPendingAsks) {
        throw new UnavailableError(
          `this worker has ${pendingAsks} asks waiting (limit ${maxPendingAsks}); wait for replies before asking more`,
        );
      }
      pendingAsks++;
      try {
        const reply = await system
          .resolve<object>(target)
          .ask<unknown>((replyTo) => ({ ...message, [replyField]: replyTo }), {
            timeoutMs,
            signal: closing.signal,
          });
        const wire = replyToWire(reply);
        checkMessageSize(wire, maxMessageBytes, `the reply from ${target.path}`);
        return wire;
      } finally {
        pendingAsks--;
      }
    }),
    find: wired(async (serviceKeyId: string): Promise<ActorAddress[]> => {
      let key: ServiceKey<unknown>;
      try {
        key = ServiceKey.create(serviceKeyId);
      } catch (error) {
        throw new InvalidRequestError((error as Error).message, { cause: error });
      }
      const listing = await system.receptionist.ask<Listing<unknown>>(
        (replyTo) => Receptionist.find(key, replyTo),
        {
          signal: closing.signal,
        },
      );
      return listing.services.map((service) => ({ node: service.node, path: service.path }));
    }),
    nodeId: wired((): string => system.nodeId),
  } as SystemHandle);

  const close = (): void => {
    if (closing.signal.aborted) return;
    closing.abort(new UnavailableError('the system handle was closed'));
    port.off('close', close);
    port.close();
  };
  port.once('close', close);
  expose(handle, guardedEndpoint(port, close));
  return close;
}

export interface SystemHandleClientInit {
  /** Deadline for the main thread to answer a call, added to an ask's own timeoutMs; default 30,000 ms. */
  timeoutMs?: number;
  /** Calls waiting at once; one more is refused with `UnavailableError`. Default 1024. */
  maxPendingCalls?: number;
}

export interface RemoteAskOptions extends SystemHandleAskOptions {
  /** Rejects with `AbortError` here; the main thread's ask runs on to its timeout and its reply is dropped. */
  signal?: AbortSignal;
}

/**
 * The worker's side of the handle. Every method rejects with the error class the main thread
 * threw (rebuilt from `{ code, message }`), with `TimeoutError` when the main thread does not
 * answer in time, and with `UnavailableError` once the handle is released or closed.
 */
export interface RemoteSystemHandle {
  /** Sends `message` (plain data) to the actor at `address`. */
  tell(address: ActorAddress, message: unknown): Promise<void>;
  /**
   * Sends `message` with its `replyField` (default `replyTo`) set to a temporary reply ref and
   * resolves with the first reply, whose refs arrive as addresses.
   */
  ask<TReply>(address: ActorAddress, message: object, options?: RemoteAskOptions): Promise<TReply>;
  /** Addresses of the actors registered with the receptionist under the service key `serviceKeyId`. */
  find(serviceKeyId: string): Promise<ActorAddress[]>;
  nodeId(): Promise<string>;
  /** Fails calls in flight with `UnavailableError`, releases the proxy and closes the port. Idempotent. */
  release(): void;
}

/** Rebuilds what a handle method threw: a `{ code, message }` becomes its error class again. */
function rebuild(thrown: unknown): Error {
  if (thrown instanceof Error) {
    if (thrown.name === 'DataCloneError') {
      return new InvalidRequestError(
        `a system handle argument cannot be cloned to the main thread (${thrown.message}); send plain data`,
        { cause: thrown },
      );
    }
    return thrown;
  }
  if (typeof thrown === 'object' && thrown !== null && typeof (thrown as WireError).message === 'string') {
    return errorFromWire(thrown as WireError);
  }
  return new Error(String(thrown));
}

/**
 * Connects to a handle exposed with `exposeSystemHandle` on the other end of `port`. The port
 * keeps the worker thread alive until `release()`.
 */
export function connectSystemHandle(
  port: MessagePort,
  init: SystemHandleClientInit = {},
): RemoteSystemHandle {
  const timeoutMs = checkLimit('timeoutMs', init.timeoutMs, 30_000);
  const maxPendingCalls = checkLimit('maxPendingCalls', init.maxPendingCalls, 1024);
  const remote = wrap<SystemHandle>(nodeEndpoint(port as unknown as Parameters<typeof nodeEndpoint>[0]));
  const pending = new Set<(error: Error) => void>();
  let closed: string | undefined;

  const call = <T>(
    what: string,
    deadlineMs: number,
    signal: AbortSignal | undefined,
    invoke: () => Promise<T>,
  ) => {
    if (closed !== undefined)
      return Promise.reject(new UnavailableError(`${what}: the system handle ${closed}`));
    if (signal !== undefined && !(signal instanceof AbortSignal)) {
      return Promise.reject(new InvalidRequestError(`${what}: signal must be an AbortSignal`));
    }
    if (signal?.aborted)
      return Promise.reject(new AbortError(`${what} was aborted`, { cause: signal.reason }));
    if (pending.size >= maxPendingCalls) {
      return Promise.reject(
        new UnavailableError(
          `${what}: ${pending.size} calls are waiting (limit ${maxPendingCalls}); wait for some to finish`,
        ),
      );
    }
    return new Promise<T>((resolve, reject) => {
      const finish = (): boolean => {
        if (!pending.delete(fail)) return false;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        return true;
      };
      const fail = (error: Error): void => {
        if (finish()) reject(error);
      };
      const timer = setTimeout(
        () => fail(new TimeoutError(`${what}: the main thread did not answer within ${deadlineMs} ms`)),
        Math.min(deadlineMs, maxDelayMs),
      );
      const onAbort = (): void => fail(new AbortError(`${what} was aborted`, { cause: signal?.reason }));
      signal?.addEventListener('abort', onAbort, { once: true });
      pending.add(fail);
      new Promise<T>((settle) => settle(invoke())).then(
        (value) => {
          if (finish()) resolve(value);
        },
        (thrown: unknown) => fail(rebuild(thrown)),
      );
    });
  };

  const shutDown = (reason: string): void => {
    if (closed !== undefined) return;
    closed = reason;
    for (const fail of [...pending]) fail(new UnavailableError(`the system handle ${reason}`));
  };
  const onClose = (): void => shutDown('was closed by the main thread');
  port.once('close', onClose);

  return {
    tell: (address, message) => call('tell', timeoutMs, undefined, () => remote.tell(address, message)),
    ask: <TReply>(address: ActorAddress, message: object, options: RemoteAskOptions = {}) => {
      const { signal, ...wireOptions } = options;
      const askMs = typeof wireOptions.timeoutMs === 'number' ? wireOptions.timeoutMs : 0;
      return call('ask', timeoutMs + askMs, signal, () =>
        remote.ask(address, message, wireOptions),
      ) as Promise<TReply>;
    },
    find: (serviceKeyId) => call('find', timeoutMs, undefined, () => remote.find(serviceKeyId)),
    nodeId: () => call('nodeId', timeoutMs, undefined, () => remote.nodeId()),
    release: () => {
      if (closed === undefined) {
        port.off('close', onClose);
        shutDown('was released');
        remote[releaseProxy]();
      }
      port.close();
    },
  };
}
