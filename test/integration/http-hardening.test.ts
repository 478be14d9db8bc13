/**
 * The HTTP surface under hostile or clumsy clients, through a whole test vault (real
 * container, PGlite, the simulator over loopback): denials aggregated instead of written
 * one by one, unreadable callbacks recorded, request ids on every log line and error
 * body, framework client errors kept 4xx, 405 with Allow, the read-by-scan route, the
 * readiness cache and its logged causes, and the HTTP server's bounds.
 */
import { connect, type Socket } from 'node:net';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Server } from 'node:http';
import request from 'supertest';
import { FsBlobStore } from '../../src/adapters/blobs/fs-blob-store';
import { createS3Client, S3BlobStore } from '../../src/adapters/blobs/s3-blob-store';
import { createApp } from '../../src/app';
import { loadConfig } from '../../src/config';
import { dependencyTargets } from '../../src/container';
import type { AuditEvent, BlobStore, Envelope } from '../../src/core/ports';
import { CidrAllowlist } from '../../src/http/callback-origin';
import { createHttpServer } from '../../src/http/server';
import {
  removeDir,
  type SimulatorClient,
  startTestSimulator,
  startTestVault,
  type TestVault,
  TOKENS,
} from '../helpers/vault';
import { waitFor } from '../helpers/process';

/** The store with another ping(); every other method is the store's own. */
function withPing(store: BlobStore, ping: () => Promise<void>): BlobStore {
  return Object.assign(Object.create(store) as BlobStore, { ping });
}

const pglite = { name: 'pglite' as const, env: {}, dispose: async () => undefined };

