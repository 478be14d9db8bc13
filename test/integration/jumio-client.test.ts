/**
 * The undici Jumio client against the Jumio simulator over loopback HTTP: every endpoint,
 * every fault class, the facemap cap, and invariant 7 (credentials and facemap fetches go
 * only to the configured Jumio origin), with a second loopback server as the trap.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MockAgent } from 'undici';
import {
  FacemapTooLargeError,
  JumioConfigurationError,
  JumioError,
  JumioInvalidRequestError,
  JumioInvalidResponseError,
  JumioNetworkError,
  JumioNotFoundError,
  JumioRateLimitedError,
  JumioRequestRejectedError,
  JumioTimeoutError,
  JumioUnauthorizedError,
  JumioUpstreamError,
  UnsafeFacemapUrlError,
} from '../../src/core/jumio';
import { backoffDelay, parseRetryAfter } from '../../src/adapters/jumio/retry';
import {
  authenticationResponseSchema,
  scanDetailsResponseSchema,
} from '../../src/adapters/jumio/schemas';
import {
  JUMIO_REGION_BASE_URLS,
  UndiciJumioClient,
  type UndiciJumioClientOptions,
} from '../../src/adapters/jumio/undici-jumio-client';
import { startSimulator, type RunningSimulator } from '../../src/simulator/server';

const USER_AGENT = 'Acme FacemapVault/1.0.0';
const MAIN = { token: 'it-main-token', secret: 'it-main-secret' };
const ADMIN = { token: 'it-admin-token', secret: 'it-admin-secret' };
const FACEMAP = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 31 + 7) % 256));

interface LoggedRequest {
  seq: number;
  method: string;
  path: string;
  status: number | null;
  credentials: 'main' | 'admin' | 'invalid' | 'none';
  userAgent: string | null;
  accept: string | null;
  endpoint: string;
  fault: string | null;
}

let sim: RunningSimulator;

/** A second loopback server that must never be reached by the client. */
interface Trap {
  server: Server;
  port: number;
  origin: string;
  requests: Array<{ method: string; url: string; authorization: string | undefined }>;
  handler: (req: IncomingMessage, res: ServerResponse) => void;
}
let trap: Trap;

const clients: UndiciJumioClient[] = [];
let sleeps: number[];

function client(overrides: Partial<UndiciJumioClientOptions> = {}): UndiciJumioClient {
  const c = new UndiciJumioClient({
    baseUrl: sim.baseUrl,
    credentials: MAIN,
    adminCredentials: ADMIN,
    userAgent: USER_AGENT,
    facemapMaxBytes: 64 * 1024,
    timeouts: { connectMs: 2_000, headersMs: 2_000, bodyMs: 2_000 },
    retry: { maxAttempts: 3, baseDelayMs: 100, maxDelayMs: 5_000 },
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    ...overrides,
  });
  clients.push(c);
  return c;
}

async function control<T = Record<string, unknown>>(
  method: string,
  path: string,
  body?: unknown,
): Promise<T> {
  const res = await fetch(`${sim.baseUrl}/__sim${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
  });
  if (res.status >= 300) throw new Error(`control ${method} ${path}: ${res.status}`);
  return (await res.json()) as T;
}

async function createScan(body: Record<string, unknown> = {}) {
  return control<{ scanReference: string; facemapSha256: string | null }>('POST', '/scans', {
    facemapBase64: FACEMAP.toString('base64'),
    ...body,
  });
}

async function fault(body: Record<string, unknown>): Promise<void> {
  await control('POST', '/faults', body);
}

async function requests(endpoint?: string): Promise<LoggedRequest[]> {
  const { requests: all } = await control<{ requests: LoggedRequest[] }>('GET', '/requests');
  return endpoint ? all.filter((r) => r.endpoint === endpoint) : all;
}

async function scanView(ref: string) {
  return control<{ deleted: boolean; facemapDownloads: number }>('GET', `/scans/${ref}`);
}

/** An eligible scan, deleted at Jumio, with an initiated authentication. */
async function initiatedAuthentication() {
  const { scanReference } = await createScan();
  const c = client();
  await c.deleteScan(scanReference);
  const { authenticationReference } = await c.initiateAuthentication({
    facemap: FACEMAP,
    enrollmentTransactionReference: scanReference,
    userReference: 'user-42',
  });
  await control('DELETE', '/requests');
  return { scanReference, authenticationReference };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  throw new Error('expected the call to fail');
}

beforeAll(async () => {
  sim = await startSimulator({
    port: 0,
    host: '127.0.0.1',
    apiToken: MAIN.token,
    apiSecret: MAIN.secret,
    adminApiToken: ADMIN.token,
    adminApiSecret: ADMIN.secret,
  });

  const t: Partial<Trap> = { requests: [] };
  t.handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.end(Buffer.from('stolen'));
  };
  t.server = createServer((req, res) => {
    t.requests!.push({
      method: req.method ?? '',
      url: req.url ?? '',
      authorization: req.headers.authorization,
    });
    t.handler!(req, res);
  });
  await new Promise<void>((resolve) => t.server!.listen(0, '127.0.0.1', resolve));
  t.port = (t.server.address() as AddressInfo).port;
  t.origin = `http://127.0.0.1:${t.port}`;
  trap = t as Trap;
});

