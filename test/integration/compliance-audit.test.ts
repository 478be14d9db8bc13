import path from 'node:path';
import { entryHash } from '../../src/core/compliance/chain';
import { digestKey } from '../../src/core/compliance/audit-trail';
import type { AuditEvent } from '../../src/core/ports';
import {
  type LedgerChoice,
  removeDir,
  type SimulatorClient,
  startTestSimulator,
  startTestVault,
  type TestVault,
  vaultLedgerKinds,
} from '../helpers/vault';
import { api, dbOf } from '../helpers/compliance';

/**
 * The tamper-evident audit trail (issue 9 #2) through real HTTP on each ledger: the
 * database refuses edits, and when someone who controls it edits anyway (trigger disabled),
 * deletes, or recomputes the whole chain, /v1/audit/verify names the first broken sequence
 * and why; signed digests outside the database catch what the chain alone cannot.
 */
describe.each(vaultLedgerKinds)('audit trail on %s', (name, chooseLedger) => {
  let sim: SimulatorClient;
  let ledger: LedgerChoice;
  let vault: TestVault;

  beforeAll(async () => {
    sim = await startTestSimulator();
    ledger = await chooseLedger();
    vault = await startTestVault(sim, ledger);
    await appendEntries(vault, 'seed', 30);
  });
  afterAll(async () => {
    await vault?.stop();
    await ledger?.dispose();
    await sim?.running.close();
    await removeDir(vault.dataDir);
  });

  async function appendEntries(v: TestVault, actor: string, n: number) {
    for (let i = 0; i < n; i++) {
      await v.container.ledger.transaction((tx) =>
        tx.audit.append({
          type: 'test.fact',
          actor,
          userReference: `user-${i % 3}`,
          details: { i, nested: { b: [1, 'two'], a: null } },
        }),
      );
    }
  }

  const verify = async () => (await api(vault, 'auditor').get('/v1/audit/verify').expect(200)).body;
  const digestNow = async () => (await api(vault).post('/v1/audit/digests').expect(201)).body;
  const chain = () => vault.container.ledger.transaction((tx) => tx.audit.chain(0, 100_000));

  /** Plays whoever controls the database: statements with the append-only trigger off. */
  async function asAttacker(statements: (db: ReturnType<typeof dbOf>) => Promise<unknown>) {
    const db = dbOf(vault);
    await db.exec('ALTER TABLE audit_events DISABLE TRIGGER USER');
    try {
      await statements(db);
    } finally {
      await db.exec('ALTER TABLE audit_events ENABLE TRIGGER USER');
    }
  }

  /** Recomputes every hash from `fromSeq` on, as an attacker covering an edit would. */
  async function rechain(db: ReturnType<typeof dbOf>, fromSeq: number) {
    const all = await chain();
    let prevHash = all.find((e) => e.seq === fromSeq - 1)?.hash ?? '0'.repeat(64);
    for (const e of all.filter((x) => x.seq >= fromSeq)) {
      const hash = entryHash({ ...e, prevHash });
      await db.query('UPDATE audit_events SET prev_hash = $2, hash = $3 WHERE seq = $1', [
        e.seq,
        prevHash,
        hash,
      ]);
      prevHash = hash;
    }
    await db.query('UPDATE audit_chain_head SET hash = $1', [prevHash]);
  }

  it('chains every entry: sequence without gaps, previous hash, own hash over all fields', async () => {
    const entries = await chain();
    expect(entries.map((e) => e.seq)).toEqual(entries.map((_, i) => i + 1));
    entries.forEach((e, i) => {
      expect(e.prevHash).toBe(i === 0 ? '0'.repeat(64) : entries[i - 1]!.hash);
      expect(entryHash(e)).toBe(e.hash);
    });
    // Any field changes the hash.
    const e = entries[3]!;
    for (const forged of [
      { ...e, actor: 'x' },
      { ...e, at: new Date(e.at.getTime() + 1) },
      { ...e, details: { ...e.details, i: 99 } },
      { ...e, userReference: null },
    ]) {
      expect(entryHash(forged)).not.toBe(e.hash);
    }
  });

  it('refuses UPDATE and DELETE on the audit table', async () => {
    await expect(
      dbOf(vault).query(`UPDATE audit_events SET actor = 'x' WHERE seq = 1`),
    ).rejects.toThrow(/append-only/);
    await expect(dbOf(vault).query('DELETE FROM audit_events WHERE seq = 1')).rejects.toThrow(
      /append-only/,
    );
  });

  it('verifies an untouched trail against its digests, also after an empty period', async () => {
    const first = await digestNow();
    const empty = await digestNow();
    expect(empty.digest).toMatchObject({
      number: first.digest.number + 1,
      fromSequence: first.digest.toSequence + 1,
      toSequence: first.digest.toSequence,
      chainHead: first.digest.chainHead,
      previousDigestSignature: first.signature,
    });
    const stored = JSON.parse(
      Buffer.from(await vault.container.blobs.get(digestKey(empty.digest.number))).toString(),
    );
    expect(stored).toEqual(empty);
    const head = (await chain()).at(-1)!;
    expect(await verify()).toEqual({
      ok: true,
      checkedThrough: head.seq,
      digestsChecked: empty.digest.number,
    });
  });

  it('reports an edited entry at its sequence', async () => {
    const target = (await chain())[9]!;
    await asAttacker((db) =>
      db.query(`UPDATE audit_events SET details = '{"i": 1000}' WHERE seq = $1`, [target.seq]),
    );
    try {
      expect(await verify()).toMatchObject({
        ok: false,
        brokenAt: target.seq,
        reason: 'edited',
        checkedThrough: target.seq - 1,
      });
    } finally {
      await asAttacker((db) =>
        db.query('UPDATE audit_events SET details = $2::jsonb WHERE seq = $1', [
          target.seq,
          JSON.stringify(target.details),
        ]),
      );
    }
    expect((await verify()).ok).toBe(true);
  });

  it('reports a deleted entry', async () => {
    const target = (await chain())[14]!;
    await asAttacker((db) => db.query('DELETE FROM audit_events WHERE seq = $1', [target.seq]));
    try {
      expect(await verify()).toMatchObject({ ok: false, brokenAt: target.seq, reason: 'deleted' });
    } finally {
      await restore(target);
    }
    expect((await verify()).ok).toBe(true);
  });

  async function restore(e: AuditEvent) {
    await dbOf(vault).query(
      `INSERT INTO audit_events (id, at, type, actor, enrollment_reference, authentication_reference,
         user_reference, details, seq, prev_hash, hash)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8::jsonb, $9, $10, $11)`,
      [
        e.id,
        e.at,
        e.type,
        e.actor,
        e.enrollmentReference,
        e.authenticationReference,
        e.userReference,
        JSON.stringify(e.details),
        e.seq,
        e.prevHash,
        e.hash,
      ],
    );
  }

  it('catches a chain recomputed after an edit with the signed digests', async () => {
    const target = (await chain())[4]!;
    await asAttacker(async (db) => {
      await db.query(`UPDATE audit_events SET actor = 'someone-else' WHERE seq = $1`, [target.seq]);
      await rechain(db, target.seq);
    });
    try {
      const report = await verify();
      // The chain itself is consistent again; only the digest, signed outside, disagrees.
      expect(report).toMatchObject({ ok: false, reason: 'chain_rewritten' });
      expect(report.brokenAt).toBeGreaterThanOrEqual(target.seq);
      expect(report.message).toMatch(/digest/);
    } finally {
      await asAttacker(async (db) => {
        await db.query('UPDATE audit_events SET actor = $2 WHERE seq = $1', [
          target.seq,
          target.actor,
        ]);
        await rechain(db, target.seq);
      });
    }
    expect((await verify()).ok).toBe(true);
  });

  it('reports a digest with a bad signature, and a missing digest', async () => {
    await appendEntries(vault, 'later', 3);
    const written = await digestNow();
    const key = digestKey(written.digest.number);
    const blobs = vault.container.blobs;
    const original = await blobs.get(key);
    const sig = Buffer.from(written.signature, 'base64');
    sig[0] = sig[0]! ^ 0xff;
    await blobs.put(
      key,
      Buffer.from(JSON.stringify({ ...written, signature: sig.toString('base64') })),
    );
    try {
      expect(await verify()).toMatchObject({
        ok: false,
        reason: 'digest_signature_invalid',
        brokenAt: written.digest.fromSequence,
      });
      // A forged chain head, re-signed without the key, fails the same way.
      const forged = { ...written, digest: { ...written.digest, chainHead: 'f'.repeat(64) } };
      await blobs.put(key, Buffer.from(JSON.stringify(forged)));
      expect((await verify()).reason).toBe('digest_signature_invalid');
      await blobs.put(key, original);
      await digestNow();
      await blobs.delete(key);
      expect(await verify()).toMatchObject({ ok: false, reason: 'digest_missing' });
    } finally {
      await blobs.put(key, original);
    }
    expect((await verify()).ok).toBe(true);
  });

  it('pages the audit events with filters and a tamper-checked cursor', async () => {
    const all = await chain();
    const expected = all.filter((e) => e.type === 'test.fact' && e.userReference === 'user-1');
    const seen: number[] = [];
    let cursor: string | null = null;
    do {
      const res = await api(vault, 'auditor').get(
        `/v1/audit-events?type=test.fact&userReference=user-1&limit=4${cursor ? `&cursor=${cursor}` : ''}`,
      );
      expect(res.status).toBe(200);
      seen.push(...res.body.items.map((i: { seq: number }) => i.seq));
      cursor = res.body.nextCursor;
    } while (cursor);
    expect(seen).toEqual(expected.map((e) => e.seq));
    const page = await api(vault, 'auditor').get('/v1/audit-events?limit=1');
    expect(page.body.items[0]).toMatchObject({
      seq: 1,
      hash: all[0]!.hash,
      prevHash: '0'.repeat(64),
    });
    const [body, tag] = (page.body.nextCursor as string).split('.');
    const forged = Buffer.from(JSON.stringify({ seq: 20 })).toString('base64url');
    await api(vault, 'auditor').get(`/v1/audit-events?cursor=${forged}.${tag}`).expect(400);
    await api(vault, 'auditor').get(`/v1/audit-events?cursor=${body}.${tag}`).expect(200);
    const during = await api(vault, 'auditor').get(
      `/v1/audit-events?after=${all[0]!.at.toISOString()}&before=${new Date(all.at(-1)!.at.getTime() + 1).toISOString()}&limit=1000`,
    );
    expect(during.body.items.length).toBe(all.length);
  });

  (name === 'postgres' ? it : it.skip)(
    'keeps one verifiable chain when two vaults on one PostgreSQL append at once',
    async () => {
      // A replica: same database, same master key and signing key, its own process state.
      const second = await startTestVault(sim, ledger, {
        env: {
          VAULT_LOCAL_KEY_FILE: path.join(vault.dataDir, 'master.key'),
          AUDIT_SIGNING_KEY_FILE: path.join(vault.dataDir, 'audit-signing.key'),
        },
      });
      try {
        const before = (await chain()).length;
        await Promise.all(
          [vault, second].flatMap((v, n) =>
            Array.from({ length: 4 }, (_, w) => appendEntries(v, `replica-${n}-${w}`, 15)),
          ),
        );
        const after = await chain();
        expect(after.length).toBe(before + 120);
        await digestNow();
        expect(await verify()).toEqual({
          ok: true,
          checkedThrough: after.at(-1)!.seq,
          digestsChecked: expect.any(Number),
        });
      } finally {
        await second.stop();
        await removeDir(second.dataDir);
      }
    },
    60_000,
  );
});
