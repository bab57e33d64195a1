/**
 * The libp2p mesh: node identity (an Ed25519 key in the data dir), TCP + Noise + Yamux, the actor
 * envelope protocol, remote refs and remote death watch, the connection gater and enrollment.
 * It plugs into the kernel through `Router` (runtime/router.ts), as the worker-thread dispatcher
 * does. Nothing is exported yet: the mesh is the next issue.
 */
export {};
