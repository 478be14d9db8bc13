import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { writeLedgerTemplate } from '../../src/adapters/ledger/ledger-template';
import { appliedMigrations, migrations, runMigrations } from '../../src/adapters/ledger/migrations';
import { PgliteDatabase } from '../../src/adapters/ledger/pglite-database';

/** The build's ledger template (issue 11): a new data directory starts as its copy. */
describe('the embedded ledger template', () => {
  let dir: string;
  let template: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'vault-template-'));
    template = path.join(dir, 'template');
    expect(await writeLedgerTemplate(template)).toEqual(migrations.map((m) => m.version));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('starts a new data directory from the template, migrated, and later migrations apply', async () => {
    const dataDir = path.join(dir, 'first-start');
    await mkdir(dataDir);
    const db = await PgliteDatabase.open(dataDir, { template });
    try {
      expect(await appliedMigrations(db)).toEqual(migrations.map((m) => m.version));
      // A migration added after the build applies on top of the template.
      const later = { version: 10_000, name: 'after the build', sql: 'CREATE TABLE later (x int)' };
      expect(await runMigrations(db, [...migrations, later])).toEqual([10_000]);
      await db.query('INSERT INTO later VALUES (1)');
    } finally {
      await db.close();
    }
    // It is an ordinary data directory from then on: reopened without the template.
    const reopened = await PgliteDatabase.open(dataDir);
    try {
      expect((await reopened.query('SELECT x FROM later')).rows).toEqual([{ x: 1 }]);
    } finally {
      await reopened.close();
    }
  });

  it('never copies the template over a data directory that holds a ledger', async () => {
    const dataDir = path.join(dir, 'existing');
    const first = await PgliteDatabase.open(dataDir, { template });
    await first.exec('CREATE TABLE kept (x int); INSERT INTO kept VALUES (7);');
    await first.close();

    const again = await PgliteDatabase.open(dataDir, { template });
    try {
      expect((await again.query('SELECT x FROM kept')).rows).toEqual([{ x: 7 }]);
    } finally {
      await again.close();
    }
  });
});
