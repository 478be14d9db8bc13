import { SimHarness, facemapPart, metadataPart, startReceiver } from './helpers';

type Receiver = Awaited<ReturnType<typeof startReceiver>>;

describe('Jumio simulator: NETVERIFYID callbacks', () => {
  let h: SimHarness;
  let receiver: Receiver;
  beforeEach(async () => {
    h = await SimHarness.start();
    receiver = await startReceiver();
  });
  afterEach(async () => {
    await h.close();
    await receiver.close();
  });

  async function send(scanReference: string, body: Record<string, unknown> = {}) {
    const res = await h.control<{ status: number | null; body: string | null }>(
      'POST',
      `/scans/${scanReference}/callback`,
      { url: receiver.url, ...body },
    );
    expect(res.status).toBe(200);
    const received = receiver.received.at(-1);
    if (!received) throw new Error('no callback received');
    return { answer: res.body, received };
  }

  it('posts a form-encoded callback with the documented fields and realistic PII', async () => {
    const scan = await h.createScan({ customerId: 'user-7', merchantIdScanReference: 'onb-9' });
    const { answer, received } = await send(scan.scanReference);
    expect(answer).toEqual({ status: 200, body: 'received' });
    expect(received.method).toBe('POST');
    expect(received.path).toBe('/jumio/callback');
    expect(received.contentType).toBe('application/x-www-form-urlencoded');
    const f = received.form;
    expect(Object.fromEntries(f)).toMatchObject({
      callBackType: 'NETVERIFYID',
      jumioIdScanReference: scan.scanReference,
      verificationStatus: 'APPROVED_VERIFIED',
      idScanStatus: 'SUCCESS',
      idScanSource: 'WEB',
      facemap: `${h.baseUrl}/api/netverify/v2/scans/${scan.scanReference}/data/facemap`,
      customerId: 'user-7',
      merchantIdScanReference: 'onb-9',
    });
    expect(f.get('transactionDate')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(f.get('callbackDate')).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(JSON.parse(f.get('identityVerification') ?? '')).toEqual({
      similarity: 'MATCH',
      validity: 'TRUE',
    });
    for (const pii of [
      'idFirstName',
      'idLastName',
      'idNumber',
      'personalNumber',
      'idScanImage',
      'idScanImageFace',
    ]) {
      expect(f.get(pii)).toEqual(expect.any(String));
      expect(f.get(pii)?.length).toBeGreaterThan(0);
    }
    expect(f.get('idDob')).toMatch(/^\d{4}-\d\d-\d\d$/);
    expect(f.get('clientIp')).toMatch(/^203\.0\.113\.\d+$/);
    expect(JSON.parse(f.get('idAddress') ?? '')).toMatchObject({
      country: 'USA',
      city: expect.any(String),
    });
    const liveness = JSON.parse(f.getAll('livenessImages')[0] ?? '') as string[];
    expect(f.getAll('livenessImages')).toHaveLength(1);
    expect(liveness).toHaveLength(4);

    const view = await h.control<{ callbacks: Array<{ status: number; url: string }> }>(
      'GET',
      `/scans/${scan.scanReference}`,
    );
    expect(view.body.callbacks).toEqual([
      expect.objectContaining({ status: 200, url: receiver.url, callBackType: 'NETVERIFYID' }),
    ]);
  });

  it('keeps PII deterministic per scan, and different between scans', async () => {
    const a = await h.createScan();
    const b = await h.createScan();
    const first = Object.fromEntries((await send(a.scanReference)).received.form);
    const again = Object.fromEntries((await send(a.scanReference)).received.form);
    const other = Object.fromEntries((await send(b.scanReference)).received.form);
    for (const key of [
      'idFirstName',
      'idLastName',
      'idDob',
      'idNumber',
      'personalNumber',
      'idAddress',
    ]) {
      expect(again[key]).toBe(first[key]);
    }
    expect(other.idNumber).not.toBe(first.idNumber);
  });

  it('carries sentinel PII given at scan creation, in the callback and in the retrieval details', async () => {
    const scan = await h.createScan({
      pii: {
        idFirstName: 'SENTINEL-FIRST',
        idLastName: 'SENTINEL-LAST',
        idNumber: 'SENTINEL-NUMBER',
        idAddress: { line1: 'SENTINEL-STREET' },
        livenessImages: ['https://sentinel.invalid/l1'],
      },
    });
    const f = (await send(scan.scanReference)).received.form;
    expect(f.get('idFirstName')).toBe('SENTINEL-FIRST');
    expect(f.get('idLastName')).toBe('SENTINEL-LAST');
    expect(f.get('idNumber')).toBe('SENTINEL-NUMBER');
    expect(f.get('idAddress')).toBe('{"line1":"SENTINEL-STREET"}');
    expect(f.get('livenessImages')).toBe('["https://sentinel.invalid/l1"]');
    const details = await h.jumio('GET', `/api/netverify/v2/scans/${scan.scanReference}/data`);
    expect(await details.text()).toContain('SENTINEL-FIRST');
  });

  it.each([
    ['TRUE', '"validity":"TRUE"'],
    ['true', '"validity":"true"'],
    ['boolean', '"validity":true'],
  ])('spells validity as %s on request', async (validity, expected) => {
    const scan = await h.createScan();
    const f = (await send(scan.scanReference, { variant: { validity } })).received.form;
    expect(f.get('identityVerification')).toBe(`{"similarity":"MATCH",${expected}}`);
  });

  it('spells a false validity the same ways, with a reason', async () => {
    const scan = await h.createScan({ validity: false });
    const f = (await send(scan.scanReference, { variant: { validity: 'boolean' } })).received.form;
    expect(JSON.parse(f.get('identityVerification') ?? '')).toEqual({
      similarity: 'MATCH',
      validity: false,
      reason: expect.any(String),
    });
  });

  it('sends a reason next to validity true when asked', async () => {
    const scan = await h.createScan();
    const f = (await send(scan.scanReference, { variant: { reasonWithValidTrue: true } })).received
      .form;
    const iv = JSON.parse(f.get('identityVerification') ?? '') as Record<string, unknown>;
    expect(iv.validity).toBe('TRUE');
    expect(iv.reason).toEqual(expect.any(String));
  });

  it.each([
    [0, /T\d\d:\d\d:\d\dZ$/],
    [1, /T\d\d:\d\d:\d\d\.\dZ$/],
    [2, /T\d\d:\d\d:\d\d\.\d\dZ$/],
    [3, /T\d\d:\d\d:\d\d\.\d{3}Z$/],
  ])('writes dates with %i fraction digits on request', async (fractionDigits, pattern) => {
    const scan = await h.createScan();
    const f = (await send(scan.scanReference, { variant: { fractionDigits } })).received.form;
    expect(f.get('transactionDate')).toMatch(pattern);
    expect(f.get('callbackDate')).toMatch(pattern);
  });

  it('repeats the livenessImages key instead of a JSON array on request', async () => {
    const scan = await h.createScan();
    const { received } = await send(scan.scanReference, {
      variant: { livenessImages: 'repeated' },
    });
    const values = received.form.getAll('livenessImages');
    expect(values).toHaveLength(4);
    for (const v of values) expect(v).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/.+liveness\/\d$/);
    expect(received.raw.match(/(^|&)livenessImages=/g)).toHaveLength(4);
  });

  it('omits identityVerification unless APPROVED_VERIFIED, and the facemap when there is none', async () => {
    const denied = await h.createScan({
      verificationStatus: 'DENIED_FRAUD',
      includeFacemap: false,
    });
    const f = (await send(denied.scanReference)).received.form;
    expect(f.get('verificationStatus')).toBe('DENIED_FRAUD');
    expect(f.get('idScanStatus')).toBe('ERROR');
    expect(f.has('identityVerification')).toBe(false);
    expect(f.has('facemap')).toBe(false);
    expect(JSON.parse(f.get('rejectReason') ?? '')).toMatchObject({ rejectReasonCode: '100' });
  });

  it('applies overrides: replace a field, add one, remove one', async () => {
    const scan = await h.createScan();
    const f = (
      await send(scan.scanReference, {
        overrides: { verificationStatus: 'DENIED_FRAUD', extraField: 'x', facemap: null },
      })
    ).received.form;
    expect(f.getAll('verificationStatus')).toEqual(['DENIED_FRAUD']);
    expect(f.get('extraField')).toBe('x');
    expect(f.has('facemap')).toBe(false);
  });

  it("reports the receiver's status and body, and a delivery error as status null", async () => {
    const failing = await startReceiver(503);
    try {
      const scan = await h.createScan();
      const res = await h.control('POST', `/scans/${scan.scanReference}/callback`, {
        url: failing.url,
      });
      expect(res.body).toEqual({ status: 503, body: 'received' });
    } finally {
      await failing.close();
    }
    const scan = await h.createScan();
    const dead = await h.control<{ status: null; error: string }>(
      'POST',
      `/scans/${scan.scanReference}/callback`,
      { url: 'http://127.0.0.1:1/nothing-listens-here' },
    );
    expect(dead.body.status).toBeNull();
    expect(dead.body.error).toEqual(expect.any(String));
  });
});