afterAll(async () => {
  await sim.close();
  trap.server.closeAllConnections();
  await new Promise<void>((resolve) => trap.server.close(() => resolve()));
});

beforeEach(async () => {
  await control('POST', '/reset');
  sleeps = [];
  trap.requests.length = 0;
  trap.handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    res.end(Buffer.from('stolen'));
  };
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

// ---------------------------------------------------------------- endpoints

describe('ID Verification retrieval and delete', () => {
  it('reads the scan status', async () => {
    const { scanReference } = await createScan();
    const status = await client().getScanStatus(scanReference);
    expect(status.scanReference).toBe(scanReference);
    expect(status.status).toBe('DONE');
    expect(status.timestamp).toBeInstanceOf(Date);

    const [logged] = await requests('scanStatus');
    expect(logged).toMatchObject({
      method: 'GET',
      status: 200,
      credentials: 'admin',
      userAgent: USER_AGENT,
      accept: 'application/json',
    });
  });

  it('reads the scan details, keeping only allowlisted fields and no PII', async () => {
    const { scanReference } = await createScan({
      customerId: 'cust-7',
      merchantIdScanReference: 'merchant-ref-9',
      transactionDate: '2024-05-01T10:11:12.345Z',
    });
    const details = await client().getScanDetails(scanReference);
    expect(details).toEqual({
      scanReference,
      status: 'DONE',
      verificationStatus: 'APPROVED_VERIFIED',
      similarity: 'MATCH',
      validity: true,
      reason: null,
      facemapHref: `${sim.baseUrl}/api/netverify/v2/scans/${scanReference}/data/facemap`,
      customerId: 'cust-7',
      merchantScanReference: 'merchant-ref-9',
      transactionDate: new Date('2024-05-01T10:11:12.345Z'),
    });

    // The raw answer does carry PII; none of it may survive normalization.
    const raw = (await (
      await fetch(`${sim.baseUrl}/api/netverify/v2/scans/${scanReference}/data`, {
        headers: {
          authorization: `Basic ${Buffer.from(`${ADMIN.token}:${ADMIN.secret}`).toString('base64')}`,
          'user-agent': USER_AGENT,
          accept: 'application/json',
        },
      })
    ).json()) as { document: Record<string, unknown>; transaction: Record<string, unknown> };
    const piiValues = [
      ...Object.entries(raw.document)
        .filter(([k]) => k !== 'status')
        .map(([, v]) => v),
      raw.transaction.clientIp,
    ].filter((v): v is string => typeof v === 'string' && v.length > 3);
    expect(piiValues.length).toBeGreaterThan(3);
    const serialized = JSON.stringify(details);
    for (const value of piiValues) expect(serialized).not.toContain(value);
  });

  it.each([
    [{ validity: 'TRUE', fractionDigits: 0 }, true],
    [{ validity: 'true', fractionDigits: 1 }, true],
    [{ validity: 'boolean', fractionDigits: 2 }, true],
    [{ validity: 'TRUE', fractionDigits: 3 }, false],
    [{ validity: 'true', fractionDigits: 0 }, false],
    [{ validity: 'boolean', fractionDigits: 1 }, false],
  ])('tolerates the response variant %p (validity %p)', async (responseVariant, valid) => {
    const { scanReference } = await createScan({
      responseVariant,
      validity: valid,
      transactionDate: '2024-05-01T10:11:12.345Z',
    });
    const details = await client().getScanDetails(scanReference);
    expect(details.validity).toBe(valid);
    const expectedMs =
      Math.floor(345 / 10 ** (3 - responseVariant.fractionDigits)) *
      10 ** (3 - responseVariant.fractionDigits);
    expect(details.transactionDate?.getTime()).toBe(Date.UTC(2024, 4, 1, 10, 11, 12, expectedMs));
  });

  it('normalizes a pending and a denied scan without inventing values', async () => {
    const pending = await createScan({ status: 'PENDING' });
    const c = client();
    expect(await c.getScanDetails(pending.scanReference)).toMatchObject({
      status: 'PENDING',
      verificationStatus: null,
      similarity: null,
      validity: null,
      facemapHref: null,
    });
    expect((await c.getScanStatus(pending.scanReference)).status).toBe('PENDING');

    const denied = await createScan({ verificationStatus: 'DENIED_FRAUD' });
    expect(await c.getScanDetails(denied.scanReference)).toMatchObject({
      status: 'DONE',
      verificationStatus: 'DENIED_FRAUD',
      similarity: null,
      validity: null,
    });
  });

  it('downloads the facemap bytes with the admin credentials', async () => {
    const { scanReference, facemapSha256 } = await createScan();
    const c = client();
    const { facemapHref } = await c.getScanDetails(scanReference);
    const bytes = await c.downloadFacemap(facemapHref!, scanReference);
    expect(bytes).toBeInstanceOf(Uint8Array);
    expect(Buffer.from(bytes).equals(FACEMAP)).toBe(true);
    expect(createHash('sha256').update(bytes).digest('hex')).toBe(facemapSha256);
    expect((await scanView(scanReference)).facemapDownloads).toBe(1);

    const [logged] = await requests('facemap');
    expect(logged).toMatchObject({ status: 200, credentials: 'admin', userAgent: USER_AGENT });
    expect(logged?.accept).toContain('application/octet-stream');
  });

  it('deletes a scan; afterwards everything is not found and a second delete succeeds', async () => {
    const { scanReference } = await createScan();
    const c = client();
    const { facemapHref } = await c.getScanDetails(scanReference);
    await c.deleteScan(scanReference);
    expect((await scanView(scanReference)).deleted).toBe(true);

    await expect(c.getScanStatus(scanReference)).rejects.toBeInstanceOf(JumioNotFoundError);
    await expect(c.getScanDetails(scanReference)).rejects.toBeInstanceOf(JumioNotFoundError);
    await expect(c.downloadFacemap(facemapHref!, scanReference)).rejects.toBeInstanceOf(
      JumioNotFoundError,
    );
    await expect(c.deleteScan(scanReference)).resolves.toBeUndefined();

    const deletes = await requests('scanDelete');
    expect(deletes.map((r) => r.status)).toEqual([200, 404]);
    expect(deletes.every((r) => r.credentials === 'admin')).toBe(true);
    // Not found is final: none of it was retried.
    expect((await requests('scanStatus')).length).toBe(1);
  });

  it('refuses a malformed reference before sending anything', async () => {
    const c = client();
    for (const ref of ['', '..', 'a/b', '../../authentications/x', 'x?y=1']) {
      await expect(c.getScanStatus(ref)).rejects.toBeInstanceOf(JumioInvalidRequestError);
      await expect(c.deleteScan(ref)).rejects.toBeInstanceOf(JumioInvalidRequestError);
    }
    expect(await requests()).toHaveLength(0);
  });
});

describe('authentication', () => {
  it('initiates with the documented multipart form and the main credentials', async () => {
    const { scanReference } = await createScan();
    const c = client();
    await c.deleteScan(scanReference);
    const initiated = await c.initiateAuthentication({
      facemap: FACEMAP,
      enrollmentTransactionReference: scanReference,
      userReference: 'user-42',
      successUrl: 'https://app.example.com/ok',
      errorUrl: 'https://app.example.com/error',
      locale: 'de',
      tokenLifetimeInMinutes: 10,
    });
    expect(initiated.authenticationReference).toMatch(/^[0-9a-f-]{36}$/);
    expect(initiated.redirectUrl).toContain('locale=de');

    const view = await control<Record<string, unknown>>(
      'GET',
      `/authentications/${initiated.authenticationReference}`,
    );
    expect(view).toMatchObject({
      enrollmentTransactionReference: scanReference,
      state: 'CREATED',
      metadataForm: 'wrapped',
      facemapFilename: 'facemap.bin',
      facemapSha256: createHash('sha256').update(FACEMAP).digest('hex'),
      userReference: 'user-42',
      successUrl: 'https://app.example.com/ok',
      errorUrl: 'https://app.example.com/error',
      locale: 'de',
      tokenLifetimeInMinutes: 10,
    });
    const [logged] = await requests('initiate');
    expect(logged).toMatchObject({ method: 'POST', status: 200, credentials: 'main' });
  });

  it('retrieves an authentication without images, follows it to PASSED, deletes it', async () => {
    const { scanReference, authenticationReference } = await initiatedAuthentication();
    const c = client();
    const created = await c.getAuthentication(authenticationReference);
    expect(created).toEqual({
      transactionReference: authenticationReference,
      enrollmentTransactionReference: scanReference,
      transactionResult: 'CREATED',
      transactionDate: expect.any(Date),
      scanSource: 'WEB',
      userReference: 'user-42',
    });
    // The sample has no trailing Z: it must still be read as UTC, i.e. about now.
    expect(Math.abs(created.transactionDate.getTime() - Date.now())).toBeLessThan(60_000);

    await control('POST', `/authentications/${authenticationReference}/complete`, {
      result: 'PASSED',
    });
    const passed = await c.getAuthentication(authenticationReference);
    expect(passed.transactionResult).toBe('PASSED');
    // The simulator now sends images and livenessImages: they must not come through.
    expect(Object.keys(passed).sort()).toEqual([
      'enrollmentTransactionReference',
      'scanSource',
      'transactionDate',
      'transactionReference',
      'transactionResult',
      'userReference',
    ]);
    expect(JSON.stringify(passed)).not.toContain('/images');

    await c.deleteAuthentication(authenticationReference);
    await expect(c.getAuthentication(authenticationReference)).rejects.toBeInstanceOf(
      JumioNotFoundError,
    );
    await expect(c.deleteAuthentication(authenticationReference)).resolves.toBeUndefined();
    expect((await requests('authDelete')).map((r) => r.status)).toEqual([200, 404]);
  });

  it('reads EXPIRED for an earlier authentication superseded within 15 minutes', async () => {
    const { scanReference, authenticationReference: first } = await initiatedAuthentication();
    const c = client();
    const second = await c.initiateAuthentication({
      facemap: FACEMAP,
      enrollmentTransactionReference: scanReference,
    });
    expect((await c.getAuthentication(first)).transactionResult).toBe('EXPIRED');
    expect((await c.getAuthentication(second.authenticationReference)).transactionResult).toBe(
      'CREATED',
    );
  });

  it('surfaces Jumio refusals as rejected requests, once', async () => {
    const notDeleted = await createScan();
    const c = client();
    const err = await rejection(
      c.initiateAuthentication({
        facemap: FACEMAP,
        enrollmentTransactionReference: notDeleted.scanReference,
      }),
    );
    expect(err).toBeInstanceOf(JumioRequestRejectedError);
    expect((err as JumioRequestRejectedError).status).toBe(400);
    // Jumio's own code is carried (code-shaped values only), never the body's free text.
    expect((err as JumioRequestRejectedError).jumioCode).toBe('ENROLLMENT_NOT_DELETED');
    expect((err as Error).message).toBe(
      'initiate: Jumio rejected the request (HTTP 400 ENROLLMENT_NOT_DELETED)',
    );

    await c.deleteScan(notDeleted.scanReference);
    await expect(
      c.initiateAuthentication({
        facemap: Buffer.from('another face'),
        enrollmentTransactionReference: notDeleted.scanReference,
      }),
    ).rejects.toBeInstanceOf(JumioRequestRejectedError);
    expect((await requests('initiate')).map((r) => r.status)).toEqual([400, 400]);
  });

  it('validates the input before sending, without echoing values', async () => {
    const c = client({ facemapMaxBytes: 1024 });
    const base = { facemap: FACEMAP.subarray(0, 100), enrollmentTransactionReference: 'ref-1' };
    const err = await rejection(
      c.initiateAuthentication({ ...base, userReference: 'jane.doe@example.com' }),
    );
    expect(err).toBeInstanceOf(JumioInvalidRequestError);
    expect((err as Error).message).toContain('userReference');
    expect((err as Error).message).not.toContain('jane.doe');
    await expect(
      c.initiateAuthentication({ ...base, callbackUrl: 'http://vault.example.com/cb' }),
    ).rejects.toBeInstanceOf(JumioInvalidRequestError);
    await expect(
      c.initiateAuthentication({ ...base, tokenLifetimeInMinutes: 1 }),
    ).rejects.toBeInstanceOf(JumioInvalidRequestError);
    await expect(c.initiateAuthentication({ ...base, facemap: FACEMAP })).rejects.toBeInstanceOf(
      FacemapTooLargeError,
    );
    expect(await requests()).toHaveLength(0);
  });
});

// ---------------------------------------------------------------- faults and retries

describe('retries', () => {
  it.each([500, 503])('retries HTTP %i with exponential backoff, then succeeds', async (status) => {
    const { scanReference } = await createScan();
    await fault({ endpoint: 'scanStatus', kind: 'status', status, times: 2 });
    const status_ = await client().getScanStatus(scanReference);
    expect(status_.status).toBe('DONE');
    expect((await requests('scanStatus')).map((r) => r.status)).toEqual([status, status, 200]);
    // Full jitter with random() = 0.5: half of 100 ms, then half of 200 ms.
    expect(sleeps).toEqual([50, 100]);
  });

  it('gives up after maxAttempts with the upstream status', async () => {
    const { scanReference } = await createScan();
    await fault({ endpoint: 'scanDetails', kind: 'status', status: 500 });
    const err = await rejection(client().getScanDetails(scanReference));
    expect(err).toBeInstanceOf(JumioUpstreamError);
    expect((err as JumioUpstreamError).status).toBe(500);
    expect((err as JumioError).transient).toBe(true);
    expect(await requests('scanDetails')).toHaveLength(3);
    expect(sleeps).toHaveLength(2);
  });

  it('honours Retry-After on 429', async () => {
    const { scanReference } = await createScan();
    await fault({ endpoint: 'scanDetails', kind: 'status', status: 429, retryAfter: 2, times: 1 });
    const details = await client().getScanDetails(scanReference);
    expect(details.scanReference).toBe(scanReference);
    // What is left of the 2 s when the retry is made (the gate counts from the answer).
    expect(sleeps).toHaveLength(1);
    expect(sleeps[0]).toBeGreaterThan(1500);
    expect(sleeps[0]).toBeLessThanOrEqual(2000);
    expect((await requests('scanDetails')).map((r) => r.status)).toEqual([429, 200]);
  });

  it('honours Retry-After on 503', async () => {
    const { scanReference } = await createScan();
    await fault({ endpoint: 'scanStatus', kind: 'status', status: 503, retryAfter: 1, times: 1 });
    await client().getScanStatus(scanReference);
    expect(sleeps).toHaveLength(1);
    expect(sleeps[0]).toBeGreaterThan(500);
    expect(sleeps[0]).toBeLessThanOrEqual(1000);
  });

  it('backs off on a 429 without Retry-After', async () => {
    const { scanReference } = await createScan();
    await fault({ endpoint: 'scanStatus', kind: 'status', status: 429, times: 1 });
    await client().getScanStatus(scanReference);
    expect(sleeps).toEqual([50]);
  });

  it('hands a long Retry-After back to the caller instead of waiting it out', async () => {
    const { scanReference } = await createScan();
    await fault({ endpoint: 'scanStatus', kind: 'status', status: 429, retryAfter: 120 });
    const err = await rejection(client().getScanStatus(scanReference));
    expect(err).toBeInstanceOf(JumioRateLimitedError);
    expect((err as JumioRateLimitedError).retryAfterMs).toBe(120_000);
    expect(sleeps).toEqual([]);
    expect(await requests('scanStatus')).toHaveLength(1);
  });

  it('keeps every call of the client away from Jumio until a Retry-After has passed', async () => {
    const { scanReference } = await createScan();
    const shared = client();
    await fault({ endpoint: 'scanStatus', kind: 'status', status: 429, retryAfter: 120, times: 1 });
    await rejection(shared.getScanStatus(scanReference));
    // Other endpoints, other callers: refused in-process, Jumio never sees them.
    const details = await rejection(shared.getScanDetails(scanReference));
    expect(details).toBeInstanceOf(JumioRateLimitedError);
    expect((details as JumioRateLimitedError).retryAfterMs).toBeGreaterThan(110_000);
    await rejection(shared.deleteScan(scanReference));
    expect((await requests()).map((r) => r.endpoint)).toEqual(['scanStatus']);
    expect(sleeps).toEqual([]);
    // Another client (another process) is not bound by what this one was told.
    await client().getScanStatus(scanReference);
  });

  it.each([
    [400, JumioRequestRejectedError],
    [409, JumioRequestRejectedError],
    [401, JumioUnauthorizedError],
    [403, JumioUnauthorizedError],
  ])('does not retry HTTP %i', async (status, type) => {
    const { scanReference } = await createScan();
    await fault({ endpoint: 'scanStatus', kind: 'status', status });
    await expect(client().getScanStatus(scanReference)).rejects.toBeInstanceOf(type);
    expect(await requests('scanStatus')).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it.each([
    ['scanStatus', (c: UndiciJumioClient, s: string) => c.getScanStatus(s)],
    ['scanDetails', (c: UndiciJumioClient, s: string) => c.getScanDetails(s)],
    [
      'facemap',
      (c: UndiciJumioClient, s: string) =>
        c.downloadFacemap(`${sim.baseUrl}/api/netverify/v2/scans/${s}/data/facemap`, s),
    ],
    ['scanDelete', (c: UndiciJumioClient, s: string) => c.deleteScan(s)],
  ])('retries %s (GET/DELETE) on a 503', async (endpoint, call) => {
    const { scanReference } = await createScan();
    await fault({ endpoint, kind: 'status', status: 503, times: 1 });
    await call(client(), scanReference);
    expect((await requests(endpoint)).map((r) => r.status)).toEqual([503, 200]);
  });

  it.each([
    ['authRetrieval', (c: UndiciJumioClient, a: string) => c.getAuthentication(a)],
    ['authDelete', (c: UndiciJumioClient, a: string) => c.deleteAuthentication(a)],
  ])('retries %s on a 503', async (endpoint, call) => {
    const { authenticationReference } = await initiatedAuthentication();
    await fault({ endpoint, kind: 'status', status: 503, times: 1 });
    await call(client(), authenticationReference);
    expect((await requests(endpoint)).map((r) => r.status)).toEqual([503, 200]);
  });

  it.each([
    [{ kind: 'status', status: 500 }, JumioUpstreamError],
    [{ kind: 'status', status: 503, retryAfter: 1 }, JumioUpstreamError],
    [{ kind: 'status', status: 429, retryAfter: 1 }, JumioRateLimitedError],
    [{ kind: 'hang' }, JumioTimeoutError],
  ])('never retries the initiate POST (%p)', async (spec, type) => {
    const { scanReference } = await createScan();
    const c = client({ timeouts: { connectMs: 1_000, headersMs: 300, bodyMs: 300 } });
    await c.deleteScan(scanReference);
    await fault({ endpoint: 'initiate', times: 1, ...spec });
    await expect(
      c.initiateAuthentication({ facemap: FACEMAP, enrollmentTransactionReference: scanReference }),
    ).rejects.toBeInstanceOf(type);
    expect(await requests('initiate')).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });
});

describe('timeouts, malformed and oversized answers', () => {
  const fast = { connectMs: 1_000, headersMs: 300, bodyMs: 300 };

  it('times out a hanging Jumio, retrying the GET', async () => {
    const { scanReference } = await createScan();
    await fault({ endpoint: 'scanStatus', kind: 'hang' });
    const started = Date.now();
    const err = await rejection(
      client({
        timeouts: fast,
        retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 100 },
      }).getScanStatus(scanReference),
    );
    expect(err).toBeInstanceOf(JumioTimeoutError);
    expect((err as JumioTimeoutError).phase).toBe('headers');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(await requests('scanStatus')).toHaveLength(2);
  });

  it('tolerates a slow answer within the timeout and times out a slower one', async () => {
    const { scanReference } = await createScan();
    await fault({ endpoint: 'scanStatus', kind: 'slow', delayMs: 50, times: 1 });
    expect((await client({ timeouts: fast }).getScanStatus(scanReference)).status).toBe('DONE');

    await fault({ endpoint: 'scanDetails', kind: 'slow', delayMs: 1_500, times: 1 });
    await expect(
      client({
        timeouts: fast,
        retry: { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
      }).getScanDetails(scanReference),
    ).rejects.toBeInstanceOf(JumioTimeoutError);
  });

  it('times out a body that stops arriving', async () => {
    trap.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      res.write(Buffer.alloc(10));
      // ...and nothing more.
    };
    const c = client({
      baseUrl: trap.origin,
      timeouts: fast,
      retry: { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
    });
    const err = await rejection(
      c.downloadFacemap(`${trap.origin}/api/netverify/v2/scans/s1/data/facemap`, 's1'),
    );
    expect(err).toBeInstanceOf(JumioTimeoutError);
    expect((err as JumioTimeoutError).phase).toBe('body');
  });

  it('ends a facemap download that trickles, with a total deadline the idle timeout never hits', async () => {
    let trickle: NodeJS.Timeout | undefined;
    trap.handler = (_req, res) => {
      res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-length': String(FACEMAP.length),
      });
      // One byte every 50 ms: never idle for bodyMs, never finished.
      let sent = 0;
      trickle = setInterval(() => {
        if (sent < FACEMAP.length && !res.destroyed) res.write(FACEMAP.subarray(sent, ++sent));
      }, 50);
      res.on('close', () => clearInterval(trickle));
    };
    const c = client({
      baseUrl: trap.origin,
      timeouts: { connectMs: 1_000, headersMs: 1_000, bodyMs: 1_000, totalMs: 1_500 },
      retry: { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
    });
    try {
      const err = await rejection(
        c.downloadFacemap(`${trap.origin}/api/netverify/v2/scans/s1/data/facemap`, 's1'),
      );
      expect(err).toBeInstanceOf(JumioTimeoutError);
      expect((err as JumioTimeoutError).phase).toBe('total');
    } finally {
      clearInterval(trickle);
    }
  });

  it.each([
    ['scanStatus', (c: UndiciJumioClient) => c.getScanStatus('a1b2c3')],
    ['authRetrieval', (c: UndiciJumioClient) => c.getAuthentication('a1b2c3')],
  ])('holds %s to the same total deadline', async (_op, call) => {
    let trickle: NodeJS.Timeout | undefined;
    trap.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100000' });
      trickle = setInterval(() => !res.destroyed && res.write(' '), 50);
      res.on('close', () => clearInterval(trickle));
    };
    const c = client({
      baseUrl: trap.origin,
      timeouts: { connectMs: 1_000, headersMs: 1_000, bodyMs: 1_000, totalMs: 1_500 },
      retry: { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1 },
    });
    try {
      const err = await rejection(call(c));
      expect(err).toBeInstanceOf(JumioTimeoutError);
      expect((err as JumioTimeoutError).phase).toBe('total');
    } finally {
      clearInterval(trickle);
    }
  });

  it('reports malformed JSON as an invalid response, without retrying', async () => {
    const { scanReference } = await createScan();
    await fault({ endpoint: 'scanStatus', kind: 'malformed' });
    const err = await rejection(client().getScanStatus(scanReference));
    expect(err).toBeInstanceOf(JumioInvalidResponseError);
    expect(await requests('scanStatus')).toHaveLength(1);
  });

  it('refuses an oversized JSON answer', async () => {
    const { scanReference } = await createScan();
    await fault({ endpoint: 'scanDetails', kind: 'oversized', bytes: 2 * 1024 * 1024 });
    await expect(client().getScanDetails(scanReference)).rejects.toBeInstanceOf(
      JumioInvalidResponseError,
    );
  });

  it('never returns a truncated facemap', async () => {
    const { scanReference } = await createScan();
    await fault({ endpoint: 'facemap', kind: 'malformed' });
    const err = await rejection(
      client().downloadFacemap(
        `${sim.baseUrl}/api/netverify/v2/scans/${scanReference}/data/facemap`,
        scanReference,
      ),
    );
    expect(err).toBeInstanceOf(JumioNetworkError);
  });

  it('reports a refused connection as a network error after retrying', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const err = await rejection(
      client({ baseUrl: `http://127.0.0.1:${port}` }).getScanStatus('abc'),
    );
    expect(err).toBeInstanceOf(JumioNetworkError);
    expect((err as Error).message).toContain('ECONNREFUSED');
    expect(sleeps).toHaveLength(2);
  });
});

