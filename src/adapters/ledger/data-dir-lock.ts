/**
 * An exclusive lock on the embedded ledger's data directory. PGlite is one process's
 * database: a second process on the same directory (another vault on a shared volume, or
 * `npm run replay` beside a running vault) works on its own copy in memory and its writes
 * are silently lost. So the directory is locked for the lifetime of the process that
 * opened it, and every other opener is refused with the holder named.
 *
 * The lock is `<dataDir>.lock`, created with O_EXCL, holding the holder's pid, host, start
 * time and a random token. A lock whose pid no longer runs on this host is stale (the
 * holder crashed or was killed) and is taken over; one from another host is never taken
 * over automatically, since its process cannot be checked from here.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { VaultError } from '../../core/errors';

export interface LockHolder {
  pid: number;
  host: string;
  startedAt: string;
  token: string;
}

/** Another process holds the data directory; the message names it and what to do. */
export class DataDirLockedError extends VaultError {
  constructor(
    readonly lockFile: string,
    readonly holder: LockHolder | undefined,
    detail?: string,
  ) {
    const who = holder
      ? `process ${holder.pid} on host ${holder.host} (since ${holder.startedAt})`
      : 'an unknown process (the lock file cannot be read)';
    super(
      'ledger_locked',
      `the embedded ledger ${lockFile.replace(/\.lock$/, '')} is in use by ${who}${detail ? `: ${detail}` : ''}. ` +
        'Only one process may open it (a second one would lose its writes): stop that vault or ' +
        `command first. If that process is gone (it ran on another host or container), remove ${lockFile}.`,
    );
  }
}

/** Lock files this process holds, by path, with their token (removed on exit). */
const held = new Map<string, string>();
let exitHookInstalled = false;

function removeHeldOnExit(): void {
  for (const [file, token] of held) releaseFile(file, token);
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function readHolder(file: string): LockHolder | undefined | 'missing' {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return 'missing';
    throw err;
  }
  try {
    const v = JSON.parse(text) as Partial<LockHolder>;
    if (
      typeof v.pid === 'number' &&
      typeof v.host === 'string' &&
      typeof v.startedAt === 'string' &&
      typeof v.token === 'string'
    ) {
      return { pid: v.pid, host: v.host, startedAt: v.startedAt, token: v.token };
    }
  } catch {
    // Unreadable content: treated as held by an unknown process (never taken over).
  }
  return undefined;
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    return errnoCode(err) !== 'ESRCH';
  }
}

/** Only a holder on this host whose process is gone (or is this process, restarted). */
function isStale(file: string, holder: LockHolder): boolean {
  if (holder.host !== hostname()) return false;
  // Our own pid: a previous incarnation (pid 1 in a restarted container) unless we hold it.
  if (holder.pid === process.pid) return !held.has(file);
  return !isRunning(holder.pid);
}

/** Creates `file` exclusively with `content`; false when it already exists. */
function createExclusive(file: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (err) {
    if (errnoCode(err) === 'EEXIST') return false;
    throw err;
  }
  try {
    writeSync(fd, content);
  } finally {
    closeSync(fd);
  }
  return true;
}

/**
 * Removes a stale lock. Takeovers are serialised by a second O_EXCL file, so two openers
 * that both saw the same stale lock cannot both remove it (the second would remove the
 * first one's fresh lock).
 */
function removeStale(file: string, stale: LockHolder): void {
  const mutex = `${file}.takeover`;
  if (!createExclusive(mutex, JSON.stringify({ pid: process.pid, host: hostname() }))) {
    throw new DataDirLockedError(
      file,
      stale,
      `another process is taking over this stale lock (or died doing so: then remove ${mutex})`,
    );
  }
  try {
    const current = readHolder(file);
    if (typeof current === 'object' && current.token === stale.token) unlinkSync(file);
  } finally {
    unlinkSync(mutex);
  }
}

function releaseFile(file: string, token: string): void {
  held.delete(file);
  const current = readHolder(file);
  // Never remove a lock someone else took over in the meantime.
  if (typeof current === 'object' && current.token === token) {
    try {
      unlinkSync(file);
    } catch {
      // Already gone.
    }
  }
}

export interface DataDirLock {
  readonly file: string;
  release(): void;
}

/** Takes the lock on `dataDir` or throws DataDirLockedError naming the holder. */
export function lockDataDir(dataDir: string): DataDirLock {
  const file = `${path.resolve(dataDir)}.lock`;
  const me: LockHolder = {
    pid: process.pid,
    host: hostname(),
    startedAt: new Date(Date.now() - process.uptime() * 1000).toISOString(),
    token: randomBytes(16).toString('hex'),
  };
  // A few rounds: each lost race re-reads the new holder, which is then alive.
  for (let round = 0; round < 3; round++) {
    if (createExclusive(file, `${JSON.stringify(me)}\n`)) {
      held.set(file, me.token);
      if (!exitHookInstalled) {
        // A process that exits without closing (process.exit on a fatal error) frees it too.
        process.on('exit', removeHeldOnExit);
        exitHookInstalled = true;
      }
      let released = false;
      return {
        file,
        release() {
          if (released) return;
          released = true;
          releaseFile(file, me.token);
        },
      };
    }
    const holder = readHolder(file);
    if (holder === 'missing') continue;
    if (holder === undefined || !isStale(file, holder)) {
      throw new DataDirLockedError(file, holder);
    }
    removeStale(file, holder);
  }
  throw new DataDirLockedError(file, undefined, 'the lock kept changing hands');
}
