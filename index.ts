/**
 * Cloudless: one actor system across threads and machines, with OTP supervision. This is the
 * package's public surface for embedding.
 */
export * from './runtime/index.ts';
export * from './supervision/index.ts';
export * from './transport/index.ts';
