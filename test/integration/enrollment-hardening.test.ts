import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { loadUserReferenceHasher } from '../../src/core/enrollment/context';
import { EnrollmentPipeline } from '../../src/core/enrollment/pipeline';
import { BlobStores } from '../../src/core/blobs';
import type { Clock, EnrollmentRecord } from '../../src/core/ports';
import {
  FAST_RETRY,
  type LedgerChoice,
  removeDir,
  type SimulatorClient,
  startTestSimulator,
  startTestVault,
  type TestVault,
  TOKENS,
  vaultLedgerKinds,
} from '../helpers/vault';

const SETTLED = new Set(['ACTIVE', 'REJECTED', 'FAILED', 'PARKED']);

/** A clock a test moves forward by hand (lease expiry, orphan grace). */
class TestClock implements Clock {
  private offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

describe.each(vaultLedgerKinds)('enrollment hardening on %s', (_name, chooseLedger) => {
  let sim: SimulatorClient;
  let ledgerChoice: LedgerChoice;
  let vault: TestVault;
  const clock = new TestClock();

  beforeAll(async () => {
    sim = await startTestSimulator();
    ledgerChoice = await chooseLedger();
    vault = await startTestVault(sim, ledgerChoice, { overrides: { clock } });
  });
  afterAll(async () => {
    await vault?.stop();
    await ledgerChoice?.dispose();
    await sim?.running.close();
    await removeDir(vault.dataDir);
  });
  afterEach(() => sim.clearFaults());

  const callbackUrl = () => `${vault.url}/webhooks/jumio`;
  const get = (ref: string, v: TestVault = vault) =>
    v.container.ledger.transaction((tx) => tx.enrollments.get(ref));
  const audits = (enrollmentReference: string, v: TestVault = vault) =>
    v.container.ledger.transaction((tx) => tx.audit.list({ enrollmentReference, limit: 1000 }));
  const blobKeys = async (ref: string, v: TestVault = vault) =>
    (await v.container.blobs.list(`facemaps/${ref}/`)).keys;
  const requestsFor = async (ref: string) =>
    (await sim.requests()).filter((r) => r.path.includes(ref));

  /** Steps the pipeline until the enrollment stops moving (a final or parked state). */
  async function settle(ref: string, v: TestVault = vault): Promise<EnrollmentRecord> {
    for (let i = 0; i < 200; i++) {
      await v.container.pipeline.runOnce();
      const e = await get(ref, v);
      const destroying = e?.state === 'SUPERSEDED' && e.blobKey && !e.blobDestroyedAt;
      if (e && (SETTLED.has(e.state) || (e.state === 'SUPERSEDED' && !destroying))) return e;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`enrollment ${ref} did not settle: ${JSON.stringify(await get(ref, v))}`);
  }

  async function onboard(
    scan: Record<string, unknown> = {},
    callback: Record<string, unknown> = {},
    v: TestVault = vault,
  ) {
    const created = await sim.createScan(scan);
    const delivered = await sim.sendCallback(
      created.scanReference,
      `${v.url}/webhooks/jumio`,
      callback,
    );
    expect(delivered.status).toBe(200);
    return created;
  }

  const user = (label: string) => `user-${label}-${randomBytes(4).toString('hex')}`;
  const iso = (s: string) => new Date(s).toISOString();

  describe('which of two scans of one person stays ACTIVE (issue 7 #1)', () => {
    it("keeps the newer scan when an older one arrives late with an undocumented callback date, using Jumio's retrieval date", async () => {
      const u = user('late');
      const newer = await onboard({ customerId: u, transactionDate: iso('2026-05-02T10:00:00Z') });
      expect((await settle(newer.scanReference)).state).toBe('ACTIVE');
      const older = await onboard(
        { customerId: u, transactionDate: iso('2026-05-01T10:00:00Z') },
        { overrides: { transactionDate: '01/05/2026 10:00' } },
      );
      const late = await settle(older.scanReference);
      expect(late).toMatchObject({ state: 'SUPERSEDED', transactionDate: null });
      expect(late.jumioTransactionDate).toEqual(new Date('2026-05-01T10:00:00Z'));
      const kept = await get(newer.scanReference);
      expect(kept).toMatchObject({ state: 'ACTIVE' });
      // The newer facemap is intact; only the late one's blob is destroyed.
      expect(await blobKeys(newer.scanReference)).toEqual([kept!.blobKey]);
      expect(await blobKeys(older.scanReference)).toEqual([]);
      expect((await audits(older.scanReference)).map((a) => a.type)).toContain(
        'enrollment.superseded',
      );
      expect((await audits(newer.scanReference)).map((a) => a.type)).not.toContain(
        'enrollment.superseded',
      );
    });

    it('lets a newer scan replace the ACTIVE one', async () => {
      const u = user('newer');
      const first = await onboard({ customerId: u, transactionDate: iso('2026-06-01T10:00:00Z') });
      await settle(first.scanReference);
      const second = await onboard({
        customerId: u,
        transactionDate: iso('2026-06-02T10:00:00Z'),
      });
      expect((await settle(second.scanReference)).state).toBe('ACTIVE');
      expect(await settle(first.scanReference)).toMatchObject({ state: 'SUPERSEDED' });
      expect(await blobKeys(first.scanReference)).toEqual([]);
    });

    it("falls back to the callback's date when the Retrieval API gives none", async () => {
      const u = user('fallback');
      const noDate = { omitTransactionDate: true };
      const newer = await onboard({
        customerId: u,
        transactionDate: iso('2026-07-02T10:00:00Z'),
        responseVariant: noDate,
      });
      await settle(newer.scanReference);
      const older = await onboard({
        customerId: u,
        transactionDate: iso('2026-07-01T10:00:00Z'),
        responseVariant: noDate,
      });
      const late = await settle(older.scanReference);
      expect(late).toMatchObject({ state: 'SUPERSEDED', jumioTransactionDate: null });
      expect(await get(newer.scanReference)).toMatchObject({ state: 'ACTIVE' });
    });

    it.each([
      [
        'no date from either source',
        { responseVariant: { omitTransactionDate: true } },
        { overrides: { transactionDate: null } },
        'scan_date_unknown',
      ],
      ['the same date', {}, {}, 'scan_date_equal'],
    ])(
      'parks the second scan when the order cannot be established (%s), destroying nothing',
      async (_label, scan, callback, reason) => {
        const u = user('park');
        const date = iso('2026-08-01T10:00:00Z');
        const first = await onboard({ customerId: u, transactionDate: date, ...scan }, callback);
        await settle(first.scanReference);
        const second = await onboard({ customerId: u, transactionDate: date, ...scan }, callback);
        const parked = await settle(second.scanReference);
        expect(parked).toMatchObject({ state: 'PARKED', reason });
        const active = await get(first.scanReference);
        expect(active).toMatchObject({ state: 'ACTIVE' });
        // Both facemaps are still held.
        expect(await blobKeys(first.scanReference)).toEqual([active!.blobKey]);
        expect(await blobKeys(second.scanReference)).toEqual([parked.blobKey]);
        const parkedAudit = (await audits(second.scanReference)).find(
          (a) => a.type === 'enrollment.parked',
        );
        expect(parkedAudit?.details).toMatchObject({
          reason,
          activeEnrollment: first.scanReference,
        });
      },
    );

    it.each([
      ['activate', 'second'],
      ['discard', 'first'],
    ] as const)(
      'lets an admin resolve a parked scan (%s), destroying exactly the other facemap',
      async (action, winner) => {
        const u = user(`resolve-${action}`);
        const noDate = { responseVariant: { omitTransactionDate: true } };
        const noCallbackDate = { overrides: { transactionDate: null } };
        const first = await onboard({ customerId: u, ...noDate }, noCallbackDate);
        await settle(first.scanReference);
        const second = await onboard({ customerId: u, ...noDate }, noCallbackDate);
        expect((await settle(second.scanReference)).state).toBe('PARKED');

        const path = `/v1/enrollments/by-scan/${second.scanReference}/resolve`;
        await request(vault.url)
          .post(path)
          .set('Authorization', `Bearer ${TOKENS.auditor}`)
          .send({ action })
          .expect(403);
        await request(vault.url)
          .post(path)
          .set('Authorization', `Bearer ${TOKENS.admin}`)
          .send({ action: 'merge' })
          .expect(400);
        const res = await request(vault.url)
          .post(path)
          .set('Authorization', `Bearer ${TOKENS.admin}`)
          .send({ action })
          .expect(200);
        const [kept, lost] =
          winner === 'second'
            ? [second.scanReference, first.scanReference]
            : [first.scanReference, second.scanReference];
        expect(res.body).toMatchObject({ enrollmentReference: second.scanReference });
        expect(await settle(lost)).toMatchObject({ state: 'SUPERSEDED' });
        const e = await get(kept);
        expect(e).toMatchObject({ state: 'ACTIVE' });
        expect(await blobKeys(kept)).toEqual([e!.blobKey]);
        expect(await blobKeys(lost)).toEqual([]);
        expect((await audits(second.scanReference)).map((a) => a.type)).toContain(
          'enrollment.resolved',
        );
        // Only a PARKED enrollment can be resolved.
        await request(vault.url)
          .post(path)
          .set('Authorization', `Bearer ${TOKENS.admin}`)
          .send({ action })
          .expect(409);
      },
    );
  });

  describe('what confirm trusts (issue 7 #3)', () => {
    type Case = { scan: Record<string, unknown>; callback: Record<string, unknown> };
    const facemapUrl = (ref: string) => `${sim.baseUrl}/api/netverify/v2/scans/${ref}/data/facemap`;
    it.each([
      [
        'the Retrieval API names another scan',
        (ref: string): Case => ({
          scan: { responseVariant: { scanReference: `${ref.slice(0, -1)}x` } },
          callback: {},
        }),
        'retrieval_scan_mismatch',
      ],
      [
        'the Retrieval API names nobody while the binding needs it',
        (): Case => ({
          // Only the (unsigned) callback names the person.
          scan: { customerId: undefined },
          callback: { overrides: { customerId: user('claimed') } },
        }),
        'retrieval_user_reference_missing',
      ],
      [
        "the Retrieval API's facemap link is not exactly this scan's facemap path",
        (ref: string): Case => ({
          scan: { responseVariant: { facemapHref: `${facemapUrl(ref)}?x=1` } },
          callback: {},
        }),
        'unsafe_facemap_url',
      ],
      [
        "the callback's facemap link points at another scan",
        (ref: string): Case => ({
          scan: {},
          callback: { overrides: { facemap: facemapUrl(`${ref.slice(0, -1)}y`) } },
        }),
        'unsafe_facemap_url',
      ],
    ])('rejects when %s, fetching no facemap', async (_label, build, reason) => {
      const ref = `0e0e0e0e-1111-4222-8333-${randomBytes(6).toString('hex')}`;
      const { scan, callback } = build(ref);
      await sim.createScan({ scanReference: ref, ...scan });
      await sim.sendCallback(ref, callbackUrl(), callback);
      expect(await settle(ref)).toMatchObject({ state: 'REJECTED', reason });
      expect((await sim.scan(ref)).facemapDownloads).toBe(0);
      expect((await sim.scan(ref)).deleted).toBe(false);
    });

    it('accepts a Retrieval API silent about the person when an intent bound it', async () => {
      const ownLedger = await chooseLedger();
      const bound = await startTestVault(sim, ownLedger, { env: { ENROLLMENT_BINDING: 'intent' } });
      try {
        const u = user('intent');
        const { scanReference: ref } = await sim.createScan({ customerId: undefined });
        await request(bound.url)
          .post('/v1/enrollment-intents')
          .set('Authorization', `Bearer ${TOKENS.onboarding}`)
          .send({ enrollmentReference: ref, userReference: u })
          .expect(201);
        await sim.sendCallback(ref, `${bound.url}/webhooks/jumio`, {
          overrides: { customerId: u },
        });
        expect(await settle(ref, bound)).toMatchObject({ state: 'ACTIVE', userReference: u });
      } finally {
        await bound.stop();
        await ownLedger.dispose();
        await removeDir(bound.dataDir);
      }
    });
  });

  describe('no ciphertext outlives its enrollment (issue 7 #4)', () => {
    it('a FAILED enrollment keeps no ciphertext from its store attempts', async () => {
      // Every read-back fails: each attempt writes a blob and never records it.
      const ownLedger = await chooseLedger();
      const failing = await startTestVault(sim, ownLedger, {
        overrides: {
          wrapBlobs: (real) =>
            Object.assign(Object.create(real) as typeof real, {
              get: async () => {
                throw new Error('read-back failed');
              },
            }),
        },
      });
      try {
        const { scanReference: ref } = await onboard({}, {}, failing);
        const e = await settle(ref, failing);
        expect(e).toMatchObject({ state: 'FAILED', attempts: FAST_RETRY.maxAttempts });
        expect((await sim.scan(ref)).facemapDownloads).toBe(FAST_RETRY.maxAttempts);
        expect(await blobKeys(ref, failing)).toEqual([]);
        expect((await sim.scan(ref)).deleted).toBe(false);
      } finally {
        await failing.stop();
        await ownLedger.dispose();
        await removeDir(failing.dataDir);
      }
    });

    it('a facemap REJECTED after an earlier store attempt leaves no ciphertext', async () => {
      // The first attempt writes its blob, then its read-back fails; by the next attempt the
      // facemap is gone at Jumio, so the enrollment ends REJECTED.
      const ownLedger = await chooseLedger();
      let reads = 0;
      const vault2 = await startTestVault(sim, ownLedger, {
        overrides: {
          wrapBlobs: (real) =>
            Object.assign(Object.create(real) as typeof real, {
              get: async (key: string) => {
                reads += 1;
                if (reads === 1) {
                  await sim.fault({ endpoint: 'facemap', kind: 'status', status: 404 });
                  throw new Error('read-back failed');
                }
                return real.get(key);
              },
            }),
        },
      });
      try {
        const { scanReference: ref } = await onboard({}, {}, vault2);
        const e = await settle(ref, vault2);
        expect(e).toMatchObject({ state: 'REJECTED', reason: 'facemap_not_found' });
        expect(reads).toBe(1);
        expect(await blobKeys(ref, vault2)).toEqual([]);
      } finally {
        await vault2.stop();
        await ownLedger.dispose();
        await removeDir(vault2.dataDir);
      }
    });

    it('the periodic sweep removes unheld blobs past the grace period, audited, and keeps held ones', async () => {
      const active = await onboard({ customerId: user('held') });
      const held = await settle(active.scanReference);
      expect(held.state).toBe('ACTIVE');
      const blobs = vault.container.blobs;
      const unknownRef = `f1f1f1f1-2222-4333-8444-${randomBytes(6).toString('hex')}`;
      const planted = [
        `facemaps/${active.scanReference}/stray00000000.bin`,
        `facemaps/${unknownRef}/lost00000000.bin`,
      ];
      for (const key of planted) await blobs.put(key, randomBytes(64));

      const sweep = async () => {
        // Force the task due now, then step the schedules queue.
        await vault.container.ledger.transaction((tx) =>
          tx.queues.settle(
            'schedules',
            'orphan-sweep',
            { attempts: 0, nextAttemptAt: clock.now(), lastError: null },
            clock.now(),
          ),
        );
        await vault.container.schedules.runOnce();
      };
      // Within the grace period nothing is touched.
      await sweep();
      for (const key of planted) expect(await blobs.exists(key)).toBe(true);

      clock.advance(2 * 3_600_000);
      await sweep();
      for (const key of planted) expect(await blobs.exists(key)).toBe(false);
      expect(await blobs.exists(held.blobKey!)).toBe(true);
      const removed = (
        await vault.container.ledger.transaction((tx) => tx.audit.list({ limit: 1000 }))
      ).filter((a) => a.type === 'facemap.orphan_removed');
      expect(removed.map((a) => a.details.blobKey)).toEqual(expect.arrayContaining(planted));
      expect(removed.find((a) => a.details.blobKey === planted[0])).toMatchObject({
        enrollmentReference: active.scanReference,
        details: { enrollmentState: 'ACTIVE', bytes: expect.any(Number) },
      });
      const task = await vault.container.ledger.transaction((tx) =>
        tx.schedules.get('orphan-sweep'),
      );
      expect(task?.lastCompletedAt).not.toBeNull();
      expect(task!.nextAttemptAt!.getTime()).toBeGreaterThan(clock.now().getTime());
    });
  });

  describe('replicas (issue 7 #9, test honesty)', () => {
    it('two pipelines with their own worker ids and short leases never repeat a download or a delete', async () => {
      // Each facemap download takes 3 s. Old batch leasing: one pass claimed all ten, so
      // the later leases (15 s) ran out while the pass still worked (30 s) and the other
      // replica repeated them. Leased one at a time, a step has 15 s for a 3 s download:
      // room enough on a machine busy with other heavy processes (CI saw 6 s run out).
      const ownLedger = await chooseLedger();
      const replicas = await startTestVault(sim, ownLedger, {
        overrides: { jumio: { timeouts: { connectMs: 5000, headersMs: 20_000, bodyMs: 20_000 } } },
      });
      try {
        await sim.fault({ endpoint: 'facemap', kind: 'slow', delayMs: 3000 });
        const { container } = replicas;
        const hash = await loadUserReferenceHasher(container.ledger, container.envelope);
        const pipelines = ['replica-a', 'replica-b'].map(
          (workerId) =>
            new EnrollmentPipeline(
              { ...container, blobs: new BlobStores(container.blobs), hashUserReference: hash },
              {
                userReferenceField: 'customerId',
                retry: FAST_RETRY,
                leaseMs: 15_000,
                batchSize: 10,
                workerId,
              },
            ),
        );
        const refs: string[] = [];
        for (let i = 0; i < 10; i++) refs.push((await onboard({}, {}, replicas)).scanReference);
        const settled = async () =>
          (await Promise.all(refs.map((r) => get(r, replicas)))).every(
            (e) => e && SETTLED.has(e.state),
          );
        const deadline = Date.now() + 120_000;
        await Promise.all(
          pipelines.map(async (p) => {
            while (Date.now() < deadline && !(await settled())) {
              if ((await p.runOnce()) === 0) await new Promise((r) => setTimeout(r, 20));
            }
          }),
        );
        for (const ref of refs) {
          expect(await get(ref, replicas)).toMatchObject({ state: 'ACTIVE' });
          const seen = (await requestsFor(ref)).map((r) => r.endpoint);
          expect(seen.filter((x) => x === 'facemap')).toHaveLength(1);
          expect(seen.filter((x) => x === 'scanDelete')).toHaveLength(1);
          expect(await blobKeys(ref, replicas)).toHaveLength(1);
        }
      } finally {
        await replicas.stop();
        await ownLedger.dispose();
        await removeDir(replicas.dataDir);
      }
    });
  });

  describe('crash inside a step (test honesty)', () => {
    it.each([
      ['store', ['facemap', 'facemap']],
      ['delete_at_jumio', ['scanDelete', 'scanDelete']],
    ] as const)(
      'converges after a crash between the %s I/O and its commit',
      async (step, repeated) => {
        const ownLedger = await chooseLedger();
        const ownClock = new TestClock();
        const crashing = await startTestVault(sim, ownLedger, {
          overrides: {
            clock: ownClock,
            pipeline: {
              beforeCommit: (s) => {
                if (s === step) throw new Error(`crash before committing ${step}`);
              },
            },
          },
        });
        let restarted: TestVault | undefined;
        try {
          const { scanReference: ref } = await onboard({}, {}, crashing);
          await expect(settle(ref, crashing)).rejects.toThrow(`crash before committing ${step}`);
          await crashing.stop();
          // The dead worker's lease has to run out before anyone takes the row again.
          ownClock.advance(60_000);
          restarted = await startTestVault(
            sim,
            ownLedger,
            { overrides: { clock: ownClock } },
            crashing.dataDir,
          );
          const e = await settle(ref, restarted);
          expect(e.state).toBe('ACTIVE');
          const seen = (await requestsFor(ref)).map((r) => r.endpoint);
          const kind = repeated[0];
          expect(seen.filter((x) => x === kind)).toHaveLength(repeated.length);
          expect((await sim.scan(ref)).deleted).toBe(true);
          expect(await blobKeys(ref, restarted)).toEqual([e.blobKey]);
          const types = (await audits(ref, restarted)).map((a) => a.type);
          expect(types).toEqual([
            'enrollment.received',
            'enrollment.confirmed',
            'facemap.stored',
            'enrollment.deleted_at_jumio',
            'enrollment.activated',
          ]);
        } finally {
          await restarted?.stop();
          await ownLedger.dispose();
          await removeDir(crashing.dataDir);
        }
      },
    );
  });
});
