/**
 * A node's identity: the Ed25519 key behind its PeerId, kept in `<dataDir>/identity.key`. The
 * PeerId is the node id everywhere (actor refs, logs, the mesh), so the key is created once, on
 * first start, and never replaced behind the operator's back.
 *
 * File format, version 1 (binary, 109 bytes for an Ed25519 key):
 *
 * | offset | size | content                                                        |
 * | ------ | ---- | -------------------------------------------------------------- |
 * | 0      | 4    | magic `CLID` (ASCII)                                           |
 * | 4      | 1    | format version, `1`                                            |
 * | 5      | 4    | length N of the key bytes, unsigned big-endian                 |
 * | 9      | N    | the private key as libp2p's protobuf (`privateKeyToProtobuf`)  |
 * | 9 + N  | 32   | SHA-256 of every byte before it                                |
 *
 * The file is written durably (temp file, fsync, rename, fsync of the directory) with mode 0600,
 * and refused at load when group or others have any access to it (as OpenSSH does).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { constants, lstat, mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { Ed25519PeerId, Ed25519PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { removeStaleTempFiles, writeFileDurably } from '../runtime/durable-file.ts';
import { InvalidRequestError, NotFoundError } from '../runtime/errors.ts';

export const identityFileName = 'identity.key';

const magic = Buffer.from('CLID', 'ascii');
const formatVersion = 1;
const headerLength = magic.length + 1 + 4;
const checksumLength = 32;
/** Far above any libp2p key protobuf; bounds what a damaged length field can make us trust. */
const maxKeyLength = 4096;
const maxFileLength = headerLength + maxKeyLength + checksumLength;

export interface NodeIdentity {
  privateKey: Ed25519PrivateKey;
  peerId: Ed25519PeerId;
  /** Absolute path of the identity file. */
  file: string;
  /** True when this call generated the key and wrote the file. */
  created: boolean;
}

/** The identity file is readable or writable by someone other than its owner. */
export class InsecureIdentityFileError extends InvalidRequestError {
  readonly file: string;
  readonly mode: number;

  constructor(file: string, mode: number) {
    const octal = (mode & 0o777).toString(8).padStart(4, '0');
    super(
      `identity file ${file} has mode ${octal}: group or others can access the node's private key; ` +
        `run \`chmod 600 ${file}\` (and check who may have copied it) before starting again`,
    );
    this.file = file;
    this.mode = mode & 0o777;
  }
}

/** The identity file is truncated, damaged or not an identity file at all. */
export class CorruptIdentityFileError extends InvalidRequestError {
  readonly file: string;

  constructor(file: string, problem: string, options?: { cause?: unknown }) {
    super(
      `identity file ${file} is corrupt (${problem}); it is not replaced automatically because the ` +
        `node's PeerId would change: restore it from a backup, or move it away to give the node a new PeerId`,
      options,
    );
    this.file = file;
  }
}

/** Writing a new identity would replace an existing one. */
export class IdentityFileExistsError extends InvalidRequestError {
  readonly file: string;

  constructor(file: string) {
    super(
      `identity file ${file} already exists; refusing to replace it (the PeerId it holds would be lost): ` +
        'choose another path, or allow overwriting (`cloudless peer keygen --force`)',
    );
    this.file = file;
  }
}

/** Version-1 file bytes for a key. */
export function encodeIdentity(key: Ed25519PrivateKey): Uint8Array {
  const body = privateKeyToProtobuf(key);
  const out = Buffer.alloc(headerLength + body.length + checksumLength);
  magic.copy(out, 0);
  out.writeUInt8(formatVersion, magic.length);
  out.writeUInt32BE(body.length, magic.length + 1);
  out.set(body, headerLength);
  const digest = createHash('sha256')
    .update(out.subarray(0, headerLength + body.length))
    .digest();
  digest.copy(out, headerLength + body.length);
  return out;
}

