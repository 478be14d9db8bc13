import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { runMigrations } from '../../src/adapters/ledger/migrations';
import type { SqlDatabase } from '../../src/adapters/ledger/sql';
import { SqlLedger } from '../../src/adapters/ledger/sql-ledger';
import { loadConfig } from '../../src/config';
import { openDatabase } from '../../src/adapters/ledger/open';
import { hashToken } from '../../src/http/api-keys';
import { runVault } from '../helpers/process';
import { type LedgerChoice, removeDir, vaultLedgerKinds } from '../helpers/vault';

// A whole vault may boot (the real purge) on a busy machine.
jest.setTimeout(120_000);

describe.each(vaultLedgerKinds)('compliance CLI on %s', (_name, chooseLedger) => {
  let ledger: LedgerChoice;
  let env: Record<string, string>;
  let dir: string;

  beforeAll(async () => {
    ledger = await chooseLedger();
    dir = await mkdtemp(path.join(tmpdir(), 'vault-cli-'));
    env = {
      VAULT_DATA_DIR: dir,
      VAULT_API_KEYS: `ops:admin:${hashToken('cli-test-token-0123456789abcdef')}`,
      ...ledger.env,
    };
    await withDb(async (db) => {
      const now = Date.now();
      await db.query(
        `INSERT INTO enrollments (enrollment_reference, user_reference, state, reason, created_at, activated_at)
         SELECT 'cli-' || g, 'cli-user-' || g, 'ACTIVE', CASE WHEN g = 1 THEN '=2+5' END,
                $1::timestamptz - g * interval '400 days', $1::timestamptz - g * interval '400 days'
           FROM generate_series(1, 4) g`,
        [new Date(now)],
      );
      const audit = new SqlLedger(db);
      for (let i = 0; i < 5; i++) {
        await audit.transaction((tx) =>
          tx.audit.append({ type: 'test.cli', actor: 'cli', details: { i } }),
        );
      }
    });
  });
  afterAll(async () => {
    await ledger?.dispose();
    await removeDir(dir);
  });

  /** The test's own connection, closed before each CLI run (PGlite is one process's). */
  async function withDb<T>(fn: (db: SqlDatabase) => Promise<T>): Promise<T> {
    const db = await openDatabase(loadConfig(env));
    try {
      await runMigrations(db);
      return await fn(db);
    } finally {
      await db.close();
    }
  }

  it('inventory --format csv writes every enrollment as safe CSV to stdout', async () => {
    const run = await runVault(['inventory', '--format', 'csv'], env);
    expect(run.code).toBe(0);
    const rows = parse(run.stdout, { columns: true }) as Array<Record<string, string>>;
    expect(rows.map((r) => r.enrollmentReference).sort()).toEqual([
      'cli-1',
      'cli-2',
      'cli-3',
      'cli-4',
    ]);
    expect(rows.find((r) => r.enrollmentReference === 'cli-1')!.reason).toBe(`'=2+5`);
    expect(run.stderr).toMatch(/4 enrollments exported/);
    const ndjson = await runVault(['inventory', '--format', 'ndjson', '--state', 'ACTIVE'], env);
    expect(ndjson.stdout.trim().split('\n')).toHaveLength(4);
    // A bad option is a usage error.
    expect((await runVault(['inventory', '--format', 'xml'], env)).code).toBe(2);
  });

  it('purge --dry-run lists exactly what is past its deadline and destroys nothing', async () => {
    // Activated 400, 800, 1200 and 1600 days ago: the last two are past 1095 days.
    const run = await runVault(['purge', '--dry-run'], env);
    expect(run.code).toBe(0);
    expect(run.stdout.trim().split('\n').sort()).toEqual([
      'cli-user-3\tcli-3',
      'cli-user-4\tcli-4',
    ]);
    const states = await withDb(
      async (db) =>
        (await db.query<{ state: string }>(`SELECT DISTINCT state FROM enrollments`)).rows,
    );
    expect(states).toEqual([{ state: 'ACTIVE' }]);
  });

  it('audit verify exits 0 on an untouched trail and 1 naming the edited entry', async () => {
    const ok = await runVault(['audit', 'verify', '--json'], env);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ ok: true, checkedThrough: 5 });
    // The verification itself is on record, as the API's are.
    const recorded = await withDb(
      async (db) =>
        (
          await db.query<{ actor: string; details: { ok: boolean } }>(
            `SELECT actor, details FROM audit_events WHERE type = 'audit.verified'`,
          )
        ).rows,
    );
    expect(recorded).toEqual([
      { actor: expect.stringMatching(/^cli:.+/), details: expect.objectContaining({ ok: true }) },
    ]);
    await withDb(async (db) => {
      await db.exec('ALTER TABLE audit_events DISABLE TRIGGER USER');
      await db.query(`UPDATE audit_events SET actor = 'forger' WHERE seq = 3`);
      await db.exec('ALTER TABLE audit_events ENABLE TRIGGER USER');
    });
    const broken = await runVault(['audit', 'verify', '--json'], env);
    expect(broken.code).toBe(1);
    expect(JSON.parse(broken.stdout)).toMatchObject({ ok: false, brokenAt: 3, reason: 'edited' });
  });
});
