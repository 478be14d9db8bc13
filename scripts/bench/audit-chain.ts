/**
 * Audit append scenario of `npm run bench` (`--only audit-append`): how to give every audit
 * entry its sequence and hash when several vault replicas write at once (issue 9; the
 * choice is explained in sql-ledger.ts). No target: it records why the head lock was chosen.
 *
 * Each writer runs the vault's shape of transaction: BEGIN, one state change (an UPDATE of
 * a random row), two audit entries, COMMIT. Variants:
 *   (a) baseline: plain INSERTs, no chain (the cost floor);
 *   (b) head lock: each append locks the one chain-head row (FOR UPDATE), takes the next
 *       sequence, hashes in Node and inserts; the lock is held until COMMIT, so every
 *       auditing transaction is serialised from its first append on;
 *   (c) sealer: plain INSERTs on the hot path, and one sealer (under an advisory lock) that
 *       chains committed, unsealed rows after the fact in batches, in its own order (so ids
 *       that commit out of order are simply sealed later). Reported: the writers' rate and
 *       how long the sealer needs to catch up once they stop (entries unsealed meanwhile).
 * PostgreSQL at concurrency 1, 8 and 32; PGlite (one connection, it serialises anyway) at 1.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { PgDatabase } from '../../src/adapters/ledger/pg-database';
import { PgliteDatabase } from '../../src/adapters/ledger/pglite-database';
import type { SqlClient, SqlDatabase } from '../../src/adapters/ledger/sql';
import { entryHash, GENESIS_HASH } from '../../src/core/compliance/chain';
import { benchDatabase, type BenchOptions, type Row, type ScenarioResult } from './lib';

let SECONDS = 3;
const ROWS = 1000;
const T = `bench_audit_${process.pid}`;

const SCHEMA = `
  CREATE TABLE ${T}_rows (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
  INSERT INTO ${T}_rows (id) SELECT g FROM generate_series(1, ${ROWS}) g;
  CREATE TABLE ${T}_events (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(),
    type text NOT NULL, actor text NOT NULL, details jsonb NOT NULL DEFAULT '{}',
    seq bigint UNIQUE, prev_hash text, hash text);
  CREATE TABLE ${T}_head (id int PRIMARY KEY, seq bigint NOT NULL, hash text NOT NULL);
  INSERT INTO ${T}_head VALUES (1, 0, '${GENESIS_HASH}');
  CREATE TABLE ${T}_seals (event_id bigint PRIMARY KEY, seq bigint UNIQUE NOT NULL,
    prev_hash text NOT NULL, hash text NOT NULL);`;

const fields = (seq: number, at: Date, type: string, details: object, prevHash: string) => ({
  seq,
  at,
  type,
  actor: 'bench',
  enrollmentReference: null,
  authenticationReference: null,
  userReference: null,
  details: details as Record<string, unknown>,
  prevHash,
});

type Append = (sql: SqlClient, i: number) => Promise<void>;

const plainAppend: Append = async (sql, i) => {
  await sql.query(`INSERT INTO ${T}_events (type, actor, details) VALUES ($1, 'bench', $2)`, [
    'bench.event',
    JSON.stringify({ i }),
  ]);
};

const lockedAppend: Append = async (sql, i) => {
  const { rows } = await sql.query<{ seq: string; hash: string; now: Date }>(
    `SELECT seq, hash, date_trunc('milliseconds', now()) AS now FROM ${T}_head WHERE id = 1 FOR UPDATE`,
  );
  const head = rows[0]!;
  const seq = Number(head.seq) + 1;
  const details = { i };
  const hash = entryHash(fields(seq, head.now, 'bench.event', details, head.hash));
  await sql.query(
    `WITH e AS (INSERT INTO ${T}_events (at, type, actor, details, seq, prev_hash, hash)
                VALUES ($1, 'bench.event', 'bench', $2, $3, $4, $5))
     UPDATE ${T}_head SET seq = $3, hash = $5 WHERE id = 1`,
    [head.now, JSON.stringify(details), seq, head.hash, hash],
  );
};

/** Seals up to 1000 committed, unsealed entries; returns how many. */
async function sealOnce(db: SqlDatabase): Promise<number> {
  return db.transaction(async (sql) => {
    await sql.query('SELECT pg_advisory_xact_lock(42)');
    const { rows: head } = await sql.query<{ seq: string; hash: string }>(
      `SELECT seq, hash FROM ${T}_head WHERE id = 1`,
    );
    let seq = Number(head[0]!.seq);
    let prev = head[0]!.hash;
    const { rows } = await sql.query<{ id: string; at: Date; type: string; details: object }>(
      `SELECT e.id, e.at, e.type, e.details FROM ${T}_events e
         LEFT JOIN ${T}_seals s ON s.event_id = e.id
        WHERE s.event_id IS NULL ORDER BY e.id LIMIT 1000`,
    );
    if (rows.length === 0) return 0;
    const ids: string[] = [];
    const seqs: number[] = [];
    const prevs: string[] = [];
    const hashes: string[] = [];
    for (const r of rows) {
      seq += 1;
      const hash = entryHash(fields(seq, r.at, r.type, r.details, prev));
      ids.push(r.id);
      seqs.push(seq);
      prevs.push(prev);
      hashes.push(hash);
      prev = hash;
    }
    await sql.query(
      `INSERT INTO ${T}_seals SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[])`,
      [ids, seqs, prevs, hashes],
    );
    await sql.query(`UPDATE ${T}_head SET seq = $1, hash = $2 WHERE id = 1`, [seq, prev]);
    return rows.length;
  });
}

