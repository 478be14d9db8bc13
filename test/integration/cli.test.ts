import { spawn } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { runMigrations } from '../../src/adapters/ledger/migrations';
import { SqlLedger } from '../../src/adapters/ledger/sql-ledger';
import { loadConfig } from '../../src/config';
import { openDatabase } from '../../src/container';
import { ROOT } from '../helpers/process';
import { newEnrollment } from '../helpers/fixtures';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a CLI entry point as operators do, with only PATH, HOME and `env`. */
function runCli(script: string, args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', path.join(ROOT, script), ...args],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function withLedger<T>(dataDir: string, fn: (ledger: SqlLedger) => Promise<T>): Promise<T> {
  const db = await openDatabase(loadConfig({ VAULT_DATA_DIR: dataDir }));
  try {
    await runMigrations(db);
    return await fn(new SqlLedger(db));
  } finally {
    await db.close();
  }
}

describe('npm run demo', () => {
  it('drives an onboarding to ACTIVE, a rejection, a re-enrollment and authentications, and exits 0', async () => {
    const run = await runCli('src/cli/demo.ts', []);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = run.stdout;
    expect(out).toMatch(/demo-user-1 says ACTIVE/);
    expect(out).toMatch(/PENDING \(callback committed\) -> STORED .* -> ACTIVE/);
    expect(out).toMatch(/ok {2}deleted at Jumio: the simulator says deleted=true/);
    expect(out).toMatch(/retrieval \(GET 200\) -> facemap download \(GET 200\) -> delete/);
    expect(out).toMatch(/does not contain the plaintext facemap/);
    expect(out).toMatch(/REJECTED with reason verification_not_approved/);
    expect(out).toMatch(/is SUPERSEDED, its blob destroyed/);
    expect(out).toMatch(/enrollment\.superseded/);
    // Authentication: PASSED, FAILED, one expired by a second initiate, signed notifications.
    expect(out).toMatch(/POST \/v1\/authentications -> 201/);
    expect(out).toMatch(/Jumio received exactly the enrolled facemap/);
    expect(out).toMatch(/says PASSED \(source callback\); deleted at Jumio/);
    expect(out).toMatch(/says FAILED \(source callback\); deleted at Jumio/);
    expect(out).toMatch(/is EXPIRED at once \(reason superseded\)/);
    expect(out).toMatch(/EXPIRED callback for the first arrived \(200\); it stays EXPIRED/);
    expect(out).toMatch(/signature verified \(standardwebhooks\), says PASSED/);
    expect(out).toMatch(/lastInteractionAt is now/);
    expect(out).toMatch(/facemap\.decrypted/);
    expect(out).toMatch(/demo complete: every expectation held/);
    // No JSON log lines, and the admin token is named by its file only.
    expect(out).not.toMatch(/^\{"level"/m);
    const dataDir = /data directory: (\S+)/.exec(out)?.[1];
    expect(dataDir).toBeDefined();
    await expect(stat(dataDir!)).rejects.toThrow(); // removed without --keep
    // A whole vault boots in a child process: ~20 s on a quiet machine, more on a busy one.
  }, 120_000);
});

describe('npm run replay', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'vault-cli-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('puts a FAILED enrollment back to PENDING with a fresh budget, audited', async () => {
    const ref = '7b1f0c2e-0000-4000-8000-00000000cafe';
    const user = 'cli-user-1';
    await withLedger(dir, (ledger) =>
      ledger.transaction(async (tx) => {
        const now = new Date();
        await tx.enrollments.insert(newEnrollment(ref, now, { userReference: user }), now);
        await tx.enrollments.update(
          ref,
          { state: 'FAILED', lastError: 'x', attempts: 8, nextAttemptAt: null },
          now,
          null,
        );
      }),
    );

    const run = await runCli('src/cli/replay.ts', [user], { VAULT_DATA_DIR: dir });
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toContain(`enrollment ${ref} is PENDING again`);
    expect(run.stdout).toContain('"state": "PENDING"');

    const { row, audit } = await withLedger(dir, (ledger) =>
      ledger.transaction(async (tx) => ({
        row: await tx.enrollments.get(ref),
        audit: await tx.audit.list({ enrollmentReference: ref }),
      })),
    );
    expect(row).toMatchObject({ state: 'PENDING', attempts: 0, lastError: null });
    expect(row?.nextAttemptAt).not.toBeNull();
    const replayed = audit.filter((e) => e.type === 'enrollment.replayed');
    expect(replayed).toHaveLength(1);
    expect(replayed[0]).toMatchObject({
      actor: `cli:${userInfo().username}`,
      userReference: user,
      details: { previousError: 'x', resumesAt: 'confirm' },
    });
  }, 30_000);

  it('exits 1 with a message when the user has no FAILED enrollment', async () => {
    const run = await runCli('src/cli/replay.ts', ['nobody-here'], { VAULT_DATA_DIR: dir });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/replay failed: no FAILED enrollment to replay/);
  }, 30_000);

  it('exits 1 for a user reference shaped like PII, without echoing it', async () => {
    const run = await runCli('src/cli/replay.ts', ['someone@example.com'], {
      VAULT_DATA_DIR: dir,
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/replay failed: userReference must be/);
    expect(run.stderr).not.toContain('someone@example.com');
  }, 30_000);
});
