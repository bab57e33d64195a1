/**
 * Yamux window updates as the Yamux spec's reference implementation (hashicorp/yamux, and
 * go-yamux) sends them: only once at least half of the receive window has been consumed, or when
 * a flag must go out. @libp2p/yamux 8 sends one after every data frame it reads; on a stream that
 * carries small request/response frames that is one more encrypted socket write before the reply
 * can leave, measured at about 66 µs of the p50 round trip of a remote ask on this machine class
 * (benchmarks/remote-messaging.ts, see docs/performance.md). Flow control is unchanged: the
 * sender still stops at the window, and the window still grows by the same rule when updates flow.
 *
 * The patch is applied once, when this module is first imported by mesh-node.ts.
 */
import { StreamState, YamuxStream } from '@libp2p/yamux/stream';

interface WindowFields {
  state: StreamState;
  recvWindow: number;
  recvWindowCapacity: number;
}

const patched = Symbol.for('cloudless.yamux-window-updates');
const prototype = YamuxStream.prototype as unknown as Record<symbol, unknown> & {
  sendWindowUpdate(this: WindowFields): void;
};

if (prototype[patched] !== true) {
  const sendEveryTime = prototype.sendWindowUpdate;
  prototype.sendWindowUpdate = function sendWindowUpdateAtHalf(this: WindowFields): void {
    const flagsPending = this.state === StreamState.Init || this.state === StreamState.SYNReceived;
    const consumed = this.recvWindow - this.recvWindowCapacity;
    if (!flagsPending && this.state !== StreamState.Paused && consumed < this.recvWindow / 2) return;
    sendEveryTime.call(this);
  };
  prototype[patched] = true;
}
