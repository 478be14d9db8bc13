import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, spawnVault, VAULT_START_MS, waitFor } from '../helpers/process';
import { type SimulatorClient, startTestSimulator } from '../helpers/vault';

describe('shutdown of the vault process', () => {
  let sim: SimulatorClient;
  let dir: string;
  beforeAll(async () => {
    sim = await startTestSimulator();
    dir = await mkdtemp(path.join(tmpdir(), 'vault-shutdown-'));
  });
  afterAll(async () => {
    await sim?.running.close();
    await rm(dir, { recursive: true, force: true });
  });

  it(
    'exits 1 after SHUTDOWN_CLOSE_TIMEOUT_MS when a worker is stuck in a call',
    async () => {
      // Jumio accepts every request and never answers: the worker waits on its (long,
      // default) Jumio timeouts while SIGTERM arrives.
      await sim.fault({ endpoint: '*', kind: 'hang' });
      const port = await freePort();
      const vault = spawnVault({
        VAULT_DATA_DIR: path.join(dir, 'data'),
        PORT: String(port),
        HOST: '127.0.0.1',
        JUMIO_BASE_URL: sim.baseUrl,
        JUMIO_API_TOKEN: sim.running.credentials.apiToken,
        JUMIO_API_SECRET: sim.running.credentials.apiSecret,
        ENROLLMENT_WORKER_INTERVAL_MS: '50',
        SHUTDOWN_CLOSE_TIMEOUT_MS: '500',
      });
      try {
        await waitFor(async () => {
          const res = await fetch(`http://127.0.0.1:${port}/readyz`);
          return res.status === 200 ? true : undefined;
        }, VAULT_START_MS);
        const scan = await sim.createScan();
        const delivered = await sim.sendCallback(
          scan.scanReference,
          `http://127.0.0.1:${port}/webhooks/jumio`,
        );
        expect(delivered.status).toBe(200);
        // The worker has called Jumio and is waiting for an answer that never comes.
        await waitFor(async () =>
          (await sim.requests()).some((r) => r.path.includes(scan.scanReference))
            ? true
            : undefined,
        );
        vault.child.kill('SIGTERM');
        expect(await vault.exited).toBe(1);
        expect(vault.stdout()).toContain('shutdown deadline passed');
        expect(vault.stdout()).not.toContain('"msg":"stopped"');
      } finally {
        vault.child.kill('SIGKILL');
        await sim.clearFaults();
      }
    },
    2 * VAULT_START_MS,
  );
});
