import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort, spawnVault, VAULT_START_MS, waitFor } from '../helpers/process';

describe('the vault process (npm start)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'vault-main-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it(
    'starts on embedded defaults, is ready, keeps a 0600 key, and exits 0 on SIGTERM',
    async () => {
      const dataDir = path.join(dir, 'data');
      const port = await freePort();
      const vault = spawnVault({
        VAULT_DATA_DIR: dataDir,
        PORT: String(port),
        HOST: '127.0.0.1',
        JUMIO_SIMULATOR_PORT: '0',
      });
      try {
        const body = await waitFor(async () => {
          const res = await fetch(`http://127.0.0.1:${port}/readyz`);
          return res.status === 200 ? ((await res.json()) as unknown) : undefined;
        }, VAULT_START_MS);
        expect(body).toEqual({
          status: 'ready',
          checks: { ledger: 'ok', blobs: 'ok', envelope: 'ok' },
        });
        const key = await stat(path.join(dataDir, 'master.key'));
        expect(key.mode & 0o777).toBe(0o600);
        expect((await stat(dataDir)).isDirectory()).toBe(true);
        expect(vault.stdout()).toMatch(/GENERATED A NEW LOCAL MASTER KEY: for development only/);
        // No API keys on embedded defaults: an admin token, 0600, whose path is logged.
        const tokenFile = path.join(dataDir, 'admin.token');
        expect((await stat(tokenFile)).mode & 0o777).toBe(0o600);
        expect(vault.stdout()).toContain(tokenFile);
        const token = (await readFile(tokenFile, 'utf8')).trim();
        expect(vault.stdout()).not.toContain(token);
        const authed = await fetch(`http://127.0.0.1:${port}/v1/enrollments/nobody`, {
          headers: { authorization: `Bearer ${token}` },
        });
        expect(authed.status).toBe(404);
        // The Jumio simulator runs in-process, and the log says so.
        expect(vault.stdout()).toMatch(/running the Jumio SIMULATOR in-process/);

        // Draining in-flight requests is tested in-process (test/integration/shutdown.test.ts).
        vault.child.kill('SIGTERM');
        expect(await vault.exited).toBe(0);
        expect(vault.stdout()).toContain('"msg":"stopped"');
      } finally {
        vault.killAll();
      }
    },
    2 * VAULT_START_MS,
  );

  it.each([
    [{ PORT: 'abc' }, /PORT: must be an integer/],
    [{ BLOB_STORE: 's3' }, /S3_BUCKET: required when BLOB_STORE=s3/],
  ])(
    'refuses bad configuration %p with a message naming the variable',
    async (env, message) => {
      const vault = spawnVault({ VAULT_DATA_DIR: dir, ...env });
      expect(await vault.exited).toBe(1);
      expect(vault.stderr()).toMatch(/cannot start: invalid configuration/);
      expect(vault.stderr()).toMatch(message);
    },
    30_000,
  );

  it('names JUMIO_SIMULATOR_PORT when the embedded simulator cannot listen', async () => {
    const { createServer } = await import('node:net');
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const address = busy.address();
    const taken = String(typeof address === 'object' && address ? address.port : 0);
    try {
      const vault = spawnVault({ VAULT_DATA_DIR: dir, JUMIO_SIMULATOR_PORT: taken, PORT: '1' });
      expect(await vault.exited).toBe(1);
      expect(vault.stderr()).toMatch(new RegExp(`cannot start: JUMIO_SIMULATOR_PORT ${taken}:`));
    } finally {
      busy.close();
    }
  });

  it('refuses an unreadable key file, naming VAULT_LOCAL_KEY_FILE', async () => {
    const keyFile = path.join(dir, 'master.key');
    await writeFile(keyFile, 'not a key', { mode: 0o600 });
    await chmod(keyFile, 0o644);
    const vault = spawnVault({ VAULT_DATA_DIR: dir, VAULT_LOCAL_KEY_FILE: keyFile, PORT: '1' });
    expect(await vault.exited).toBe(1);
    expect(vault.stderr()).toMatch(/cannot start: VAULT_LOCAL_KEY_FILE/);
  });
});
