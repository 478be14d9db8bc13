import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { runMigrations } from '../../src/adapters/ledger/migrations';
import { SqlLedger } from '../../src/adapters/ledger/sql-ledger';
import { PgDatabase } from '../../src/adapters/ledger/pg-database';
import { createPostgresDatabase } from '../helpers/ledgers';
import { ROOT } from '../helpers/process';
import {
  removeDir,
  type SimulatorClient,
  startTestSimulator,
  startTestVault,
  type TestVault,
} from '../helpers/vault';

/**
 * docs/postgres-roles.sql on a real server: a migration role owns the ledger, the vault
 * runs as a runtime role that cannot drop the audit trigger, truncate the trail, or
 * rewrite an audit event. PostgreSQL only (TEST_DATABASE_URL; npm run test:pg).
 */
const adminUrl = process.env.TEST_DATABASE_URL;
const describePg = adminUrl ? describe : describe.skip;

const ROLES_SQL = path.join(ROOT, 'docs/postgres-roles.sql');

function asRole(url: string, role: string): string {
  const u = new URL(url);
  u.username = role;
  u.password = '';
  return u.toString();
}

/** Runs the roles file exactly as the README says, through psql. */
function applyRolesFile(url: string, migrationRole: string, runtimeRole: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      'psql',
      [
        url,
        '-q',
        '-v',
        'ON_ERROR_STOP=1',
        '-v',
        `migration_role=${migrationRole}`,
        '-v',
        `runtime_role=${runtimeRole}`,
        '-f',
        ROLES_SQL,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`psql exited ${code}: ${stderr}`)),
    );
  });
}

