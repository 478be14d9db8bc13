import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  freePort,
  isListening,
  runVault,
  spawnNpmStart,
  VAULT_START_MS,
  waitFor,
  type VaultProcess,
} from '../helpers/process';

/**
 * Signals as a process supervisor sends them: to the pid it started, which under
 * `npm start` is npm's. The vault itself must get the signal (no shell in between that
 * dies with 143 and leaves node running), stop cleanly and exit 0 with nothing left
 * listening, whether it is serving or still starting.
 */
describe('stopping the vault under npm start', () => {
  let dir: string;
  let started: VaultProcess[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'vault-signals-'));
  });
  afterEach(async () => {
    // Also after a timeout, and including a vault that npm left orphaned.
    for (const vault of started) vault.killAll();
    started = [];
    await rm(dir, { recursive: true, force: true });
  });

  /** The embedded simulator's port, from the vault's log line announcing it. */
  const simulatorPortOf = (vault: VaultProcess) =>
    waitFor(async () => {
      const match = /"simulator":"http:\/\/127\.0\.0\.1:(\d+)"/.exec(vault.stdout());
      return match ? Number(match[1]) : undefined;
    }, VAULT_START_MS);

  async function start(): Promise<{ vault: VaultProcess; port: number }> {
    const port = await freePort();
    const vault = spawnNpmStart({
      VAULT_DATA_DIR: path.join(dir, 'data'),
      PORT: String(port),
      HOST: '127.0.0.1',
      JUMIO_SIMULATOR_PORT: '0',
    });
    started.push(vault);
    return { vault, port };
  }

  /** The exit code, or 'still running' when the process outlives the timeout. */
  const exitWithin = (vault: VaultProcess, ms = 30_000) =>
    Promise.race([
      vault.exited,
      new Promise<string>((resolve) => setTimeout(() => resolve('still running'), ms).unref()),
    ]);

  it.each(['SIGTERM', 'SIGINT'] as const)(
    '%s to the npm process: the vault drains and exits 0, npm exits 0, nothing listens',
    async (signal) => {
      const { vault, port } = await start();
      await waitFor(async () => {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`);
        return res.status === 200 ? true : undefined;
      }, VAULT_START_MS);
      const simulatorPort = await simulatorPortOf(vault);
      expect(await isListening(simulatorPort)).toBe(true);

      vault.child.kill(signal);
      expect(await exitWithin(vault)).toBe(0);
      expect(vault.stdout()).toContain(`"signal":"${signal}"`);
      expect(vault.stdout()).toContain('"msg":"stopped"');
      // An orphaned vault would still hold both ports.
      expect(await isListening(port)).toBe(false);
      expect(await isListening(simulatorPort)).toBe(false);
    },
    2 * VAULT_START_MS,
  );

  it(
    'SIGTERM during start-up: stops before serving, exits 0, nothing listens, the ledger is intact',
    async () => {
      const { vault, port } = await start();
      // The simulator is up and the ledger is being created next (PGlite: seconds).
      const simulatorPort = await simulatorPortOf(vault);
      vault.child.kill('SIGTERM');
      expect(await exitWithin(vault)).toBe(0);
      expect(vault.stdout()).toContain('"msg":"stopped during start-up"');
      expect(vault.stdout()).not.toContain('facemap vault listening');
      expect(await isListening(port)).toBe(false);
      expect(await isListening(simulatorPort)).toBe(false);

      // Whatever start-up had begun was finished and closed: the ledger opens and migrates.
      const migrate = await runVault(['migrate', '--json'], {
        VAULT_DATA_DIR: path.join(dir, 'data'),
      });
      expect(migrate.stderr).toBe('');
      expect(migrate.code).toBe(0);
      expect(JSON.parse(migrate.stdout)).toMatchObject({ ledger: 'pglite' });
    },
    2 * VAULT_START_MS,
  );
});