describe('HTTP hardening', () => {
  let sim: SimulatorClient;
  let vault: TestVault;

  beforeAll(async () => {
    sim = await startTestSimulator();
    vault = await startTestVault(sim, pglite, {
      // No timer flush during the tests: each test flushes when it means to.
      env: { AUDIT_DENIAL_INTERVAL_MS: '3600000', TRUST_PROXY: '1' },
    });
  });
  afterAll(async () => {
    await vault?.stop();
    await sim?.running.close();
    if (vault) await removeDir(vault.dataDir);
  });

  const auditOf = async (type: string): Promise<AuditEvent[]> =>
    (await vault.container.ledger.transaction((tx) => tx.audit.list({ limit: 10_000 }))).filter(
      (a) => a.type === type,
    );
  const lines = () => vault.logs.lines.map((l) => JSON.parse(l) as Record<string, unknown>);

  it('warns at start-up that a TRUST_PROXY hop count is spoofable, recommending CIDRs', () => {
    const warning = lines().find((l) => /TRUST_PROXY is a hop count/.test(String(l.msg)));
    expect(warning).toMatchObject({ level: 40, trustProxy: 1 });
    expect(String(warning!.msg)).toMatch(/addresses or CIDRs/);
  });

  describe('denied requests are counted, and audited as one summary per interval', () => {
    it('50 anonymous posts write no audit row each; a flush writes one entry with count 50', async () => {
      await vault.container.denials.flush();
      const before = (await auditOf('request.denied')).length;
      for (let i = 0; i < 50; i++) {
        await request(vault.url)
          .post('/v1/enrollment-intents')
          .send({ enrollmentReference: 'a', userReference: 'b' })
          .expect(401);
      }
      expect((await auditOf('request.denied')).length).toBe(before);
      expect(await vault.container.denials.flush()).toBe(1);
      const after = await auditOf('request.denied');
      expect(after.length).toBe(before + 1);
      const summary = after.at(-1)!;
      expect(summary.actor).toBe('anonymous');
      expect(summary.details).toMatchObject({
        count: 50,
        reason: 'missing_token',
        status: 401,
        sourceAddress: '127.0.0.1',
        lastPath: '/v1/enrollment-intents',
      });
      const { firstSeen, lastSeen } = summary.details as { firstSeen: string; lastSeen: string };
      expect(Date.parse(firstSeen)).toBeLessThanOrEqual(Date.parse(lastSeen));
    });

    it('counts 403s per caller name, and refused callbacks per source', async () => {
      await vault.container.denials.flush();
      for (let i = 0; i < 3; i++) {
        await request(vault.url)
          .get('/v1/enrollments/someone')
          .set('Authorization', `Bearer ${TOKENS.onboarding}`)
          .expect(403);
      }
      // Behind one trusted hop, the forwarded address is the source (and is refused).
      const refusing = createApp({
        ...vault.container,
        callbackAllowlist: new CidrAllowlist(['10.0.0.0/8']),
      });
      for (let i = 0; i < 50; i++) {
        await request(refusing)
          .post('/webhooks/jumio')
          .set('X-Forwarded-For', '203.0.113.9')
          .type('form')
          .send({ callBackType: 'NETVERIFYID', jumioIdScanReference: 'x' })
          .expect(403);
      }
      const refusedBefore = (await auditOf('callback.refused')).length;
      expect(await vault.container.denials.flush()).toBe(2);
      const forbidden = (await auditOf('request.denied')).at(-1)!;
      expect(forbidden.actor).toBe('onboarding-svc');
      expect(forbidden.details).toMatchObject({
        count: 3,
        reason: 'role_not_allowed',
        caller: 'onboarding-svc',
        status: 403,
      });
      const refused = await auditOf('callback.refused');
      expect(refused.length).toBe(refusedBefore + 1);
      expect(refused.at(-1)!.details).toMatchObject({
        count: 50,
        sourceAddress: '203.0.113.9',
        reason: 'source_not_allowed',
        status: 403,
      });
    });
  });

  describe('unreadable callbacks', () => {
    const PII = 'idFirstName=MARIANNE-UNREADABLE&idNumber=X1234567';

    it('are answered 4xx, logged without the body and audited per source, reason and content type', async () => {
      await vault.container.denials.flush();
      const before = (await auditOf('callback.unreadable')).length;
      const post = () => request(vault.url).post('/webhooks/jumio');
      await post().set('Content-Type', 'text/plain').send(PII).expect(415);
      await post().set('Content-Type', 'text/plain').send(`${PII}&more=1`).expect(415);
      await post().set('Content-Type', 'application/json').send('{"a":1}').expect(415);
      await post().type('form').send('').expect(400);
      await post().type('form').send(PII).expect(400);
      await post().type('form').send(`callBackType=NETVERIFYID&${PII}`).expect(400);
      await post().type('form').send(`callBackType=NETVERIFY_AUTHENTICATION&${PII}`).expect(400);
      await post()
        .set('Content-Type', 'application/x-www-form-urlencoded; charset=latin9')
        .send(PII)
        .expect(415);
      await post()
        .type('form')
        .send(`callBackType=NETVERIFYID&x=${'a'.repeat(1024 * 1024 + 10)}`)
        .expect(413);
      expect((await auditOf('callback.unreadable')).length).toBe(before);

      await vault.container.denials.flush();
      const records = (await auditOf('callback.unreadable')).slice(before);
      const byReason = Object.fromEntries(records.map((r) => [r.details.reason, r.details]));
      const mediaType = records.filter((r) => r.details.reason === 'unsupported_media_type');
      expect(mediaType.map((r) => r.details.contentType).sort()).toEqual([
        'application/json',
        'text/plain',
      ]);
      expect(mediaType.find((r) => r.details.contentType === 'text/plain')!.details).toMatchObject({
        count: 2,
        status: 415,
        sourceAddress: '127.0.0.1',
        maxBytes: PII.length + '&more=1'.length,
      });
      expect(byReason.empty_body).toMatchObject({ count: 1, status: 400 });
      expect(byReason.missing_callback_type).toMatchObject({
        count: 1,
        contentType: 'application/x-www-form-urlencoded',
      });
      expect(byReason.malformed_scan_reference).toMatchObject({ count: 1 });
      expect(byReason.malformed_transaction_reference).toMatchObject({ count: 1 });
      expect(byReason.unsupported_charset).toMatchObject({ count: 1, status: 415 });
      expect(byReason.body_too_large).toMatchObject({ count: 1, status: 413 });
      expect((byReason.body_too_large as { maxBytes: number }).maxBytes).toBeGreaterThan(1 << 20);

      const warnings = lines().filter(
        (l) => l.msg === 'callback unreadable: answered 4xx, body not kept',
      );
      expect(warnings.length).toBeGreaterThanOrEqual(9);
      // Neither the trail nor the log holds anything of the bodies.
      const trail = JSON.stringify(records);
      for (const hay of [trail, vault.logs.text()]) {
        expect(hay).not.toContain('MARIANNE-UNREADABLE');
        expect(hay).not.toContain('X1234567');
      }
    });
  });

  describe('request ids', () => {
    it('are on every log line of the request, core and adapter lines included', async () => {
      // An adapter that logs through the injected logger, as any adapter may: it knows
      // nothing of HTTP, and its line must still name the request.
      const { logger } = vault.container;
      const blobs = withPing(vault.container.blobs, async () => {
        await new Promise((r) => setTimeout(r, 5));
        logger.child({ component: 'blob-probe' }).info({}, 'probing the blob store');
        await vault.container.blobs.ping();
      });
      const app = createApp({ ...vault.container, blobs, readinessCacheMs: 0 });
      await request(app).get('/readyz').set('X-Request-Id', 'trace-ready-1').expect(200);
      const probe = lines().find((l) => l.msg === 'probing the blob store');
      expect(probe).toMatchObject({ requestId: 'trace-ready-1', component: 'blob-probe' });

      // A callback: the webhook's own line, committed through the core, carries the id.
      const { scanReference } = await sim.createScan({ customerId: 'user-trace-1' });
      await request(vault.url)
        .post('/webhooks/jumio')
        .set('X-Request-Id', 'trace-callback-1')
        .type('form')
        .send({
          callBackType: 'NETVERIFYID',
          jumioIdScanReference: scanReference,
          customerId: 'user-trace-1',
        })
        .expect(200);
      await waitFor(async () =>
        lines().some((l) => l.msg === 'request' && l.requestId === 'trace-callback-1')
          ? true
          : undefined,
      );
      const committed = lines().find(
        (l) =>
          l.msg === 'ID verification callback committed' && l.enrollmentReference === scanReference,
      );
      expect(committed?.requestId).toBe('trace-callback-1');
      // Lines logged outside any request carry none.
      vault.container.logger.info({}, 'outside any request');
      expect(lines().find((l) => l.msg === 'outside any request')?.requestId).toBeUndefined();
    });

    it('are in every error body, and match the X-Request-Id header', async () => {
      const failing: Envelope = {
        keyId: vault.container.envelope.keyId,
        previousKeyIds: [],
        encrypt: () => Promise.reject(new Error('kms down')),
        decrypt: () => Promise.reject(new Error('kms down')),
        verifyKey: () => Promise.reject(new Error('kms down')),
      };
      const notReady = createApp({ ...vault.container, envelope: failing, readinessCacheMs: 0 });
      const refusing = createApp({
        ...vault.container,
        callbackAllowlist: new CidrAllowlist(['10.0.0.0/8']),
      });
      const admin = `Bearer ${TOKENS.admin}`;
      const answers = [
        await request(vault.url).get('/v1/enrollments/x'),
        await request(vault.url)
          .get('/v1/enrollments/x')
          .set('Authorization', `Bearer ${TOKENS.onboarding}`),
        await request(vault.url).get('/v1/enrollments/nobody-here').set('Authorization', admin),
        await request(vault.url).get('/v1/enrollments/%ZZ').set('Authorization', admin),
        await request(vault.url).delete('/healthz'),
        await request(vault.url).get('/nothing'),
        await request(vault.url).post('/webhooks/jumio').type('form').send(''),
        await request(refusing).post('/webhooks/jumio').type('form').send('a=1'),
        await request(notReady).get('/readyz'),
      ];
      expect(answers.map((a) => a.status)).toEqual([401, 403, 404, 400, 405, 404, 400, 403, 503]);
      for (const answer of answers) {
        expect(answer.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
        expect(answer.body.error.requestId).toBe(answer.headers['x-request-id']);
      }
      const kept = await request(vault.url).get('/nothing').set('X-Request-Id', 'lb-77');
      expect(kept.body.error).toEqual({
        code: 'not_found',
        message: 'no route for GET /nothing',
        requestId: 'lb-77',
      });
    });
  });

  describe('client errors stay 4xx', () => {
    it('malformed percent-encoding is a 400, not a 500 with a stack trace', async () => {
      const res = await request(vault.url)
        .get('/v1/enrollments/%ZZ')
        .set('Authorization', `Bearer ${TOKENS.admin}`)
        .set('X-Request-Id', 'trace-zz');
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({
        code: 'invalid_request',
        message: 'malformed percent-encoding in the path',
      });
      expect(res.text).not.toMatch(/URIError|at .*\.(ts|js)/);
      expect(
        lines().filter((l) => l.requestId === 'trace-zz' && l.msg === 'request failed'),
      ).toEqual([]);
    });

    it('bad JSON, a body too large, a wrong charset or encoding keep their 4xx', async () => {
      const post = () =>
        request(vault.url)
          .post('/v1/enrollment-intents')
          .set('Authorization', `Bearer ${TOKENS.onboarding}`);
      const badJson = await post().set('Content-Type', 'application/json').send('{"a":');
      expect([badJson.status, badJson.body.error.code]).toEqual([400, 'invalid_request']);
      const large = await post()
        .set('Content-Type', 'application/json')
        .send(JSON.stringify({ enrollmentReference: 'x'.repeat(70 * 1024) }));
      expect([large.status, large.body.error.code]).toEqual([413, 'payload_too_large']);
      const charset = await post()
        .set('Content-Type', 'application/json; charset=latin9')
        .send('{}');
      expect([charset.status, charset.body.error.code]).toEqual([415, 'unsupported_media_type']);
      const encoding = await post()
        .set('Content-Type', 'application/json')
        .set('Content-Encoding', 'x-unknown')
        .send('{}');
      expect([encoding.status, encoding.body.error.code]).toEqual([415, 'unsupported_media_type']);
    });
  });

  describe('methods', () => {
    it.each([
      ['delete', '/healthz', 'GET, HEAD, OPTIONS', undefined],
      ['post', '/readyz', 'GET, HEAD, OPTIONS', undefined],
      ['get', '/webhooks/jumio', 'POST, OPTIONS', undefined],
      ['put', '/v1/enrollments/user-1', 'DELETE, GET, HEAD, OPTIONS', TOKENS.admin],
      ['get', '/v1/enrollment-intents', 'POST, OPTIONS', TOKENS.onboarding],
      ['get', '/v1/enrollments/user-1/replay', 'POST, OPTIONS', TOKENS.admin],
      ['delete', '/v1/enrollments/by-scan/abc', 'GET, HEAD, OPTIONS', TOKENS.admin],
    ] as const)('%s %s answers 405 with Allow: %s', async (method, route, allow, token) => {
      let req = request(vault.url)[method](route);
      if (token) req = req.set('Authorization', `Bearer ${token}`);
      const res = await req;
      expect(res.status).toBe(405);
      expect(res.headers.allow).toBe(allow);
      expect(res.body.error.code).toBe('method_not_allowed');
    });

    it('still answers 404 for unknown paths', async () => {
      await request(vault.url).delete('/nothing-here').expect(404);
    });
  });

  it('logs the full path (with /v1) for requests refused before the router', async () => {
    await request(vault.url)
      .get('/v1/enrollments/someone?token=query-secret')
      .set('X-Request-Id', 'trace-path-1')
      .expect(401);
    await waitFor(async () =>
      lines().find((l) => l.msg === 'request' && l.requestId === 'trace-path-1'),
    );
    const access = lines().find((l) => l.msg === 'request' && l.requestId === 'trace-path-1');
    expect(access).toMatchObject({ path: '/v1/enrollments/someone', status: 401 });
    expect(vault.logs.text()).not.toContain('query-secret');
  });

  describe('GET /v1/enrollments/by-scan/{scanReference}', () => {
    it('finds a rejected onboarding that has no user reference, for admin and auditor only', async () => {
      const { scanReference } = await sim.createScan({ customerId: undefined });
      const delivered = await sim.sendCallback(scanReference, `${vault.url}/webhooks/jumio`);
      expect(delivered.status).toBe(200);
      const res = await request(vault.url)
        .get(`/v1/enrollments/by-scan/${scanReference}`)
        .set('Authorization', `Bearer ${TOKENS.auditor}`)
        .expect(200);
      expect(res.body).toMatchObject({
        enrollmentReference: scanReference,
        userReference: null,
        state: 'REJECTED',
        reason: 'invalid_user_reference',
      });
      expect(JSON.stringify(res.body)).not.toMatch(/facemap"|base64/i);
      await request(vault.url)
        .get(`/v1/enrollments/by-scan/${scanReference}`)
        .set('Authorization', `Bearer ${TOKENS.admin}`)
        .expect(200);
      await request(vault.url)
        .get(`/v1/enrollments/by-scan/${scanReference}`)
        .set('Authorization', `Bearer ${TOKENS.authenticator}`)
        .expect(403);
    });

    it('answers 400 for a malformed reference and 404 for an unknown one', async () => {
      const get = (ref: string) =>
        request(vault.url)
          .get(`/v1/enrollments/by-scan/${ref}`)
          .set('Authorization', `Bearer ${TOKENS.admin}`);
      const malformed = await get('not_a_scan!');
      expect([malformed.status, malformed.body.error.code]).toEqual([400, 'invalid_request']);
      expect((await get('x'.repeat(37))).status).toBe(400);
      const unknown = await get('00000000-0000-4000-8000-00000000dead');
      expect([unknown.status, unknown.body.error.code]).toEqual([404, 'not_found']);
    });
  });

  describe('/readyz', () => {
    /** Counts the calls that cost something: KMS round trips and blob store probes. */
    function counting() {
      const calls = { encrypt: 0, ping: 0 };
      const { envelope, blobs } = vault.container;
      return {
        calls,
        envelope: {
          keyId: envelope.keyId,
          encrypt: (p: Uint8Array, c: Record<string, string>) => {
            calls.encrypt += 1;
            return envelope.encrypt(p, c);
          },
          decrypt: envelope.decrypt.bind(envelope),
          previousKeyIds: envelope.previousKeyIds,
          verifyKey: envelope.verifyKey.bind(envelope),
        } satisfies Envelope,
        blobs: withPing(blobs, () => {
          calls.ping += 1;
          return blobs.ping();
        }),
      };
    }

    it('reuses its result for READINESS_CACHE_MS: public probes cost one check per interval', async () => {
      const cached = counting();
      const app = createApp({ ...vault.container, ...cached, readinessCacheMs: 60_000 });
      const answers = await Promise.all(
        Array.from({ length: 5 }, () => request(app).get('/readyz')),
      );
      for (let i = 0; i < 5; i++) answers.push(await request(app).get('/readyz'));
      expect(answers.map((a) => a.status)).toEqual(Array(10).fill(200));
      expect(cached.calls).toEqual({ encrypt: 1, ping: 1 });

      const uncached = counting();
      const every = createApp({ ...vault.container, ...uncached, readinessCacheMs: 0 });
      for (let i = 0; i < 3; i++) await request(every).get('/readyz').expect(200);
      expect(uncached.calls).toEqual({ encrypt: 3, ping: 3 });
    });

    it('logs the cause of a failure (error, code, target), never credentials', async () => {
      const file = path.join(vault.dataDir, 'not-a-directory');
      await writeFile(file, 'x');
      const app = createApp({
        ...vault.container,
        blobs: new FsBlobStore(file),
        readinessCacheMs: 0,
        dependencies: { ...vault.container.dependencies, blobs: { kind: 'fs', root: file } },
      });
      await request(app).get('/readyz').set('X-Request-Id', 'trace-fs-1').expect(503);
      const fsLine = lines().find((l) => l.msg === 'not ready' && l.requestId === 'trace-fs-1');
      expect(fsLine).toMatchObject({
        checks: { blobs: 'failed', ledger: 'ok', envelope: 'ok' },
        failures: {
          blobs: {
            error: 'DependencyError',
            code: 'dependency_failed',
            cause: { code: expect.stringMatching(/^E[A-Z]+$/) },
            target: { kind: 'fs', root: file },
          },
        },
      });

      // S3 at an endpoint that refuses connections, with credentials in the environment
      // and in the endpoint URL: the log names the endpoint and bucket, never either.
      const config = loadConfig({
        BLOB_STORE: 's3',
        S3_BUCKET: 'facemaps-readiness',
        S3_ENDPOINT: 'http://keyid:url-secret-1@127.0.0.1:1',
        S3_FORCE_PATH_STYLE: 'true',
        AWS_REGION: 'us-east-1',
      });
      const s3 = new S3BlobStore({
        client: createS3Client({
          region: 'us-east-1',
          endpoint: 'http://127.0.0.1:1',
          forcePathStyle: true,
          credentials: { accessKeyId: 'AKIDREADINESS', secretAccessKey: 'sk-readiness-secret' },
        }),
        bucket: 'facemaps-readiness',
      });
      const s3App = createApp({
        ...vault.container,
        blobs: s3,
        readinessCacheMs: 0,
        dependencies: dependencyTargets(config),
      });
      await request(s3App).get('/readyz').set('X-Request-Id', 'trace-s3-1').expect(503);
      const s3Line = lines().find((l) => l.msg === 'not ready' && l.requestId === 'trace-s3-1');
      expect(s3Line).toMatchObject({
        failures: {
          blobs: {
            error: 'DependencyError',
            target: {
              kind: 's3',
              bucket: 'facemaps-readiness',
              endpoint: 'http://127.0.0.1:1',
            },
          },
        },
      });
      expect(JSON.stringify(s3Line)).toMatch(/ECONNREFUSED/);
      expect(vault.logs.text()).not.toMatch(/url-secret-1|sk-readiness-secret|AKIDREADINESS/);
    });
  });

  describe('the HTTP server', () => {
    let server: Server;
    afterEach(async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    async function listen(settings: Partial<Parameters<typeof createHttpServer>[1]>) {
      server = createHttpServer(createApp(vault.container), {
        ...loadConfig({}).http,
        ...settings,
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const address = server.address();
      return typeof address === 'object' && address ? address.port : 0;
    }

    function open(port: number): Promise<Socket> {
      return new Promise((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => resolve(socket));
        socket.once('error', reject);
      });
    }

    it('cuts a client that trickles its body, and serves others meanwhile', async () => {
      const port = await listen({ headersTimeoutMs: 1000, requestTimeoutMs: 1000 });
      const slow = await open(port);
      const declared = 100_000;
      let sent = 0;
      let answer = '';
      slow.on('data', (d: Buffer) => (answer += d.toString()));
      slow.on('error', () => undefined);
      const closed = new Promise<void>((resolve) => slow.once('close', () => resolve()));
      slow.write(
        'POST /webhooks/jumio HTTP/1.1\r\nHost: vault\r\n' +
          'Content-Type: application/x-www-form-urlencoded\r\n' +
          `Content-Length: ${declared}\r\n\r\n`,
      );
      const trickle = setInterval(() => {
        if (slow.destroyed || slow.writableEnded) return;
        slow.write('a');
        sent += 1;
      }, 50);
      try {
        // Others are served while the slow client holds its connection.
        for (let i = 0; i < 5; i++) {
          await request(`http://127.0.0.1:${port}`).get('/healthz').expect(200);
        }
        await closed;
      } finally {
        clearInterval(trickle);
      }
      expect(sent).toBeLessThan(declared);
      expect(answer).toMatch(/^HTTP\/1\.1 408/);
      await request(`http://127.0.0.1:${port}`).get('/healthz').expect(200);
    });

    it('drops connections beyond HTTP_MAX_CONNECTIONS, and accepts again once below', async () => {
      const port = await listen({ maxConnections: 2 });
      let accepted = 0;
      let dropped = 0;
      server.on('connection', () => (accepted += 1));
      server.on('drop', () => (dropped += 1));
      const first = await open(port);
      const second = await open(port);
      await waitFor(async () => (accepted === 2 ? true : undefined));
      const third = await open(port);
      third.on('error', () => undefined);
      await new Promise<void>((resolve) => third.once('close', () => resolve()));
      expect(dropped).toBe(1);
      first.destroy();
      second.destroy();
      await waitFor(async () => {
        const res = await fetch(`http://127.0.0.1:${port}/healthz`);
        return res.status === 200 ? true : undefined;
      });
    });
  });
});
