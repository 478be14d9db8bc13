import { GenerateDataKeyCommand } from '@aws-sdk/client-kms';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { createS3Client, S3BlobStore } from '../../src/adapters/blobs/s3-blob-store';
import { EncryptionSdkEnvelope } from '../../src/adapters/crypto/encryption-sdk-envelope';
import { createKmsClient, kmsKeyring } from '../../src/adapters/crypto/keyrings';
import type { AwsHttpTimeouts } from '../../src/adapters/aws-http';
import { DependencyError } from '../../src/core/errors';
import {
  type StallingServer,
  startHeadersThenStallServer,
  startSilentServer,
} from '../helpers/stalling-servers';

/**
 * Every AWS client the vault builds (S3 through createS3Client, KMS through
 * createKmsClient, as the container does) gives up on a server that accepts and never
 * answers, or that sends headers and then stalls, instead of hanging. Small configured
 * timeouts; the jest timeout is generous, and no duration is asserted.
 */
const TIMEOUTS: AwsHttpTimeouts = { connectMs: 1_000, requestMs: 400, socketMs: 400 };
const credentials = { accessKeyId: 'AKIDTEST', secretAccessKey: 'secret' };
const KEY_ARN = 'arn:aws:kms:eu-west-1:111122223333:key/0b8e4f9a-0000-4000-8000-000000000000';

/** The SDK's own error under our DependencyError: a timeout, not anything else. */
function timeoutCause(error: unknown): unknown {
  let e = error;
  while (e instanceof DependencyError) e = e.cause;
  return e;
}

describe.each([
  ['accepts and never answers', startSilentServer],
  ['answers headers, then stalls', () => startHeadersThenStallServer()],
])('AWS clients against a server that %s', (_label, start) => {
  let server: StallingServer & { kind: string };
  beforeAll(async () => {
    server = Object.assign(await start(), {
      kind: start === startSilentServer ? 'silent' : 'stall',
    });
  });
  afterAll(async () => {
    await server.close();
  });

  const endpoint = () => `http://127.0.0.1:${server.port}`;

  it('S3: a get fails with a timeout DependencyError', async () => {
    const client = createS3Client({
      region: 'eu-west-1',
      endpoint: endpoint(),
      forcePathStyle: true,
      credentials,
      timeouts: TIMEOUTS,
    });
    const store = new S3BlobStore({ client, bucket: 'vault' });
    try {
      const error = await store.get('facemaps/ref/blob').catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DependencyError);
      expect((error as DependencyError).dependency).toBe('blob store');
      expect(timeoutCause(error)).toMatchObject({ name: 'TimeoutError' });
      // HEAD has no body: after headers it is answered, so only the silent server times it out.
      if (server.kind === 'silent') {
        await expect(store.ping()).rejects.toBeInstanceOf(DependencyError);
      }
      // The raw client too: the timeout is the handler's, not the store's.
      await expect(
        client.send(new GetObjectCommand({ Bucket: 'vault', Key: 'x' })).then(async (out) => {
          await out.Body?.transformToByteArray();
        }),
      ).rejects.toMatchObject({ name: 'TimeoutError' });
      expect(server.connections()).toBeGreaterThan(0);
    } finally {
      client.destroy();
    }
  });

  it('KMS: GenerateDataKey times out, and the envelope reports the KMS dependency', async () => {
    const client = createKmsClient({
      region: 'eu-west-1',
      endpoint: endpoint(),
      credentials,
      timeouts: TIMEOUTS,
    });
    try {
      await expect(
        client.send(new GenerateDataKeyCommand({ KeyId: KEY_ARN, NumberOfBytes: 32 })),
      ).rejects.toMatchObject({ name: 'TimeoutError' });
      const envelope = new EncryptionSdkEnvelope({
        keyring: kmsKeyring({ keyId: KEY_ARN, client }),
        keyId: KEY_ARN,
        maxPlaintextBytes: 1024,
      });
      const error = await envelope
        .encrypt(new Uint8Array(16), { purpose: 'test', format: '1' })
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DependencyError);
      expect((error as Error).message).toMatch(/kms/);
      expect(server.connections()).toBeGreaterThan(0);
    } finally {
      client.destroy();
    }
  });
});