async function writers(db: SqlDatabase, concurrency: number, append: Append) {
  const deadline = performance.now() + SECONDS * 1000;
  let done = 0;
  let deadlocks = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        try {
          await db.transaction(async (sql) => {
            await sql.query(`UPDATE ${T}_rows SET n = n + 1 WHERE id = $1`, [
              1 + Math.floor(Math.random() * ROWS),
            ]);
            await append(sql, done);
            await append(sql, done);
          });
          done += 1;
        } catch (error) {
          if ((error as { code?: string }).code === '40P01') deadlocks += 1;
          else throw error;
        }
      }
    }),
  );
  return { txPerSecond: Math.round(done / SECONDS), deadlocks };
}

async function reset(db: SqlDatabase) {
  await db.exec(
    `TRUNCATE ${T}_events, ${T}_seals; UPDATE ${T}_head SET seq = 0, hash = '${GENESIS_HASH}'`,
  );
}

async function run(label: string, db: SqlDatabase, concurrencies: number[], rows: Row[]) {
  await db.exec(SCHEMA);
  try {
    for (const c of concurrencies) {
      await reset(db);
      const a = await writers(db, c, plainAppend);
      await reset(db);
      const b = await writers(db, c, lockedAppend);
      await reset(db);
      let sealing = true;
      const sealer = (async () => {
        while (sealing) if ((await sealOnce(db)) === 0) await new Promise((r) => setTimeout(r, 5));
      })();
      const c3 = await writers(db, c, plainAppend);
      const stopped = performance.now();
      const { rows: unsealed } = await db.query<{ n: string }>(
        `SELECT count(*) AS n FROM ${T}_events e LEFT JOIN ${T}_seals s ON s.event_id = e.id WHERE s.event_id IS NULL`,
      );
      while ((await sealOnce(db)) > 0);
      const catchUpMs = Math.round(performance.now() - stopped);
      sealing = false;
      await sealer;
      const tx = 'tx/s';
      rows.push(
        {
          case: `${label}, ${c} writers: plain INSERTs`,
          baseline: true,
          throughput: a.txPerSecond,
          unit: tx,
          ratio: 1,
        },
        {
          case: `${label}, ${c} writers: head lock (chosen)`,
          throughput: b.txPerSecond,
          unit: tx,
          ratio: Math.round((b.txPerSecond / a.txPerSecond) * 100) / 100,
          deadlocks: b.deadlocks,
        },
        {
          case: `${label}, ${c} writers: sealer`,
          throughput: c3.txPerSecond,
          unit: tx,
          ratio: Math.round((c3.txPerSecond / a.txPerSecond) * 100) / 100,
          unsealedAtStop: Number(unsealed[0]!.n),
          catchUpMs,
        },
      );
    }
  } finally {
    await db.exec(
      `DROP TABLE IF EXISTS ${T}_rows, ${T}_events, ${T}_head, ${T}_seals; SELECT '${randomBytes(1).toString('hex')}'`,
    );
  }
}

export async function auditAppend(options: BenchOptions): Promise<ScenarioResult> {
  SECONDS = options.seconds ?? (options.quick ? 0.3 : 3);
  const concurrencies = options.quick ? [1, 8] : [1, 8, 32];
  const rows: Row[] = [];
  const created = await benchDatabase(options.databaseUrl);
  const pg = new PgDatabase({ connectionString: created.url, max: 40 });
  try {
    await run('PostgreSQL', pg, concurrencies, rows);
  } finally {
    await pg.close();
    await created.drop();
  }
  const lite = await PgliteDatabase.open();
  try {
    await run('PGlite', lite, [1], rows);
  } finally {
    await lite.close();
  }
  return {
    id: 'audit-append',
    title: 'Audit append: chaining entries under concurrent writers',
    method:
      `${SECONDS} s per case; each transaction = 1 UPDATE of a random row + 2 audit entries, ` +
      'in tables of their own (not the vault schema). Plain INSERTs are the cost floor; the ' +
      'head lock is what the vault does; the sealer chains committed entries afterwards. ' +
      'No target: this records the design choice of issue 9.',
    rows,
    targets: [],
  };
}
