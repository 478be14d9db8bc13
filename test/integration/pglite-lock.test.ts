import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DataDirLockedError } from '../../src/adapters/ledger/data-dir-lock';
import { PgliteDatabase } from '../../src/adapters/ledger/pglite-database';
import { ROOT, waitFor } from '../helpers/process';

/** test/helpers/open-pglite.ts in its own process, as a second vault or CLI would be. */
function opener(dataDir: string, mode: 'once' | 'hold') {
  const child = spawn(
    process.execPath,
    [
      '-r',
      'ts-node/register/transpile-only',
      path.join(ROOT, 'test/helpers/open-pglite.ts'),
      dataDir,
      mode,
    ],
    { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, stdout: () => stdout, stderr: () => stderr };
}

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

const holderPid = async (lockFile: string) =>
  (JSON.parse(await readFile(lockFile, 'utf8')) as { pid: number }).pid;

describe('the embedded ledger data directory is locked to one process', () => {
  let dir: string;
  let dataDir: string;
  let lockFile: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'vault-lock-'));
    dataDir = path.join(dir, 'ledger');
    lockFile = `${dataDir}.lock`;
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a second process, naming the holder pid, and lets it in once the holder closed', async () => {
    const db = await PgliteDatabase.open(dataDir);
    try {
      expect(await holderPid(lockFile)).toBe(process.pid);
      const second = opener(dataDir, 'once');
      expect(await second.exited).toBe(1);
      expect(second.stderr()).toContain(`in use by process ${process.pid} on host`);
      expect(second.stderr()).toContain(lockFile);
      // The holder is unaffected.
      await db.exec('CREATE TABLE kept (n integer)');
      await db.query('INSERT INTO kept VALUES (1)');
    } finally {
      await db.close();
    }
    expect(await exists(lockFile)).toBe(false);

    const third = opener(dataDir, 'once');
    expect(await third.exited).toBe(0);
    expect(third.stderr()).toBe('');
    expect(await exists(lockFile)).toBe(false);
    // The third process wrote into the same database the first one created.
    const again = await PgliteDatabase.open(dataDir);
    try {
      expect((await again.query('SELECT n FROM kept')).rows).toEqual([{ n: 1 }]);
      expect((await again.query('SELECT pid FROM opened_by')).rows).toEqual([
        { pid: third.child.pid },
      ]);
    } finally {
      await again.close();
    }
  }, 120_000);

  it('takes over the stale lock of a holder that was SIGKILLed', async () => {
    const holder = opener(dataDir, 'hold');
    try {
      await waitFor(async () => (holder.stdout().includes('opened') ? true : undefined), 60_000);
      expect(await holderPid(lockFile)).toBe(holder.child.pid);
      // While it runs, this process is refused too, with its pid named.
      const refused = await PgliteDatabase.open(dataDir).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(DataDirLockedError);
      expect((refused as Error).message).toContain(`in use by process ${holder.child.pid}`);
    } finally {
      holder.child.kill('SIGKILL');
    }
    await holder.exited;
    // The killed process could not remove its lock file.
    expect(await holderPid(lockFile)).toBe(holder.child.pid);

    const db = await PgliteDatabase.open(dataDir);
    try {
      expect(await holderPid(lockFile)).toBe(process.pid);
    } finally {
      await db.close();
    }
    expect(await exists(lockFile)).toBe(false);
  }, 120_000);

  it('refuses a second open in the same process', async () => {
    const db = await PgliteDatabase.open(dataDir);
    try {
      await expect(PgliteDatabase.open(dataDir)).rejects.toThrow(
        `in use by process ${process.pid}`,
      );
      // The refused opener did not remove the holder's lock.
      expect(await holderPid(lockFile)).toBe(process.pid);
    } finally {
      await db.close();
    }
  });

  it('never takes over a lock held from another host', async () => {
    const { writeFile } = await import('node:fs/promises');
    await writeFile(
      lockFile,
      JSON.stringify({ pid: 999_999, host: 'other-host', startedAt: 'then', token: 't' }),
    );
    await expect(PgliteDatabase.open(dataDir)).rejects.toThrow(
      /in use by process 999999 on host other-host .*remove .*ledger\.lock/,
    );
    expect(await holderPid(lockFile)).toBe(999_999);
  });
});
