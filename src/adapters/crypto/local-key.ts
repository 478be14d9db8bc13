/**
 * The local master key of the embedded default (no KMS_KEY_ID): a development convenience,
 * never a production key store.
 *
 * File format: the 32 key bytes in standard base64 (44 characters, `=`-padded) and an
 * optional trailing newline. Text survives copy-paste and secret managers; raw bytes
 * would not. Generate one with `head -c 32 /dev/urandom | base64 > master.key`.
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';
import { VaultError } from '../../core/errors';
import type { Logger } from '../../core/ports';

const KEY_BYTES = 32;
const BASE64_KEY = /^[A-Za-z0-9+/]{43}=$/;

/** The key file is unusable; the message names VAULT_LOCAL_KEY_FILE so operators find it. */
export class LocalKeyError extends VaultError {
  constructor(file: string, reason: string, options?: { cause?: unknown }) {
    super('local_key_invalid', `VAULT_LOCAL_KEY_FILE (${file}): ${reason}`, options);
  }
}

/**
 * Reads the key at `file`; when there is none, generates one with mode 0600 and warns
 * loudly. Refuses a file that is unreadable, malformed, or readable by group or others.
 */
export async function loadOrCreateLocalKey(file: string, logger: Logger): Promise<Uint8Array> {
  const existing = await readKeyFile(file);
  if (existing) return existing;

  const key = randomBytes(KEY_BYTES);
  const created = await createKeyFile(file, key);
  if (!created) {
    // Another process (a second replica on the same volume) won the race: use its key.
    key.fill(0);
    const theirs = await readKeyFile(file);
    if (!theirs) throw new LocalKeyError(file, 'file vanished right after it was created');
    return theirs;
  }
  logger.warn(
    { keyFile: file, developmentOnly: true },
    'GENERATED A NEW LOCAL MASTER KEY: for development only. Anyone who can read this file can ' +
      'decrypt every stored facemap, and losing it loses them all. Set KMS_KEY_ID in production.',
  );
  const out = new Uint8Array(key);
  key.fill(0);
  return out;
}

/** The key, or undefined when the file does not exist. */
async function readKeyFile(file: string): Promise<Uint8Array | undefined> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, constants.O_RDONLY);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw new LocalKeyError(file, `cannot be opened (${errnoCode(err) ?? 'unknown error'})`, {
      cause: err,
    });
  }
  try {
    // fstat on the open handle: checks the very file we read, not one swapped in between.
    const stat = await handle.stat();
    if (!stat.isFile()) throw new LocalKeyError(file, 'is not a regular file');
    // POSIX permissions only; Windows reports synthetic modes.
    if (process.platform !== 'win32' && (stat.mode & 0o077) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
      throw new LocalKeyError(
        file,
        `is accessible by group or others (mode ${mode}); run: chmod 600 ${file}`,
      );
    }
    // Bounded read: a key file is 45 bytes; never slurp whatever was put there.
    const buf = Buffer.alloc(128);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    const text = buf
      .subarray(0, bytesRead)
      .toString('ascii')
      .replace(/\r?\n$/, '');
    buf.fill(0);
    // Never echo the content: it is (or is close to) key material.
    if (!BASE64_KEY.test(text)) {
      throw new LocalKeyError(
        file,
        `must hold ${KEY_BYTES} bytes in base64 (44 characters); got ${bytesRead} bytes that are not`,
      );
    }
    const key = Buffer.from(text, 'base64');
    if (key.length !== KEY_BYTES) {
      throw new LocalKeyError(file, `must decode to ${KEY_BYTES} bytes, got ${key.length}`);
    }
    const out = new Uint8Array(key);
    key.fill(0);
    return out;
  } catch (err) {
    if (err instanceof LocalKeyError) throw err;
    throw new LocalKeyError(file, `cannot be read (${errnoCode(err) ?? 'unknown error'})`, {
      cause: err,
    });
  } finally {
    await handle.close();
  }
}

/**
 * Writes the key to a private temporary file, fsyncs it, then hard-links it into place:
 * link() fails if the target exists, so creation is exclusive, and nobody ever sees a
 * half-written key. Returns false when the file already existed.
 */
async function createKeyFile(file: string, key: Uint8Array): Promise<boolean> {
  const dir = path.dirname(file);
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new LocalKeyError(file, `cannot create its directory (${errnoCode(err) ?? 'unknown'})`, {
      cause: err,
    });
  }
  const tmp = path.join(
    dir,
    `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
  );
  const content = Buffer.from(`${Buffer.from(key).toString('base64')}\n`, 'ascii');
  try {
    const handle = await fs.open(tmp, 'wx', 0o600);
    try {
      // umask can only remove bits, but be explicit about the one mode we accept.
      await handle.chmod(0o600);
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await fs.link(tmp, file);
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') return false;
      throw err;
    }
    await fsyncDir(dir);
    return true;
  } catch (err) {
    throw new LocalKeyError(file, `cannot be created (${errnoCode(err) ?? 'unknown error'})`, {
      cause: err,
    });
  } finally {
    content.fill(0);
    await fs.rm(tmp, { force: true });
  }
}

/** Makes the new directory entry durable (a crash must not lose the only key). */
async function fsyncDir(dir: string): Promise<void> {
  if (process.platform === 'win32') return;
  const handle = await fs.open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
