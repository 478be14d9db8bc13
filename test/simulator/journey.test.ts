import { SimHarness, facemapPart, metadataPart, startReceiver } from './helpers';

describe('Jumio simulator: the web journey behind redirectUrl', () => {
  let h: SimHarness;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  beforeEach(async () => {
    h = await SimHarness.start({ now: () => new Date('2025-03-01T09:00:00.000Z') });
    receiver = await startReceiver();
  });
  afterEach(async () => {
    await h.close();
    await receiver.close();
  });

  async function initiate(extra: Record<string, unknown> = {}) {
    const scan = await h.enrolledAndDeleted();
    const res = await h.initiate([
      facemapPart(scan.facemap),
      metadataPart({
        enrollmentTransactionReference: scan.scanReference,
        callbackUrl: receiver.url,
        successUrl: 'https://app.example.com/done',
        errorUrl: 'https://app.example.com/error',
        ...extra,
      }),
    ]);
    return (await res.json()) as {
      authenticationTransactionReference: string;
      redirectUrl: string;
    };
  }

  const token = (redirectUrl: string) =>
    new URL(redirectUrl).searchParams.get('authorizationToken') ?? '';

  it('marks the authentication STARTED when opened and completes it from the page', async () => {
    const { authenticationTransactionReference: ref, redirectUrl } = await initiate();
    const opened = await fetch(redirectUrl);
    expect(opened.status).toBe(200);
    expect(await opened.text()).toContain(ref);
    expect((await h.control('GET', `/authentications/${ref}`)).body).toMatchObject({
      state: 'STARTED',
    });

    const done = await fetch(`${h.baseUrl}/web/v4/app/complete`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        authorizationToken: token(redirectUrl),
        result: 'PASSED',
      }).toString(),
      redirect: 'manual',
    });
    expect(done.status).toBe(303);
    expect(done.headers.get('location')).toBe(
      `https://app.example.com/done?transactionReference=${ref}`,
    );
    const [cb] = await receiver.waitFor(1);
    expect(cb?.form.get('transactionResult')).toBe('PASSED');

    expect((await fetch(redirectUrl)).status).toBe(409);
    // The journey is not a Jumio API call: it stays out of the request log.
    const log = await h.control<{ requests: Array<{ endpoint: string }> }>('GET', '/requests');
    expect(log.body.requests.map((r) => r.endpoint)).toEqual(['scanDelete', 'initiate']);
  });

  it('refuses a link older than tokenLifetimeInMinutes and an unknown token', async () => {
    const { redirectUrl } = await initiate({ tokenLifetimeInMinutes: 5 });
    await h.control('POST', '/clock', { advanceMs: 5 * 60_000 + 1 });
    expect((await fetch(redirectUrl)).status).toBe(410);
    expect((await fetch(`${h.baseUrl}/web/v4/app?authorizationToken=nope`)).status).toBe(404);
  });
});
