/**
 * `cloudless status`: the Raft group as one coordinator sees it (its role, term, leader, commit
 * and applied index, and the members with their addresses). Another member may know more (a
 * follower cut off from the leader still shows the last leader it heard from).
 *
 * `cloudless status --tree`: one node's supervision tree, from its introspection actor
 * (runtime/introspection.ts), which every node runs whatever its roles.
 */
import { parseArgs } from 'node:util';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { resolveCredential } from '../actors/enrollment/admin-credential.ts';
import { startClientMesh } from '../actors/raft/kv-client.ts';
import type { RaftStatusReply } from '../actors/raft/raft-member.ts';
import { ActorSystem } from '../runtime/actor-system.ts';
import { AbortError, errorFromWire, InvalidRequestError, UnavailableError } from '../runtime/errors.ts';
import {
  type ActorSnapshot,
  type ActorTreeSnapshot,
  type IntrospectReply,
  type IntrospectRequest,
  introspectionPath,
  maxSnapshotActors,
} from '../runtime/introspection.ts';
import type { MeshTransport } from '../transport/mesh-transport.ts';
import type { CliIo } from './cli.ts';
import { type CommonValues, commonOptions, dataDirOf, resolveTarget, withKvClient } from './kv-commands.ts';
import { formatMembers, listMembers, memberSummary } from './nodes-ls-command.ts';

export const statusUsage = `Usage: cloudless status [--tree] [--json] [--connect <multiaddr>] [--data-dir <dir>] [--config <file>] [--timeout-ms <n>]

Prints the connected coordinator's view of the Raft group: its role, the leader, the term, the
commit and applied indexes, and the voters and learners with their addresses. The coordinator is
--connect, or the node running from --data-dir (default .cloudless), found through its node.json.

--tree prints that node's supervision tree instead (any node, whatever its roles): every actor
with its kind, mailbox size and restart count, indented under its parent (at most
${maxSnapshotActors} actors); with --json, the tree as nested objects.`;

const defaultTimeoutMs = 10_000;

/** One node's tree, over a throwaway client identity and one link (like KvClient). */
async function fetchActorTree(
  address: string,
  credential: string,
  timeoutMs: number,
  interrupt: AbortSignal,
): Promise<ActorTreeSnapshot> {
  const privateKey = await generateKeyPair('Ed25519');
  const system = await ActorSystem.start({
    nodeId: peerIdFromPrivateKey(privateKey).toString(),
    logLevel: 'silent',
    dispatchers: {},
  });
  let mesh: MeshTransport | undefined;
  const signal = AbortSignal.any([interrupt, AbortSignal.timeout(timeoutMs)]);
  try {
    mesh = await startClientMesh(system, { privateKey, timeoutMs, credential });
    let node: string;
    try {
      node = await mesh.connect(address, { signal });
    } catch (error) {
      if (interrupt.aborted) throw new AbortError(`connecting to ${address} interrupted`, { cause: error });
      throw new UnavailableError(
        `cannot reach the node at ${address} within ${timeoutMs} ms: ${(error as Error).message}; is it running?`,
        { cause: error },
      );
    }
    const introspection = system.resolve<IntrospectRequest>({ node, path: introspectionPath });
    const reply = await introspection.ask<IntrospectReply>((replyTo) => ({ type: 'introspect', replyTo }), {
      timeoutMs,
      signal: interrupt,
    });
    if (!reply.ok) throw errorFromWire(reply.error);
    return checkSnapshot(reply.value);
  } finally {
    await system.stop();
    await mesh?.stop();
  }
}

/** The reply comes from another process: check its shape before printing it. */
function checkSnapshot(value: unknown): ActorTreeSnapshot {
  const snapshot = value as Partial<ActorTreeSnapshot> | null;
  const valid =
    snapshot !== null &&
    typeof snapshot === 'object' &&
    typeof snapshot.node === 'string' &&
    Array.isArray(snapshot.actors) &&
    snapshot.actors.length <= maxSnapshotActors &&
    snapshot.actors.every(
      (actor: Partial<ActorSnapshot> | null) =>
        actor !== null &&
        typeof actor === 'object' &&
        typeof actor.path === 'string' &&
        Number.isInteger(actor.depth) &&
        Number.isInteger(actor.mailbox) &&
        Number.isInteger(actor.restarts) &&
        typeof actor.kind === 'string' &&
        typeof actor.lifecycle === 'string' &&
        (actor.thread === undefined || typeof actor.thread === 'string'),
    );
  if (!valid)
    throw new InvalidRequestError('the node answered with a malformed actor tree; is it the same version?');
  return snapshot as ActorTreeSnapshot;
}

/** Nested form of the pre-order list, for --json. */
interface ActorTreeNode extends Omit<ActorSnapshot, 'children' | 'depth'> {
  readonly children: ActorTreeNode[];
}