describe('Jumio simulator: NETVERIFY_AUTHENTICATION callbacks', () => {
  let h: SimHarness;
  let receiver: Receiver;
  beforeEach(async () => {
    h = await SimHarness.start();
    receiver = await startReceiver();
  });
  afterEach(async () => {
    await h.close();
    await receiver.close();
  });

  async function initiated(callbackUrl?: string) {
    const scan = await h.enrolledAndDeleted();
    const res = await h.initiate([
      facemapPart(scan.facemap),
      metadataPart({
        enrollmentTransactionReference: scan.scanReference,
        userReference: 'user-99',
        ...(callbackUrl ? { callbackUrl } : {}),
      }),
    ]);
    const { authenticationTransactionReference } = (await res.json()) as {
      authenticationTransactionReference: string;
    };
    return { scan, ref: authenticationTransactionReference };
  }

  it.each(['PASSED', 'FAILED', 'INVALID'])(
    'completes as %s and posts the callback',
    async (result) => {
      const { scan, ref } = await initiated(receiver.url);
      const res = await h.control('POST', `/authentications/${ref}/complete`, { result });
      expect(res.body).toMatchObject({ state: result, status: 200 });
      const [cb] = receiver.received;
      expect(cb?.contentType).toBe('application/x-www-form-urlencoded');
      const f = cb?.form ?? new URLSearchParams();
      expect(Object.fromEntries(f)).toMatchObject({
        callBackType: 'NETVERIFY_AUTHENTICATION',
        transactionReference: ref,
        enrollmentTransactionReference: scan.scanReference,
        transactionResult: result,
        scanSource: 'WEB',
        userReference: 'user-99',
        idScanImageFace: expect.stringContaining(ref),
      });
      expect(f.get('transactionDate')).toMatch(/Z$/);
      expect(f.get('callbackDate')).toMatch(/Z$/);
      expect(JSON.parse(f.get('livenessImages') ?? '')).toHaveLength(4);

      const retrieval = await h.jumio('GET', `/api/netverify/v2/authentications/${ref}`);
      const body = (await retrieval.json()) as Record<string, unknown>;
      expect(body).toMatchObject({
        transactionReference: ref,
        enrollmentTransactionReference: scan.scanReference,
        transactionResult: result,
        scanSource: 'WEB',
        userReference: 'user-99',
      });
      // The documented sample's transactionDate has no trailing Z.
      expect(body.transactionDate).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}$/);
    },
  );

  it('honours the variants on completion (fraction digits, repeated livenessImages)', async () => {
    const { ref } = await initiated(receiver.url);
    await h.control('POST', `/authentications/${ref}/complete`, {
      result: 'PASSED',
      variant: { fractionDigits: 0, livenessImages: 'repeated' },
    });
    const f = receiver.received[0]?.form ?? new URLSearchParams();
    expect(f.get('callbackDate')).toMatch(/T\d\d:\d\d:\d\dZ$/);
    expect(f.getAll('livenessImages')).toHaveLength(4);
  });

  it('completes without sending the callback when asked to lose it', async () => {
    const { ref } = await initiated(receiver.url);
    const res = await h.control('POST', `/authentications/${ref}/complete`, {
      result: 'PASSED',
      deliverCallback: false,
    });
    expect(res.body).toMatchObject({ state: 'PASSED', status: null });
    expect(receiver.received).toHaveLength(0);
    const retrieval = await h.jumio('GET', `/api/netverify/v2/authentications/${ref}`);
    expect(((await retrieval.json()) as { transactionResult: string }).transactionResult).toBe(
      'PASSED',
    );
  });

  it('answers status null when the authentication has no callbackUrl', async () => {
    const { ref } = await initiated();
    const res = await h.control('POST', `/authentications/${ref}/complete`, { result: 'PASSED' });
    expect(res.body).toMatchObject({ state: 'PASSED', status: null });
  });

  it('reports the states CREATED, STARTED and then the result through retrieval', async () => {
    const { ref } = await initiated();
    const result = async () =>
      (
        (await (await h.jumio('GET', `/api/netverify/v2/authentications/${ref}`)).json()) as {
          transactionResult: string;
        }
      ).transactionResult;
    expect(await result()).toBe('CREATED');
    await h.control('POST', `/authentications/${ref}/start`);
    expect(await result()).toBe('STARTED');
    await h.control('POST', `/authentications/${ref}/complete`, { result: 'INVALID' });
    expect(await result()).toBe('INVALID');
  });

  it('deletes an authentication: 200, then 404 for retrieval and a second delete', async () => {
    const { ref } = await initiated();
    const path = `/api/netverify/v2/authentications/${ref}`;
    expect((await h.jumio('DELETE', path)).status).toBe(200);
    expect((await h.jumio('GET', path)).status).toBe(404);
    expect((await h.jumio('DELETE', path)).status).toBe(404);
    const view = await h.control('GET', `/authentications/${ref}`);
    expect(view.body).toMatchObject({ deleted: true });
  });
});
