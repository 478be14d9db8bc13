import request from 'supertest';
import { createApp } from '../../src/app';
import { SqlLedger } from '../../src/adapters/ledger/sql-ledger';
import type { EnrollmentRecord } from '../../src/core/ports';
import { loadConfig } from '../../src/config';
import { openDatabase } from '../../src/adapters/ledger/open';
import { hashToken } from '../../src/http/api-keys';
import { CidrAllowlist } from '../../src/http/callback-origin';
import { startSilentServer } from '../helpers/stalling-servers';
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

const FINAL = new Set(['ACTIVE', 'REJECTED', 'FAILED', 'SUPERSEDED']);

describe.each(vaultLedgerKinds)('enrollment on %s', (_name, chooseLedger) => {
  let sim: SimulatorClient;
  let ledgerChoice: LedgerChoice;
  let vault: TestVault;

  beforeAll(async () => {
    sim = await startTestSimulator();
    ledgerChoice = await chooseLedger();
    vault = await startTestVault(sim, ledgerChoice);
  });
  afterAll(async () => {
    await vault?.stop();
    await ledgerChoice?.dispose();
    await sim?.running.close();
    await removeDir(vault.dataDir);
  });

  const callbackUrl = () => `${vault.url}/webhooks/jumio`;
  const get = (ref: string, v: TestVault = vault) =>
    v.container.ledger.transaction((tx) => tx.enrollments.get(ref));

  /** Runs the pipeline until the enrollment reaches a final state. */
  async function settle(ref: string, v: TestVault = vault): Promise<EnrollmentRecord> {
    for (let i = 0; i < 200; i++) {
      await v.container.pipeline.runOnce();
      const e = await get(ref, v);
      if (
        e &&
        FINAL.has(e.state) &&
        !(e.state === 'SUPERSEDED' && e.blobKey && !e.blobDestroyedAt)
      ) {
        return e;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`enrollment ${ref} did not settle: ${JSON.stringify(await get(ref, v))}`);
  }

  async function onboard(
    scan: Record<string, unknown> = {},
    callback: Record<string, unknown> = {},
  ) {
    const created = await sim.createScan(scan);
    const delivered = await sim.sendCallback(created.scanReference, callbackUrl(), callback);
    return { ...created, delivered };
  }

  const audits = (enrollmentReference: string, v: TestVault = vault) =>
    v.container.ledger.transaction((tx) => tx.audit.list({ enrollmentReference, limit: 1000 }));

  const requestsFor = async (ref: string) =>
    (await sim.requests()).filter((r) => r.path.includes(ref));

  const blobKeys = async (ref: string, v: TestVault = vault) =>
    (await v.container.blobs.list(`facemaps/${ref}/`)).keys;

  describe('eligible onboardings', () => {
    it.each([
      ['validity TRUE, 3 fraction digits', { validity: 'TRUE', fractionDigits: 3 }],
      ['validity true, 0 fraction digits', { validity: 'true', fractionDigits: 0 }],
      ['validity boolean, 1 fraction digit', { validity: 'boolean', fractionDigits: 1 }],
      [
        'validity TRUE, 2 fraction digits, reason present',
        { fractionDigits: 2, reasonWithValidTrue: true },
      ],
    ])(
      "%s ends ACTIVE, deleting Jumio's copy only after ours is proven",
      async (_label, variant) => {
        const { scanReference: ref, delivered, facemapBase64 } = await onboard({}, { variant });
        expect(delivered.status).toBe(200);
        expect((await get(ref))!.state).toBe('PENDING');

        const e = await settle(ref);
        expect(e.state).toBe('ACTIVE');
        expect(e.verificationReason).toBe('reasonWithValidTrue' in variant ? 'BAD_QUALITY' : null);
        expect(e.facemapBytes).toBe(Buffer.from(facemapBase64, 'base64').length);
        expect(e.jumioDeletedAt).not.toBeNull();
        expect((await sim.scan(ref)).deleted).toBe(true);

        // The simulator saw: retrieval, then the download, then the delete (and nothing after).
        const seen = (await requestsFor(ref)).map((r) => r.endpoint);
        expect(seen).toEqual(['scanDetails', 'facemap', 'scanDelete']);
        // Our ledger committed the proven blob before it recorded the delete.
        const types = (await audits(ref)).map((a) => a.type);
        expect(types).toEqual([
          'enrollment.received',
          'enrollment.confirmed',
          'facemap.stored',
          'enrollment.deleted_at_jumio',
          'enrollment.activated',
        ]);
        // Exactly one blob, and it decrypts to the facemap under this owner's context.
        expect(await blobKeys(ref)).toEqual([e.blobKey]);
      },
    );
  });

  describe('ineligible onboardings', () => {
    it.each([
      [{ verificationStatus: 'DENIED_FRAUD' }, 'verification_not_approved'],
      [{ verificationStatus: 'DENIED_UNSUPPORTED_ID_TYPE' }, 'verification_not_approved'],
      [{ verificationStatus: 'DENIED_UNSUPPORTED_ID_COUNTRY' }, 'verification_not_approved'],
      [{ verificationStatus: 'ERROR_NOT_READABLE_ID' }, 'verification_not_approved'],
      [{ verificationStatus: 'NO_ID_UPLOADED' }, 'verification_not_approved'],
      [{ similarity: 'NO_MATCH' }, 'similarity_not_match'],
      [{ similarity: 'NOT_POSSIBLE' }, 'similarity_not_match'],
      [{ validity: false }, 'validity_false'],
    ])('%p ends REJECTED (%s) with nothing fetched', async (scan, reason) => {
      const { scanReference: ref, delivered } = await onboard(scan);
      expect(delivered.status).toBe(200);
      const e = await settle(ref);
      expect(e).toMatchObject({ state: 'REJECTED', reason, blobKey: null });
      expect(await requestsFor(ref)).toEqual([]);
      expect((await sim.scan(ref)).facemapDownloads).toBe(0);
      const types = (await audits(ref)).map((a) => a.type);
      expect(types).toEqual(['enrollment.received', 'enrollment.rejected']);
    });

    it('rejects a callback that claims approval while the Retrieval API disagrees', async () => {
      const { scanReference: ref } = await sim.createScan({ verificationStatus: 'DENIED_FRAUD' });
      // A forged or stale callback claims an eligible onboarding.
      await sim.sendCallback(ref, callbackUrl(), {
        overrides: {
          verificationStatus: 'APPROVED_VERIFIED',
          identityVerification: JSON.stringify({ similarity: 'MATCH', validity: 'TRUE' }),
        },
      });
      const e = await settle(ref);
      expect(e).toMatchObject({ state: 'REJECTED', reason: 'retrieval_mismatch' });
      expect((await requestsFor(ref)).map((r) => r.endpoint)).toEqual(['scanDetails']);
      expect((await sim.scan(ref)).deleted).toBe(false);
    });

    it('rejects when the Retrieval API names another user than the callback', async () => {
      const { scanReference: ref } = await sim.createScan({ customerId: 'user-genuine' });
      await sim.sendCallback(ref, callbackUrl(), { overrides: { customerId: 'user-attacker' } });
      expect(await settle(ref)).toMatchObject({
        state: 'REJECTED',
        reason: 'retrieval_user_reference_mismatch',
      });
      expect((await sim.scan(ref)).facemapDownloads).toBe(0);
    });

    it.each([
      ['an email address', 'jane.doe@example.com'],
      ['a phone number', '+49 151 23456789'],
      ['a US phone number', '555-123-4567'],
      ['more than 100 characters', 'u'.repeat(101)],
    ])('rejects a user reference that is %s, and does not keep it', async (_label, customerId) => {
      const { scanReference: ref } = await onboard({}, { overrides: { customerId } });
      const e = await settle(ref);
      expect(e).toMatchObject({
        state: 'REJECTED',
        reason: 'invalid_user_reference',
        userReference: null,
      });
      expect(await requestsFor(ref)).toEqual([]);
      expect(vault.logs.text()).not.toContain(customerId);
    });

    it('rejects a missing user reference', async () => {
      const { scanReference: ref } = await sim.createScan();
      await sim.sendCallback(ref, callbackUrl(), { overrides: { customerId: null } });
      expect(await settle(ref)).toMatchObject({
        state: 'REJECTED',
        reason: 'invalid_user_reference',
      });
    });
  });

  it('turns the same callback delivered 20 times at once into one enrollment, one blob, one delete', async () => {
    const { scanReference: ref } = await sim.createScan();
    const deliveries = await Promise.all(
      Array.from({ length: 20 }, () => sim.sendCallback(ref, callbackUrl())),
    );
    expect(deliveries.map((d) => d.status)).toEqual(Array(20).fill(200));
    // Several workers at once, too.
    await Promise.all([1, 2, 3].map(() => vault.container.pipeline.runOnce()));
    const e = await settle(ref);
    expect(e.state).toBe('ACTIVE');
    const seen = (await requestsFor(ref)).map((r) => r.endpoint);
    expect(seen.filter((x) => x === 'scanDelete')).toHaveLength(1);
    expect(seen.filter((x) => x === 'facemap')).toHaveLength(1);
    expect(await blobKeys(ref)).toHaveLength(1);
    const types = (await audits(ref)).map((a) => a.type);
    expect(new Set(types).size).toBe(types.length);
  });

  describe('retries', () => {
    afterEach(() => sim.clearFaults());

    it.each([
      ['retrieval 503', { endpoint: 'scanDetails', kind: 'status', status: 503, times: 4 }],
      ['retrieval hang', { endpoint: 'scanDetails', kind: 'hang', times: 2 }],
      ['download 500', { endpoint: 'facemap', kind: 'status', status: 500, times: 4 }],
      ['download hang', { endpoint: 'facemap', kind: 'hang', times: 2 }],
      ['delete 502', { endpoint: 'scanDelete', kind: 'status', status: 502, times: 4 }],
      ['delete hang', { endpoint: 'scanDelete', kind: 'hang', times: 2 }],
      [
        'retrieval 429',
        { endpoint: 'scanDetails', kind: 'status', status: 429, retryAfter: 0, times: 3 },
      ],
    ])('%s is retried until ACTIVE', async (_label, fault) => {
      await sim.fault(fault);
      const { scanReference: ref } = await onboard();
      const e = await settle(ref);
      expect(e.state).toBe('ACTIVE');
      expect((await sim.scan(ref)).deleted).toBe(true);
      const seen = (await requestsFor(ref)).filter((r) => r.endpoint === fault.endpoint);
      expect(seen.length).toBeGreaterThan(1);
      // Retried work never duplicates the stored facemap.
      expect(await blobKeys(ref)).toHaveLength(1);
    });

    it('lands in FAILED when retries are exhausted, and an admin replay brings it to ACTIVE', async () => {
      await sim.fault({ endpoint: 'facemap', kind: 'status', status: 500 });
      const { scanReference: ref } = await onboard({ customerId: 'user-replay-1' });
      const failed = await settle(ref);
      expect(failed).toMatchObject({ state: 'FAILED', blobKey: null });
      expect(failed.lastError).toMatch(/^jumio_upstream_error/);
      expect((await sim.scan(ref)).deleted).toBe(false);

      const view = await request(vault.url)
        .get('/v1/enrollments/user-replay-1')
        .set('Authorization', `Bearer ${TOKENS.auditor}`)
        .expect(200);
      expect(view.body).toMatchObject({ state: 'FAILED', attempts: 4 });
      expect(view.body.lastError).toMatch(/^jumio_upstream_error/);

      await sim.clearFaults();
      await request(vault.url)
        .post('/v1/enrollments/user-replay-1/replay')
        .set('Authorization', `Bearer ${TOKENS.auditor}`)
        .expect(403);
      const replayed = await request(vault.url)
        .post('/v1/enrollments/user-replay-1/replay')
        .set('Authorization', `Bearer ${TOKENS.admin}`)
        .expect(200);
      expect(replayed.body).toMatchObject({ state: 'PENDING', attempts: 0 });
      expect(await settle(ref)).toMatchObject({ state: 'ACTIVE' });
      const types = (await audits(ref)).map((a) => a.type);
      expect(types).toContain('enrollment.failed');
      expect(types).toContain('enrollment.replayed');
      await request(vault.url)
        .post('/v1/enrollments/user-replay-1/replay')
        .set('Authorization', `Bearer ${TOKENS.admin}`)
        .expect(409);
    });
  });

  describe('facemap URLs the vault must not fetch', () => {
    let other: import('node:http').Server;
    let otherUrl: string;
    const hits: string[] = [];
    beforeAll(async () => {
      const { createServer } = await import('node:http');
      other = createServer((req, res) => {
        hits.push(`${req.method} ${req.url} auth=${req.headers.authorization ?? ''}`);
        res.end('not a facemap');
      });
      await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
      const a = other.address();
      otherUrl = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
    });
    afterAll(async () => {
      await sim.clearFaults();
      await new Promise((r) => other.close(r));
    });

    it.each([
      ['another origin', () => `${otherUrl}/facemap`],
      ['plain http on another host name', () => `http://localhost:1/facemap`],
      ['https on another origin', () => `https://127.0.0.1:1/facemap`],
    ])('refuses a callback facemap URL on %s', async (_label, url) => {
      // No Retrieval href: the callback's URL is the only candidate.
      const { scanReference: ref } = await sim.createScan({ includeFacemap: false });
      await sim.sendCallback(ref, callbackUrl(), { overrides: { facemap: url() } });
      const e = await settle(ref);
      expect(e).toMatchObject({ state: 'REJECTED', reason: 'unsafe_facemap_url' });
      expect(hits).toEqual([]);
      expect((await sim.scan(ref)).deleted).toBe(false);
    });

    it('does not follow a redirect from the facemap URL to another origin', async () => {
      await sim.fault({ endpoint: 'facemap', kind: 'redirect', location: `${otherUrl}/stolen` });
      const { scanReference: ref } = await onboard();
      const e = await settle(ref);
      expect(e).toMatchObject({ state: 'REJECTED', reason: 'unsafe_facemap_url' });
      expect(hits).toEqual([]);
      expect((await sim.scan(ref)).deleted).toBe(false);
    });
  });

  describe('the callback endpoint', () => {
    const count = async () =>
      (await vault.container.ledger.transaction((tx) => tx.audit.list({ limit: 1000 }))).length;

    it('refuses a source address outside the allowlist, storing nothing, forged X-Forwarded-For included', async () => {
      const { scanReference: ref } = await sim.createScan();
      const app = createApp({
        ...vault.container,
        callbackAllowlist: new CidrAllowlist(['10.0.0.0/8']),
      });
      const res = await request(app)
        .post('/webhooks/jumio')
        .set('X-Forwarded-For', '10.1.2.3')
        .type('form')
        .send({ callBackType: 'NETVERIFYID', jumioIdScanReference: ref })
        .expect(403);
      expect(res.body).toEqual({
        error: {
          code: 'forbidden',
          message: 'callback source not allowed',
          requestId: res.headers['x-request-id'],
        },
      });
      expect(await get(ref)).toBeNull();
      // Counted, then audited as one summary per source and reason (invariant 9).
      await vault.container.denials.flush();
      const refused = await vault.container.ledger.transaction((tx) =>
        tx.audit.list({ limit: 1000 }),
      );
      expect(refused.at(-1)).toMatchObject({ type: 'callback.refused' });
      expect(refused.at(-1)!.details).toMatchObject({ sourceAddress: '127.0.0.1', count: 1 });
      expect(vault.logs.text()).toContain('callback refused: source address not allowed');
      // Behind one trusted proxy hop, the forwarded address is the source.
      await request(
        createApp({
          ...vault.container,
          trustProxy: 1,
          callbackAllowlist: new CidrAllowlist(['10.0.0.0/8']),
        }),
      )
        .post('/webhooks/jumio')
        .set('X-Forwarded-For', '10.1.2.3')
        .type('form')
        .send({
          callBackType: 'NETVERIFYID',
          jumioIdScanReference: ref,
          customerId: 'user-proxied',
        })
        .expect(200);
    });

    it('answers 503 when PostgreSQL accepts connections but never answers, so Jumio retries', async () => {
      // The production configuration path with its default timeouts, against a server that
      // takes the TCP connection and then says nothing: the wait must end, with a 503.
      const silent = await startSilentServer();
      const config = loadConfig({
        DATABASE_URL: `postgres://vault@127.0.0.1:${silent.port}/vault`,
        VAULT_API_KEYS: `ops:admin:${hashToken(TOKENS.admin)}`,
      });
      const down = new SqlLedger(await openDatabase(config));
      try {
        const res = await request(createApp({ ...vault.container, ledger: down }))
          .post('/webhooks/jumio')
          .type('form')
          .send({
            callBackType: 'NETVERIFYID',
            jumioIdScanReference: 'f0000000-0000-4000-8000-000000000001',
            customerId: 'user-silent-db',
          });
        expect(res.status).toBe(503);
        expect(res.body.error.code).toBe('dependency_failed');
        expect(silent.connections()).toBeGreaterThan(0);
      } finally {
        await down.close();
        await silent.close();
      }
    });

    it.each([
      [
        'JSON',
        (r: request.Test) =>
          r.set('Content-Type', 'application/json').send('{"callBackType":"NETVERIFYID"}'),
        415,
      ],
      ['an empty body', (r: request.Test) => r.type('form').send(''), 400],
      [
        'an oversized body',
        (r: request.Test) => r.type('form').send(`a=${'x'.repeat(1024 * 1024 + 10)}`),
        413,
      ],
      ['garbage', (r: request.Test) => r.type('form').send('%%%\u0000\u00ff&&=='), 400],
      [
        'no scan reference',
        (r: request.Test) => r.type('form').send('callBackType=NETVERIFYID&customerId=u1'),
        400,
      ],
      [
        'a malformed scan reference',
        (r: request.Test) =>
          r.type('form').send('callBackType=NETVERIFYID&jumioIdScanReference=../../etc'),
        400,
      ],
      [
        'no callBackType',
        (r: request.Test) => r.type('form').send('jumioIdScanReference=abc'),
        400,
      ],
    ])('answers %s with a 4xx and stores nothing', async (_label, send, status) => {
      const before = await count();
      const res = await send(request(vault.url).post('/webhooks/jumio'));
      expect(res.status).toBe(status);
      expect(res.body.error.code).toEqual(expect.any(String));
      expect(await count()).toBe(before);
      await request(vault.url).get('/healthz').expect(200);
    });

    it('records an unknown callBackType as ignored and answers 200', async () => {
      await request(vault.url)
        .post('/webhooks/jumio')
        .type('form')
        .send({ callBackType: 'SOMETHING_NEW', jumioIdScanReference: 'abc' })
        .expect(200);
      const last = (
        await vault.container.ledger.transaction((tx) => tx.audit.list({ limit: 1000 }))
      ).at(-1);
      expect(last).toMatchObject({
        type: 'callback.ignored',
        details: { callBackType: 'SOMETHING_NEW' },
      });
    });

    it('records an authentication callback once per reference and result', async () => {
      const body = {
        callBackType: 'NETVERIFY_AUTHENTICATION',
        transactionReference: 'a0000000-0000-4000-8000-0000000000aa',
        enrollmentTransactionReference: 'e0000000-0000-4000-8000-0000000000ee',
        transactionResult: 'PASSED',
        transactionDate: '2026-11-25T10:00:00.123Z',
        idScanImageFace: 'https://netverify.com/recognizable-face.jpg',
      };
      for (let i = 0; i < 3; i++) {
        await request(vault.url).post('/webhooks/jumio').type('form').send(body).expect(200);
      }
      const received = (
        await vault.container.ledger.transaction((tx) => tx.audit.list({ limit: 1000 }))
      ).filter((a) => a.authenticationReference === body.transactionReference);
      // No authentication has this reference: it is kept as an orphan, audited once.
      expect(received.map((a) => a.type)).toEqual([
        'authentication.callback_received',
        'authentication.callback_orphaned',
      ]);
      expect(JSON.stringify(received)).not.toContain('recognizable-face');
    });
  });

  describe('Jumio still working on the scan', () => {
    it('polls while the Retrieval API says PENDING, then stores once it is DONE', async () => {
      const { scanReference: ref } = await sim.createScan({ status: 'PENDING' });
      await sim.sendCallback(ref, callbackUrl());
      await vault.container.pipeline.runOnce();
      await vault.container.pipeline.runOnce();
      const waiting = await get(ref);
      expect(waiting).toMatchObject({ state: 'PENDING', confirmedAt: null });
      expect(waiting!.lastError).toMatch(/^jumio_pending/);
      await sim.control('PATCH', `scans/${ref}`, { status: 'DONE' });
      expect((await settle(ref)).state).toBe('ACTIVE');
    });

    it('gives up as FAILED (replayable) when the scan stays PENDING', async () => {
      const { scanReference: ref } = await sim.createScan({ status: 'PENDING' });
      await sim.sendCallback(ref, callbackUrl());
      const e = await settle(ref);
      expect(e).toMatchObject({ state: 'FAILED', confirmedAt: null });
      expect(e.lastError).toMatch(/PENDING/);
      const seen = (await requestsFor(ref)).map((r) => r.endpoint);
      expect(seen.every((x) => x === 'scanDetails')).toBe(true);
    });
  });

  describe('ENROLLMENT_BINDING=intent', () => {
    let server: import('node:http').Server;
    let intentUrl: string;
    beforeAll(async () => {
      const { createServer } = await import('node:http');
      server = createServer(
        createApp({ ...vault.container, intake: { ...vault.container.intake, binding: 'intent' } }),
      );
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const a = server.address();
      intentUrl = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
    });
    afterAll(() => new Promise((r) => server.close(r)));

    const register = (
      enrollmentReference: string,
      userReference: string,
      token = TOKENS.onboarding,
    ) =>
      request(intentUrl)
        .post('/v1/enrollment-intents')
        .set('Authorization', `Bearer ${token}`)
        .send({ enrollmentReference, userReference });

    it('stores a facemap only for a scan an internal service registered first', async () => {
      const { scanReference: ref } = await sim.createScan({ customerId: 'user-intent-1' });
      const res = await register(ref, 'user-intent-1').expect(201);
      expect(res.body).toMatchObject({
        enrollmentReference: ref,
        userReference: 'user-intent-1',
        registeredBy: 'onboarding-svc',
      });
      await register(ref, 'user-intent-1').expect(200);
      await register(ref, 'user-intent-2').expect(409);
      await sim.sendCallback(ref, `${intentUrl}/webhooks/jumio`);
      expect((await settle(ref)).state).toBe('ACTIVE');
    });

    it('rejects an unannounced scan as unexpected_enrollment', async () => {
      const { scanReference: ref } = await sim.createScan();
      await sim.sendCallback(ref, `${intentUrl}/webhooks/jumio`);
      expect(await settle(ref)).toMatchObject({
        state: 'REJECTED',
        reason: 'unexpected_enrollment',
      });
      expect(await requestsFor(ref)).toEqual([]);
    });

    it('rejects a callback whose user reference disagrees with the intent', async () => {
      const { scanReference: ref } = await sim.createScan({ customerId: 'user-intent-other' });
      await register(ref, 'user-intent-expected').expect(201);
      await sim.sendCallback(ref, `${intentUrl}/webhooks/jumio`);
      expect(await settle(ref)).toMatchObject({
        state: 'REJECTED',
        reason: 'user_reference_mismatch',
      });
      expect(await requestsFor(ref)).toEqual([]);
    });

    it('validates intents and who may register them', async () => {
      await register('not a reference!', 'user-x').expect(400);
      await register('f0000000-0000-4000-8000-0000000000ff', 'jane@example.com').expect(400);
      await register('f0000000-0000-4000-8000-0000000000ff', 'user-x', TOKENS.auditor).expect(403);
      await request(intentUrl)
        .post('/v1/enrollment-intents')
        .set('Authorization', `Bearer ${TOKENS.admin}`)
        .send({
          enrollmentReference: 'f0000000-0000-4000-8000-0000000000ff',
          userReference: 'u',
          extra: 1,
        })
        .expect(400);
    });
  });

  describe('crash and restart', () => {
    const steps = ['confirm', 'store', 'delete_at_jumio', 'activate'] as const;

    it.each(steps)(
      'resumes after a crash right after %s, reaching ACTIVE exactly once',
      async (step) => {
        // Its own ledger and data directory: this test stops and restarts the vault.
        const ownLedger = await chooseLedger();
        const crashing = await startTestVault(sim, ownLedger, {
          overrides: {
            pipeline: {
              afterStep: (done) => {
                if (done === step) throw new Error(`simulated crash after ${step}`);
              },
            },
          },
        });
        let restarted: TestVault | undefined;
        try {
          const { scanReference: ref } = await sim.createScan();
          await sim.sendCallback(ref, `${crashing.url}/webhooks/jumio`);
          let crashed = false;
          for (let i = 0; i < 20 && !crashed; i++) {
            await crashing.container.pipeline.runOnce().catch((error: Error) => {
              expect(error.message).toBe(`simulated crash after ${step}`);
              crashed = true;
            });
          }
          expect(crashed).toBe(true);
          await crashing.stop();

          restarted = await startTestVault(sim, ownLedger, {}, crashing.dataDir);
          const e = await settle(ref, restarted);
          expect(e.state).toBe('ACTIVE');
          const seen = (await requestsFor(ref)).map((r) => r.endpoint);
          expect(seen.filter((x) => x === 'scanDelete')).toHaveLength(1);
          expect(seen.filter((x) => x === 'facemap')).toHaveLength(1);
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

  it('sweeps the blob of an attempt that died between writing and committing', async () => {
    const ownLedger = await chooseLedger();
    let failNextPut = true;
    const flaky = await startTestVault(sim, ownLedger, {
      overrides: {
        wrapBlobs: (real) =>
          Object.assign(Object.create(real) as typeof real, {
            put: async (key: string, body: Uint8Array) => {
              await real.put(key, body);
              if (failNextPut) {
                failNextPut = false;
                throw new Error('process died after the write');
              }
            },
          }),
      },
    });
    try {
      const { scanReference: ref } = await sim.createScan();
      await sim.sendCallback(ref, `${flaky.url}/webhooks/jumio`);
      let strays = 0;
      for (let i = 0; i < 200; i++) {
        await flaky.container.pipeline.runOnce();
        const e = await get(ref, flaky);
        if (e?.state === 'STORED') strays = Math.max(strays, (await blobKeys(ref, flaky)).length);
        if (e?.state === 'ACTIVE') break;
        await new Promise((r) => setTimeout(r, 5));
      }
      const e = await get(ref, flaky);
      expect(e!.state).toBe('ACTIVE');
      expect(strays).toBe(2); // the dead attempt's blob and the recorded one
      expect(await blobKeys(ref, flaky)).toEqual([e!.blobKey]);
      expect((await requestsFor(ref)).filter((r) => r.endpoint === 'scanDelete')).toHaveLength(1);
    } finally {
      await flaky.stop();
      await ownLedger.dispose();
      await removeDir(flaky.dataDir);
    }
  });

  it('keeps no PII and no plaintext facemap anywhere but in memory', async () => {
    const sentinel = (name: string) => `SENTINEL-${name}-7f3a9c`;
    const pii = {
      idFirstName: sentinel('first'),
      idLastName: sentinel('last'),
      idDob: '1911-11-11',
      idNumber: sentinel('number'),
      personalNumber: sentinel('personal'),
      idAddress: { line1: sentinel('address'), city: sentinel('city') },
      clientIp: '198.51.100.77',
      idScanImage: `https://netverify.com/${sentinel('image')}.jpg`,
      idScanImageFace: `https://netverify.com/${sentinel('face')}.jpg`,
      livenessImages: [`https://netverify.com/${sentinel('liveness')}.jpg`],
    };
    const { scanReference: ref, facemapBase64 } = await onboard({ pii, customerId: 'user-pii-1' });
    expect((await settle(ref)).state).toBe('ACTIVE');
    const facemap = Buffer.from(facemapBase64, 'base64');
    const needles = [
      ...Object.values(pii).flatMap((v) => (typeof v === 'string' ? [v] : Object.values(v))),
      sentinel('liveness'),
      '1911-11-11',
    ].map((v) => Buffer.from(v.replace(/^https:\/\/netverify.com\//, '')));
    const facemapForms = [
      facemap.subarray(0, 64),
      Buffer.from(facemap.subarray(0, 48).toString('base64')),
      Buffer.from(facemap.subarray(0, 32).toString('hex')),
    ];

    // Logs.
    const logs = Buffer.from(vault.logs.text());
    // The ledger: every row of every table, as text.
    const db = (vault.container.ledger as SqlLedger).db;
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
    // The blob store: every object, and every file in the data directory.
    const blobs: Buffer[] = [];
    let cursor: string | undefined;
    do {
      const page = await vault.container.blobs.list('', { cursor });
      for (const key of page.keys) blobs.push(Buffer.from(await vault.container.blobs.get(key)));
      cursor = page.nextCursor;
    } while (cursor);
    const files = await readTree(vault.dataDir);
    expect(blobs.length).toBeGreaterThan(0);
    expect(dump).toContain(ref); // the dump is real

    const haystacks = [logs, Buffer.from(dump), ...blobs, ...files.map((f) => f.bytes)];
    for (const hay of haystacks) {
      for (const needle of [...needles, ...facemapForms]) {
        expect(hay.includes(needle)).toBe(false);
      }
    }
  });

  describe('internal API', () => {
    it('requires a bearer token and the right role, and audits denials', async () => {
      await vault.container.denials.flush();
      await request(vault.url).get('/v1/enrollments/someone').expect(401);
      await request(vault.url)
        .get('/v1/enrollments/someone')
        .set('Authorization', 'Bearer wrong-token-0123456789abcdef0123456789')
        .expect(401);
      await request(vault.url)
        .get('/v1/enrollments/someone')
        .set('Authorization', `Bearer ${TOKENS.onboarding}`)
        .expect(403);
      await request(vault.url)
        .get('/v1/enrollments/nobody-here')
        .set('Authorization', `Bearer ${TOKENS.authenticator}`)
        .expect(404);
      await vault.container.denials.flush();
      const denied = (
        await vault.container.ledger.transaction((tx) => tx.audit.list({ limit: 1000 }))
      ).filter((a) => a.type === 'request.denied');
      expect(denied.map((a) => a.details.status).slice(-3)).toEqual([401, 401, 403]);
      expect(denied.map((a) => a.details.reason).slice(-3)).toEqual([
        'missing_token',
        'unknown_token',
        'role_not_allowed',
      ]);
      expect(denied.at(-1)!.actor).toBe('onboarding-svc');
    });

    it('shows the lifecycle without any facemap bytes', async () => {
      const { scanReference: ref, facemapBase64 } = await onboard({ customerId: 'user-view-1' });
      await settle(ref);
      const res = await request(vault.url)
        .get('/v1/enrollments/user-view-1')
        .set('Authorization', `Bearer ${TOKENS.auditor}`)
        .expect(200);
      expect(Object.keys(res.body).sort()).toEqual(
        [
          'userReference',
          'enrollmentReference',
          'state',
          'createdAt',
          'storedAt',
          'activatedAt',
          'jumioDeletedAt',
          'facemapBytes',
          'ciphertextSha256',
          'keyId',
          'attempts',
          'history',
        ].sort(),
      );
      expect(res.body).toMatchObject({
        userReference: 'user-view-1',
        enrollmentReference: ref,
        state: 'ACTIVE',
      });
      expect(res.text).not.toContain(facemapBase64.slice(0, 40));
      await request(vault.url)
        .get('/v1/enrollments/not%20valid@x')
        .set('Authorization', `Bearer ${TOKENS.auditor}`)
        .expect(400);
    });

    it('supersedes the previous facemap when the same user enrolls again', async () => {
      const first = await onboard({ customerId: 'user-again' });
      const firstDone = await settle(first.scanReference);
      const second = await onboard({ customerId: 'user-again' });
      expect((await settle(second.scanReference)).state).toBe('ACTIVE');
      const old = await settle(first.scanReference);
      expect(old.state).toBe('SUPERSEDED');
      expect(old.blobDestroyedAt).not.toBeNull();
      expect(await vault.container.blobs.exists(firstDone.blobKey!)).toBe(false);
      expect(await blobKeys(first.scanReference)).toEqual([]);
      const types = (await audits(first.scanReference)).map((a) => a.type);
      expect(types.slice(-2)).toEqual(['enrollment.superseded', 'facemap.destroyed']);
      const res = await request(vault.url)
        .get('/v1/enrollments/user-again')
        .set('Authorization', `Bearer ${TOKENS.admin}`)
        .expect(200);
      expect(res.body.enrollmentReference).toBe(second.scanReference);
      expect(res.body.history).toEqual([
        expect.objectContaining({ enrollmentReference: first.scanReference, state: 'SUPERSEDED' }),
      ]);
    });
  });
});
