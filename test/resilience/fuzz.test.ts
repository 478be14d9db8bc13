/**
 * Fuzz over a real vault process (PostgreSQL, s3rver, simulator): at least 10,000 generated
 * requests to /webhooks/jumio and to every route of /openapi.json (the route registry),
 * with forms, JSON, bytes, huge and deeply nested bodies, wrong types, Unicode edge cases
 * and duplicate keys, plus callbacks whose facemap URL carries control characters, odd
 * encodings or another origin. The stores are healthy: no 5xx at all; the process stays
 * up; and nothing is fetched from any origin but the simulator's (a trap server counts).
 */
import { createServer, type Server } from 'node:http';
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { body as baseBody, requestArb, segment, send, type Sent } from '../helpers/fuzz';
import {
  pool,
  report,
  type RunningVault,
  settle,
  type Stack,
  startStack,
  startVault,
  TOKENS,
} from './harness';

const GENERIC = 6000;
const BY_ROUTE = 3200;
const CALLBACKS = 800;

/** Strings that trip decoders, normalisers and length checks. */
const unicode = fc.oneof(
  fc.constantFrom(
    '\uD800',
    '\uDFFF',
    '\uFEFF',
    '\u0000',
    '\u202E',
    '\u200B',
    'e\u0301',
    '\uFFFD',
    '𝔘𝔫𝔦𝔠𝔬𝔡𝔢',
    '👩‍👩‍👧‍👦',
    'İ',
    '\r\n',
  ),
  fc.string({ unit: 'grapheme', maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
);

/** Percent-encodes UTF-8 bytes (encodeURIComponent throws on a lone surrogate). */
function pct(text: string): string {
  return [...Buffer.from(text, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
}

function nested(depth: number, leaf: string): string {
  return '['.repeat(depth) + leaf + ']'.repeat(depth);
}

const bigBody = fc.oneof(
  { arbitrary: baseBody, weight: 30 },
  // Over every body limit, and just under the callback's (rare: each costs a megabyte).
  {
    arbitrary: fc
      .constantFrom(2 * 1024 * 1024, 1024 * 1024 - 10, 300_000)
      .map((n) => 'a='.concat('x'.repeat(n))),
    weight: 1,
  },
  fc.integer({ min: 10, max: 20_000 }).map((d) => nested(d, '1')),
  fc.integer({ min: 10, max: 2_000 }).map((d) => `{"a":${nested(d, '{}')}}`),
  fc
    .integer({ min: 10, max: 6_000 })
    .map((n) => Array.from({ length: n }, (_, i) => `k${i}=v`).join('&')),
  // Duplicate keys, in forms and in JSON.
  fc
    .tuple(
      fc.constantFrom('callBackType', 'jumioIdScanReference', 'userReference', 'a'),
      unicode,
      unicode,
    )
    .map(([k, a, b]) => `${k}=${pct(a)}&${k}=${pct(b)}&${k}[]=x&${k}[k]=y`),
  fc
    .tuple(fc.constantFrom('userReference', 'purpose', 'enrollmentReference', 'a'), unicode)
    .map(([k, v]) => `{"${k}":1,"${k}":${JSON.stringify(v)},"${k}":null}`),
  // Wrong types where the schemas expect strings, and raw Unicode, sent as bytes.
  fc
    .record({
      userReference: fc.oneof(
        fc.integer(),
        fc.boolean(),
        fc.constant(null),
        fc.array(fc.string()),
        unicode,
      ),
      enrollmentReference: fc.oneof(fc.integer(), fc.object(), unicode),
      purpose: fc.oneof(fc.double(), unicode, fc.string({ maxLength: 5000 })),
    })
    .map((o) => JSON.stringify(o)),
  unicode.map((u) => Buffer.from(u, 'utf8')),
  fc.constant(Buffer.from([0xc0, 0xaf, 0xed, 0xa0, 0x80, 0xff, 0xfe])),
);

/** A facemap URL as a misbehaving (or hostile) callback could carry it. */
function oddFacemapUrls(sim: string, trap: string) {
  return fc.oneof(
    fc.constantFrom(
      `${sim}/api/netverify/v2/scans/x/data/facemap\u0000`,
      `${sim}/api/netverify/v2/scans/x/data/facemap\r\nHost: evil`,
      `${sim}/api/netverify/v2/scans/%2e%2e/%2e%2e/data/facemap`,
      `${sim}/api/netverify/v2/scans/..%2f..%2f/data/facemap`,
      `${sim}/api/netverify/v2/scans/%ZZ/data/facemap`,
      `${sim}\\..\\facemap`,
      `${sim}@${new URL(trap).host}/facemap`,
      `${trap}/facemap`,
      `${trap.replace('http', 'https')}/facemap`,
      `http://user:pw@${new URL(trap).host}/facemap`,
      `//${new URL(trap).host}/facemap`,
      'javascript:alert(1)',
      'file:///etc/passwd',
      'http://[::1]:1/facemap',
      'http://0x7f.1/facemap',
      `${sim}/${'a'.repeat(10_000)}`,
      '',
    ),
    unicode.map((u) => `${sim}/api/netverify/v2/scans/${u}/data/facemap`),
    unicode.map((u) => `${trap}/${u}`),
  );
}

describe('fuzz over a real vault', () => {
  let stack: Stack;
  let vault: RunningVault;
  let trap: Server;
  let trapped = 0;

  beforeAll(async () => {
    stack = await startStack();
    trap = createServer((_req, res) => {
      trapped += 1;
      res.end('facemap');
    });
    await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
    vault = await startVault(stack, { TRUST_PROXY: '1', AUDIT_DENIAL_INTERVAL_MS: '1000' });
  });

  afterAll(async () => {
    await vault?.kill();
    await new Promise((resolve) => trap?.close(resolve));
    await stack?.dispose();
  });

  it('answers every generated request below 500, stays up, and calls no other origin', async () => {
    const started = Date.now();
    const pid = vault.process.child.pid;
    const address = trap.address();
    const trapUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
    const sim = stack.sim.baseUrl;

    // Every declared route, its parameters filled with generated segments.
    const doc = (await (await fetch(`${vault.url}/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    const routes = Object.entries(doc.paths).flatMap(([p, ops]) =>
      Object.keys(ops)
        .filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m))
        .map((m) => ({ method: m.toUpperCase(), path: p })),
    );
    const token = fc.oneof(
      fc.constantFrom(...Object.values(TOKENS)).map((t) => `Bearer ${t}`),
      fc.constant(undefined),
    );
    const byRoute = fc
      .record({
        route: fc.constantFrom(...routes),
        params: fc.array(fc.oneof(segment, unicode.map(pct)), {
          minLength: 4,
          maxLength: 4,
        }),
        token,
        json: fc.boolean(),
        body: bigBody,
      })
      .map(({ route, params, token: auth, json, body }): Sent => {
        let i = 0;
        return {
          method: route.method,
          path: route.path.replace(/\{[^}]+\}/g, () => params[i++] ?? 'x'),
          headers: {
            'content-type': json ? 'application/json' : 'application/x-www-form-urlencoded',
            ...(auth ? { authorization: auth } : {}),
          },
          body,
        };
      });
    const callback = fc
      .record({
        facemap: oddFacemapUrls(sim, trapUrl),
        customerId: fc.oneof(fc.constant('fuzz-user'), unicode),
        status: fc.constantFrom('APPROVED_VERIFIED', 'DENIED_FRAUD'),
      })
      .map(({ facemap, customerId, status }): Sent => ({
        method: 'POST',
        path: '/webhooks/jumio',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          callBackType: 'NETVERIFYID',
          jumioIdScanReference: randomUUID(),
          verificationStatus: status,
          identityVerification: '{"similarity":"MATCH","validity":"TRUE"}',
          facemap,
          customerId,
        }).toString(),
      }));
    // Real scans whose Retrieval API offers an odd facemap link: the pipeline fetches it.
    const linked = await pool(fc.sample(oddFacemapUrls(sim, trapUrl), 60), 8, async (href) => {
      const scan = await stack.sim
        .createScan({ responseVariant: { facemapHref: href } })
        .catch(() => null);
      if (!scan) return null;
      await stack.sim.sendCallback(scan.scanReference, `${vault.url}/webhooks/jumio`);
      return scan.scanReference;
    });

    const requests = [
      ...fc.sample(requestArb, GENERIC),
      ...fc.sample(byRoute, BY_ROUTE),
      ...fc.sample(callback, CALLBACKS),
    ];
    const failures: Array<{ req: string; status: number | string }> = [];
    const statuses: Record<string, number> = {};
    await pool(requests, 12, async (req) => {
      const res = await send(vault.url, req).catch((error: unknown) => ({
        status: `error ${(error as Error).message}`,
        body: '',
      }));
      statuses[String(res.status)] = (statuses[String(res.status)] ?? 0) + 1;
      // A connection the vault cuts for an oversized body is a refusal, not a failure.
      const refused =
        typeof res.status === 'string' && /ECONNRESET|EPIPE|socket hang up/.test(res.status);
      if (
        (typeof res.status === 'number' && res.status >= 500) ||
        (typeof res.status === 'string' && !refused)
      ) {
        failures.push({
          req: `${req.method} ${req.path.slice(0, 200)} ${JSON.stringify(req.headers)} ${String(req.body).slice(0, 200)}`,
          status: res.status,
        });
      }
    });

    // The pipeline works through what the odd callbacks left: still up, and ready.
    const ready = await settle(
      async () => (await fetch(`${vault.url}/readyz`).catch(() => null))?.status ?? 0,
      (s) => s === 200,
      30_000,
    );
    const refs = linked.filter((r): r is string => r !== null);
    // Each ends REJECTED, or (a link the Jumio client cannot even parse) is retried with a
    // visible error on the pipeline's backoff: never silently stuck.
    const linkedRows = await settle(
      () =>
        stack.sql<{ state: string; reason: string | null; last_error: string | null }>(
          'SELECT state, reason, last_error FROM enrollments WHERE enrollment_reference = ANY($1)',
          [refs],
        ),
      (rows) =>
        rows.length === refs.length &&
        rows.every((r) => r.state !== 'PENDING' || r.last_error !== null),
      60_000,
    );
    const reasons: Record<string, number> = {};
    for (const r of linkedRows) {
      const key = `${r.state}:${r.reason ?? r.last_error?.split(':')[0] ?? ''}`;
      reasons[key] = (reasons[key] ?? 0) + 1;
    }
    report('fuzz', {
      requests: requests.length + refs.length,
      routes: routes.length,
      statuses,
      failures: failures.length,
      oddFacemapLinks: reasons,
      trapRequests: trapped,
      seconds: Math.round((Date.now() - started) / 1000),
    });

    expect(requests.length + refs.length).toBeGreaterThanOrEqual(10_000);
    expect(failures.slice(0, 10)).toEqual([]);
    expect(vault.process.child.exitCode).toBeNull();
    expect(vault.process.child.pid).toBe(pid);
    expect(ready).toBe(200);
    expect(trapped).toBe(0);
    expect(linkedRows).toHaveLength(refs.length);
    expect(linkedRows.filter((r) => r.state === 'PENDING' && r.last_error === null)).toEqual([]);
    expect(linkedRows.filter((r) => r.state === 'ACTIVE')).toEqual([]);
  });
});
