/**
 * The fabric's own actors, one folder per subsystem (raft, membership, scheduler, agent, storage,
 * coordinator), each built on the kernel in runtime/ and supervised by supervision/. None has
 * landed yet; they come with the control-plane issues.
 */
export {};
