import { SimHarness, UA, basic, rawGet } from './helpers';

const SCANS = '/api/netverify/v2/scans';

describe('Jumio simulator: credentials and User-Agent', () => {
  let h: SimHarness;
  beforeEach(async () => {
    h = await SimHarness.start();
  });
  afterEach(() => h.close());

  it('answers 401 with WWW-Authenticate when credentials are missing', async () => {
    const { scanReference } = await h.createScan();
    const res = await rawGet(`${h.baseUrl}${SCANS}/${scanReference}`, {
      'user-agent': UA,
      accept: 'application/json',
    });
    expect(res.status).toBe(401);
    expect(res.headers['www-authenticate']).toMatch(/^Basic realm=/);
    expect(JSON.parse(res.body)).toMatchObject({ httpStatus: '401' });
  });

  it.each([
    ['a wrong secret', basic('sim-api-token', 'nope')],
    ['a wrong token', basic('someone', 'sim-api-secret')],
    ['a non-Basic scheme', 'Bearer sim-api-token'],
    ['garbage', 'Basic !!!'],
  ])('answers 401 for %s', async (_label, authorization) => {
    const { scanReference } = await h.createScan();
    const res = await h.jumio('GET', `${SCANS}/${scanReference}`, { headers: { authorization } });
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toContain('Basic');
    const log = await h.control<{ requests: Array<{ credentials: string }> }>('GET', '/requests');
    expect(log.body.requests.at(-1)?.credentials).toBe('invalid');
  });

  it('answers 403 with an explanation when the User-Agent is missing', async () => {
    const { scanReference } = await h.createScan();
    const c = h.sim.credentials;
    const res = await rawGet(`${h.baseUrl}${SCANS}/${scanReference}`, {
      authorization: basic(c.apiToken, c.apiSecret),
    });
    expect(res.status).toBe(403);
    expect(JSON.parse(res.body).message).toMatch(/User-Agent/);
  });

  it.each([
    'node',
    'undici',
    'curl/8.5.0',
    'Acme',
    'Mozilla/5.0 (X11; Linux x86_64)',
    'Acme Vault',
  ])('answers 403 for the User-Agent %j', async (userAgent) => {
    const { scanReference } = await h.createScan();
    const res = await h.jumio('GET', `${SCANS}/${scanReference}`, {
      headers: { 'user-agent': userAgent },
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { message: string }).message).toMatch(/Company App\/1\.2\.3/);
  });

  it.each(['Acme Vault/1.2.3', 'Acme Bank FacemapVault/2.0', 'ACME Vault/10.4.1-rc.1'])(
    'accepts the User-Agent %j',
    async (userAgent) => {
      const { scanReference } = await h.createScan();
      const res = await h.jumio('GET', `${SCANS}/${scanReference}`, {
        headers: { 'user-agent': userAgent },
      });
      expect(res.status).toBe(200);
    },
  );
});

describe('Jumio simulator: a separate administration credential pair', () => {
  let h: SimHarness;
  beforeEach(async () => {
    h = await SimHarness.start({ adminApiToken: 'admin-token', adminApiSecret: 'admin-secret' });
  });
  afterEach(() => h.close());

  it('accepts either pair for retrieval and delete, and records which one was used', async () => {
    const { scanReference } = await h.createScan();
    const admin = { authorization: basic('admin-token', 'admin-secret') };
    expect((await h.jumio('GET', `${SCANS}/${scanReference}`, { headers: admin })).status).toBe(
      200,
    );
    expect((await h.jumio('GET', `${SCANS}/${scanReference}`)).status).toBe(200);
    expect((await h.jumio('DELETE', `${SCANS}/${scanReference}`, { headers: admin })).status).toBe(
      200,
    );
    const log = await h.control<{ requests: Array<{ credentials: string }> }>('GET', '/requests');
    expect(log.body.requests.map((r) => r.credentials)).toEqual(['admin', 'main', 'admin']);
  });

  it('refuses the admin pair on initiate (it is not an administration API)', async () => {
    const res = await h.initiate([], { authorization: basic('admin-token', 'admin-secret') });
    expect(res.status).toBe(401);
  });
});

