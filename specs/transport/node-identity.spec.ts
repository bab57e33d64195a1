import { chmod, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Ed25519PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { expect } from 'chai';
import { InvalidRequestError, NotFoundError } from '../../runtime/errors.ts';
import {
  CorruptIdentityFileError,
  encodeIdentity,
  IdentityFileExistsError,
  InsecureIdentityFileError,
  identityFileName,
  loadOrCreateIdentity,
  readIdentityFile,
  writeIdentityFile,
} from '../../transport/node-identity.ts';

async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: Error) => error,
  );
}

describe('node identity', () => {
  let dataDir: string;

  beforeEach(async () => {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'cloudless-identity-'));
  });

  afterEach(async () => {
    await rm(dataDir, { recursive: true, force: true });
  });

  it('creates an Ed25519 identity on first load and returns the same PeerId on every later load', async () => {
    const first = await loadOrCreateIdentity(dataDir);
    expect(first.created).to.equal(true);
    expect(first.file).to.equal(path.join(dataDir, identityFileName));
    expect(first.privateKey.type).to.equal('Ed25519');
    expect(first.peerId.toString()).to.equal(peerIdFromPrivateKey(first.privateKey).toString());

    const second = await loadOrCreateIdentity(dataDir);
    expect(second.created).to.equal(false);
    expect(second.peerId.toString()).to.equal(first.peerId.toString());
    expect(second.privateKey.equals(first.privateKey)).to.equal(true);
  });

  it('writes the identity file with mode 0600', async () => {
    const { file } = await loadOrCreateIdentity(dataDir);
    expect((await stat(file)).mode & 0o777).to.equal(0o600);
  });

  it('creates a missing data dir owner-only', async () => {
    const nested = path.join(dataDir, 'a', 'b');
    const identity = await loadOrCreateIdentity(nested);
    expect(identity.created).to.equal(true);
    expect((await stat(nested)).mode & 0o077).to.equal(0);
  });

  for (const mode of [0o644, 0o640, 0o660, 0o606, 0o602]) {
    it(`refuses an identity file with mode 0${mode.toString(8)} and names the file and its mode`, async () => {
      const { file } = await loadOrCreateIdentity(dataDir);
      await chmod(file, mode);
      const error = await rejectionOf(loadOrCreateIdentity(dataDir));
      expect(error).to.be.instanceOf(InsecureIdentityFileError);
      expect(error).to.be.instanceOf(InvalidRequestError);
      expect((error as InsecureIdentityFileError).code).to.equal('INVALID_REQUEST');
      expect((error as InsecureIdentityFileError).file).to.equal(file);
      expect((error as InsecureIdentityFileError).mode).to.equal(mode);
    });
  }

  it('accepts an owner-read-only identity file (0400)', async () => {
    const { file, peerId } = await loadOrCreateIdentity(dataDir);
    await chmod(file, 0o400);
    expect((await loadOrCreateIdentity(dataDir)).peerId.toString()).to.equal(peerId.toString());
  });

  describe('a damaged file is an error naming the file, and is never replaced', () => {
    const damages: { name: string; damage: (file: string, bytes: Buffer) => Promise<void> }[] = [
      { name: 'truncated by one byte', damage: (file, bytes) => truncate(file, bytes.length - 1) },
      { name: 'truncated inside the header', damage: (file) => truncate(file, 3) },
      { name: 'empty', damage: (file) => truncate(file, 0) },
      {
        name: 'with a flipped bit in the key',
        damage: async (file, bytes) => {
          const copy = Buffer.from(bytes);
          copy[20] = (copy[20] ?? 0) ^ 0x01;
          await writeFile(file, copy);
        },
      },
      {
        name: 'with a damaged checksum',
        damage: async (file, bytes) => {
          const copy = Buffer.from(bytes);
          copy[copy.length - 1] = (copy[copy.length - 1] ?? 0) ^ 0xff;
          await writeFile(file, copy);
        },
      },
      {
        name: 'with a length field larger than the file',
        damage: async (file, bytes) => {
          const copy = Buffer.from(bytes);
          copy.writeUInt32BE(0xffff_ffff, 5);
          await writeFile(file, copy);
        },
      },
      { name: 'not an identity file', damage: (file) => writeFile(file, 'node-1a2b3c4d\n') },
      {
        name: 'from a future format version',
        damage: async (file, bytes) => {
          const copy = Buffer.from(bytes);
          copy[4] = 2;
          await writeFile(file, copy);
        },
      },
      { name: 'longer than any identity file', damage: (file) => writeFile(file, Buffer.alloc(64 * 1024)) },
    ];
    for (const { name, damage } of damages) {
      it(name, async () => {
        const { file } = await loadOrCreateIdentity(dataDir);
        await damage(file, await readFile(file));
        const damaged = await readFile(file);
        const error = await rejectionOf(loadOrCreateIdentity(dataDir));
        expect(error).to.be.instanceOf(CorruptIdentityFileError);
        expect((error as CorruptIdentityFileError).code).to.equal('INVALID_REQUEST');
        expect((error as CorruptIdentityFileError).file).to.equal(file);
        expect(await readFile(file)).to.deep.equal(damaged);
      });
    }
  });

  it('refuses a valid file that holds a key of another type', async () => {
    const file = path.join(dataDir, identityFileName);
    const secp = await generateKeyPair('secp256k1');
    // encodeIdentity only takes Ed25519 keys; the cast builds the file another tool could write.
    await writeFile(file, encodeIdentity(secp as unknown as Ed25519PrivateKey), { mode: 0o600 });
    const error = await rejectionOf(readIdentityFile(file));
    expect(error).to.be.instanceOf(InvalidRequestError);
    expect(error).not.to.be.instanceOf(CorruptIdentityFileError);
  });

  it('removes temp files a killed write left behind and keeps the identity', async () => {
    const { peerId } = await loadOrCreateIdentity(dataDir);
    const stale = path.join(dataDir, `.${identityFileName}.0123456789ab.tmp`);
    await writeFile(stale, 'half a key');
    expect((await loadOrCreateIdentity(dataDir)).peerId.toString()).to.equal(peerId.toString());
    expect(await readdir(dataDir)).to.deep.equal([identityFileName]);
  });

  it('writes a key for keygen that reads back as the same key', async () => {
    const file = path.join(dataDir, 'other.key');
    const key = await generateKeyPair('Ed25519');
    await writeIdentityFile(file, key);
    expect((await stat(file)).mode & 0o777).to.equal(0o600);
    const read = await readIdentityFile(file);
    expect(read.equals(key)).to.equal(true);
    expect(peerIdFromPrivateKey(read).toString()).to.equal(peerIdFromPrivateKey(key).toString());
  });

  it('refuses to overwrite an identity file unless told to', async () => {
    const file = path.join(dataDir, 'other.key');
    const first = await generateKeyPair('Ed25519');
    const second = await generateKeyPair('Ed25519');
    await writeIdentityFile(file, first);
    const error = await rejectionOf(writeIdentityFile(file, second));
    expect(error).to.be.instanceOf(IdentityFileExistsError);
    expect((error as IdentityFileExistsError).code).to.equal('INVALID_REQUEST');
    expect((await readIdentityFile(file)).equals(first)).to.equal(true);

    await writeIdentityFile(file, second, { overwrite: true });
    expect((await readIdentityFile(file)).equals(second)).to.equal(true);
  });

  it('reports a missing file as NotFoundError', async () => {
    const error = await rejectionOf(readIdentityFile(path.join(dataDir, 'absent.key')));
    expect(error).to.be.instanceOf(NotFoundError);
  });

  it('reports a missing directory for keygen as an invalid request', async () => {
    const key = await generateKeyPair('Ed25519');
    const error = await rejectionOf(writeIdentityFile(path.join(dataDir, 'no', 'such', 'dir.key'), key));
    expect(error).to.be.instanceOf(InvalidRequestError);
  });
});
