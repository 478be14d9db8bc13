import { randomBytes } from 'node:crypto';
import { constants, type Dirent } from 'node:fs';
import { lstat, mkdir, open, readdir, rename, rm, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import {
  BlobNotFoundError,
  DependencyError,
  InvalidBlobKeyError,
  VaultError,
} from '../../core/errors';
import type { BlobListPage, BlobStore } from '../../core/ports';
import { assertValidPrefix, isValidKey, keySegments, listLimit } from './keys';

/**
 * Object files carry a suffix outside the key charset, so key `a` (file `a@blob`) and
 * key `a/b` (directory `a`) can coexist as they do in S3, and no directory name can
 * ever collide with an object file.
 */
const OBJECT_SUFFIX = '@blob';
/** Temp files are never valid object names, so `list` cannot see them even after a crash. */
const TEMP_MARKER = '@tmp-';
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
// A put can race a delete that prunes the (momentarily empty) directory it just made.
const PUT_ATTEMPTS = 5;
// O_NOFOLLOW is absent on Windows; elsewhere it stops a planted symlink being read through.
const O_NOFOLLOW = constants.O_NOFOLLOW ?? 0;

function errorCode(err: unknown): string | undefined {
  // Duck-typed: errors from another realm (e.g. under jest) fail `instanceof Error`.
  if (typeof err !== 'object' || err === null || !('code' in err)) return undefined;
  return typeof err.code === 'string' ? err.code : undefined;
}

function isMissing(err: unknown): boolean {
  const code = errorCode(err);
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function wrap(operation: string, err: unknown): VaultError {
  if (err instanceof VaultError) return err;
  const detail = errorCode(err) ?? (err instanceof Error ? err.message : 'unknown error');
  return new DependencyError('blob store', `filesystem ${operation} failed (${detail})`, {
    cause: err,
  });
}

function compareKeys(a: string, b: string): number {
  // Keys are ASCII (see keys.ts), so code-unit order is S3's byte order.
  return a < b ? -1 : a > b ? 1 : 0;
}

function encodeCursor(lastKey: string): string {
  return Buffer.from(lastKey, 'utf8').toString('base64url');
}

function decodeCursor(cursor: string): string {
  const key = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!isValidKey(key)) throw new InvalidBlobKeyError('malformed list cursor');
  return key;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * BlobStore on a local directory: the embedded default. Writes are atomic and durable
 * (temp file in the same directory, fsync, rename, fsync directory), and a key can
 * never name a path outside the root.
 */
export class FsBlobStore implements BlobStore {
  private readonly root: string;
  readonly location: string;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.location = pathToFileURL(this.root + path.sep).href;
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    const { dir, file, name } = this.locate(key);
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.makeDirs(dir);
        await this.writeAtomically(dir, file, name, body);
        return;
      } catch (err) {
        if (isMissing(err) && attempt < PUT_ATTEMPTS) continue;
        throw wrap('put', err);
      }
    }
  }

  async get(key: string): Promise<Uint8Array> {
    const { file } = this.locate(key);
    try {
      const handle = await open(file, constants.O_RDONLY | O_NOFOLLOW);
      try {
        return await handle.readFile();
      } finally {
        await handle.close();
      }
    } catch (err) {
      if (isMissing(err)) throw new BlobNotFoundError(key);
      throw wrap('get', err);
    }
  }

  async exists(key: string): Promise<boolean> {
    // lstat: a planted symlink is not an object here, as it is not for get and list.
    return (await this.stat(key)) !== null;
  }

  async stat(key: string): Promise<{ size: number; lastModified: Date } | null> {
    const { file } = this.locate(key);
    try {
      const stats = await lstat(file);
      return stats.isFile() ? { size: stats.size, lastModified: stats.mtime } : null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw wrap('stat', err);
    }
  }

  async delete(key: string): Promise<void> {
    const { dir, file } = this.locate(key);
    try {
      await unlink(file);
    } catch (err) {
      if (isMissing(err)) return;
      throw wrap('delete', err);
    }
    try {
      await syncDir(dir);
      await this.pruneEmptyDirs(dir);
    } catch (err) {
      if (isMissing(err)) return;
      throw wrap('delete', err);
    }
  }

  async list(prefix: string, options?: { cursor?: string; limit?: number }): Promise<BlobListPage> {
    assertValidPrefix(prefix);
    const limit = listLimit(options?.limit);
    const after = options?.cursor === undefined ? undefined : decodeCursor(options.cursor);
    // Start at the deepest directory the prefix names in full; a partial last segment
    // (`a/b` matching `a/bc`) is filtered per entry.
    const slash = prefix.lastIndexOf('/');
    const baseKey = slash === -1 ? '' : prefix.slice(0, slash);
    const keys: string[] = [];
    try {
      await this.collect(baseKey, prefix, after, keys);
    } catch (err) {
      throw wrap('list', err);
    }
    keys.sort(compareKeys);
    const page = keys.slice(0, limit);
    const last = page[page.length - 1];
    return keys.length > limit && last !== undefined
      ? { keys: page, nextCursor: encodeCursor(last) }
      : { keys: page };
  }

  async ping(): Promise<void> {
    try {
      await this.makeDirs(this.root);
      const probe = path.join(this.root, `ping${TEMP_MARKER}${randomBytes(8).toString('hex')}`);
      const expected = randomBytes(16);
      const handle = await open(probe, 'wx', FILE_MODE);
      try {
        await handle.writeFile(expected);
      } finally {
        await handle.close();
      }
      try {
        const readBack = await open(probe, constants.O_RDONLY);
        let actual: Buffer;
        try {
          actual = await readBack.readFile();
        } finally {
          await readBack.close();
        }
        if (!actual.equals(expected)) throw new Error('probe file read back differently');
      } finally {
        await rm(probe, { force: true });
      }
    } catch (err) {
      throw wrap('ping', err);
    }
  }

  /** Maps a key to its directory and object file, refusing anything outside the root. */
  private locate(key: string): { dir: string; file: string; name: string } {
    const segments = keySegments(key);
    const name = segments.pop();
    if (name === undefined) throw new InvalidBlobKeyError('empty key');
    const dir = path.resolve(this.root, ...segments);
    const file = path.join(dir, name + OBJECT_SUFFIX);
    // Defence in depth: validation already rules traversal out, this proves it.
    const relative = path.relative(this.root, file);
    if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) {
      throw new InvalidBlobKeyError('resolves outside the store root');
    }
    return { dir, file, name };
  }

  /** mkdir -p, then fsync the parent of every directory it created so they survive a crash. */
  private async makeDirs(dir: string): Promise<void> {
    const first = await mkdir(dir, { recursive: true, mode: DIR_MODE });
    if (first === undefined) return;
    const created = path.relative(path.dirname(first), dir).split(path.sep);
    let current = path.dirname(first);
    await syncDir(current);
    for (const segment of created.slice(0, -1)) {
      current = path.join(current, segment);
      await syncDir(current);
    }
  }

  private async writeAtomically(
    dir: string,
    file: string,
    name: string,
    body: Uint8Array,
  ): Promise<void> {
    const temp = path.join(dir, `${name}${TEMP_MARKER}${randomBytes(8).toString('hex')}`);
    try {
      const handle = await open(temp, 'wx', FILE_MODE);
      try {
        await handle.writeFile(body);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, file);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
    await syncDir(dir);
  }

  /** Removes now-empty directories up to (not including) the root, so erased keys leave no trace. */
  private async pruneEmptyDirs(dir: string): Promise<void> {
    let current = dir;
    while (current !== this.root && current.startsWith(this.root + path.sep)) {
      try {
        await rmdir(current);
      } catch (err) {
        const code = errorCode(err);
        if (code === 'ENOTEMPTY' || code === 'EEXIST' || code === 'ENOENT') return;
        throw err;
      }
      current = path.dirname(current);
      await syncDir(current);
    }
  }

  private async collect(
    dirKey: string,
    prefix: string,
    after: string | undefined,
    out: string[],
  ): Promise<void> {
    const dirPath = dirKey === '' ? this.root : path.join(this.root, ...dirKey.split('/'));
    let entries: Dirent[];
    try {
      entries = await readdir(dirPath, { withFileTypes: true });
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    for (const entry of entries) {
      // Symlinks are neither files nor directories here: never followed.
      if (entry.isDirectory()) {
        if (!isValidKey(entry.name)) continue;
        const childPrefix = `${dirKey === '' ? '' : `${dirKey}/`}${entry.name}/`;
        const mayMatch = childPrefix.startsWith(prefix) || prefix.startsWith(childPrefix);
        // Every key below sorts before the cursor when the subtree's prefix does.
        const beforeCursor =
          after !== undefined && childPrefix < after && !after.startsWith(childPrefix);
        if (mayMatch && !beforeCursor)
          await this.collect(childPrefix.slice(0, -1), prefix, after, out);
      } else if (entry.isFile() && entry.name.endsWith(OBJECT_SUFFIX)) {
        const name = entry.name.slice(0, -OBJECT_SUFFIX.length);
        if (!isValidKey(name)) continue;
        const key = dirKey === '' ? name : `${dirKey}/${name}`;
        if (key.startsWith(prefix) && (after === undefined || key > after)) out.push(key);
      }
    }
  }
}
