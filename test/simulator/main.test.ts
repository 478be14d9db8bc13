import { spawn } from 'node:child_process';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { ROOT, waitFor } from '../helpers/process';

describe('npm run simulator (src/simulator/main.ts)', () => {
  it('prints its base URL, credentials and control API, serves, and stops on SIGTERM', async () => {
    const child = spawn(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', path.join(ROOT, 'src/simulator/main.ts')],
      {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? '', JUMIO_SIMULATOR_PORT: '0' },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      const baseUrl = await waitFor(
        async () => /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1],
      );
      await waitFor(async () => (out.includes('Control API') ? true : undefined));
      // Paste-ready lines, each at the start of its line, that the vault's config accepts.
      const pasted = Object.fromEntries(
        [...out.matchAll(/^(JUMIO_[A-Z_]+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]),
      );
      expect(pasted).toEqual({
        JUMIO_BASE_URL: baseUrl,
        JUMIO_API_TOKEN: 'sim-api-token',
        JUMIO_API_SECRET: 'sim-api-secret',
      });
      expect(loadConfig(pasted).jumio).toMatchObject({
        mode: 'remote',
        baseUrl,
        credentials: { token: 'sim-api-token', secret: 'sim-api-secret' },
      });
      expect(out).toContain('sim-api-token / sim-api-secret');
      expect(out).toMatch(/POST +\/__sim\/scans/);
      expect(out).toMatch(/POST +\/__sim\/faults/);

      const created = await fetch(`${baseUrl}/__sim/scans`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(created.status).toBe(201);
      const { scanReference } = (await created.json()) as { scanReference: string };
      const status = await fetch(`${baseUrl}/api/netverify/v2/scans/${scanReference}`, {
        headers: {
          authorization: `Basic ${Buffer.from('sim-api-token:sim-api-secret').toString('base64')}`,
          'user-agent': 'Acme Vault/1.0.0',
          accept: 'application/json',
        },
      });
      expect(status.status).toBe(200);
      expect(await status.json()).toMatchObject({ scanReference, status: 'DONE' });

      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
