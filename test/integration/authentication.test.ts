import { randomBytes } from 'node:crypto';
import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import type { SqlLedger } from '../../src/adapters/ledger/sql-ledger';
import type { JumioApi } from '../../src/core/jumio';
import type { BlobStore, Clock, EnrollmentRecord } from '../../src/core/ports';
import { refuseAuditEntries } from '../helpers/ledgers';
import {
  type LedgerChoice,
  readTree,
  removeDir,
  type SimulatorClient,
  startTestSimulator,
  startTestVault,
  type TestVault,
  TOKENS,
  vaultLedgerKinds,
} from '../helpers/vault';
import { WebhookReceiver } from '../helpers/webhook-receiver';

/** A clock the test moves forward by hand (expiry, reconciliation, notification backoff). */
class TestClock implements Clock {
  private offsetMs = 0;
  now(): Date {
    return new Date(Date.now() + this.offsetMs);
  }
  advance(ms: number): void {
    this.offsetMs += ms;
  }
}

// Each test enrols users through the whole pipeline first: room for a busy machine.
jest.setTimeout(120_000);

const MINUTE = 60_000;
const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const RATE_LIMIT = 5;

describe.each(vaultLedgerKinds)('authentication on %s', (_name, chooseLedger) => {
  let sim: SimulatorClient;
  let ledgerChoice: LedgerChoice;
  let vault: TestVault;
  let receiver: WebhookReceiver;
  const clock = new TestClock();
  /** Blob reads of facemaps (a read is the first step of every decrypt). */
  const facemapReads: string[] = [];
  /** The facemap arrays handed to Jumio's initiate, kept to check they were zeroed. */
  const sentFacemaps: Uint8Array[] = [];
  /** Initiates in flight at Jumio per enrollment, and the most ever seen at once. */
  const inFlight = new Map<string, number>();
  let maxInFlight = 0;

  beforeAll(async () => {
    sim = await startTestSimulator();
    receiver = await WebhookReceiver.start();
    ledgerChoice = await chooseLedger();
    vault = await startTestVault(sim, ledgerChoice, {
      env: {
        AUTH_MAX_PER_USER_PER_HOUR: String(RATE_LIMIT),
        VAULT_NOTIFY_ALLOWED_ORIGINS: receiver.origin,
        VAULT_NOTIFY_SECRET: SECRET,
      },
      overrides: {
        clock,
        wrapBlobs: (blobs: BlobStore): BlobStore =>
          Object.assign(Object.create(blobs) as BlobStore, {
            get: (key: string) => {
              facemapReads.push(key);
              return blobs.get(key);
            },
          }),
        wrapJumio: (jumio: JumioApi): JumioApi =>
          Object.assign(Object.create(jumio) as JumioApi, {
            initiateAuthentication: async (
              input: Parameters<JumioApi['initiateAuthentication']>[0],
            ) => {
              sentFacemaps.push(input.facemap);
              const ref = input.enrollmentTransactionReference;
              inFlight.set(ref, (inFlight.get(ref) ?? 0) + 1);
              maxInFlight = Math.max(maxInFlight, inFlight.get(ref)!);
              try {
                return await jumio.initiateAuthentication(input);
              } finally {
                inFlight.set(ref, inFlight.get(ref)! - 1);
              }
            },
          }),
        notifications: { backoff: { baseMs: 1000, maxMs: 1000, maxAttempts: Infinity } },
      },
    });
  });
  afterAll(async () => {
    await vault?.stop();
    await ledgerChoice?.dispose();
    await sim?.running.close();
    await receiver?.close();
    await removeDir(vault.dataDir);
  });
  afterEach(() => sim.clearFaults());

  // ------------------------------------------------------------ helpers

  const user = (label: string) => `user-${label}-${randomBytes(4).toString('hex')}`;
  const ledger = () => vault.container.ledger;
  const auditsOf = async (filter: { userReference?: string; authenticationReference?: string }) =>
    (await ledger().transaction((tx) => tx.audit.list({ limit: 1000 }))).filter(
      (a) =>
        (filter.userReference === undefined || a.userReference === filter.userReference) &&
        (filter.authenticationReference === undefined ||
          a.authenticationReference === filter.authenticationReference),
    );
  const initiates = async () => (await sim.requests()).filter((r) => r.endpoint === 'initiate');
  const record = (ref: string) => ledger().transaction((tx) => tx.authentications.get(ref));
  const enrollment = (ref: string) => ledger().transaction((tx) => tx.enrollments.get(ref));

  /** An eligible onboarding driven to ACTIVE through the pipeline. */
  async function enrol(userReference: string) {
    const scan = await sim.createScan({ customerId: userReference });
    const delivered = await sim.sendCallback(scan.scanReference, `${vault.url}/webhooks/jumio`);
    expect(delivered.status).toBe(200);
    let e: EnrollmentRecord | null = null;
    for (let i = 0; i < 100 && e?.state !== 'ACTIVE'; i++) {
      await vault.container.pipeline.runOnce();
      e = await enrollment(scan.scanReference);
    }
    expect(e?.state).toBe('ACTIVE');
    return { ...scan, enrollment: e! };
  }

  const post = (body: Record<string, unknown>, token = TOKENS.authenticator) =>
    request(vault.url)
      .post('/v1/authentications')
      .set('Authorization', `Bearer ${token}`)
      .send(body);

  const getAuthentication = (ref: string, token = TOKENS.auditor) =>
    request(vault.url).get(`/v1/authentications/${ref}`).set('Authorization', `Bearer ${token}`);

  async function initiate(userReference: string, extra: Record<string, unknown> = {}) {
    const res = await post({ userReference, purpose: 'login step-up', ...extra });
    expect(res.status).toBe(201);
    return res.body as { authenticationReference: string; redirectUrl?: string; expiresAt: string };
  }

  /** Posts a NETVERIFY_AUTHENTICATION callback as raw form text, in the order given. */
  const callback = (pairs: Array<[string, string]>) =>
    request(vault.url)
      .post('/webhooks/jumio')
      .type('form')
      .send(new URLSearchParams(pairs).toString());

  const jumioStamp = (d: Date) => d.toISOString(); // YYYY-MM-DDThh:mm:ss.SSSZ

  /** Steps a worker until nothing is due (other tests' rows share the queues). */
  async function drain(worker: { runOnce(): Promise<number> }): Promise<void> {
    for (let i = 0; i < 100; i++) if ((await worker.runOnce()) === 0) return;
    throw new Error('the queue did not drain');
  }
  const reconcile = () => drain(vault.container.authenticationWorker);
  const deliver = () => drain(vault.container.notificationWorker);

  // ------------------------------------------------------------ tests

  describe('initiate, then Jumio decides', () => {
    it.each(['PASSED', 'FAILED', 'INVALID'] as const)(
      'records %s from the callback, deletes the transaction at Jumio and tells the caller',
      async (result) => {
        const u = user(result.toLowerCase());
        const enrolled = await enrol(u);
        const readsBefore = facemapReads.length;
        const res = await post({
          userReference: u,
          purpose: 'payment step-up',
          successUrl: 'https://app.bank.example/ok',
          errorUrl: 'https://app.bank.example/error',
          locale: 'de',
          tokenLifetimeInMinutes: 10,
          notifyUrl: receiver.url(),
        }).expect(201);
        const ref = res.body.authenticationReference as string;
        expect(res.body).toEqual({
          authenticationReference: expect.stringMatching(/^[0-9a-f-]{36}$/),
          redirectUrl: expect.stringContaining('/web/v4/app?authorizationToken='),
          state: 'INITIATED',
          expiresAt: expect.any(String),
        });
        const created = await record(ref);
        expect(created!.expiresAt.getTime() - created!.createdAt.getTime()).toBe(15 * MINUTE);
        expect(new Date(res.body.expiresAt)).toEqual(created!.expiresAt);
        // The blob was read once, through the store the row names.
        expect(facemapReads.slice(readsBefore)).toEqual([enrolled.enrollment.blobKey]);
        // The plaintext handed to Jumio was zeroed once the request was sent.
        expect(sentFacemaps.at(-1)!.every((b) => b === 0)).toBe(true);

        // The simulator refuses anything but the documented request; it also records it.
        const atJumio = await sim.authentication(ref);
        expect(atJumio).toMatchObject({
          state: 'CREATED',
          enrollmentTransactionReference: enrolled.scanReference,
          metadataForm: 'wrapped',
          metadataPart: 'file',
          facemapFilename: 'facemap.bin',
          facemapSha256: enrolled.facemapSha256,
          userReference: u,
          callbackUrl: `${vault.url}/webhooks/jumio`,
          successUrl: 'https://app.bank.example/ok',
          errorUrl: 'https://app.bank.example/error',
          locale: 'de',
          tokenLifetimeInMinutes: 10,
        });
        const [call] = (await initiates()).slice(-1);
        const logged = (
          await sim.control<{ requests: Array<Record<string, unknown>> }>('GET', 'requests')
        ).requests.find((r) => r.seq === call!.seq);
        expect(logged).toMatchObject({
          status: 200,
          credentials: 'main',
          userAgent: 'Vault Tests/1.0.0',
          accept: 'application/json',
        });

        const done = await sim.complete(ref, { result });
        expect(done.status).toBe(200);
        const view = (await getAuthentication(ref).expect(200)).body;
        expect(view).toEqual({
          authenticationReference: ref,
          userReference: u,
          enrollmentReference: enrolled.scanReference,
          state: result,
          purpose: 'payment step-up',
          requestedBy: 'authenticator-svc',
          createdAt: created!.createdAt.toISOString(),
          expiresAt: created!.expiresAt.toISOString(),
          finalizedAt: expect.any(String),
          source: 'callback',
        });

        // Jumio's copy (liveness images) is deleted by the worker, audited.
        await reconcile();
        expect((await sim.authentication(ref)).deleted).toBe(true);
        const deleted = (await getAuthentication(ref).expect(200)).body;
        expect(deleted.jumioDeletedAt).toEqual(expect.any(String));

        // PASSED moves the retention clock; the others do not.
        const e = await enrollment(enrolled.scanReference);
        if (result === 'PASSED') expect(e!.lastInteractionAt).toEqual(expect.any(Date));
        else expect(e!.lastInteractionAt).toBeNull();

        const types = (await auditsOf({ authenticationReference: ref })).map((a) => a.type);
        expect(types).toEqual([
          'authentication.initiated',
          'authentication.callback_received',
          'authentication.finalized',
          'authentication.deleted_at_jumio',
        ]);
        const decrypted = (await auditsOf({ userReference: u })).filter(
          (a) => a.type === 'facemap.decrypted',
        );
        expect(decrypted).toEqual([
          expect.objectContaining({
            actor: 'authenticator-svc',
            enrollmentReference: enrolled.scanReference,
            details: expect.objectContaining({ purpose: 'payment step-up' }),
          }),
        ]);

        // The signed notification, once the outbox is worked.
        await deliver();
        const [hook] = receiver.for(ref);
        expect(hook).toBeDefined();
        const event = new Webhook(SECRET).verify(hook!.body, {
          'webhook-id': String(hook!.headers['webhook-id']),
          'webhook-timestamp': String(hook!.headers['webhook-timestamp']),
          'webhook-signature': String(hook!.headers['webhook-signature']),
        });
        expect(event).toEqual({
          type: 'authentication.finalized',
          timestamp: expect.any(String),
          data: { ...view },
        });
        expect(hook!.path).toBe('/hooks/vault');
      },
    );

    it('refuses a role that may not authenticate, and each invalid field by name', async () => {
      const u = user('roles');
      await enrol(u);
      const before = (await initiates()).length;
      for (const token of [TOKENS.auditor, TOKENS.onboarding]) {
        await post({ userReference: u, purpose: 'x' }, token).expect(403);
      }
      const cases: Array<[string, Record<string, unknown>]> = [
        ['body.userReference', { userReference: 'someone@example.com' }],
        ['body.purpose', { purpose: '' }],
        ['body.purpose', { purpose: 'p'.repeat(201) }],
        ['body.successUrl', { successUrl: 'http://app.bank.example/ok' }],
        ['body.successUrl', { successUrl: `https://a.example/${'x'.repeat(2040)}` }],
        ['body.errorUrl', { errorUrl: `https://a.example/${'x'.repeat(250)}` }],
        ['body.errorUrl', { errorUrl: 'https://bänk.example/error' }],
        ['body.locale', { locale: 'xx' }],
        ['body.tokenLifetimeInMinutes', { tokenLifetimeInMinutes: 4 }],
        ['body.tokenLifetimeInMinutes', { tokenLifetimeInMinutes: 86401 }],
        ['body.notifyUrl', { notifyUrl: 'https://elsewhere.example/hook' }],
        ['body.notifyUrl', { notifyUrl: 'http://hooks.example/hook' }],
        ['body', { surprise: true }],
      ];
      for (const [field, change] of cases) {
        const res = await post({ userReference: u, purpose: 'login', ...change }).expect(400);
        expect(res.body.error.code).toBe('invalid_request');
        expect(res.body.error.fields.map((f: { field: string }) => f.field)).toEqual([field]);
      }
      // Several at once: every one is listed.
      const many = await post({ userReference: 'a@b.c', locale: 'xx' }).expect(400);
      expect(many.body.error.fields.map((f: { field: string }) => f.field).sort()).toEqual([
        'body.locale',
        'body.purpose',
        'body.userReference',
      ]);
      const badKey = await post({ userReference: u, purpose: 'x' })
        .set('Idempotency-Key', 'ä')
        .expect(400);
      expect(badKey.body.error.fields[0].field).toBe('headers.idempotency-key');
      expect((await initiates()).length).toBe(before);
    });

    it('answers 404 for a user without an enrollment, 409 naming a state that is not ACTIVE', async () => {
      const unknown = await post({ userReference: user('nobody'), purpose: 'x' }).expect(404);
      expect(unknown.body.error.code).toBe('not_found');
      const u = user('rejected');
      const scan = await sim.createScan({ customerId: u, verificationStatus: 'DENIED_FRAUD' });
      await sim.sendCallback(scan.scanReference, `${vault.url}/webhooks/jumio`);
      const rejected = await post({ userReference: u, purpose: 'x' }).expect(409);
      expect(rejected.body.error).toMatchObject({ code: 'enrollment_not_active' });
      expect(rejected.body.error.message).toContain('REJECTED');
    });
  });

  describe("Jumio's 15-minute rule", () => {
    it('expires the earlier authentication at once, and keeps it EXPIRED when its callback arrives', async () => {
      const u = user('twice');
      await enrol(u);
      const first = await initiate(u);
      const second = await initiate(u);
      expect((await record(first.authenticationReference))!.state).toBe('EXPIRED');
      expect((await record(second.authenticationReference))!.state).toBe('INITIATED');
      // Jumio sends the EXPIRED callback of the first in the background.
      // Polled for up to a minute: a busy machine delays the simulator's background send.
      for (let i = 0; i < 2400; i++) {
        const { callbacks } = await sim.authentication(first.authenticationReference);
        if (callbacks.some((c) => c.status === 200)) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      const { callbacks } = await sim.authentication(first.authenticationReference);
      expect(callbacks).toEqual([
        expect.objectContaining({ transactionResult: 'EXPIRED', status: 200 }),
      ]);
      expect((await record(first.authenticationReference))!.state).toBe('EXPIRED');
      const types = (
        await auditsOf({ authenticationReference: first.authenticationReference })
      ).map((a) => a.type);
      expect(types).not.toContain('authentication.conflict');
      expect(types.filter((t) => t === 'authentication.finalized')).toHaveLength(1);
      // The second is still the one that can complete.
      await sim.complete(second.authenticationReference, { result: 'PASSED' });
      expect((await record(second.authenticationReference))!.state).toBe('PASSED');
    });

    it('leaves exactly one INITIATED authentication after 20 concurrent initiates for one user', async () => {
      const u = user('twenty');
      const { scanReference } = await enrol(u);
      const before = (await initiates()).length;
      // The first call lingers at Jumio, so the others arrive while it is in flight.
      await sim.fault({ endpoint: 'initiate', kind: 'slow', delayMs: 300, times: 1 });
      maxInFlight = 0;
      const answers = await Promise.all(
        Array.from({ length: 20 }, () => post({ userReference: u, purpose: 'race' })),
      );
      // Serialized per enrollment: never two initiates of it at Jumio at once.
      expect(maxInFlight).toBe(1);
      const statuses = answers.map((r) => r.status);
      expect(statuses.filter((s) => s === 201).length).toBeGreaterThanOrEqual(1);
      expect(statuses.every((s) => [201, 409, 429].includes(s))).toBe(true);
      const rows = await ledger().transaction((tx) =>
        tx.authentications.list({ userReference: u, limit: 100 }),
      );
      expect(rows.filter((a) => a.state === 'INITIATED')).toHaveLength(1);
      expect(rows.filter((a) => a.enrollmentReference === scanReference)).toHaveLength(
        statuses.filter((s) => s === 201).length,
      );
      // Every initiate Jumio saw is recorded; the one left INITIATED is Jumio's live one.
      expect((await initiates()).length - before).toBe(rows.length);
      const live = rows.find((a) => a.state === 'INITIATED')!;
      expect((await sim.authentication(live.authenticationReference)).state).toBe('CREATED');
      for (const other of rows.filter((a) => a !== live)) {
        expect((await sim.authentication(other.authenticationReference)).state).toBe('EXPIRED');
      }
    });
  });

  describe('the stored facemap', () => {
    it('refuses a blob swapped between two users: no call to Jumio, audited', async () => {
      const victim = user('victim');
      const other = user('other');
      const a = await enrol(victim);
      const b = await enrol(other);
      const blobs = vault.container.blobs;
      await blobs.put(b.enrollment.blobKey!, await blobs.get(a.enrollment.blobKey!));
      const before = (await initiates()).length;
      const res = await post({ userReference: other, purpose: 'login' }).expect(500);
      expect(res.body.error.code).toBe('facemap_integrity');
      expect((await initiates()).length).toBe(before);
      const refused = (await auditsOf({ userReference: other })).find(
        (e) => e.type === 'facemap.integrity_failed',
      );
      expect(refused).toMatchObject({
        actor: 'authenticator-svc',
        enrollmentReference: b.scanReference,
        details: { reason: 'encryption_context_mismatch', blobKey: b.enrollment.blobKey },
      });
      // No authentication was recorded, and the user may try again once repaired.
      expect(
        await ledger().transaction((tx) =>
          tx.authentications.list({ userReference: other, limit: 5 }),
        ),
      ).toEqual([]);
    });

    it('decrypts nothing and calls no one when the decrypt audit cannot commit (503)', async () => {
      const u = user('audit-down');
      await enrol(u);
      const db = (ledger() as SqlLedger).db;
      const restore = await refuseAuditEntries(db, 'facemap.decrypted');
      try {
        const reads = facemapReads.length;
        const before = (await initiates()).length;
        const res = await post({ userReference: u, purpose: 'login' }).expect(503);
        expect(res.body.error.code).toBe('dependency_failed');
        expect(facemapReads.length).toBe(reads);
        expect((await initiates()).length).toBe(before);
      } finally {
        await restore();
      }
      // Nothing was left behind: the next request goes through.
      await initiate(u);
    });
  });

  it('an erasure of the user expires an unfinished authentication (source erased), tells the caller and deletes it at Jumio', async () => {
    const u = user('erased');
    await enrol(u);
    const { authenticationReference: ref } = await initiate(u, { notifyUrl: receiver.url() });
    const erased = await request(vault.url)
      .delete(`/v1/enrollments/${u}`)
      .set('Authorization', `Bearer ${TOKENS.admin}`)
      .send({ reason: 'gdpr_art17' });
    expect([200, 202]).toContain(erased.status);
    const view = (await getAuthentication(ref).expect(200)).body;
    expect(view).toMatchObject({ state: 'EXPIRED', reason: 'erased', source: 'erased' });
    // Jumio's copy goes too, and the calling service hears of it.
    await reconcile();
    expect((await sim.authentication(ref)).deleted).toBe(true);
    await deliver();
    const [hook] = receiver.for(ref);
    expect(hook).toBeDefined();
    expect((JSON.parse(hook!.body) as { data: unknown }).data).toMatchObject({
      state: 'EXPIRED',
      reason: 'erased',
    });
    // A late callback from Jumio does not bring it back.
    await sim.complete(ref, { result: 'PASSED' }).catch(() => undefined);
    expect((await record(ref))!.state).toBe('EXPIRED');
  });

  describe('callbacks', () => {
    it('settles a lost callback by reconciliation once expiresAt and the grace period are past', async () => {
      const u = user('lost');
      await enrol(u);
      const { authenticationReference: ref } = await initiate(u);
      await sim.complete(ref, { result: 'PASSED', deliverCallback: false });
      await reconcile();
      expect((await record(ref))!.state).toBe('INITIATED');
      // 15 minutes and the 2-minute grace later, at Jumio and here.
      await sim.control('POST', 'clock', { advanceMs: 18 * MINUTE });
      clock.advance(18 * MINUTE);
      await reconcile();
      expect(await record(ref)).toMatchObject({ state: 'PASSED', source: 'reconciled' });
      await reconcile();
      expect((await sim.authentication(ref)).deleted).toBe(true);
    });

    it('settles an authentication Jumio no longer knows as EXPIRED', async () => {
      const u = user('gone');
      await enrol(u);
      const { authenticationReference: ref } = await initiate(u);
      // Jumio forgets it (as after a deletion): its Retrieval API answers 404.
      const deleted = await fetch(`${sim.baseUrl}/api/netverify/v2/authentications/${ref}`, {
        method: 'DELETE',
        headers: {
          authorization: `Basic ${Buffer.from(`${sim.running.credentials.apiToken}:${sim.running.credentials.apiSecret}`).toString('base64')}`,
          'user-agent': 'Vault Tests/1.0.0',
        },
      });
      expect(deleted.status).toBe(200);
      clock.advance(18 * MINUTE);
      await reconcile();
      expect(await record(ref)).toMatchObject({
        state: 'EXPIRED',
        reason: 'not_found_at_jumio',
        source: 'reconciled',
      });
    });

    it('retries reconciliation with backoff while Jumio is unavailable', async () => {
      const u = user('flaky');
      await enrol(u);
      const { authenticationReference: ref } = await initiate(u);
      await sim.complete(ref, { result: 'FAILED', deliverCallback: false });
      clock.advance(18 * MINUTE);
      await sim.fault({ endpoint: 'authRetrieval', kind: 'status', status: 503 });
      await reconcile();
      const waiting = await record(ref);
      expect(waiting).toMatchObject({ state: 'INITIATED', attempts: 1 });
      expect(waiting!.lastError).toMatch(/jumio_upstream_error/);
      await sim.clearFaults();
      clock.advance(MINUTE);
      await reconcile();
      expect(await record(ref)).toMatchObject({ state: 'FAILED', source: 'reconciled' });
    });

    it('keeps PASSED when EXPIRED arrives later (a conflict, audited), and ignores a duplicate', async () => {
      const u = user('late');
      const { scanReference } = await enrol(u);
      const { authenticationReference: ref } = await initiate(u);
      await sim.complete(ref, { result: 'PASSED' });
      const base: Array<[string, string]> = [
        ['callBackType', 'NETVERIFY_AUTHENTICATION'],
        ['transactionReference', ref],
        ['enrollmentTransactionReference', scanReference],
        ['transactionDate', jumioStamp(new Date())],
        ['callbackDate', jumioStamp(new Date())],
        ['scanSource', 'WEB'],
      ];
      await callback([...base, ['transactionResult', 'EXPIRED']]).expect(200);
      expect((await record(ref))!.state).toBe('PASSED');
      const conflict = (await auditsOf({ authenticationReference: ref })).filter(
        (a) => a.type === 'authentication.conflict',
      );
      expect(conflict).toEqual([
        expect.objectContaining({
          details: expect.objectContaining({
            kind: 'result',
            recorded: 'PASSED',
            reported: 'EXPIRED',
          }),
        }),
      ]);
      const count = (await auditsOf({ authenticationReference: ref })).length;
      await callback([...base, ['transactionResult', 'PASSED']]).expect(200);
      await callback([...base, ['transactionResult', 'EXPIRED']]).expect(200);
      expect((await record(ref))!.state).toBe('PASSED');
      expect((await auditsOf({ authenticationReference: ref })).length).toBe(count);
    });

    it('changes nothing for a callback naming another enrollment, and audits the conflict', async () => {
      const u = user('mismatch');
      await enrol(u);
      const { authenticationReference: ref } = await initiate(u);
      await callback([
        ['callBackType', 'NETVERIFY_AUTHENTICATION'],
        ['transactionReference', ref],
        ['enrollmentTransactionReference', 'aaaaaaaa-0000-4000-8000-000000000000'],
        ['transactionResult', 'PASSED'],
      ]).expect(200);
      expect((await record(ref))!.state).toBe('INITIATED');
      expect(
        (await auditsOf({ authenticationReference: ref })).find(
          (a) => a.type === 'authentication.conflict',
        ),
      ).toMatchObject({ details: { kind: 'enrollment_mismatch' } });
    });

    it('keeps a callback for an unknown reference as an orphan, audited, 200', async () => {
      const ref = 'bbbbbbbb-0000-4000-8000-00000000beef';
      await callback([
        ['callBackType', 'NETVERIFY_AUTHENTICATION'],
        ['transactionReference', ref],
        ['enrollmentTransactionReference', 'cccccccc-0000-4000-8000-000000000000'],
        ['transactionResult', 'PASSED'],
      ]).expect(200);
      expect((await auditsOf({ authenticationReference: ref })).map((a) => a.type)).toEqual([
        'authentication.callback_received',
        'authentication.callback_orphaned',
      ]);
      expect(await record(ref)).toBeNull();
    });

    it("applies the callback exactly as Jumio's callback guide documents it", async () => {
      const u = user('documented');
      const { scanReference } = await enrol(u);
      const { authenticationReference: ref } = await initiate(u);
      const images = `https://netverify.com/api/netverify/v2/authentications/${ref}/images`;
      // The guide's sample: its field order, livenessImages as one JSON-array string,
      // millisecond timestamps.
      const res = await callback([
        ['scanSource', 'SDK'],
        ['transactionReference', ref],
        ['enrollmentTransactionReference', scanReference],
        ['callBackType', 'NETVERIFY_AUTHENTICATION'],
        [
          'livenessImages',
          JSON.stringify([1, 2, 3, 4, 5, 6, 7].map((i) => `${images}/liveness/${i}`)),
        ],
        ['idScanImageFace', `${images}/face`],
        ['callbackDate', '2019-05-30T08:37:35.822Z'],
        ['transactionDate', '2019-05-29T08:37:24.344Z'],
        ['transactionResult', 'PASSED'],
      ]).expect(200);
      expect(res.body).toEqual({ status: 'received' });
      expect(await record(ref)).toMatchObject({ state: 'PASSED', source: 'callback' });
      const kept = await ledger().transaction((tx) => tx.authenticationCallbacks.listFor(ref));
      expect(kept).toEqual([
        expect.objectContaining({
          transactionResult: 'PASSED',
          transactionDate: new Date('2019-05-29T08:37:24.344Z'),
          callbackDate: new Date('2019-05-30T08:37:35.822Z'),
          scanSource: 'SDK',
        }),
      ]);
    });
  });

  describe('notifications', () => {
    it('delivers a third time, with the same webhook-id, to a receiver that answered 500 twice', async () => {
      const u = user('notify');
      await enrol(u);
      const { authenticationReference: ref } = await initiate(u, { notifyUrl: receiver.url() });
      receiver.answerWith(500, 500);
      await sim.complete(ref, { result: 'FAILED' });
      for (let i = 0; i < 3; i++) {
        await deliver();
        clock.advance(2000);
      }
      const hooks = receiver.for(ref);
      expect(hooks).toHaveLength(3);
      expect(new Set(hooks.map((h) => h.headers['webhook-id'])).size).toBe(1);
      expect(new Set(hooks.map((h) => h.body)).size).toBe(1);
      const [n] = await ledger().transaction((tx) =>
        tx.notifications.list({ authenticationReference: ref, limit: 5 }),
      );
      expect(n).toMatchObject({ state: 'DELIVERED', attempts: 0, lastStatus: 200 });
    });

    it('leaves a notification FAILED after 24 hours, visible to admins, and redelivers it', async () => {
      const u = user('failing');
      await enrol(u);
      const { authenticationReference: ref } = await initiate(u, { notifyUrl: receiver.url() });
      receiver.answerWith(503, 503);
      await sim.complete(ref, { result: 'PASSED' });
      await deliver();
      clock.advance(24 * 60 * MINUTE + 1000);
      await deliver();
      const list = await request(vault.url)
        .get('/v1/notifications?state=FAILED')
        .set('Authorization', `Bearer ${TOKENS.admin}`)
        .expect(200);
      const failed = list.body.notifications.find(
        (x: { authenticationReference: string }) => x.authenticationReference === ref,
      );
      expect(failed).toMatchObject({
        state: 'FAILED',
        attempts: 2,
        lastStatus: 503,
        lastError: 'receiver answered HTTP 503',
      });
      await request(vault.url)
        .get('/v1/notifications?state=FAILED')
        .set('Authorization', `Bearer ${TOKENS.auditor}`)
        .expect(403);
      const again = await request(vault.url)
        .post(`/v1/notifications/${failed.id}/redeliver`)
        .set('Authorization', `Bearer ${TOKENS.admin}`)
        .expect(200);
      expect(again.body).toMatchObject({ id: failed.id, state: 'PENDING', attempts: 0 });
      await request(vault.url)
        .post(`/v1/notifications/${failed.id}/redeliver`)
        .set('Authorization', `Bearer ${TOKENS.admin}`)
        .expect(409);
      await deliver();
      const hooks = receiver.for(ref);
      expect(hooks).toHaveLength(3);
      expect(new Set(hooks.map((h) => h.headers['webhook-id']))).toEqual(new Set([failed.id]));
      const types = (await auditsOf({ authenticationReference: ref })).map((a) => a.type);
      expect(types).toEqual(
        expect.arrayContaining(['notification.failed', 'notification.redelivered']),
      );
    });
  });

  describe('Idempotency-Key', () => {
    it('answers the same key twice with the first answer and one initiate at Jumio', async () => {
      const u = user('idem');
      await enrol(u);
      const key = `key-${randomBytes(8).toString('hex')}`;
      const body = { userReference: u, purpose: 'login' };
      const before = (await initiates()).length;
      const first = await post(body).set('Idempotency-Key', key).expect(201);
      const second = await post(body).set('Idempotency-Key', key).expect(201);
      expect(second.body).toEqual(first.body);
      expect(second.headers['idempotent-replayed']).toBe('true');
      expect((await initiates()).length - before).toBe(1);
      const reused = await post({ ...body, purpose: 'other' })
        .set('Idempotency-Key', key)
        .expect(422);
      expect(reused.body.error.code).toBe('idempotency_key_reused');
      // Another API key's identical key is its own.
      await post(body, TOKENS.admin).set('Idempotency-Key', key).expect(201);
      expect((await initiates()).length - before).toBe(2);
    });

    it('lets concurrent duplicates reach Jumio once', async () => {
      const u = user('idem-race');
      await enrol(u);
      const key = `key-${randomBytes(8).toString('hex')}`;
      const before = (await initiates()).length;
      await sim.fault({ endpoint: 'initiate', kind: 'slow', delayMs: 300, times: 1 });
      const answers = await Promise.all(
        Array.from({ length: 6 }, () =>
          post({ userReference: u, purpose: 'login' }).set('Idempotency-Key', key),
        ),
      );
      expect((await initiates()).length - before).toBe(1);
      const created = answers.filter((r) => r.status === 201);
      expect(created.length).toBeGreaterThanOrEqual(1);
      expect(new Set(created.map((r) => r.body.authenticationReference)).size).toBe(1);
      expect(answers.every((r) => r.status === 201 || r.status === 409)).toBe(true);
      // A duplicate arriving while the first is in flight is told so (and when to retry).
      const waiting = answers.filter((r) => r.status === 409);
      expect(waiting.length).toBeGreaterThanOrEqual(1);
      for (const r of waiting) {
        expect(r.body.error.code).toBe('idempotency_in_progress');
        expect(r.headers['retry-after']).toBe('1');
      }
    });

    it('keeps a Jumio failure as the answer: the same key does not initiate again', async () => {
      const u = user('idem-fail');
      await enrol(u);
      const key = `key-${randomBytes(8).toString('hex')}`;
      await sim.fault({ endpoint: 'initiate', kind: 'status', status: 503, times: 1 });
      const before = (await initiates()).length;
      await post({ userReference: u, purpose: 'login' }).set('Idempotency-Key', key).expect(503);
      const again = await post({ userReference: u, purpose: 'login' })
        .set('Idempotency-Key', key)
        .expect(503);
      expect(again.body.error.code).toBe('jumio_unavailable');
      expect((await initiates()).length - before).toBe(1);
    });
  });

  it('limits initiates per user per hour (429, Retry-After, audited, no call to Jumio)', async () => {
    const u = user('limited');
    await enrol(u);
    for (let i = 0; i < RATE_LIMIT; i++) await initiate(u);
    const before = (await initiates()).length;
    const res = await post({ userReference: u, purpose: 'login' }).expect(429);
    expect(res.body.error.code).toBe('rate_limited');
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(res.headers['retry-after'])).toBeLessThanOrEqual(3600);
    expect((await initiates()).length).toBe(before);
    expect(
      (await auditsOf({ userReference: u })).filter(
        (a) => a.type === 'authentication.rate_limited',
      ),
    ).toEqual([expect.objectContaining({ actor: 'authenticator-svc' })]);
    // An hour later the user may authenticate again.
    clock.advance(61 * MINUTE);
    await initiate(u);
  });

  it.each([
    [401, 502, 'jumio_unauthorized'],
    [400, 502, 'jumio_request_rejected'],
    [503, 503, 'jumio_unavailable'],
  ])('answers Jumio %i with %i %s, audited, never retried', async (jumioStatus, status, code) => {
    const u = user(`jumio-${jumioStatus}`);
    await enrol(u);
    await sim.fault({ endpoint: 'initiate', kind: 'status', status: jumioStatus, times: 1 });
    const before = (await initiates()).length;
    const res = await post({ userReference: u, purpose: 'login' }).expect(status);
    expect(res.body.error.code).toBe(code);
    expect(res.body.error.message).toContain(String(jumioStatus === 503 ? 'jumio' : jumioStatus));
    expect((await initiates()).length - before).toBe(1);
    expect(
      (await auditsOf({ userReference: u })).find(
        (a) => a.type === 'authentication.initiate_failed',
      ),
    ).toMatchObject({ details: expect.objectContaining({ stage: 'jumio' }) });
    // The in-flight mark is gone: the user can try again.
    await initiate(u);
  });

  it('lists authentications by user and state, newest first, in pages', async () => {
    const u = user('pages');
    await enrol(u);
    const refs: string[] = [];
    for (let i = 0; i < 3; i++) refs.push((await initiate(u)).authenticationReference);
    const page = (query: string) =>
      request(vault.url)
        .get(`/v1/authentications?${query}`)
        .set('Authorization', `Bearer ${TOKENS.authenticator}`)
        .expect(200);
    const first = (await page(`userReference=${u}&limit=2`)).body;
    expect(
      first.authentications.map(
        (a: { authenticationReference: string }) => a.authenticationReference,
      ),
    ).toEqual([refs[2], refs[1]]);
    const second = (await page(`userReference=${u}&limit=2&cursor=${first.nextCursor}`)).body;
    expect(
      second.authentications.map(
        (a: { authenticationReference: string }) => a.authenticationReference,
      ),
    ).toEqual([refs[0]]);
    expect(second.nextCursor).toBeUndefined();
    const live = (await page(`userReference=${u}&state=INITIATED`)).body;
    expect(live.authentications).toHaveLength(1);
    await request(vault.url)
      .get('/v1/authentications?cursor=nonsense')
      .set('Authorization', `Bearer ${TOKENS.admin}`)
      .expect(400);
    await request(vault.url)
      .get(`/v1/authentications/${refs[0]}`)
      .set('Authorization', `Bearer ${TOKENS.onboarding}`)
      .expect(403);
    await getAuthentication('dddddddd-0000-4000-8000-000000000000').expect(404);
  });

  it('describes the authentication and notification routes in /openapi.json', async () => {
    const { body } = await request(vault.url).get('/openapi.json').expect(200);
    expect(Object.keys(body.paths)).toEqual(
      expect.arrayContaining([
        '/v1/authentications',
        '/v1/authentications/{authenticationReference}',
        '/v1/notifications',
        '/v1/notifications/{id}/redeliver',
      ]),
    );
    const initiate = body.paths['/v1/authentications'].post;
    expect(initiate['x-roles']).toEqual(['authenticator', 'admin']);
    expect(initiate.parameters).toEqual([
      expect.objectContaining({ name: 'idempotency-key', in: 'header', required: false }),
    ]);
    expect(Object.keys(initiate.responses)).toEqual(
      expect.arrayContaining(['201', '400', '404', '409', '422', '429', '500', '502', '503']),
    );
  });

  it('keeps facemap bytes and callback image URLs out of every log line, table and response', async () => {
    const u = user('leak');
    const enrolled = await enrol(u);
    const facemap = Buffer.from(enrolled.facemapBase64, 'base64');
    const responses: string[] = [];
    const { authenticationReference: ref } = await initiate(u, { notifyUrl: receiver.url() });
    const sentinel = `SENTINEL-image-${randomBytes(4).toString('hex')}`;
    const images = `https://netverify.com/${sentinel}`;
    await sim.complete(ref, {
      result: 'PASSED',
      overrides: {
        idScanImageFace: `${images}/face`,
        livenessImages: JSON.stringify([`${images}/l1`, `${images}/l2`]),
      },
    });
    await reconcile();
    await deliver();
    responses.push(JSON.stringify((await getAuthentication(ref)).body));
    responses.push(
      JSON.stringify(
        (
          await request(vault.url)
            .get(`/v1/authentications?userReference=${u}`)
            .set('Authorization', `Bearer ${TOKENS.admin}`)
        ).body,
      ),
    );
    responses.push(...receiver.for(ref).map((h) => h.body));
    const db = (ledger() as SqlLedger).db;
    const { rows: tables } = await db.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
    );
    let dump = '';
    for (const { table_name } of tables) {
      const { rows } = await db.query<{ j: string }>(
        `SELECT row_to_json(t)::text AS j FROM ${table_name} t`,
      );
      dump += rows.map((r) => r.j).join('\n');
    }
    expect(dump).toContain(ref);
    const files = await readTree(vault.dataDir);
    const haystacks = [
      Buffer.from(vault.logs.text()),
      Buffer.from(dump),
      ...responses.map((r) => Buffer.from(r)),
      ...files.map((f) => f.bytes),
    ];
    const needles = [
      Buffer.from(sentinel),
      facemap.subarray(0, 64),
      Buffer.from(facemap.subarray(0, 48).toString('base64')),
      Buffer.from(facemap.subarray(0, 32).toString('hex')),
    ];
    for (const hay of haystacks)
      for (const needle of needles) expect(hay.includes(needle)).toBe(false);
  });
});