describe('facemap size cap', () => {
  const href = (ref: string) => `${sim.baseUrl}/api/netverify/v2/scans/${ref}/data/facemap`;

  it('refuses a facemap larger than the cap', async () => {
    const { scanReference } = await createScan({ facemapBase64: undefined, facemapBytes: 5000 });
    await expect(
      client({ facemapMaxBytes: 4999 }).downloadFacemap(href(scanReference), scanReference),
    ).rejects.toBeInstanceOf(FacemapTooLargeError);
    const exact = await client({ facemapMaxBytes: 5000 }).downloadFacemap(
      href(scanReference),
      scanReference,
    );
    expect(exact.byteLength).toBe(5000);
  });

  it.each([false, true])(
    'stops an oversized stream (Content-Length announced: %p)',
    async (contentLength) => {
      const { scanReference } = await createScan();
      await fault({
        endpoint: 'facemap',
        kind: 'oversized',
        bytes: 50 * 1024 * 1024,
        contentLength,
      });
      const err = await rejection(client().downloadFacemap(href(scanReference), scanReference));
      expect(err).toBeInstanceOf(FacemapTooLargeError);
      expect((err as FacemapTooLargeError).maxBytes).toBe(64 * 1024);
      expect(await requests('facemap')).toHaveLength(1);
    },
  );

  it('aborts an endless body as soon as it passes the cap', async () => {
    let written = 0;
    let closed = false;
    trap.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(16 * 1024, 1);
      const pump = () => {
        while (!res.destroyed && res.write(chunk)) written += chunk.length;
        if (!res.destroyed) res.once('drain', pump);
      };
      res.on('close', () => {
        closed = true;
      });
      pump();
    };
    const c = client({ baseUrl: trap.origin, facemapMaxBytes: 100_000 });
    await expect(
      c.downloadFacemap(`${trap.origin}/api/netverify/v2/scans/s2/data/facemap`, 's2'),
    ).rejects.toBeInstanceOf(FacemapTooLargeError);
    await new Promise((r) => setTimeout(r, 100));
    expect(closed).toBe(true);
    // Socket buffers hold some extra, but nowhere near an unbounded stream.
    expect(written).toBeLessThan(20 * 1024 * 1024);
  });
});

