/**
 * Property: while the stores are healthy, no request, however malformed, makes the vault
 * answer 5xx. 5xx means "the vault failed" (and makes Jumio retry a callback forever), so
 * a client's bad path, header or body must always be a 4xx. Requests go over real HTTP
 * (node:http, which sends what it is given) to a whole test vault.
 */
import fc from 'fast-check';
import { requestArb, send } from '../helpers/fuzz';
import {
  removeDir,
  type SimulatorClient,
  startTestSimulator,
  startTestVault,
  type TestVault,
} from '../helpers/vault';

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
