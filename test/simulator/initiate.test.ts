import { randomBytes } from 'node:crypto';
import { type Part, SimHarness, facemapPart, metadataPart, startReceiver } from './helpers';

type InitiateAnswer = {
  authenticationTransactionReference: string;
  redirectUrl: string;
};
type ErrorAnswer = { httpStatus: string; message: string; field?: string; code?: string };

describe('Jumio simulator: initiate authentication with a stored facemap', () => {
  let h: SimHarness;
  beforeEach(async () => {
    h = await SimHarness.start();
  });
  afterEach(() => h.close());

  it('accepts the documented wrapped metadata and records it', async () => {
    const scan = await h.enrolledAndDeleted();
    const res = await h.initiate([
      facemapPart(scan.facemap),
      metadataPart({
        enrollmentTransactionReference: scan.scanReference,
        userReference: 'user-123',
        callbackUrl: 'https://vault.example.com/jumio/callback',
        successUrl: 'https://app.example.com/ok',
        errorUrl: 'https://app.example.com/error',
        locale: 'en-GB',
        tokenLifetimeInMinutes: 30,
      }),
    ]);
    expect(res.status).toBe(200);
    const body = (await res.json()) as InitiateAnswer;
    expect(Object.keys(body).sort()).toEqual(['authenticationTransactionReference', 'redirectUrl']);
    expect(body.authenticationTransactionReference).toMatch(/^[0-9a-f-]{36}$/);
    expect(body.redirectUrl.startsWith(h.baseUrl)).toBe(true);
    expect(body.redirectUrl.length).toBeLessThanOrEqual(255);

    const view = await h.control(
      'GET',
      `/authentications/${body.authenticationTransactionReference}`,
    );
    expect(view.body).toMatchObject({
      enrollmentTransactionReference: scan.scanReference,
      state: 'CREATED',
      metadataForm: 'wrapped',
      metadataPart: 'file',
      userReference: 'user-123',
      callbackUrl: 'https://vault.example.com/jumio/callback',
      locale: 'en-GB',
      tokenLifetimeInMinutes: 30,
      facemapFilename: 'facemap.bin',
      createdAt: expect.any(String),
    });
  });

  it('accepts the unwrapped form too and records that it arrived unwrapped', async () => {
    const scan = await h.enrolledAndDeleted();
    const res = await h.initiate([
      facemapPart(scan.facemap),
      metadataPart({ enrollmentTransactionReference: scan.scanReference }, false),
    ]);
    expect(res.status).toBe(200);
    const { authenticationTransactionReference } = (await res.json()) as InitiateAnswer;
    const view = await h.control('GET', `/authentications/${authenticationTransactionReference}`);
    expect(view.body).toMatchObject({ metadataForm: 'unwrapped', userReference: null });
  });

  it('accepts metadata sent as a text part with Content-Type application/json', async () => {
    const scan = await h.enrolledAndDeleted();
    const res = await h.initiate([
      facemapPart(scan.facemap),
      {
        name: 'enrollmentMetadata',
        contentType: 'application/json',
        body: JSON.stringify({
          enrollmentMetadata: { enrollmentTransactionReference: scan.scanReference },
        }),
      },
    ]);
    expect(res.status).toBe(200);
    const { authenticationTransactionReference } = (await res.json()) as InitiateAnswer;
    const view = await h.control('GET', `/authentications/${authenticationTransactionReference}`);
    expect(view.body).toMatchObject({ metadataForm: 'wrapped', metadataPart: 'field' });
  });

  it('refuses an enrollment whose scan has not been deleted first', async () => {
    const scan = await h.createScan();
    const res = await h.initiate([
      facemapPart(scan.facemap),
      metadataPart({ enrollmentTransactionReference: scan.scanReference }),
    ]);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({
      code: 'ENROLLMENT_NOT_DELETED',
      field: 'enrollmentTransactionReference',
    });
    // Deleting it makes the same request acceptable: the refusal was about deletion only.
    await h.jumio('DELETE', `/api/netverify/v2/scans/${scan.scanReference}`);
    const again = await h.initiate([
      facemapPart(scan.facemap),
      metadataPart({ enrollmentTransactionReference: scan.scanReference }),
    ]);
    expect(again.status).toBe(200);
  });

  it.each([
    ['DENIED_FRAUD', { verificationStatus: 'DENIED_FRAUD' }],
    ['NO_MATCH', { similarity: 'NO_MATCH' }],
    ['NOT_POSSIBLE', { similarity: 'NOT_POSSIBLE' }],
    ['validity FALSE', { validity: 'FALSE' }],
    ['validity false (boolean)', { validity: false }],
    ['a PENDING scan', { status: 'PENDING' }],
  ])('refuses an ineligible enrollment: %s', async (_label, scanBody) => {
    const scan = await h.enrolledAndDeleted(scanBody);
    const res = await h.initiate([
      facemapPart(scan.facemap),
      metadataPart({ enrollmentTransactionReference: scan.scanReference }),
    ]);
    expect(res.status).toBe(400);
    expect(((await res.json()) as ErrorAnswer).code).toBe('ENROLLMENT_NOT_ELIGIBLE');
  });

  it('refuses an unknown enrollment reference', async () => {
    const res = await h.initiate([
      facemapPart(randomBytes(64)),
      metadataPart({ enrollmentTransactionReference: '00000000-0000-4000-8000-000000000000' }),
    ]);
    expect(res.status).toBe(400);
    expect(((await res.json()) as ErrorAnswer).code).toBe('UNKNOWN_ENROLLMENT');
  });

  it('refuses a facemap whose bytes differ from the enrolled one, even by one byte', async () => {
    const scan = await h.enrolledAndDeleted();
    const tampered = Buffer.from(scan.facemap);
    tampered[0] = (tampered[0] ?? 0) ^ 0xff;
    const res = await h.initiate([
      facemapPart(tampered),
      metadataPart({ enrollmentTransactionReference: scan.scanReference }),
    ]);
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ code: 'FACEMAP_MISMATCH', field: 'facemap' });
  });

  const ok = 'https://vault.example.com/cb';
  it.each<[string, Record<string, unknown>]>([
    ['enrollmentTransactionReference', { enrollmentTransactionReference: undefined }],
    ['enrollmentTransactionReference', { enrollmentTransactionReference: 'x'.repeat(37) }],
    ['userReference', { userReference: 'u'.repeat(101) }],
    ['userReference', { userReference: 'jane.doe@example.com' }],
    ['userReference', { userReference: 'call +44 20 7946 0958' }],
    ['userReference', { userReference: '(555) 123-4567' }],
    ['callbackUrl', { callbackUrl: `https://vault.example.com/${'a'.repeat(240)}` }],
    ['callbackUrl', { callbackUrl: 'http://vault.example.com/cb' }],
    ['callbackUrl', { callbackUrl: 'https://vault.example.com/cb?x=a b' }],
    ['callbackUrl', { callbackUrl: 'https://bücher.example/cb' }],
    ['callbackUrl', { callbackUrl: 'https://vault.example.com/%zz' }],
    ['callbackUrl', { callbackUrl: '/relative/cb' }],
    ['successUrl', { successUrl: `https://app.example.com/${'a'.repeat(2030)}` }],
    ['successUrl', { successUrl: 'http://127.0.0.1/ok' }],
    ['errorUrl', { errorUrl: `https://app.example.com/${'a'.repeat(240)}` }],
    ['errorUrl', { errorUrl: 'ftp://app.example.com/error' }],
    ['locale', { locale: 'xx' }],
    ['locale', { locale: 'en-US' }],
    ['tokenLifetimeInMinutes', { tokenLifetimeInMinutes: 4 }],
    ['tokenLifetimeInMinutes', { tokenLifetimeInMinutes: 86401 }],
    ['tokenLifetimeInMinutes', { tokenLifetimeInMinutes: 10.5 }],
    ['tokenLifetimeInMinutes', { tokenLifetimeInMinutes: '30' }],
    ['surprise', { surprise: true }],
  ])('refuses bad metadata, naming the field %s (%j)', async (field, change) => {
    const scan = await h.enrolledAndDeleted();
    const metadata = {
      enrollmentTransactionReference: scan.scanReference,
      callbackUrl: ok,
      ...change,
    };
    const res = await h.initiate([facemapPart(scan.facemap), metadataPart(metadata)]);
    expect(res.status).toBe(400);
    const body = (await res.json()) as ErrorAnswer;
    expect(body).toMatchObject({ httpStatus: '400', code: 'INVALID_ENROLLMENT_METADATA', field });
    expect(body.message).toContain(field);
  });

  it.each<[string, Record<string, unknown>]>([
    ['boundaries', { userReference: 'u'.repeat(100), tokenLifetimeInMinutes: 5, locale: 'zh-HK' }],
    ['upper bound lifetime', { tokenLifetimeInMinutes: 86400 }],
    ['punycode host', { callbackUrl: 'https://xn--bcher-kva.example/cb' }],
    ['a bare customer number', { userReference: '0012345678901' }],
    ['255-char callbackUrl', { callbackUrl: `https://v.example.com/${'a'.repeat(255 - 22)}` }],
    ['loopback http callbackUrl', { callbackUrl: 'http://127.0.0.1:8080/jumio/callback' }],
    ['localhost http callbackUrl', { callbackUrl: 'http://localhost:8080/cb' }],
    ['[::1] http callbackUrl', { callbackUrl: 'http://[::1]:8080/cb' }],
  ])('accepts valid metadata: %s', async (_label, change) => {
    const scan = await h.enrolledAndDeleted();
    const metadata = { enrollmentTransactionReference: scan.scanReference, ...change };
    const res = await h.initiate([facemapPart(scan.facemap), metadataPart(metadata)]);
    expect(await res.json()).toHaveProperty('authenticationTransactionReference');
    expect(res.status).toBe(200);
  });

  it.each<[string, () => Part[], number, string]>([
    [
      'no facemap part',
      () => [metadataPart({ enrollmentTransactionReference: 'x' })],
      400,
      'facemap',
    ],
    ['no metadata part', () => [facemapPart(randomBytes(16))], 400, 'enrollmentMetadata'],
    [
      'a facemap that is not octet-stream',
      () => [
        { name: 'facemap', filename: 'f.bin', contentType: 'image/png', body: randomBytes(16) },
        metadataPart({ enrollmentTransactionReference: 'x' }),
      ],
      400,
      'facemap',
    ],
    [
      'metadata that is not application/json',
      () => [
        facemapPart(randomBytes(16)),
        { name: 'enrollmentMetadata', filename: 'm.txt', contentType: 'text/plain', body: '{}' },
      ],
      400,
      'enrollmentMetadata',
    ],
    [
      'metadata as a plain text field',
      () => [facemapPart(randomBytes(16)), { name: 'enrollmentMetadata', body: '{}' }],
      400,
      'enrollmentMetadata',
    ],
    [
      'metadata that is not JSON',
      () => [
        facemapPart(randomBytes(16)),
        {
          name: 'enrollmentMetadata',
          filename: 'm.json',
          contentType: 'application/json',
          body: '{',
        },
      ],
      400,
      'enrollmentMetadata',
    ],
    [
      'an unexpected file part',
      () => [
        facemapPart(randomBytes(16)),
        { name: 'selfie', filename: 's.jpg', contentType: 'image/jpeg', body: randomBytes(16) },
      ],
      400,
      'selfie',
    ],
    [
      'an empty facemap',
      () => [facemapPart(Buffer.alloc(0)), metadataPart({ enrollmentTransactionReference: 'x' })],
      400,
      'facemap',
    ],
  ])('refuses a multipart body with %s', async (_label, parts, status, field) => {
    const res = await h.initiate(parts());
    expect(res.status).toBe(status);
    expect(((await res.json()) as ErrorAnswer).field).toBe(field);
  });

  it('refuses a facemap above the size limit with 413', async () => {
    const res = await h.initiate([
      facemapPart(Buffer.alloc(5 * 1024 * 1024 + 1)),
      metadataPart({ enrollmentTransactionReference: 'x' }),
    ]);
    expect(res.status).toBe(413);
    expect(((await res.json()) as ErrorAnswer).field).toBe('facemap');
  });

  it('refuses a body that is not multipart with 415', async () => {
    const res = await h.jumio('POST', '/api/authentication/v1/facemap/initiate', {
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(415);
  });
});

