import { expect } from 'chai';
import { RealClock, SimulatedClock } from '../../runtime/clock.ts';

describe('SimulatedClock', () => {
  it('fires due timers in order of due time, ties in order of creation', () => {
    const clock = new SimulatedClock();
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('c@30'), 30);
    clock.setTimeout(() => fired.push('a@10'), 10);
    clock.setTimeout(() => fired.push('b1@20'), 20);
    clock.setTimeout(() => fired.push('b2@20'), 20);
    clock.advance(25);
    expect(fired).to.deep.equal(['a@10', 'b1@20', 'b2@20']);
    expect(clock.now()).to.equal(25);
    expect(clock.pendingTimers).to.equal(1);
    clock.advance(5);
    expect(fired).to.deep.equal(['a@10', 'b1@20', 'b2@20', 'c@30']);
    expect(clock.pendingTimers).to.equal(0);
  });

  it('shows each callback the time it fell due', () => {
    const clock = new SimulatedClock({ startMs: 1000 });
    const seen: number[] = [];
    clock.setTimeout(() => seen.push(clock.now()), 10);
    clock.setTimeout(() => seen.push(clock.now()), 40);
    clock.advance(100);
    expect(seen).to.deep.equal([1010, 1040]);
    expect(clock.now()).to.equal(1100);
  });

  it('fires timers that callbacks set within the advanced window, and not those beyond it', () => {
    const clock = new SimulatedClock();
    const fired: number[] = [];
    const every10 = (): void => {
      fired.push(clock.now());
      clock.setTimeout(every10, 10);
    };
    clock.setTimeout(every10, 10);
    clock.setTimeout(() => clock.setTimeout(() => fired.push(-clock.now()), 0), 15);
    clock.advance(35);
    expect(fired).to.deep.equal([10, -15, 20, 30]);
    expect(clock.pendingTimers).to.equal(1);
  });

  it('never fires a cleared timer', () => {
    const clock = new SimulatedClock();
    const fired: string[] = [];
    const cleared = clock.setTimeout(() => fired.push('cleared'), 10);
    clock.setTimeout(() => fired.push('kept'), 10);
    clock.clearTimeout(cleared);
    expect(clock.pendingTimers).to.equal(1);
    clock.advance(100);
    expect(fired).to.deep.equal(['kept']);
    clock.clearTimeout(cleared); // clearing twice is harmless
  });

  it('lets a callback clear a timer due in the same window', () => {
    const clock = new SimulatedClock();
    const fired: string[] = [];
    const later = clock.setTimeout(() => fired.push('later'), 20);
    clock.setTimeout(() => {
      fired.push('first');
      clock.clearTimeout(later);
    }, 10);
    clock.advance(50);
    expect(fired).to.deep.equal(['first']);
  });

  it('treats a negative delay as zero', () => {
    const clock = new SimulatedClock();
    const fired: number[] = [];
    clock.advance(5);
    clock.setTimeout(() => fired.push(clock.now()), -10);
    clock.advance(0);
    expect(fired).to.deep.equal([5]);
  });

  it('refuses to move backwards with RangeError', () => {
    const clock = new SimulatedClock();
    expect(() => clock.advance(-1)).to.throw(RangeError);
    expect(() => clock.advance(Number.NaN)).to.throw(RangeError);
    expect(clock.now()).to.equal(0);
  });
});

describe('RealClock', () => {
  it('leaves no timer running once a timeout is cleared', () => {
    const clock = new RealClock();
    let fired = false;
    const handle = clock.setTimeout(() => {
      fired = true;
    }, 60_000);
    clock.clearTimeout(handle);
    // The leak check after this spec fails if the 60 s timer were still armed.
    expect(fired).to.equal(false);
  });

  it('does not fire a timeout longer than a Node timer can hold early', async () => {
    // Node runs a timer of 2^31 ms or more after 1 ms (with a warning); this one must wait ~25 days.
    const clock = new RealClock();
    let fired = false;
    const handle = clock.setTimeout(() => {
      fired = true;
    }, 2 ** 31);
    await new Promise((resolve) => setTimeout(resolve, 10)); // real time: it is the real clock
    clock.clearTimeout(handle);
    expect(fired).to.equal(false);
  });

  it('fires a timeout and reads a monotonic time', async () => {
    const clock = new RealClock();
    const start = clock.now();
    const firedAt = await new Promise<number>((resolve) => {
      clock.setTimeout(() => resolve(clock.now()), 1);
    });
    expect(firedAt).to.be.at.least(start);
  });
});
