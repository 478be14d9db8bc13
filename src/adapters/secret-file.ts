/**
 * Small private files holding one secret line (the local master key, the generated admin
 * token): read with the same checks, created exclusively with the same care. Callers
 * validate the content and re-wrap SecretFileError in their own error class, whose message
 * names the setting or file an operator has to look at.
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import path from 'node:path';

/** Why a secret file is unusable; `reason` completes the caller's "<file>: " prefix. */
export class SecretFileError extends Error {
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(reason, options);
    this.name = 'SecretFileError';
  }
}

export interface SecretFileContent {
  /** The content as ASCII, without one trailing newline. */
  text: string;
  /** Bytes read from the file, newline included (never more than maxBytes). */
  bytesRead: number;
}

/**
 * Reads at most `maxBytes` of `file`, or undefined when it does not exist. Refuses a file
 * that cannot be opened or read, is not a regular file, or is accessible by group or others.
 */
export async function readSecretFile(
  file: string,
  maxBytes: number,
): Promise<SecretFileContent | undefined> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, constants.O_RDONLY);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw new SecretFileError(`cannot be opened (${errnoCode(err) ?? 'unknown error'})`, {
      cause: err,
    });
  }
  try {
    // fstat on the open handle: checks the very file we read, not one swapped in between.
    const stat = await handle.stat();
    if (!stat.isFile()) throw new SecretFileError('is not a regular file');
    // POSIX permissions only; Windows reports synthetic modes.
    if (process.platform !== 'win32' && (stat.mode & 0o077) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
      throw new SecretFileError(
        `is accessible by group or others (mode ${mode}); run: chmod 600 ${file}`,
      );
    }
    // Bounded read: never slurp whatever was put there.
    const buf = Buffer.alloc(maxBytes);
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
    const text = buf
      .subarray(0, bytesRead)
      .toString('ascii')
      .replace(/\r?\n$/, '');
    buf.fill(0);
    return { text, bytesRead };
  } catch (err) {
    if (err instanceof SecretFileError) throw err;
    throw new SecretFileError(`cannot be read (${errnoCode(err) ?? 'unknown error'})`, {
      cause: err,
    });
  } finally {
    await handle.close();
  }
}

/**
 * Writes `content` and a newline to a private temporary file, fsyncs it, then hard-links
 * it into place: link() fails if the target exists, so creation is exclusive, and nobody
 * ever sees a half-written secret. Returns false when the file already existed (another
 * process won the race; read its secret instead).
 */
export async function createSecretFile(file: string, content: string): Promise<boolean> {
  const dir = path.dirname(file);
  try {
    await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw new SecretFileError(`cannot create its directory (${errnoCode(err) ?? 'unknown'})`, {
      cause: err,
    });
  }
  const tmp = path.join(
    dir,
    `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`,
  );
  const bytes = Buffer.from(`${content}\n`, 'ascii');
  try {
    const handle = await fs.open(tmp, 'wx', 0o600);
    try {
      // umask can only remove bits, but be explicit about the one mode we accept.
      await handle.chmod(0o600);
      await handle.writeFile(bytes);
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
    throw new SecretFileError(`cannot be created (${errnoCode(err) ?? 'unknown error'})`, {
      cause: err,
    });
  } finally {
    bytes.fill(0);
    await fs.rm(tmp, { force: true });
  }
}

/** Makes the new directory entry durable (a crash must not lose the only copy). */
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
