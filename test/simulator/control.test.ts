import { createHash } from 'node:crypto';
import request from 'supertest';
import { createSimulatorApp } from '../../src/simulator/server';
import { SimHarness, UA, basic, facemapPart, metadataPart } from './helpers';

describe('Jumio simulator: control API', () => {
  let h: SimHarness;
  beforeEach(async () => {
    h = await SimHarness.start();
  });
  afterEach(() => h.close());

  it('creates a scan from given facemap bytes and reports its view', async () => {
    const facemap = Buffer.from('not really a facemap');
    const created = await h.control<{ scanReference: string; facemapSha256: string }>(
      'POST',
      '/scans',
      {
        facemapBase64: facemap.toString('base64'),
        customerId: 'c-1',
      },
    );
    expect(created.status).toBe(201);
    expect(created.body.facemapSha256).toBe(createHash('sha256').update(facemap).digest('hex'));
    const view = await h.control('GET', `/scans/${created.body.scanReference}`);
    expect(view.body).toEqual({
      scanReference: created.body.scanReference,
      status: 'DONE',
      verificationStatus: 'APPROVED_VERIFIED',
      similarity: 'MATCH',
      validity: true,
      reason: null,
      customerId: 'c-1',
      merchantIdScanReference: null,
      idScanSource: 'WEB',
      createdAt: expect.any(String),
      deleted: false,
      deletedAt: null,
      facemapDownloads: 0,
      facemapSha256: created.body.facemapSha256,
      facemapBytes: facemap.length,
      responseVariant: {},
      authentications: [],
      callbacks: [],
    });
  });

  it('honours facemapBytes, a chosen scanReference (once), and includeFacemap false', async () => {
    const ref = '6f1c1c9e-5d1b-4c3e-9a57-1b2f3c4d5e6f';
    const scan = await h.createScan({ scanReference: ref, facemapBytes: 100 });
    expect(scan.scanReference).toBe(ref);
    expect(scan.facemap).toHaveLength(100);
    expect((await h.control('POST', '/scans', { scanReference: ref })).status).toBe(409);
    const none = await h.control('POST', '/scans', { includeFacemap: false });
    expect(none.body).toMatchObject({ facemapSha256: null, facemapBase64: null });
  });

  it('accepts every validity spelling when creating a scan', async () => {
    for (const [validity, expected] of [
      ['TRUE', true],
      ['true', true],
      [true, true],
      ['FALSE', false],
      ['false', false],
      [false, false],
    ] as const) {
      const { scanReference } = await h.createScan({ validity });
      expect((await h.control('GET', `/scans/${scanReference}`)).body.validity).toBe(expected);
    }
  });

  it.each<[string, Record<string, unknown>]>([
    ['an unknown field', { verficationStatus: 'DENIED_FRAUD' }],
    ['an unknown verificationStatus', { verificationStatus: 'APPROVED' }],
    ['an unknown status', { status: 'DELETED' }],
    ['a bad validity', { validity: 'yes' }],
    ['too long a customerId', { customerId: 'x'.repeat(101) }],
    ['a non-UUID scanReference', { scanReference: 'abc' }],
    ['a non-base64 facemap', { facemapBase64: '***' }],
    ['an unknown pii field', { pii: { email: 'a@b.c' } }],
  ])('refuses %s with 400 and the issues', async (_label, body) => {
    const res = await h.control<{ error: string; issues: unknown[] }>('POST', '/scans', body);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('invalid_request');
    expect(res.body.issues.length).toBeGreaterThan(0);
  });

  it('answers 400 for a body that is not JSON and 404 for unknown control routes', async () => {
    const res = await fetch(`${h.baseUrl}/__sim/scans`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{',
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: 'invalid_json' });
    const index = await h.control<{ controlApi: string[] }>('GET', '');
    expect(index.body.controlApi.some((l) => l.includes('/__sim/faults'))).toBe(true);
    expect((await h.control('GET', '/nope')).status).toBe(404);
    expect((await h.control('GET', '/scans/unknown')).status).toBe(404);
    expect(
      (await h.control('POST', '/authentications/unknown/complete', { result: 'PASSED' })).status,
    ).toBe(404);
  });

  it('moves the clock forward and can set it', async () => {
    const before = Date.parse((await h.control<{ now: string }>('GET', '/clock')).body.now);
    const moved = await h.control<{ now: string }>('POST', '/clock', { advanceMs: 3_600_000 });
    expect(Date.parse(moved.body.now) - before).toBeGreaterThanOrEqual(3_600_000);
    const set = await h.control<{ now: string }>('POST', '/clock', {
      set: '2030-01-02T03:04:05.000Z',
    });
    expect(Date.parse(set.body.now)).toBeGreaterThanOrEqual(Date.parse('2030-01-02T03:04:05.000Z'));
    expect((await h.control('POST', '/clock', {})).status).toBe(400);
    // Jumio timestamps follow the simulator clock.
    const { scanReference } = await h.createScan();
    const status = (await (
      await h.jumio('GET', `/api/netverify/v2/scans/${scanReference}`)
    ).json()) as {
      timestamp: string;
    };
    expect(status.timestamp.startsWith('2030-01-02T03:04')).toBe(true);
  });

  it('reset forgets scans, authentications, requests, faults and the clock offset', async () => {
    const scan = await h.enrolledAndDeleted();
    await h.initiate([
      facemapPart(scan.facemap),
      metadataPart({ enrollmentTransactionReference: scan.scanReference }),
    ]);
    await h.control('POST', '/faults', { endpoint: '*', kind: 'status', status: 500 });
    await h.control('POST', '/clock', { advanceMs: 86_400_000 * 365 });
    expect((await h.control('POST', '/reset')).status).toBe(200);
    expect((await h.control('GET', '/scans')).body).toEqual({ scans: [] });
    expect((await h.control('GET', '/authentications')).body).toEqual({ authentications: [] });
    expect((await h.control('GET', '/requests')).body).toEqual({ requests: [] });
    expect((await h.control('GET', '/faults')).body).toEqual({ faults: [] });
    const now = Date.parse((await h.control<{ now: string }>('GET', '/clock')).body.now);
    expect(Math.abs(now - Date.now())).toBeLessThan(60_000);
  });

  it("lists an enrollment's authentications in the scan view", async () => {
    const scan = await h.enrolledAndDeleted();
    const res = await h.initiate([
      facemapPart(scan.facemap),
      metadataPart({ enrollmentTransactionReference: scan.scanReference }),
    ]);
    const { authenticationTransactionReference } = (await res.json()) as {
      authenticationTransactionReference: string;
    };
    const view = await h.control<{ authentications: unknown[] }>(
      'GET',
      `/scans/${scan.scanReference}`,
    );
    expect(view.body.authentications).toEqual([
      expect.objectContaining({ authenticationTransactionReference, state: 'CREATED' }),
    ]);
  });
});

