/**
 * Request generators for the HTTP fuzz tests (test/integration/http-fuzz.test.ts, and the
 * resilience fuzz over a real vault process), and a sender that puts on the wire exactly
 * what it is given.
 */
import { request as httpRequest } from 'node:http';
import fc from 'fast-check';
import { TOKENS } from './vault';

export interface Sent {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string | Buffer;
}

export function send(base: string, req: Sent): Promise<{ status: number; body: string }> {
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
export const headerText = fc.string({
  unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
  maxLength: 80,
});

/** A path segment: encoded text, or the encodings and shapes that trip decoders. */
export const segment = fc.oneof(
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

export const path = fc.oneof(
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

export const query = fc.oneof(
  fc.constant(''),
  fc
    .array(fc.tuple(segment, segment), { maxLength: 4 })
    .map((pairs) => `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}`),
);

export const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS');

export const authorization = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom(...Object.values(TOKENS)).map((t) => `Bearer ${t}`),
  headerText.map((t) => `Bearer ${t}`),
  headerText,
);

export const contentType = fc.oneof(
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

export const contentEncoding = fc.oneof(
  fc.constant(undefined),
  fc.constantFrom('identity', 'gzip', 'deflate', 'br', 'x-unknown'),
);

/** Callback-shaped forms (so the handlers run), JSON of any shape, and raw bytes. */
export const formField = fc.tuple(
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
export const body = fc.oneof(
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

export const requestArb = fc
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
