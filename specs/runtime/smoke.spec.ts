import { expect } from 'chai';
import { Behaviors } from '../../runtime/behavior.ts';
import { spawnProbe, startTestSystem } from '../support/test-system.ts';

describe('actor system smoke', () => {
  it('delivers a message and stops cleanly', async () => {
    const system = await startTestSystem();
    const probe = spawnProbe<string>(system);
    const echo = system.spawn(
      Behaviors.receiveMessage<string>((m) => {
        probe.ref.tell(`echo:${m}`);
        return Behaviors.same;
      }),
    );
    echo.tell('hi');
    expect(await probe.next()).to.equal('echo:hi');
    await system.stop();
    expect(system.stats.liveActors).to.equal(0);
  });
});