// ---------------------------------------------------------------- invariant 7

describe('credentials go only to the configured Jumio origin', () => {
  const facemapPath = (ref: string) => `/api/netverify/v2/scans/${ref}/data/facemap`;

  it('refuses a facemap URL on another origin', async () => {
    const { scanReference } = await createScan();
    const c = client();
    const simPort = new URL(sim.baseUrl).port;
    for (const url of [
      `${trap.origin}${facemapPath(scanReference)}`,
      // Same machine, other spelling or scheme: still another origin.
      `http://localhost:${simPort}${facemapPath(scanReference)}`,
      `https://127.0.0.1:${simPort}${facemapPath(scanReference)}`,
      `http://user:pw@127.0.0.1:${simPort}${facemapPath(scanReference)}`,
      `file:///etc/passwd`,
      `not a url`,
    ]) {
      await expect(c.downloadFacemap(url, scanReference)).rejects.toBeInstanceOf(
        UnsafeFacemapUrlError,
      );
    }
    expect(trap.requests).toEqual([]);
    expect(await requests()).toEqual([]);
  });

  it("refuses a URL on the Jumio origin that is not exactly this scan's facemap path", async () => {
    const { scanReference } = await createScan();
    const { scanReference: other } = await createScan();
    const c = client();
    for (const url of [
      `${sim.baseUrl}${facemapPath(other)}`,
      `${sim.baseUrl}${facemapPath(scanReference)}?x=1`,
      `${sim.baseUrl}${facemapPath(scanReference)}#f`,
      `${sim.baseUrl}${facemapPath(scanReference)}/`,
      `${sim.baseUrl}/api/netverify/v2/scans/${scanReference}/data`,
      `${sim.baseUrl}/api/netverify/v2/scans/${scanReference}/../${other}/data/facemap`,
    ]) {
      await expect(c.downloadFacemap(url, scanReference)).rejects.toBeInstanceOf(
        UnsafeFacemapUrlError,
      );
    }
    expect(await requests()).toEqual([]);
  });

  it('refuses plain http when the configured base URL is https', async () => {
    // The configured origin is https on the trap's port; the callback names http on it.
    const c = client({ baseUrl: `https://127.0.0.1:${trap.port}` });
    const err = await rejection(
      c.downloadFacemap(`${trap.origin}/api/netverify/v2/scans/x/data/facemap`, 'x'),
    );
    expect(err).toBeInstanceOf(UnsafeFacemapUrlError);
    expect((err as Error).message).toContain('https required');
    expect(trap.requests).toEqual([]);
  });

  it('refuses plain http against a production region without dialling anything', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    const c = client({ baseUrl: JUMIO_REGION_BASE_URLS.EU, dispatcher: agent });
    await expect(
      c.downloadFacemap('http://lon.netverify.com/api/netverify/v2/scans/x/data/facemap', 'x'),
    ).rejects.toBeInstanceOf(UnsafeFacemapUrlError);
    await expect(
      c.downloadFacemap('https://netverify.com/api/netverify/v2/scans/x/data/facemap', 'x'),
    ).rejects.toBeInstanceOf(UnsafeFacemapUrlError);
    await agent.close();
  });

  it('refuses a non-loopback http base URL at construction', () => {
    for (const baseUrl of [
      'http://netverify.com',
      'http://10.0.0.5:4010',
      'http://128.0.0.1',
      'https://user:pw@netverify.com',
      'ftp://netverify.com',
    ]) {
      expect(() => client({ baseUrl })).toThrow(JumioConfigurationError);
    }
  });

  it('does not follow a facemap redirect to another origin', async () => {
    const { scanReference } = await createScan();
    await fault({
      endpoint: 'facemap',
      kind: 'redirect',
      location: `${trap.origin}/steal${facemapPath(scanReference)}`,
    });
    await expect(
      client().downloadFacemap(`${sim.baseUrl}${facemapPath(scanReference)}`, scanReference),
    ).rejects.toBeInstanceOf(UnsafeFacemapUrlError);
    expect(trap.requests).toEqual([]);
    expect(await requests('facemap')).toHaveLength(1);
  });

  it('does not follow a redirect on a JSON endpoint either', async () => {
    const { scanReference } = await createScan();
    await fault({ endpoint: 'scanDetails', kind: 'redirect', location: `${trap.origin}/steal` });
    await expect(client().getScanDetails(scanReference)).rejects.toBeInstanceOf(
      JumioInvalidResponseError,
    );
    expect(trap.requests).toEqual([]);
  });

  it('reports wrong credentials as unauthorized, without retrying or leaking them', async () => {
    const { scanReference } = await createScan();
    const c = client({
      credentials: { token: MAIN.token, secret: 'wrong-secret' },
      adminCredentials: { token: ADMIN.token, secret: 'wrong-admin-secret' },
    });
    const err = await rejection(c.getScanStatus(scanReference));
    expect(err).toBeInstanceOf(JumioUnauthorizedError);
    expect((err as JumioUnauthorizedError).status).toBe(401);
    expect((err as Error).message).not.toContain('wrong-admin-secret');
    expect((err as Error).message).not.toContain(ADMIN.token);
    const [logged] = await requests('scanStatus');
    expect(logged?.credentials).toBe('invalid');
    expect(await requests()).toHaveLength(1);
  });

  it('falls back to the main pair when no admin pair is configured', async () => {
    const { scanReference } = await createScan();
    await client({ adminCredentials: undefined }).getScanStatus(scanReference);
    expect((await requests('scanStatus'))[0]?.credentials).toBe('main');
  });

  it('is refused (403) with a User-Agent that does not name the business', async () => {
    const { scanReference } = await createScan();
    const err = await rejection(client({ userAgent: 'node' }).getScanStatus(scanReference));
    expect(err).toBeInstanceOf(JumioUnauthorizedError);
    expect((err as JumioUnauthorizedError).status).toBe(403);
  });
});