async function withClient<T>(url: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

describePg('PostgreSQL roles: a migration role owns the ledger, the vault only writes rows', () => {
  const suffix = randomBytes(4).toString('hex');
  const migrationRole = `vault_mig_${suffix}`;
  const runtimeRole = `vault_app_${suffix}`;
  const dropLater: Array<() => Promise<void>> = [];
  let sim: SimulatorClient;
  let db: { url: string; drop(): Promise<void> };
  let migrationUrl: string;
  let runtimeUrl: string;
  // One data directory (master key) for the vaults on this ledger: its vault keys are
  // wrapped under that key.
  let vaultDir: string;

  beforeAll(async () => {
    sim = await startTestSimulator();
    vaultDir = await mkdtemp(path.join(tmpdir(), 'vault-roles-'));
    db = await createPostgresDatabase(adminUrl!);
    dropLater.push(db.drop);
    await applyRolesFile(db.url, migrationRole, runtimeRole);
    migrationUrl = asRole(db.url, migrationRole);
    runtimeUrl = asRole(db.url, runtimeRole);
  });
  afterAll(async () => {
    for (const drop of dropLater) await drop().catch(() => undefined);
    await withClient(adminUrl!, async (c) => {
      await c.query(`DROP ROLE IF EXISTS ${runtimeRole}`);
      await c.query(`DROP ROLE IF EXISTS ${migrationRole}`);
    });
    await sim?.running.close();
    await removeDir(vaultDir);
  });

  const vaults: TestVault[] = [];
  afterEach(async () => {
    for (const v of vaults.splice(0)) await v.stop();
  });

  it('refuses to start as the runtime role while migrations are pending, naming npm run migrate', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'vault-roles-'));
    try {
      await expect(
        startTestVault(
          sim,
          { name: 'postgres', env: { DATABASE_URL: runtimeUrl }, dispose: async () => undefined },
          {},
          dir,
        ),
      ).rejects.toThrow(
        new RegExp(
          `needs migration\\(s\\) 1, 2, .*role "${runtimeRole}" may not apply.*npm run migrate.*DATABASE_MIGRATION_URL`,
        ),
      );
    } finally {
      await removeDir(dir);
    }
  });

  it('migrates as the migration role (DATABASE_MIGRATION_URL), then runs as the runtime role', async () => {
    const vault = await startTestVault(
      sim,
      {
        name: 'postgres',
        env: { DATABASE_URL: runtimeUrl, DATABASE_MIGRATION_URL: migrationUrl },
        dispose: async () => undefined,
      },
      {},
      vaultDir,
    );
    vaults.push(vault);
    const owners = await withClient(db.url, async (c) =>
      (
        await c.query<{ tableowner: string }>(
          "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'",
        )
      ).rows.map((r) => r.tableowner),
    );
    expect(owners).toEqual([migrationRole]);
  });

  // On the ledger the previous test migrated.
  it('keeps the runtime role from dropping the trigger, truncating or rewriting the trail', async () => {
    await withClient(runtimeUrl, async (c) => {
      const refused = (sql: string) =>
        c.query(sql).then(
          () => 'allowed',
          (e: Error) => e.message,
        );
      // An entry that bypasses the chain is refused; through the chain it is written.
      expect(
        await refused("INSERT INTO audit_events (type, actor) VALUES ('test.runtime', 'test')"),
      ).toMatch(/must be chained/);
      await appendAs(runtimeUrl, { type: 'test.runtime', actor: 'test' });
      expect(await refused('DROP TRIGGER audit_events_append_only ON audit_events')).toMatch(
        /must be owner/,
      );
      expect(await refused('DROP TRIGGER audit_events_no_truncate ON audit_events')).toMatch(
        /must be owner/,
      );
      expect(await refused('ALTER TABLE audit_events DISABLE TRIGGER ALL')).toMatch(
        /must be owner/,
      );
      expect(await refused('TRUNCATE audit_events')).toMatch(/permission denied/);
      expect(await refused("UPDATE audit_events SET type = 'forged'")).toMatch(/permission denied/);
      expect(await refused('DELETE FROM audit_events')).toMatch(/permission denied/);
      expect(await refused('DROP TABLE audit_events')).toMatch(/must be owner/);
      expect(await refused('CREATE TABLE sneaky (n int)')).toMatch(/permission denied/);
      expect(await refused('DELETE FROM schema_migrations')).toMatch(/permission denied/);
      const { rows } = await c.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM audit_events WHERE type = 'test.runtime'",
      );
      expect(rows[0]!.n).toBe(1);
    });
  });

  it('runs a whole enrollment as the runtime role alone', async () => {
    const vault = await startTestVault(
      sim,
      { name: 'postgres', env: { DATABASE_URL: runtimeUrl }, dispose: async () => undefined },
      {},
      vaultDir,
    );
    vaults.push(vault);
    const scan = await sim.createScan();
    const delivered = await sim.sendCallback(scan.scanReference, `${vault.url}/webhooks/jumio`);
    expect(delivered.status).toBe(200);
    let state: string | undefined;
    for (let i = 0; i < 100 && state !== 'ACTIVE'; i++) {
      await vault.container.pipeline.runOnce();
      const e = await vault.container.ledger.transaction((tx) =>
        tx.enrollments.get(scan.scanReference),
      );
      state = e?.state;
    }
    expect(state).toBe('ACTIVE');
    expect((await sim.scan(scan.scanReference)).deleted).toBe(true);
    const audit = await vault.container.ledger.transaction((tx) =>
      tx.audit.list({ enrollmentReference: scan.scanReference }),
    );
    expect(audit.map((e) => e.type)).toContain('facemap.stored');
    await withClient(db.url, async (c) => {
      const { rows } = await c.query<{ usename: string }>(
        `SELECT DISTINCT usename FROM pg_stat_activity
          WHERE application_name = 'facemap-vault' AND datname = current_database()`,
      );
      expect(rows.map((r) => r.usename)).toEqual([runtimeRole]);
    });
  });

  it('splits the roles of a ledger migrated before, when the file is run again', async () => {
    const old = await createPostgresDatabase(adminUrl!);
    dropLater.push(old.drop);
    // Migrated as the superuser, as a single-role deployment did.
    const legacy = new PgDatabase({ connectionString: old.url });
    try {
      await runMigrations(legacy);
    } finally {
      await legacy.close();
    }
    await applyRolesFile(old.url, migrationRole, runtimeRole);
    await appendAs(asRole(old.url, runtimeRole), { type: 'test.runtime', actor: 'test' });
    await withClient(asRole(old.url, runtimeRole), async (c) => {
      await expect(c.query('DELETE FROM audit_events')).rejects.toThrow(/permission denied/);
      await expect(c.query('TRUNCATE audit_events')).rejects.toThrow(/permission denied/);
      await expect(
        c.query('DROP TRIGGER audit_events_no_truncate ON audit_events'),
      ).rejects.toThrow(/must be owner/);
    });
    // And the owner is refused by the trigger itself.
    await withClient(asRole(old.url, migrationRole), async (c) => {
      await expect(c.query('TRUNCATE audit_events')).rejects.toThrow(/append-only/);
    });
  });
});

/** Appends an audit entry through the vault's own (chained) repository, as `url`'s role. */
async function appendAs(url: string, event: { type: string; actor: string }): Promise<void> {
  const db = new PgDatabase({ connectionString: url });
  try {
    await new SqlLedger(db).transaction((tx) => tx.audit.append(event));
  } finally {
    await db.close();
  }
}
