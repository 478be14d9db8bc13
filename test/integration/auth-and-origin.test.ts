/**
 * The origin check and the internal API authentication over real HTTP, wired the way the
 * composition root is expected to wire them: trust proxy from TRUST_PROXY, denials and
 * refusals appended to a real (PGlite) audit trail and logged by a real pino logger.
 */
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import express, { type Express } from 'express';
import request from 'supertest';
import { runMigrations } from '../../src/adapters/ledger/migrations';
import { PgliteDatabase } from '../../src/adapters/ledger/pglite-database';
import { SqlLedger } from '../../src/adapters/ledger/sql-ledger';
import type { AuditEvent, AuditEventInput } from '../../src/core/ports';
import {
  apiKeyAuth,
  ensureAdminToken,
  hashToken,
  parseApiKeys,
  type ApiKey,
} from '../../src/http/api-keys';
import {
  CidrAllowlist,
  JUMIO_CALLBACK_IPS,
  callbackOrigin,
  parseTrustProxy,
} from '../../src/http/callback-origin';
import { errorHandler } from '../../src/http/errors';
import { requestId } from '../../src/http/middleware';
import { captureLogs } from '../helpers/logs';

const JUMIO_US = JUMIO_CALLBACK_IPS.US.join(',');
const JUMIO_IP = '34.202.241.227';
const TOKENS = {
  admin: 'Adm1n-token_abcdefghijklmnopqrstuvwxyz012345',
  authenticator: 'Auth-token_abcdefghijklmnopqrstuvwxyz0123456',
  auditor: 'Audit-token_abcdefghijklmnopqrstuvwxyz012345',
  onboarding: 'Onb-token_abcdefghijklmnopqrstuvwxyz01234567',
};