describe('Jumio simulator: options', () => {
  it('uses the injected clock and credentials (createSimulatorApp, no listen)', async () => {
    const app = createSimulatorApp({
      now: () => new Date('2021-06-01T12:00:00.123Z'),
      apiToken: 'tok',
      apiSecret: 'sec',
    });
    const created = await request(app).post('/__sim/scans').send({});
    expect(created.status).toBe(201);
    const ref = (created.body as { scanReference: string }).scanReference;
    const res = await request(app)
      .get(`/api/netverify/v2/scans/${ref}`)
      .set('authorization', basic('tok', 'sec'))
      .set('user-agent', UA);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ timestamp: '2021-06-01T12:00:00.123Z' });
    const wrong = await request(app)
      .get(`/api/netverify/v2/scans/${ref}`)
      .set('authorization', basic('sim-api-token', 'sim-api-secret'))
      .set('user-agent', UA);
    expect(wrong.status).toBe(401);
  });

  it('writes facemap hrefs under publicBaseUrl when one is given', async () => {
    const h = await SimHarness.start({ publicBaseUrl: 'https://jumio.sim.example/' });
    try {
      const { scanReference } = await h.createScan();
      const details = (await (
        await h.jumio('GET', `/api/netverify/v2/scans/${scanReference}/data`)
      ).json()) as {
        facemap: { href: string };
      };
      expect(details.facemap.href).toBe(
        `https://jumio.sim.example/api/netverify/v2/scans/${scanReference}/data/facemap`,
      );
    } finally {
      await h.close();
    }
  });

  it('delivers callbacks through callbackFetch when given', async () => {
    const calls: Array<{ url: string; init: RequestInit | undefined }> = [];
    const callbackFetch = (async (url: string | URL | Request, init?: RequestInit) => {
      calls.push({ url: String(url), init });
      return new Response('ok', { status: 200 });
    }) as typeof fetch;
    const h = await SimHarness.start({ callbackFetch });
    try {
      const { scanReference } = await h.createScan();
      const res = await h.control('POST', `/scans/${scanReference}/callback`, {
        url: 'https://vault.example/cb',
      });
      expect(res.body).toEqual({ status: 200, body: 'ok' });
      expect(calls).toHaveLength(1);
      expect(calls[0]?.url).toBe('https://vault.example/cb');
      expect(calls[0]?.init?.method).toBe('POST');
      expect(new URLSearchParams(String(calls[0]?.init?.body)).get('jumioIdScanReference')).toBe(
        scanReference,
      );
    } finally {
      await h.close();
    }
  });

  it('returns the credentials it checks, with the admin pair defaulting to the main pair', async () => {
    const h = await SimHarness.start();
    try {
      expect(h.sim.credentials).toEqual({
        apiToken: 'sim-api-token',
        apiSecret: 'sim-api-secret',
        adminApiToken: 'sim-api-token',
        adminApiSecret: 'sim-api-secret',
      });
      expect(h.baseUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    } finally {
      await h.close();
    }
  });
});