describe('Jumio simulator: ID Verification retrieval and delete', () => {
  let h: SimHarness;
  beforeEach(async () => {
    h = await SimHarness.start();
  });
  afterEach(() => h.close());

  it('serves status, details with a facemap href, and the facemap bytes', async () => {
    const scan = await h.createScan({ customerId: 'cust-42', merchantIdScanReference: 'm-7' });
    const status = await h.jumio('GET', `${SCANS}/${scan.scanReference}`);
    expect(status.status).toBe(200);
    expect(await status.json()).toEqual({
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      scanReference: scan.scanReference,
      status: 'DONE',
    });

    const details = (await (
      await h.jumio('GET', `${SCANS}/${scan.scanReference}/data`)
    ).json()) as {
      document: Record<string, unknown>;
      transaction: Record<string, unknown>;
      verification: { identityVerification: Record<string, unknown> };
      facemap: { classifier: string; href: string };
    };
    expect(details.document).toMatchObject({
      status: 'APPROVED_VERIFIED',
      firstName: expect.any(String),
      lastName: expect.any(String),
      dob: expect.stringMatching(/^\d{4}-\d\d-\d\d$/),
      number: expect.any(String),
      issuingCountry: 'USA',
    });
    expect(details.transaction).toMatchObject({
      status: 'DONE',
      source: 'WEB',
      customerId: 'cust-42',
      merchantScanReference: 'm-7',
    });
    expect(details.verification.identityVerification).toEqual({
      similarity: 'MATCH',
      validity: 'TRUE',
    });
    expect(details.facemap).toEqual({
      classifier: 'facemap',
      href: `${h.baseUrl}${SCANS}/${scan.scanReference}/data/facemap`,
    });

    const bytes = await h.jumio('GET', `${SCANS}/${scan.scanReference}/data/facemap`, {
      headers: { accept: 'application/octet-stream' },
    });
    expect(bytes.status).toBe(200);
    expect(bytes.headers.get('content-type')).toBe('application/octet-stream');
    expect(Buffer.from(await bytes.arrayBuffer()).equals(scan.facemap)).toBe(true);
    expect(scan.facemap.length).toBe(2048);

    const view = await h.control('GET', `/scans/${scan.scanReference}`);
    expect(view.body).toMatchObject({ facemapDownloads: 1, deleted: false });
  });

  it('answers 404 with Jumio error JSON for every scan route once deleted, and for a second delete', async () => {
    const { scanReference } = await h.createScan();
    const del = await h.jumio('DELETE', `${SCANS}/${scanReference}`);
    expect(del.status).toBe(200);
    for (const suffix of ['', '/data', '/data/facemap']) {
      const res = await h.jumio('GET', `${SCANS}/${scanReference}${suffix}`);
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({
        httpStatus: '404',
        message: expect.stringMatching(/^Not found: /),
        requestURI: `${SCANS}/${scanReference}${suffix}`,
      });
    }
    const again = await h.jumio('DELETE', `${SCANS}/${scanReference}`);
    expect(again.status).toBe(404);
    const view = await h.control('GET', `/scans/${scanReference}`);
    expect(view.body).toMatchObject({ deleted: true, deletedAt: expect.any(String) });
  });

  it('answers 404 for an unknown scan and for a delete of one', async () => {
    const unknown = '00000000-0000-4000-8000-000000000000';
    expect((await h.jumio('GET', `${SCANS}/${unknown}`)).status).toBe(404);
    expect((await h.jumio('DELETE', `${SCANS}/${unknown}`)).status).toBe(404);
  });

  it('reports PENDING without extracted data, then DONE after PATCH', async () => {
    const { scanReference } = await h.createScan({ status: 'PENDING' });
    const pending = (await (
      await h.jumio('GET', `${SCANS}/${scanReference}/data`)
    ).json()) as Record<string, unknown>;
    expect(pending.transaction).toMatchObject({ status: 'PENDING' });
    expect(pending.document).toBeUndefined();
    expect(pending.facemap).toBeUndefined();
    expect((await h.jumio('GET', `${SCANS}/${scanReference}/data/facemap`)).status).toBe(404);

    expect((await h.control('PATCH', `/scans/${scanReference}`, { status: 'DONE' })).status).toBe(
      200,
    );
    const done = (await (await h.jumio('GET', `${SCANS}/${scanReference}`)).json()) as {
      status: string;
    };
    expect(done.status).toBe('DONE');
    expect((await h.jumio('GET', `${SCANS}/${scanReference}/data/facemap`)).status).toBe(200);
  });

  it('omits identityVerification for a denied scan and the facemap element when none exists', async () => {
    const denied = await h.createScan({ verificationStatus: 'DENIED_FRAUD' });
    const d = (await (await h.jumio('GET', `${SCANS}/${denied.scanReference}/data`)).json()) as {
      verification: Record<string, unknown>;
    };
    expect(d.verification.identityVerification).toBeUndefined();
    expect(d.verification.rejectReason).toMatchObject({ rejectReasonCode: '100' });

    const noFacemap = await h.createScan({ includeFacemap: false });
    const n = (await (await h.jumio('GET', `${SCANS}/${noFacemap.scanReference}/data`)).json()) as {
      facemap?: unknown;
    };
    expect(n.facemap).toBeUndefined();
    expect((await h.jumio('GET', `${SCANS}/${noFacemap.scanReference}/data/facemap`)).status).toBe(
      404,
    );
  });

  it.each([
    [0, /T\d\d:\d\d:\d\dZ$/],
    [1, /T\d\d:\d\d:\d\d\.\dZ$/],
    [2, /T\d\d:\d\d:\d\d\.\d\dZ$/],
    [3, /T\d\d:\d\d:\d\d\.\d\d\dZ$/],
  ])('spells retrieval timestamps with %i fraction digits on request', async (digits, pattern) => {
    const { scanReference } = await h.createScan({
      responseVariant: { fractionDigits: digits, validity: 'boolean' },
    });
    const details = (await (await h.jumio('GET', `${SCANS}/${scanReference}/data`)).json()) as {
      timestamp: string;
      transaction: { date: string };
      verification: { identityVerification: { validity: unknown } };
    };
    expect(details.timestamp).toMatch(pattern);
    expect(details.transaction.date).toMatch(pattern);
    expect(details.verification.identityVerification.validity).toBe(true);
  });

  it('answers 404 for unknown paths and 405 for a wrong method on a known one', async () => {
    expect((await h.jumio('GET', '/api/netverify/v3/whatever')).status).toBe(404);
    const wrong = await h.jumio('PUT', `${SCANS}/abc`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toContain('GET');
  });
});

describe('Jumio simulator: request log', () => {
  let h: SimHarness;
  beforeEach(async () => {
    h = await SimHarness.start();
  });
  afterEach(() => h.close());

  it('records Jumio calls in order (not control calls) and can be cleared', async () => {
    const { scanReference } = await h.createScan();
    await h.jumio('GET', `${SCANS}/${scanReference}`);
    await h.jumio('GET', `${SCANS}/${scanReference}/data`, { headers: { 'user-agent': 'node' } });
    await rawGet(`${h.baseUrl}${SCANS}/${scanReference}/data/facemap`, { 'user-agent': UA });
    await h.jumio('DELETE', `${SCANS}/${scanReference}`);
    await h.control('GET', `/scans/${scanReference}`);

    const log = await h.control<{ requests: Array<Record<string, unknown>> }>('GET', '/requests');
    expect(log.body.requests).toEqual([
      expect.objectContaining({
        seq: 1,
        method: 'GET',
        path: `${SCANS}/${scanReference}`,
        status: 200,
        credentials: 'main',
        userAgent: UA,
        accept: 'application/json',
        endpoint: 'scanStatus',
        time: expect.stringMatching(/Z$/),
      }),
      expect.objectContaining({ seq: 2, status: 403, userAgent: 'node', endpoint: 'scanDetails' }),
      expect.objectContaining({ seq: 3, status: 401, credentials: 'none', endpoint: 'facemap' }),
      expect.objectContaining({ seq: 4, method: 'DELETE', status: 200, endpoint: 'scanDelete' }),
    ]);

    expect((await h.control('DELETE', '/requests')).body).toEqual({ cleared: 4 });
    expect((await h.control('GET', '/requests')).body).toEqual({ requests: [] });
  });
});