describe('Jumio simulator: HTTPS-only callbacks when loopback HTTP is not allowed', () => {
  it('refuses an http://127.0.0.1 callbackUrl with allowHttpCallbacks: false', async () => {
    const h = await SimHarness.start({ allowHttpCallbacks: false });
    try {
      const scan = await h.enrolledAndDeleted();
      const res = await h.initiate([
        facemapPart(scan.facemap),
        metadataPart({
          enrollmentTransactionReference: scan.scanReference,
          callbackUrl: 'http://127.0.0.1:8080/cb',
        }),
      ]);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ field: 'callbackUrl' });
    } finally {
      await h.close();
    }
  });
});

describe('Jumio simulator: the 15-minute rule', () => {
  let h: SimHarness;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  beforeEach(async () => {
    // A frozen base clock makes the boundary exact; POST /__sim/clock moves it.
    h = await SimHarness.start({ now: () => new Date('2025-03-01T09:00:00.000Z') });
    receiver = await startReceiver();
  });
  afterEach(async () => {
    await h.close();
    await receiver.close();
  });

  async function initiate(
    enrollment: { scanReference: string; facemap: Buffer },
    userReference: string,
  ) {
    const res = await h.initiate([
      facemapPart(enrollment.facemap),
      metadataPart({
        enrollmentTransactionReference: enrollment.scanReference,
        userReference,
        callbackUrl: receiver.url,
      }),
    ]);
    expect(res.status).toBe(200);
    return ((await res.json()) as InitiateAnswer).authenticationTransactionReference;
  }

  const state = async (ref: string) =>
    (await h.control<{ state: string }>('GET', `/authentications/${ref}`)).body.state;

  it('expires the earlier unfinished authentication and sends it an EXPIRED callback', async () => {
    const enrollment = await h.enrolledAndDeleted();
    const first = await initiate(enrollment, 'first');
    await h.control('POST', '/clock', { advanceMs: 15 * 60 * 1000 - 1 });
    const second = await initiate(enrollment, 'second');

    const [callback] = await receiver.waitFor(1);
    expect(callback?.contentType).toBe('application/x-www-form-urlencoded');
    expect(Object.fromEntries(callback?.form ?? [])).toMatchObject({
      callBackType: 'NETVERIFY_AUTHENTICATION',
      transactionReference: first,
      enrollmentTransactionReference: enrollment.scanReference,
      transactionResult: 'EXPIRED',
      userReference: 'first',
      scanSource: 'WEB',
    });
    expect(await state(first)).toBe('EXPIRED');
    expect(await state(second)).toBe('CREATED');

    // Only the last one can complete; the expired one stays final.
    const late = await h.control('POST', `/authentications/${first}/complete`, {
      result: 'PASSED',
    });
    expect(late.status).toBe(409);
    const done = await h.control('POST', `/authentications/${second}/complete`, {
      result: 'PASSED',
    });
    expect(done.body).toMatchObject({ state: 'PASSED', status: 200 });
    await receiver.waitFor(2);
    expect(receiver.received[1]?.form.get('transactionResult')).toBe('PASSED');
    expect(receiver.received[1]?.form.get('transactionReference')).toBe(second);

    const retrieval = await h.jumio('GET', `/api/netverify/v2/authentications/${first}`);
    expect(((await retrieval.json()) as { transactionResult: string }).transactionResult).toBe(
      'EXPIRED',
    );
  });

  it('leaves an authentication created exactly 15 minutes (or more) earlier alone', async () => {
    const enrollment = await h.enrolledAndDeleted();
    const first = await initiate(enrollment, 'first');
    await h.control('POST', '/clock', { advanceMs: 15 * 60 * 1000 });
    const second = await initiate(enrollment, 'second');
    // Give a wrongly sent callback the time to arrive before asserting none did.
    await new Promise((r) => setTimeout(r, 200));
    expect(receiver.received).toHaveLength(0);
    expect(await state(first)).toBe('CREATED');
    expect(await state(second)).toBe('CREATED');
  });

  it('does not expire authentications of another enrollment or final ones', async () => {
    const a = await h.enrolledAndDeleted();
    const b = await h.enrolledAndDeleted();
    const a1 = await initiate(a, 'a1');
    const done = await h.control('POST', `/authentications/${a1}/complete`, { result: 'FAILED' });
    expect(done.body).toMatchObject({ state: 'FAILED', status: 200 });
    const b1 = await initiate(b, 'b1');
    const a2 = await initiate(a, 'a2');
    await new Promise((r) => setTimeout(r, 200));
    expect(receiver.received.map((c) => c.form.get('transactionResult'))).toEqual(['FAILED']);
    expect([await state(a1), await state(b1), await state(a2)]).toEqual([
      'FAILED',
      'CREATED',
      'CREATED',
    ]);
  });
});
