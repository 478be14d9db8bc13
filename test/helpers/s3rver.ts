import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

import type { S3Client } from '@aws-sdk/client-s3';

import { createS3Client } from '../../src/adapters/blobs/s3-blob-store';

/** s3rver rejects bucket names shorter than three characters. */
export const S3RVER_BUCKET = 'vault-test';

export interface RunningS3rver {
  endpoint: string;
  bucket: string;
  /** A client for this server (path-style, s3rver's fixed credentials), via the production factory. */
  client(): S3Client;
  /** Stops the server (SIGKILL), keeping its directory: S3 goes away. */
  kill(): Promise<void>;
  /** Starts it again on the same port and directory: S3 comes back. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Runs in the child process. s3rver 3.7 signs ListObjectsV2 continuation tokens with
 * DES, which OpenSSL 3 only offers through its legacy provider, hence a child started
 * with --openssl-legacy-provider: in-process, every listing that spans pages fails
 * with HTTP 500 (jamhall/s3rver#818).
 */
const CHILD_SCRIPT = `
const S3rver = require(process.env.S3RVER_MODULE);
const server = new S3rver({
  silent: true,
  address: '127.0.0.1',
  port: Number(process.env.S3RVER_PORT || 0),
  directory: process.env.S3RVER_DIRECTORY,
  configureBuckets: [{ name: process.env.S3RVER_BUCKET }],
});
server.run().then(
  ({ port }) => process.stdout.write('listening ' + port + '\\n'),
  (err) => { process.stderr.write(String(err && err.stack || err)); process.exit(1); },
);
process.on('SIGTERM', () => server.close().finally(() => process.exit(0)));
`;

function waitForPort(child: ChildProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => reject(new Error(`s3rver did not start: ${stderr}`)), 15_000);
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      const match = /listening (\d+)/.exec(stdout);
      if (match?.[1] !== undefined) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString('utf8');
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited with code ${String(code)}: ${stderr}`));
    });
  });
}

function spawnS3rver(directory: string, port = 0): ChildProcess {
  return spawn(process.execPath, ['--openssl-legacy-provider', '-e', CHILD_SCRIPT], {
    env: {
      ...process.env,
      // jest's flags are for jest; the child is plain Node.
      NODE_OPTIONS: '',
      S3RVER_MODULE: require.resolve('s3rver'),
      S3RVER_DIRECTORY: directory,
      S3RVER_BUCKET,
      S3RVER_PORT: String(port),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

async function stopChild(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

/** Starts s3rver on a random loopback port with its data in a fresh temp directory. */
export async function startS3rver(): Promise<RunningS3rver> {
  const directory = await mkdtemp(path.join(tmpdir(), 'vault-s3rver-'));
  let child = spawnS3rver(directory);
  let port: number;
  try {
    port = await waitForPort(child);
  } catch (err) {
    child.kill('SIGKILL');
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  const clients: S3Client[] = [];
  return {
    endpoint,
    bucket: S3RVER_BUCKET,
    client() {
      const client = createS3Client({
        region: 'us-east-1',
        endpoint,
        forcePathStyle: true,
        credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' },
      });
      clients.push(client);
      return client;
    },
    async kill() {
      await stopChild(child, 'SIGKILL');
    },
    async restart() {
      await stopChild(child, 'SIGKILL');
      child = spawnS3rver(directory, port);
      await waitForPort(child);
    },
    async close() {
      for (const client of clients) client.destroy();
      await stopChild(child, 'SIGTERM');
      await rm(directory, { recursive: true, force: true });
    },
  };
}