// ---------------------------------------------------------------- retry arithmetic

describe('retry arithmetic', () => {
  it('parses Retry-After as seconds or an HTTP date', () => {
    const now = Date.parse('2024-05-01T10:00:00Z');
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter('7', now)).toBe(7000);
    expect(parseRetryAfter(['3', '9'], now)).toBe(3000);
    expect(parseRetryAfter('Wed, 01 May 2024 10:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('Wed, 01 May 2024 09:00:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(undefined, now)).toBeNull();
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter('-5', now)).toBeNull();
  });

  it('draws full-jitter delays below an exponential, capped ceiling', () => {
    const policy = { maxAttempts: 5, baseDelayMs: 100, maxDelayMs: 1000 };
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n, policy, () => 0.999999))).toEqual([
      99, 199, 399, 799, 999,
    ]);
    expect(backoffDelay(3, policy, () => 0)).toBe(0);
  });
});

// ---------------------------------------------------------------- response variants

describe('response schemas', () => {
  const details = {
    timestamp: '2024-05-01T10:00:00.1Z',
    scanReference: 'ref-1',
    document: { status: 'APPROVED_VERIFIED', firstName: 'JANE', number: 'X123' },
    transaction: { status: 'DONE', date: '2024-05-01T09:59:59', customerId: 'c-1' },
    verification: { identityVerification: { similarity: 'MATCH', validity: 'true' } },
  };

  it('takes the facemap link from a single object or from a list', () => {
    const href = 'https://netverify.com/api/netverify/v2/scans/ref-1/data/facemap';
    const single = scanDetailsResponseSchema.parse({
      ...details,
      facemap: { classifier: 'facemap', href },
    });
    const list = scanDetailsResponseSchema.parse({
      ...details,
      facemap: [
        { classifier: 'other', href: 'https://netverify.com/other' },
        { classifier: 'facemap', href },
      ],
    });
    expect(single.facemapHref).toBe(href);
    expect(list.facemapHref).toBe(href);
  });

  it('reads identityVerification sent as a JSON string, and drops PII', () => {
    const parsed = scanDetailsResponseSchema.parse({
      ...details,
      verification: {
        identityVerification: '{"similarity":"MATCH","validity":"FALSE","reason":"BAD"}',
      },
    });
    expect(parsed).toMatchObject({ similarity: 'MATCH', validity: false, reason: 'BAD' });
    expect(parsed.transactionDate?.toISOString()).toBe('2024-05-01T09:59:59.000Z');
    expect(JSON.stringify(parsed)).not.toMatch(/JANE|X123/);
  });

  it('refuses an unknown validity instead of guessing', () => {
    const result = scanDetailsResponseSchema.safeParse({
      ...details,
      verification: { identityVerification: { similarity: 'MATCH', validity: 'maybe' } },
    });
    expect(result.success).toBe(false);
  });

  it('drops authentication images and reads a date without Z as UTC', () => {
    const parsed = authenticationResponseSchema.parse({
      transactionReference: 'a-1',
      enrollmentTransactionReference: 'e-1',
      transactionResult: 'PASSED',
      transactionDate: '2024-05-01T10:00:00.12',
      scanSource: 'SDK',
      images: [{ classifier: 'FACE', href: 'https://netverify.com/face' }],
      livenessImages: ['https://netverify.com/l1'],
    });
    expect(parsed).toEqual({
      transactionReference: 'a-1',
      enrollmentTransactionReference: 'e-1',
      transactionResult: 'PASSED',
      transactionDate: new Date('2024-05-01T10:00:00.120Z'),
      scanSource: 'SDK',
    });
  });
});