/** Checks and decodes file bytes; `file` only names the file in errors. */
export function decodeIdentity(bytes: Uint8Array, file: string): Ed25519PrivateKey {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (data.length < headerLength) {
    throw new CorruptIdentityFileError(
      file,
      `${data.length} bytes, shorter than the ${headerLength}-byte header`,
    );
  }
  if (!data.subarray(0, magic.length).equals(magic)) {
    throw new CorruptIdentityFileError(
      file,
      'it does not start with the CLID magic; not a Cloudless identity file',
    );
  }
  const version = data.readUInt8(magic.length);
  if (version !== formatVersion) {
    throw new CorruptIdentityFileError(
      file,
      `format version ${version}; this cloudless reads version ${formatVersion} (a newer cloudless may have written it)`,
    );
  }
  const keyLength = data.readUInt32BE(magic.length + 1);
  const expected = headerLength + keyLength + checksumLength;
  if (keyLength > maxKeyLength || data.length !== expected) {
    throw new CorruptIdentityFileError(
      file,
      `${data.length} bytes where the header announces ${keyLength > maxKeyLength ? 'an impossible' : expected}; truncated or damaged`,
    );
  }
  const body = data.subarray(headerLength, headerLength + keyLength);
  const stored = data.subarray(headerLength + keyLength);
  const actual = createHash('sha256')
    .update(data.subarray(0, headerLength + keyLength))
    .digest();
  if (!timingSafeEqual(stored, actual)) throw new CorruptIdentityFileError(file, 'SHA-256 checksum mismatch');
  let key: ReturnType<typeof privateKeyFromProtobuf>;
  try {
    key = privateKeyFromProtobuf(body);
  } catch (error) {
    throw new CorruptIdentityFileError(file, `the key does not decode: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (key.type !== 'Ed25519') {
    throw new InvalidRequestError(
      `identity file ${file} holds a ${key.type} key; Cloudless nodes use Ed25519: create one with \`cloudless peer keygen\``,
    );
  }
  return key;
}

/** Node's fs messages already start with the errno code ("ENOENT: no such file …"). */
function describeFsError(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Reads and checks an identity file: `NotFoundError` when it is absent, refused when group or
 * others can access it, an error when it is corrupt. The mode is checked on the open file, so a swap between check and read is moot.
 */
export async function readIdentityFile(file: string): Promise<Ed25519PrivateKey> {
  const resolved = path.resolve(file);
  let handle: Awaited<ReturnType<typeof open>>;
  try {
    handle = await open(resolved, constants.O_RDONLY);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new NotFoundError(`identity file ${resolved} does not exist; check the path`, { cause: error });
    }
    throw new InvalidRequestError(
      `cannot open identity file ${resolved} (${describeFsError(error)}); check that it is a file owned and readable by this user`,
      { cause: error },
    );
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) {
      throw new InvalidRequestError(`identity file ${resolved} is not a regular file; move it away`);
    }
    if (process.platform !== 'win32' && (stats.mode & 0o077) !== 0) {
      throw new InsecureIdentityFileError(resolved, stats.mode);
    }
    if (stats.size > maxFileLength) {
      throw new CorruptIdentityFileError(resolved, `${stats.size} bytes, more than any identity file holds`);
    }
    const bytes = await handle.readFile();
    return decodeIdentity(bytes, resolved);
  } finally {
    await handle.close();
  }
}

/**
 * Writes a key as an identity file, durably and with mode 0600. Refuses to replace an existing
 * file unless `overwrite` is set.
 */
export async function writeIdentityFile(
  file: string,
  key: Ed25519PrivateKey,
  options: { overwrite?: boolean } = {},
): Promise<void> {
  const resolved = path.resolve(file);
  const dir = path.dirname(resolved);
  try {
    await removeStaleTempFiles(resolved);
  } catch (error) {
    throw new InvalidRequestError(
      `cannot write identity file ${resolved}: directory ${dir} is not usable (${describeFsError(error)}); create it or choose another path`,
      { cause: error },
    );
  }
  if (options.overwrite !== true) {
    const exists = await lstat(resolved).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return false;
        throw error;
      },
    );
    if (exists) throw new IdentityFileExistsError(resolved);
  }
  try {
    // writeFileDurably creates its temp file with mode 0600, and the rename keeps that mode.
    await writeFileDurably(resolved, encodeIdentity(key));
  } catch (error) {
    throw new InvalidRequestError(
      `cannot write identity file ${resolved} (${describeFsError(error)}); check that ${dir} is writable`,
      { cause: error },
    );
  }
}

/**
 * The node's identity in `dataDir`: read from `identity.key`, or generated and written there on
 * first start. A damaged or exposed file is an error, never silently replaced.
 */
export async function loadOrCreateIdentity(dataDir: string): Promise<NodeIdentity> {
  const dir = path.resolve(dataDir);
  const file = path.join(dir, identityFileName);
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    throw new InvalidRequestError(
      `cannot create data dir ${dir} (${describeFsError(error)}); choose a writable directory`,
      { cause: error },
    );
  }
  // A start killed mid-write leaves a temp file, never a torn identity.
  await removeStaleTempFiles(file);
  try {
    const privateKey = await readIdentityFile(file);
    return { privateKey, peerId: peerIdFromPrivateKey(privateKey), file, created: false };
  } catch (error) {
    if (!(error instanceof NotFoundError)) throw error;
  }
  const privateKey = await generateKeyPair('Ed25519');
  await writeIdentityFile(file, privateKey);
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey), file, created: true };
}