function nest(actors: readonly ActorSnapshot[]): ActorTreeNode[] {
  const roots: ActorTreeNode[] = [];
  const open: ActorTreeNode[] = [];
  for (const { depth, children: _count, ...actor } of actors) {
    const node: ActorTreeNode = { ...actor, children: [] };
    open.length = Math.min(open.length, depth);
    const parent = open[depth - 1];
    if (parent === undefined) roots.push(node);
    else parent.children.push(node);
    open[depth] = node;
  }
  return roots;
}

function describeTree(tree: ActorTreeSnapshot, address: string): string[] {
  const lines = [`node ${tree.node} at ${address}: ${tree.total} actor(s)`];
  for (const actor of tree.actors) {
    const name = actor.path === '/' ? '/' : actor.path.slice(actor.path.lastIndexOf('/') + 1);
    const notes = [
      actor.kind === 'actor' ? '' : actor.kind,
      actor.lifecycle === 'running' ? '' : actor.lifecycle,
      actor.thread === undefined ? '' : `thread ${actor.thread}`,
      `restarts ${actor.restarts}`,
      `mailbox ${actor.mailbox}`,
    ].filter(Boolean);
    lines.push(`${'  '.repeat(actor.depth)}${name}  [${notes.join(', ')}]`);
  }
  if (tree.truncated)
    lines.push(`… ${tree.total - tree.actors.length} more not shown (limit ${maxSnapshotActors})`);
  return lines;
}

async function treeCommand(
  values: CommonValues & { json?: boolean | undefined },
  target: { address: string },
  io: CliIo,
): Promise<number> {
  const credential = await resolveCredential({
    file: values.credential,
    env: io.env,
    dataDir: await dataDirOf(values, io),
  });
  const text = values['timeout-ms'];
  const timeoutMs = text === undefined ? defaultTimeoutMs : Number(text);
  if (text !== undefined && (!/^\d+$/.test(text.trim()) || timeoutMs < 1 || timeoutMs > 3_600_000)) {
    throw new InvalidRequestError(`--timeout-ms must be a whole number from 1 to 3600000, got '${text}'`);
  }
  const interrupt = new AbortController();
  void io.stopRequested.then((signal) => interrupt.abort(new AbortError(`interrupted by ${signal}`)));
  const tree = await fetchActorTree(target.address, credential, timeoutMs, interrupt.signal);
  if (values.json === true) {
    io.out(
      JSON.stringify({
        address: target.address,
        node: tree.node,
        total: tree.total,
        truncated: tree.truncated,
        actors: nest(tree.actors),
      }),
    );
  } else {
    for (const line of describeTree(tree, target.address)) io.out(line);
  }
  return 0;
}

function describe(status: RaftStatusReply, address: string): string[] {
  const membership = status.membership ?? { voters: [], learners: [], addresses: {} };
  const lines = [
    `node:    ${status.id} (${status.role}) at ${address}`,
    `leader:  ${status.leaderId ?? 'none known (an election may be under way, or a majority is down)'}`,
    `term:    ${status.term}`,
    `indexes: commit ${status.commitIndex}, applied ${status.appliedIndex ?? '?'}, last ${status.lastIndex}, snapshot ${status.snapshotIndex ?? 0}`,
    `voters (${membership.voters.length}):`,
  ];
  const member = (id: string): string => {
    const marks = [id === status.leaderId ? 'leader' : '', id === status.id ? 'this node' : ''].filter(
      Boolean,
    );
    const addresses = (membership.addresses[id] ?? []).join(' ');
    return `  ${id}${marks.length > 0 ? ` [${marks.join(', ')}]` : ''}${addresses === '' ? '' : `  ${addresses}`}`;
  };
  for (const id of membership.voters) lines.push(member(id));
  lines.push(`learners (${membership.learners.length}):`);
  for (const id of membership.learners) lines.push(member(id));
  return lines;
}

export async function statusCommand(argv: string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: true,
    options: {
      ...commonOptions,
      tree: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true || positionals[0] === 'help') {
    io.out(statusUsage);
    return 0;
  }
  if (positionals.length > 0) {
    io.err(`cloudless: status takes no arguments, got '${positionals.join(' ')}'\n\n${statusUsage}`);
    return 2;
  }
  if (values.tree === true) return treeCommand(values, await resolveTarget(values, io), io);
  return withKvClient(values, io, async (client, signal) => {
    const status = await client.status({ signal });
    // The cluster's members beside the Raft group (coordinators are both).
    const { members } = await listMembers(client, signal);
    if (values.json === true) io.out(JSON.stringify({ address: client.address, ...status, members }));
    else {
      for (const line of describe(status, client.address)) io.out(line);
      io.out(memberSummary(members));
      for (const line of formatMembers(members, Date.now())) io.out(`  ${line}`);
    }
    return 0;
  });
}
