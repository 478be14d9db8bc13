import { randomBytes } from 'node:crypto';

import { createS3Client, S3BlobStore } from '../../src/adapters/blobs/s3-blob-store';
import { DependencyError } from '../../src/core/errors';
import { startS3rver, type RunningS3rver } from '../helpers/s3rver';
import { blobStoreContract } from './blob-store.contract';

let server: RunningS3rver | undefined;

function running(): RunningS3rver {
  if (server === undefined) throw new Error('s3rver is not running');
  return server;
}

beforeAll(async () => {
  server = await startS3rver();
});

afterAll(async () => {
  await server?.close();
});

// One server for the file; each test gets its own prefix, so tests cannot see each
// other's keys and the prefix stripping is exercised on every call.
blobStoreContract(
  's3 (s3rver)',
  async () => {
    const prefix = `run-${randomBytes(6).toString('hex')}/`;
    return {
      store: new S3BlobStore({ client: running().client(), bucket: running().bucket, prefix }),
    };
  },
  {
    // Real S3 guarantees both; s3rver does not emulate them, so they cannot be shown here.
    listOrder: 's3rver lists in its own directory-walk order (key "a" after "a/b"), not byte order',
    atomicOverwrite:
      's3rver streams concurrent uploads into one file in place, so bodies interleave',
  },
);

describe('S3BlobStore against s3rver, specifics', () => {
  it('two stores with different prefixes in one bucket do not see each other', async () => {
    const { client, bucket } = { client: running().client(), bucket: running().bucket };
    const a = new S3BlobStore({ client, bucket, prefix: 'tenant-a' });
    const b = new S3BlobStore({ client, bucket, prefix: 'tenant-b/' });
    await a.put('k', Buffer.from('a'));
    await b.put('k', Buffer.from('b'));
    expect(Buffer.from(await a.get('k')).toString()).toBe('a');
    expect(Buffer.from(await b.get('k')).toString()).toBe('b');
    expect((await a.list('')).keys).toEqual(['k']);
    await a.delete('k');
    expect(await a.exists('k')).toBe(false);
    expect(await b.exists('k')).toBe(true);
  });

  it('wraps a missing bucket in DependencyError', async () => {
    const store = new S3BlobStore({ client: running().client(), bucket: 'no-such-bucket' });
    await expect(store.ping()).rejects.toBeInstanceOf(DependencyError);
    await expect(store.put('k', Buffer.from('x'))).rejects.toBeInstanceOf(DependencyError);
  });

  it('wraps an unreachable endpoint in DependencyError', async () => {
    const client = createS3Client({
      region: 'us-east-1',
      // Port 9 (discard) on loopback: nothing listens, so the connection is refused.
      endpoint: 'http://127.0.0.1:9',
      forcePathStyle: true,
      credentials: { accessKeyId: 'x', secretAccessKey: 'x' },
    });
    const store = new S3BlobStore({ client, bucket: 'vault-test' });
    try {
      await expect(store.ping()).rejects.toBeInstanceOf(DependencyError);
    } finally {
      client.destroy();
    }
  });
});
