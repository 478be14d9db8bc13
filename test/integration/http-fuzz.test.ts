/**
 * Property: while the stores are healthy, no request, however malformed, makes the vault
 * answer 5xx. 5xx means "the vault failed" (and makes Jumio retry a callback forever), so
 * a client's bad path, header or body must always be a 4xx. Requests go over real HTTP
 * (node:http, which sends what it is given) to a whole test vault.
 */
import { request as httpRequest } from 'node:http';
import fc from 'fast-check';
import {
  removeDir,
  type SimulatorClient,
  startTestSimulator,
  startTestVault,
  type TestVault,
  TOKENS,
} from '../helpers/vault';

interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string | Buffer;
}

function send(base: string, req: Sent): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const out = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method: req.method,
        path: req.path,
        headers: { ...req.headers, 'content-length': String(Buffer.byteLength(req.body)) },
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    out.on('error', reject);
    out.end(req.body);
  });
}

// ------------------------------------------------------------------ arbitraries

/** Printable ASCII that node:http accepts in a header value. */
const headerText = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  maxLength: 80,
});

/** A path segment: encoded text, or the encodings and shapes that trip decoders. */
const segment = fc.oneof(
  fc.string({ maxLength: 40 }).map(encodeURIComponent),
  fc.constantFrom(
    '%ZZ',
    '%',
    '%%',
    '%E0%A4%A',
    '%C0%AF',
    '%00',
    '%FF%FE',
    '..',
    '.',
    '',
    'by-scan',
    'replay',
    ';x=1',
    'user-1',
    '15551234567',
    'a'.repeat(300),
    '00000000-0000-4000-8000-000000000001',
  ),
  fc.stringMatching(/^[A-Za-z0-9._~:@!$&'()*+,;=-]{0,40}$/),
);

const path = fc.oneof(
  fc.constant('/webhooks/jumio'),
  fc.constant('/healthz'),
  fc.constant('/readyz'),
  fc.constant('/v1/enrollment-intents'),
  segment.map((s) => `/v1/enrollments/${s}`),
  segment.map((s) => `/v1/enrollments/${s}/replay`),
  segment.map((s) => `/v1/enrollments/by-scan/${s}`),
  fc.array(segment, { maxLength: 5 }).map((parts) => `/${parts.join('/')}`),
  fc.array(segment, { minLength: 1, maxLength: 4 }).map((parts) => `/v1/${parts.join('/')}`),
);

const query = fc.oneof(
  fc.constant(''),
  fc
    .array(fc.tuple(segment, segment), { maxLength: 4 })
    .map((pairs) => `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`),
);

const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS');

const authorization = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(...Object.values(TOKENS)).map((t) => `Bearer ${t}`),
  headerText.map((t) => `Bearer ${t}`),
  headerText,
);

const contentType = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(
    'application/x-www-form-urlencoded',
    'application/x-www-form-urlencoded; charset=utf-8',
    'application/x-www-form-urlencoded; charset=latin9',
    'application/json',
    'application/json; charset=utf-16',
    'text/plain',
    'multipart/form-data; boundary=x',
    'application/octet-stream',
  ),
  headerText,
);

const contentEncoding = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom('identity', 'gzip', 'deflate', 'br', 'x-unknown'),
);

/** Callback-shaped forms (so the handlers run), JSON of any shape, and raw bytes. */
const formField = fc.tuple(
  fc.constantFrom(
    'callBackType',
    'jumioIdScanReference',
    'transactionReference',
    'transactionResult',
    'verificationStatus',
    'identityVerification',
    'facemap',
    'customerId',
    'transactionDate',
    'callbackDate',
    'idScanSource',
    'enrollmentTransactionReference',
  ),
  fc.oneof(
    fc.constantFrom(
      'NETVERIFYID',
      'NETVERIFY_AUTHENTICATION',
      'OTHER',
      'APPROVED_VERIFIED',
      'PASSED',
      '{"similarity":"MATCH","validity":"TRUE"}',
      '{"similarity":',
      '2024-03-05T07:08:09.123Z',
      'not-a-date',
      'http://127.0.0.1:1/facemap',
    ),
    fc.uuid(),
    fc.string({ maxLength: 60 }),
  ),
);
const body = fc.oneof(
  fc.constant(''),
  fc
    .array(formField, { maxLength: 10 })
    .map((fields) =>
      fields.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`).join('&'),
    ),
  fc.json({ maxDepth: 3 }),
  fc
    .record({ enrollmentReference: fc.string(), userReference: fc.string() })
    .map((o) => JSON.stringify(o)),
  fc.string({ maxLength: 200 }),
  fc.uint8Array({ maxLength: 200 }).map((bytes) => Buffer.from(bytes)),
);

const requestArb = fc
  .record({
    method,
    path,
    query,
    authorization,
    contentType,
    contentEncoding,
    requestId: fc.option(headerText, { nil: undefined }),
    forwardedFor: fc.option(headerText, { nil: undefined }),
    body,
  })
  .map((r): Sent => ({
    method: r.method,
    path: r.path + r.query,
    headers: Object.fromEntries(
      Object.entries({
        authorization: r.authorization,
        'content-type': r.contentType,
        'content-encoding': r.contentEncoding,
        'x-request-id': r.requestId,
        'x-forwarded-for': r.forwardedFor,
      }).filter((e): e is [string, string] => e[1] !== undefined),
    ),
    body: r.body,
  }));

// ------------------------------------------------------------------ the property

describe('any request while the stores are healthy', () => {
  let sim: SimulatorClient;
  let vault: TestVault;

  beforeAll(async () => {
    sim = await startTestSimulator();
    vault = await startTestVault(
      sim,
      { name: 'pglite', env: {}, dispose: async () => undefined },
      { env: { TRUST_PROXY: '1', AUDIT_DENIAL_INTERVAL_MS: '1000' } },
    );
  });
  afterAll(async () => {
    await vault?.stop();
    await sim?.running.close();
    if (vault) await removeDir(vault.dataDir);
  });

  it('is answered below 500, with the JSON error shape for every 4xx', async () => {
    await fc.assert(
      fc.asyncProperty(requestArb, async (req) => {
        const res = await send(vault.url, req);
        expect(res.status).toBeGreaterThanOrEqual(200);
        expect(res.status).toBeLessThan(500);
        if (res.status >= 400 && req.method !== 'HEAD') {
          const parsed = JSON.parse(res.body) as { error: { code: string; requestId: string } };
          expect(typeof parsed.error.code).toBe('string');
          expect(typeof parsed.error.requestId).toBe('string');
        }
      }),
      { numRuns: 400 },
    );
    // The stores were healthy throughout, and nothing was logged as a vault failure.
    expect(vault.logs.lines.filter((l) => l.includes('"request failed"'))).toEqual([]);
  });
});
