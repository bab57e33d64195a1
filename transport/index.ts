/**
 * The libp2p mesh: node identity (an Ed25519 key in the data dir), TCP + Noise + Yamux, the actor
 * protocol `/cloudless/actor/1.0.0` (framed msgpackr batches), remote refs, remote death watch and
 * remote spawn, the admission gate, identify/ping for peer tooling, and fault injection for test runs
 * (partitions, drops, delay; driven over IPC when `CLOUDLESS_FAULT_INJECTION=1`). It plugs into the kernel
 * as its router for other nodes (`ActorSystem.attachMesh`).
 */
export type { FaultAck, FaultCommand, FaultIpcChannel, FaultIpcInit } from './mesh-fault-ipc.ts';
export { applyFaultCommand, faultInjectionEnv, installFaultIpc } from './mesh-fault-ipc.ts';
export type { MeshFaultRules, MeshFaultStats, MeshFaultsInit } from './mesh-faults.ts';
export { MeshFaults, partitionDeadLetterReason, partitionReason } from './mesh-faults.ts';
export type {
  ActorProtocolAdmission,
  MeshGate,
  MeshTransportInit,
  ProtocolHandler,
} from './mesh-transport.ts';
export { MeshTransport } from './mesh-transport.ts';
export type { MsgpackLimits } from './msgpack-limits.ts';
export type { NodeIdentity } from './node-identity.ts';
export {
  CorruptIdentityFileError,
  IdentityFileExistsError,
  InsecureIdentityFileError,
  loadOrCreateIdentity,
  readIdentityFile,
  writeIdentityFile,
} from './node-identity.ts';
export { actorProtocol } from './peer-link.ts';
export { DecodeLimitError, FrameTooLargeError } from './transport-errors.ts';
