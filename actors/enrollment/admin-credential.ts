/**
 * The admin credential: 32 random bytes (base64url) the bootstrap node writes to
 * `<data-dir>/admin.credential` (mode 0600) and whose SHA-256 it stores at
 * `/cloudless/admin/credential`. The CLI and `KvClient` present it over the enrollment protocol
 * (`client`) to be admitted to the actor protocol. Only the hash is ever stored or compared.
 */
import { randomBytes } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeFileDurably } from '../../runtime/durable-file.ts';
import { DataCorruptError, InvalidRequestError } from '../../runtime/errors.ts';
import { UnauthenticatedClientError } from './enrollment-errors.ts';
import type { KvPort } from './kv-port.ts';
import { hashSecret, secretMatches } from './token.ts';

export const credentialFileName = 'admin.credential';
export const adminCredentialKey = '/cloudless/admin/credential';
export const credentialEnv = 'CLOUDLESS_CREDENTIAL';

const credentialPattern = /^[A-Za-z0-9_-]{43}$/;

export interface AdminCredentialRecord {
  readonly hash: string;
  readonly createdAt: number;
}

export const howToGetCredential =
  `pass --credential <file> (the bootstrap node's <data-dir>/${credentialFileName}), ` +
  `set ${credentialEnv} to its content, or run the command with --data-dir of the bootstrap node`;

export function checkCredential(text: unknown, source: string): string {
  const value = typeof text === 'string' ? text.trim() : text;
  if (typeof value !== 'string' || !credentialPattern.test(value))
    throw new UnauthenticatedClientError(
      `the admin credential from ${source} is not 43 base64url characters; ${howToGetCredential}`,
    );
  return value;
}

export function decodeAdminCredentialRecord(text: string): AdminCredentialRecord {
  try {
    const value = JSON.parse(text) as Partial<AdminCredentialRecord>;
    if (
      typeof value.hash === 'string' &&
      /^[0-9a-f]{64}$/.test(value.hash) &&
      Number.isSafeInteger(value.createdAt)
    )
      return { hash: value.hash, createdAt: value.createdAt as number };
  } catch {
    // Reported below.
  }
  throw new DataCorruptError(
    `${adminCredentialKey} does not hold { hash, createdAt }; it was written by something else`,
  );
}

export function credentialMatches(credential: string, record: AdminCredentialRecord): boolean {
  return secretMatches(credential, record.hash);
}

/** Reads a credential file, refusing one that group or others may read. */
export async function readCredentialFile(file: string): Promise<string> {
  let text: string;
  try {
    const info = await stat(file);
    if ((info.mode & 0o077) !== 0)
      throw new InvalidRequestError(
        `${file} is readable by group or others (mode ${(info.mode & 0o777).toString(8)}); chmod 600 ${file}`,
      );
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT')
      throw new UnauthenticatedClientError(`no admin credential at ${file}; ${howToGetCredential}`, {
        cause: error,
      });
    throw error;
  }
  return checkCredential(text, file);
}

/**
 * The credential a CLI command presents: `--credential FILE`, else `CLOUDLESS_CREDENTIAL`,
 * else `<data-dir>/admin.credential`.
 */
export async function resolveCredential(options: {
  readonly file?: string | undefined;
  readonly env?: NodeJS.ProcessEnv;
  readonly dataDir: string;
}): Promise<string> {
  if (options.file !== undefined) return readCredentialFile(options.file);
  const fromEnv = options.env?.[credentialEnv];
  if (fromEnv !== undefined && fromEnv !== '') return checkCredential(fromEnv, credentialEnv);
  return readCredentialFile(path.join(options.dataDir, credentialFileName));
}

/**
 * On the bootstrap node: makes sure the credential file exists and its hash is in the store. The
 * file is written (durably) before the hash, so a crash in between leaves a file whose hash is
 * stored on the next start; a hash already stored is never replaced.
 */
export async function ensureAdminCredential(
  components: { kv: KvPort },
  init: { dataDir: string; now?: number; timeoutMs?: number },
): Promise<{ file: string; created: boolean }> {
  const file = path.join(init.dataDir, credentialFileName);
  let credential: string;
  let created = false;
  try {
    credential = await readCredentialFile(file);
  } catch (error) {
    if (!(error instanceof UnauthenticatedClientError)) throw error;
    try {
      await stat(file);
      throw error;
    } catch (missing) {
      if ((missing as NodeJS.ErrnoException).code !== 'ENOENT') throw missing;
    }
    credential = randomBytes(32).toString('base64url');
    await writeFileDurably(file, `${credential}\n`);
    created = true;
  }
  const record: AdminCredentialRecord = { hash: hashSecret(credential), createdAt: init.now ?? Date.now() };
  await components.kv.txn(
    {
      compare: [{ key: adminCredentialKey, target: 'version', op: '=', value: 0 }],
      success: [{ type: 'put', key: adminCredentialKey, value: JSON.stringify(record) }],
      failure: [],
    },
    { timeoutMs: init.timeoutMs ?? 30_000 },
  );
  return { file, created };
}
