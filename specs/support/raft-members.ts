import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type RaftMemberMessage, type RaftMemberProps, raftMember } from '../../actors/raft/raft-member.ts';
import type { ActorRef } from '../../runtime/actor-ref.ts';
import type { ActorSystem } from '../../runtime/actor-system.ts';
import { Behaviors } from '../../runtime/behavior.ts';
import { startTestSystem } from './test-system.ts';

/**
 * Raft members in one actor system for specs, each with its own data dir, addressing each other
 * by path as they would by remote ref over the mesh; a member can be stopped and started again
 * on the same dir (a crash and restart of its process, short of kill -9).
 */

const tickMs = 10;

type ParentMsg =
  | { readonly type: 'spawn'; readonly props: RaftMemberProps; readonly replyTo: ActorRef<'done'> }
  | { readonly type: 'stop'; readonly id: string; readonly replyTo: ActorRef<'done'> }
  | { readonly type: 'stopped'; readonly replyTo: ActorRef<'done'> };

export class RaftMembers {
  readonly dirs: Record<string, string> = {};
  readonly system: ActorSystem;
  readonly root: string;
  readonly #parent: ActorRef<ParentMsg>;

  private constructor(system: ActorSystem, parent: ActorRef<ParentMsg>, root: string) {
    this.system = system;
    this.#parent = parent;
    this.root = root;
  }

  static async start(): Promise<RaftMembers> {
    const system = await startTestSystem();
    const root = await mkdtemp(path.join(os.tmpdir(), 'cloudless-raft-members-'));
    const parent = system.spawn(
      Behaviors.setup<ParentMsg>((ctx) => {
        const children = new Map<string, ActorRef<RaftMemberMessage>>();
        return Behaviors.receiveMessage<ParentMsg>((message) => {
          if (message.type === 'spawn') {
            children.set(message.props.id, ctx.spawn(raftMember(message.props), { name: message.props.id }));
          } else if (message.type === 'stop') {
            const child = children.get(message.id);
            if (child === undefined) message.replyTo.tell('done');
            else {
              // Answer once it has terminated, so that its name (and data dir) can be reused.
              ctx.watchWith(child, { type: 'stopped', replyTo: message.replyTo });
              ctx.stop(child);
              children.delete(message.id);
            }
            return Behaviors.same;
          }
          message.replyTo.tell('done');
          return Behaviors.same;
        });
      }),
      { name: 'members' },
    );
    return new RaftMembers(system, parent, root);
  }

  ref(id: string): ActorRef<RaftMemberMessage> {
    return this.system.resolve({ node: this.system.nodeId, path: `/user/members/${id}` });
  }

  async spawn(id: string, extra: Partial<RaftMemberProps> = {}): Promise<ActorRef<RaftMemberMessage>> {
    this.dirs[id] ??= path.join(this.root, id);
    const props: RaftMemberProps = {
      id,
      dataDir: this.dirs[id] as string,
      tickMs,
      addresses: [`/memory/${id}`],
      peerRef: (peer) => this.ref(peer),
      ...extra,
    };
    await this.#parent.ask<'done'>((replyTo) => ({ type: 'spawn', props, replyTo }));
    return this.ref(id);
  }

  async stop(id: string): Promise<void> {
    await this.#parent.ask<'done'>((replyTo) => ({ type: 'stop', id, replyTo }));
  }

  async close(): Promise<void> {
    await this.system.stop();
    await rm(this.root, { recursive: true, force: true });
  }
}