describe('callback origin and API authentication over HTTP', () => {
  let db: PgliteDatabase;
  let ledger: SqlLedger;
  let logs: ReturnType<typeof captureLogs>;
  let keys: ApiKey[];
  let seq = 0;

  beforeAll(async () => {
    db = await PgliteDatabase.open();
    await runMigrations(db);
    ledger = new SqlLedger(db);
    logs = captureLogs();
    keys = parseApiKeys(
      Object.entries(TOKENS)
        .map(([role, token]) => `${role}-svc:${role}:${hashToken(token)}`)
        .join(', '),
    );
  });
  afterAll(async () => {
    await db.close();
  });

  /** The app under test; `received` counts callbacks that got past the origin check. */
  function buildApp(options: { trustProxy?: string; allowed: string; apiKeys?: ApiKey[] }): {
    app: Express;
    received: string[];
  } {
    const { logger } = logs;
    const app = express();
    app.set('trust proxy', parseTrustProxy(options.trustProxy));
    app.use(requestId);
    const received: string[] = [];

    const audit = async (event: AuditEventInput): Promise<void> => {
      await ledger.transaction((tx) => tx.audit.append(event));
    };

    // The origin check runs before the body is parsed: a refused sender costs no parsing.
    app.post(
      '/webhooks/jumio',
      callbackOrigin({
        allowlist: CidrAllowlist.fromSpec(options.allowed),
        logger,
        onRefused: async (e) => {
          await audit({ type: 'callback.refused', actor: 'unknown', details: { ...e } });
          logger.warn({ ...e }, 'callback refused: source not allowed');
        },
      }),
      express.urlencoded({ extended: false, limit: '1mb' }),
      (req, res) => {
        received.push(String((req.body as Record<string, unknown>).jumioIdScanReference));
        res.send('ok');
      },
    );

    const auth = apiKeyAuth(options.apiKeys ?? keys, {
      logger,
      onDenied: async (e) => {
        await audit({ type: 'request.denied', actor: e.caller ?? 'anonymous', details: { ...e } });
        logger.warn({ ...e }, 'request denied');
      },
    });
    const v1 = express.Router();
    v1.get(
      '/enrollments/:ref',
      auth.requireRole('admin', 'auditor', 'authenticator'),
      (req, res) => {
        res.json({ ref: req.params.ref, caller: res.locals.caller });
      },
    );
    v1.post('/authentications', auth.requireRole('authenticator'), (_req, res) => {
      res.status(201).json({ ok: true });
    });
    v1.post('/enrollment-intents', auth.requireRole('onboarding'), (_req, res) => {
      res.status(201).json({ ok: true });
    });
    v1.post('/enrollments/:ref/replay', auth.requireRole('admin'), (_req, res) => {
      res.json({ ok: true });
    });
    app.use('/v1', auth.authenticate, v1);
    app.use(errorHandler(logger));
    return { app, received };
  }

  function rid(): string {
    seq += 1;
    return `t-${seq}`;
  }

  async function auditFor(id: string): Promise<AuditEvent[]> {
    const all = await ledger.transaction((tx) => tx.audit.list({ limit: 1000 }));
    return all.filter((e) => e.details.requestId === id);
  }

  async function callback(
    app: Express,
    xff?: string,
  ): Promise<{ status: number; id: string; body: unknown }> {
    const id = rid();
    const req = request(app)
      .post('/webhooks/jumio')
      .set('X-Request-Id', id)
      .type('form')
      .send({ callBackType: 'NETVERIFYID', jumioIdScanReference: id });
    if (xff !== undefined) req.set('X-Forwarded-For', xff);
    const res = await req;
    return { status: res.status, id, body: res.body };
  }

  // ------------------------------------------------------------ origin: TRUST_PROXY=false

  describe('TRUST_PROXY unset/false: the socket address decides', () => {
    it('refuses loopback against the Jumio list even with a forged X-Forwarded-For', async () => {
      for (const trustProxy of [undefined, 'false', '0']) {
        const { app, received } = buildApp({ trustProxy, allowed: JUMIO_US });
        const res = await callback(app, JUMIO_IP);
        expect(res.status).toBe(403);
        expect(res.body).toEqual({
          error: {
            code: 'forbidden',
            message: 'callback source not allowed',
            requestId: res.id,
          },
        });
        expect(received).toEqual([]);
        const events = await auditFor(res.id);
        expect(events).toHaveLength(1);
        expect(events[0]).toMatchObject({
          type: 'callback.refused',
          details: { sourceAddress: '127.0.0.1', method: 'POST', path: '/webhooks/jumio' },
        });
        expect(logs.text()).toContain(`"requestId":"${res.id}"`);
      }
    });

    it('lets loopback in when allowed, whatever X-Forwarded-For says', async () => {
      const { app, received } = buildApp({ allowed: 'loopback' });
      const res = await callback(app, '6.6.6.6');
      expect(res.status).toBe(200);
      expect(received).toEqual([res.id]);
      expect(await auditFor(res.id)).toEqual([]);
    });
  });

  // ------------------------------------------------------------ origin: hop count

  describe('TRUST_PROXY=1: the last X-Forwarded-For entry (the one our proxy added)', () => {
    it('uses the last entry, so a forged entry to its left never helps', async () => {
      const { app, received } = buildApp({ trustProxy: '1', allowed: JUMIO_US });

      const ok = await callback(app, `6.6.6.6, ${JUMIO_IP}`);
      expect(ok.status).toBe(200);

      const forged = await callback(app, `${JUMIO_IP}, 6.6.6.6`);
      expect(forged.status).toBe(403);
      expect((await auditFor(forged.id))[0]?.details).toMatchObject({
        sourceAddress: '6.6.6.6',
        socketAddress: expect.stringMatching(/127\.0\.0\.1$/),
      });

      // No header: the socket itself is the client.
      const direct = await callback(app);
      expect(direct.status).toBe(403);
      expect((await auditFor(direct.id))[0]?.details.sourceAddress).toBe('127.0.0.1');

      expect(received).toEqual([ok.id]);
    });

    it('refuses a garbage entry and records it sanitized', async () => {
      const { app, received } = buildApp({ trustProxy: '1', allowed: JUMIO_US });
      const res = await callback(app, `${JUMIO_IP}, not-an-ip\u00e9`);
      expect(res.status).toBe(403);
      expect(received).toEqual([]);
      const recorded = (await auditFor(res.id))[0]?.details.sourceAddress;
      expect(recorded).toMatch(/^not-an-ip\?+$/);
    });

    it('matches IPv6 and IPv4-mapped forwarded addresses', async () => {
      const { app } = buildApp({ trustProxy: '1', allowed: `${JUMIO_US}, 2a05:d018::/32` });
      expect((await callback(app, '2a05:d018:1::9')).status).toBe(200);
      expect((await callback(app, `::ffff:${JUMIO_IP}`)).status).toBe(200);
      expect((await callback(app, '2a05:d019::1')).status).toBe(403);
    });

    it('with two hops, the second-to-last entry decides', async () => {
      const { app } = buildApp({ trustProxy: '2', allowed: JUMIO_US });
      expect((await callback(app, `6.6.6.6, ${JUMIO_IP}, 10.0.0.1`)).status).toBe(200);
      expect((await callback(app, `${JUMIO_IP}, 6.6.6.6, 10.0.0.1`)).status).toBe(403);
    });
  });

  // ------------------------------------------------------------ origin: trusted CIDRs

  describe('TRUST_PROXY as addresses/CIDRs: only trusted hops are skipped', () => {
    it.each(['127.0.0.1', '::ffff:127.0.0.1', 'loopback'])(
      'trusting the socket (%s) lets the forwarded address decide',
      async (trustProxy) => {
        const { app } = buildApp({ trustProxy, allowed: JUMIO_US });
        expect((await callback(app, JUMIO_IP)).status).toBe(200);
        expect((await callback(app, '6.6.6.6')).status).toBe(403);
      },
    );

    it('skips trusted inner proxies but stops at the first untrusted hop', async () => {
      const { app, received } = buildApp({
        trustProxy: '127.0.0.1, 10.0.0.0/8',
        allowed: JUMIO_US,
      });
      const through = await callback(app, `${JUMIO_IP}, 10.0.0.7, 10.1.2.3`);
      expect(through.status).toBe(200);
      // An untrusted hop (6.6.6.6) wrote the Jumio address: it is not believed.
      const forged = await callback(app, `${JUMIO_IP}, 6.6.6.6, 10.0.0.7`);
      expect(forged.status).toBe(403);
      expect((await auditFor(forged.id))[0]?.details.sourceAddress).toBe('6.6.6.6');
      expect(received).toEqual([through.id]);
    });

    it('when the socket is not a trusted proxy, X-Forwarded-For is ignored', async () => {
      const { app, received } = buildApp({ trustProxy: '10.0.0.0/8', allowed: JUMIO_US });
      const res = await callback(app, JUMIO_IP);
      expect(res.status).toBe(403);
      expect((await auditFor(res.id))[0]?.details.sourceAddress).toBe('127.0.0.1');
      expect(received).toEqual([]);
    });
  });

  // ------------------------------------------------------------ API authentication

  describe('internal API', () => {
    const routes: ['get' | 'post', string, string[], number][] = [
      ['get', '/v1/enrollments/u-1', ['admin', 'auditor', 'authenticator'], 200],
      ['post', '/v1/authentications', ['authenticator'], 201],
      ['post', '/v1/enrollment-intents', ['onboarding'], 201],
      ['post', '/v1/enrollments/u-1/replay', ['admin'], 200],
    ];

    it('applies the role matrix: 401 without a valid token, 403 for a role not listed', async () => {
      const { app } = buildApp({ allowed: 'loopback' });
      for (const [method, url, allowed, ok] of routes) {
        for (const [role, token] of Object.entries(TOKENS)) {
          const res = await request(app)[method](url).set('Authorization', `Bearer ${token}`);
          const expected = allowed.includes(role) ? ok : 403;
          expect([method, url, role, res.status]).toEqual([method, url, role, expected]);
        }
        const anonymous = await request(app)[method](url);
        expect(anonymous.status).toBe(401);
        expect(anonymous.headers['www-authenticate']).toMatch(/^Bearer /);
        const wrong = await request(app)[method](url).set('Authorization', 'Bearer nope-nope');
        expect(wrong.status).toBe(401);
      }
    });

    it('audits every denial with the caller, path and request id, and never logs a token', async () => {
      const { app } = buildApp({ allowed: 'loopback' });
      const denied = rid();
      await request(app)
        .post('/v1/enrollments/u-7/replay?force=1')
        .set('X-Request-Id', denied)
        .set('Authorization', `Bearer ${TOKENS.auditor}`)
        .expect(403);
      const events = await auditFor(denied);
      expect(events).toEqual([
        expect.objectContaining({
          type: 'request.denied',
          actor: 'auditor-svc',
          details: {
            status: 403,
            reason: 'role_not_allowed',
            caller: 'auditor-svc',
            method: 'POST',
            path: '/v1/enrollments/u-7/replay',
            sourceAddress: '127.0.0.1',
            socketAddress: expect.stringMatching(/127\.0\.0\.1$/),
            requestId: denied,
          },
        }),
      ]);

      const forged = `${TOKENS.admin}X`;
      const unknown = rid();
      await request(app)
        .get('/v1/enrollments/u-7')
        .set('X-Request-Id', unknown)
        .set('Authorization', `Bearer ${forged}`)
        .expect(401);
      expect((await auditFor(unknown))[0]).toMatchObject({
        type: 'request.denied',
        actor: 'anonymous',
        details: { status: 401, reason: 'unknown_token', path: '/v1/enrollments/u-7' },
      });

      const everything =
        logs.text() +
        JSON.stringify(await ledger.transaction((tx) => tx.audit.list({ limit: 1000 })));
      for (const token of [...Object.values(TOKENS), forged]) {
        expect(everything).not.toContain(token);
      }
    });

    it('still answers the denial when the audit trail cannot commit', async () => {
      const { logger } = logs;
      const app = express();
      app.use(requestId);
      const auth = apiKeyAuth(keys, {
        logger,
        onDenied: async () => {
          await ledger.transaction(async () => {
            throw new Error('simulated commit failure');
          });
        },
      });
      app.get('/v1/x', auth.authenticate, auth.requireRole('admin'), (_req, res) => {
        res.json({ ok: true });
      });
      await request(app).get('/v1/x').expect(401);
      await request(app).get('/v1/x').set('Authorization', `Bearer ${TOKENS.auditor}`).expect(403);
      await request(app).get('/v1/x').set('Authorization', `Bearer ${TOKENS.admin}`).expect(200);
      expect(logs.text()).toContain('simulated commit failure');
    });

    it('accepts the generated embedded admin token from its file', async () => {
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'vault-admin-'));
      try {
        const { key, tokenFile } = await ensureAdminToken(dir, logs.logger);
        const token = (await fs.readFile(tokenFile, 'ascii')).trim();
        const { app } = buildApp({ allowed: 'loopback', apiKeys: [key] });
        const res = await request(app)
          .post('/v1/enrollments/u-1/replay')
          .set('Authorization', `Bearer ${token}`)
          .expect(200);
        expect(res.body).toEqual({ ok: true });
        const who = await request(app)
          .get('/v1/enrollments/u-1')
          .set('Authorization', `Bearer ${token}`)
          .expect(200);
        expect(who.body.caller).toEqual({ name: 'local-admin', role: 'admin' });
        expect(logs.text()).toContain(tokenFile);
        expect(logs.text()).not.toContain(token);
      } finally {
        await fs.rm(dir, { recursive: true, force: true });
      }
    });
  });
});
