import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import express from 'express';
import request from 'supertest';
import { FsBlobStore } from '../../src/adapters/blobs/fs-blob-store';
import { EncryptionSdkEnvelope } from '../../src/adapters/crypto/encryption-sdk-envelope';
import { localKeyring } from '../../src/adapters/crypto/keyrings';
import { runMigrations } from '../../src/adapters/ledger/migrations';
import { PgDatabase } from '../../src/adapters/ledger/pg-database';
import { PgliteDatabase } from '../../src/adapters/ledger/pglite-database';
import { SqlLedger } from '../../src/adapters/ledger/sql-ledger';
import { createApp, type AppDeps } from '../../src/app';
import { DenialAggregator } from '../../src/core/denials';
import { VaultError } from '../../src/core/errors';
import { systemClock } from '../../src/core/ports';
import { CidrAllowlist } from '../../src/http/callback-origin';
import { errorHandler } from '../../src/http/errors';
import { captureLogs } from '../helpers/logs';

describe('HTTP shell', () => {
  let dir: string;
  let db: PgliteDatabase;
  let deps: AppDeps;
  let logs: ReturnType<typeof captureLogs>;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'vault-http-'));
    db = await PgliteDatabase.open();
    await runMigrations(db);
    logs = captureLogs();
    deps = {
      denials: undefined as unknown as DenialAggregator,
      ledger: new SqlLedger(db),
      blobs: new FsBlobStore(path.join(dir, 'blobs')),
      envelope: new EncryptionSdkEnvelope({
        keyring: localKeyring({
          keyName: 'k',
          keyNamespace: 'test',
          masterKey: new Uint8Array(32).fill(7),
        }),
        keyId: 'local:test/k',
        maxPlaintextBytes: 1024,
      }),
      logger: logs.logger,
      clock: systemClock,
      intake: { userReferenceField: 'customerId', binding: 'none' },
      apiKeys: [],
      callbackAllowlist: new CidrAllowlist(['127.0.0.1/32']),
      trustProxy: false,
      readinessCacheMs: 0,
      dependencies: {
        ledger: { kind: 'pglite' },
        blobs: { kind: 'fs', root: path.join(dir, 'blobs') },
        envelope: { kind: 'local' },
      },
    };
    deps.denials = new DenialAggregator(deps, { intervalMs: 60_000 });
  });
  afterAll(async () => {
    await db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers /healthz with security headers and a request id', async () => {
    const res = await request(createApp(deps)).get('/healthz').expect(200);
    expect(res.body).toEqual({ status: 'ok' });
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['x-powered-by']).toBeUndefined();
    expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('keeps a well-formed incoming request id and replaces a malformed one', async () => {
    const app = createApp(deps);
    const kept = await request(app).get('/healthz').set('X-Request-Id', 'lb-1234.abc');
    expect(kept.headers['x-request-id']).toBe('lb-1234.abc');
    const replaced = await request(app).get('/healthz').set('X-Request-Id', 'bad id <script>');
    expect(replaced.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers /readyz 200 when ledger, blobs and envelope all work', async () => {
    const res = await request(createApp(deps)).get('/readyz').expect(200);
    expect(res.body).toEqual({
      status: 'ready',
      checks: { ledger: 'ok', blobs: 'ok', envelope: 'ok' },
    });
  });

  it('answers /readyz 503 naming the blob store when its root is unusable', async () => {
    const file = path.join(dir, 'not-a-directory');
    await writeFile(file, 'x');
    const res = await request(createApp({ ...deps, blobs: new FsBlobStore(file) })).get('/readyz');
    expect(res.status).toBe(503);
    expect(res.body.checks).toEqual({ ledger: 'ok', blobs: 'failed', envelope: 'ok' });
    expect(res.body.error).toEqual({
      code: 'not_ready',
      message: 'dependency failed: blobs',
      requestId: res.headers['x-request-id'],
    });
  });

  it('answers /readyz 503 naming the ledger when the database is unreachable', async () => {
    // Port 1 on loopback refuses at once: a real connection failure, not a fake.
    const unreachable = new SqlLedger(
      new PgDatabase({
        connectionString: 'postgres://x@127.0.0.1:1/x',
        connectionTimeoutMillis: 500,
      }),
    );
    const res = await request(createApp({ ...deps, ledger: unreachable })).get('/readyz');
    await unreachable.close();
    expect(res.status).toBe(503);
    expect(res.body.checks.ledger).toBe('failed');
    expect(res.body.error.message).toBe('dependency failed: ledger');
  });

  it('answers /readyz 503 naming the envelope when its key cannot decrypt', async () => {
    const broken = {
      ...deps.envelope,
      keyId: deps.envelope.keyId,
      encrypt: deps.envelope.encrypt.bind(deps.envelope),
      // A second keyring with another key: real decryption that fails.
      decrypt: (c: Uint8Array, ctx: Record<string, string>) =>
        new EncryptionSdkEnvelope({
          keyring: localKeyring({
            keyName: 'k',
            keyNamespace: 'test',
            masterKey: new Uint8Array(32).fill(9),
          }),
          keyId: 'local:test/k',
          maxPlaintextBytes: 1024,
        }).decrypt(c, ctx),
    };
    const res = await request(createApp({ ...deps, envelope: broken })).get('/readyz');
    expect(res.status).toBe(503);
    expect(res.body.checks).toEqual({ ledger: 'ok', blobs: 'ok', envelope: 'failed' });
  });

  it('answers unknown routes with the JSON error shape', async () => {
    const res = await request(createApp(deps)).get('/nothing-here').expect(404);
    expect(res.body).toEqual({
      error: {
        code: 'not_found',
        message: 'no route for GET /nothing-here',
        requestId: res.headers['x-request-id'],
      },
    });
  });

  it('never sends a stack trace or an internal message, and logs the failure', async () => {
    const app = express();
    app.get('/boom', () => {
      throw new Error('db password is hunter2');
    });
    app.get('/domain', () => {
      throw new VaultError('invalid_request', 'userReference is too long');
    });
    app.use(errorHandler(logs.logger));
    const res = await request(app).get('/boom').expect(500);
    expect(res.body).toEqual({ error: { code: 'internal_error', message: 'internal error' } });
    expect(res.text).not.toMatch(/hunter2|at .*\.ts/);
    const domain = await request(app).get('/domain').expect(400);
    expect(domain.body).toEqual({
      error: { code: 'invalid_request', message: 'userReference is too long' },
    });
    expect(logs.text()).toContain('request failed');
  });

  it('logs each request without its authorization header or query string', async () => {
    await request(createApp(deps))
      .get('/healthz?token=query-secret')
      .set('Authorization', 'Bearer header-secret')
      .expect(200);
    const text = logs.text();
    expect(text).toContain('"path":"/healthz"');
    expect(text).not.toContain('header-secret');
    expect(text).not.toContain('query-secret');
  });

  it('redacts authorization headers if a request object is ever logged', () => {
    const own = captureLogs();
    own.logger.info({ req: { headers: { authorization: 'Basic c2VjcmV0' } } }, 'x');
    expect(own.text()).toContain('[redacted]');
    expect(own.text()).not.toContain('c2VjcmV0');
  });
});
