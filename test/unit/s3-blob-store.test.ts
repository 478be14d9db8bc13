import { createHash } from 'node:crypto';

import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';

import { S3BlobStore } from '../../src/adapters/blobs/s3-blob-store';
import { BlobNotFoundError, DependencyError, InvalidBlobKeyError } from '../../src/core/errors';

const s3 = mockClient(S3Client);
const BUCKET = 'vault-bucket';
const KMS_KEY = 'arn:aws:kms:eu-west-1:111122223333:key/0b8e4f9a-0000-4000-8000-000000000000';

function serviceError(name: string, status: number): S3ServiceException {
  return new S3ServiceException({
    name,
    $fault: status >= 500 ? 'server' : 'client',
    $metadata: { httpStatusCode: status },
    message: name,
  });
}

function store(options: { prefix?: string; sseKmsKeyId?: string } = {}): S3BlobStore {
  return new S3BlobStore({
    client: new S3Client({ region: 'eu-west-1' }),
    bucket: BUCKET,
    ...options,
  });
}

beforeEach(() => {
  s3.reset();
});

describe('put', () => {
  const body = Buffer.from('ciphertext bytes');
  const sha256 = createHash('sha256').update(body).digest('base64');

  it('sends SSE-KMS headers with the configured key, the prefixed key and a checksum', async () => {
    s3.on(PutObjectCommand).resolves({});
    await store({ prefix: 'vault', sseKmsKeyId: KMS_KEY }).put('enrollments/e1/facemap', body);

    const calls = s3.commandCalls(PutObjectCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0]?.args[0].input).toMatchObject({
      Bucket: BUCKET,
      Key: 'vault/enrollments/e1/facemap',
      ServerSideEncryption: 'aws:kms',
      SSEKMSKeyId: KMS_KEY,
      ChecksumSHA256: sha256,
      ContentLength: body.length,
    });
    expect(Buffer.from(calls[0]?.args[0].input.Body as Uint8Array).equals(body)).toBe(true);
  });

  it('sends no SSE headers when no KMS key is configured', async () => {
    s3.on(PutObjectCommand).resolves({});
    await store().put('k', body);

    const input = s3.commandCalls(PutObjectCommand)[0]?.args[0].input;
    expect(input?.Key).toBe('k');
    expect(input).not.toHaveProperty('ServerSideEncryption');
    expect(input).not.toHaveProperty('SSEKMSKeyId');
    expect(input?.ChecksumSHA256).toBe(sha256);
  });

  it('wraps a refusal (e.g. KMS access denied) in DependencyError', async () => {
    s3.on(PutObjectCommand).rejects(serviceError('AccessDenied', 403));
    const err = await store({ sseKmsKeyId: KMS_KEY })
      .put('k', body)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DependencyError);
    expect(err).toMatchObject({ dependency: 'blob store', code: 'dependency_failed' });
    expect((err as Error).message).toContain('AccessDenied');
  });
});

describe('delete', () => {
  it('deletes every version and delete marker of exactly that key', async () => {
    s3.on(ListObjectVersionsCommand)
      .resolvesOnce({
        Versions: [
          { Key: 'vault/k', VersionId: 'v1' },
          { Key: 'vault/k', VersionId: 'v2' },
          // Matches the Prefix but is another object: must survive.
          { Key: 'vault/k2', VersionId: 'other' },
        ],
        DeleteMarkers: [{ Key: 'vault/k', VersionId: 'm1' }],
        IsTruncated: false,
      })
      .resolves({ IsTruncated: false });
    s3.on(DeleteObjectsCommand).resolves({});

    await store({ prefix: 'vault/' }).delete('k');

    expect(s3.commandCalls(ListObjectVersionsCommand)[0]?.args[0].input).toMatchObject({
      Bucket: BUCKET,
      Prefix: 'vault/k',
    });
    const deletes = s3.commandCalls(DeleteObjectsCommand);
    expect(deletes).toHaveLength(1);
    const objects = deletes[0]?.args[0].input.Delete?.Objects ?? [];
    expect(objects.map((o) => `${o.Key}@${o.VersionId}`).sort()).toEqual([
      'vault/k@m1',
      'vault/k@v1',
      'vault/k@v2',
    ]);
    // Verified empty by a second listing; no plain delete that would leave a new marker.
    expect(s3.commandCalls(ListObjectVersionsCommand)).toHaveLength(2);
    expect(s3.commandCalls(DeleteObjectCommand)).toHaveLength(0);
  });

  it('follows version-list pages and deletes in batches of at most 1000', async () => {
    const page = (from: number, count: number) =>
      Array.from({ length: count }, (_, i) => ({ Key: 'k', VersionId: `v${from + i}` }));
    s3.on(ListObjectVersionsCommand)
      .resolvesOnce({
        Versions: page(0, 1000),
        IsTruncated: true,
        NextKeyMarker: 'k',
        NextVersionIdMarker: 'v999',
      })
      .resolvesOnce({ Versions: page(1000, 500), IsTruncated: false })
      .resolves({});
    s3.on(DeleteObjectsCommand).resolves({});

    await store().delete('k');

    const lists = s3.commandCalls(ListObjectVersionsCommand);
    expect(lists[1]?.args[0].input).toMatchObject({ KeyMarker: 'k', VersionIdMarker: 'v999' });
    const batches = s3
      .commandCalls(DeleteObjectsCommand)
      .map((call) => call.args[0].input.Delete?.Objects ?? []);
    expect(batches.map((b) => b.length)).toEqual([1000, 500]);
    const ids = new Set(batches.flat().map((o) => o.VersionId));
    expect(ids.size).toBe(1500);
  });

  it('repeats until no version is left when a writer races the delete', async () => {
    s3.on(ListObjectVersionsCommand)
      .resolvesOnce({ Versions: [{ Key: 'k', VersionId: 'v1' }] })
      .resolvesOnce({ Versions: [{ Key: 'k', VersionId: 'v2' }] })
      .resolves({});
    s3.on(DeleteObjectsCommand).resolves({});

    await store().delete('k');

    const ids = s3
      .commandCalls(DeleteObjectsCommand)
      .flatMap((call) => call.args[0].input.Delete?.Objects ?? [])
      .map((o) => o.VersionId);
    expect(ids).toEqual(['v1', 'v2']);
  });

  it('is idempotent: nothing listed, nothing deleted, no error', async () => {
    s3.on(ListObjectVersionsCommand).resolves({ IsTruncated: false });
    await expect(store().delete('gone')).resolves.toBeUndefined();
    expect(s3.commandCalls(DeleteObjectsCommand)).toHaveLength(0);
  });

  it('fails when S3 refuses to delete some version (e.g. object lock)', async () => {
    s3.on(ListObjectVersionsCommand).resolves({ Versions: [{ Key: 'k', VersionId: 'v1' }] });
    s3.on(DeleteObjectsCommand).resolves({
      Errors: [{ Key: 'k', VersionId: 'v1', Code: 'AccessDenied' }],
    });
    await expect(store().delete('k')).rejects.toBeInstanceOf(DependencyError);
  });

  it('falls back to a plain delete only when the store cannot list versions', async () => {
    s3.on(ListObjectVersionsCommand).rejects(serviceError('NotImplemented', 501));
    s3.on(DeleteObjectCommand).resolves({});
    await store({ prefix: 'p/' }).delete('k');
    expect(s3.commandCalls(DeleteObjectCommand)[0]?.args[0].input).toEqual({
      Bucket: BUCKET,
      Key: 'p/k',
    });
  });

  it('does not fall back when listing versions is denied (versions would survive)', async () => {
    s3.on(ListObjectVersionsCommand).rejects(serviceError('AccessDenied', 403));
    s3.on(DeleteObjectCommand).resolves({});
    await expect(store().delete('k')).rejects.toBeInstanceOf(DependencyError);
    expect(s3.commandCalls(DeleteObjectCommand)).toHaveLength(0);
  });
});

describe('get and exists', () => {
  it('maps NoSuchKey to BlobNotFoundError', async () => {
    s3.on(GetObjectCommand).rejects(
      new NoSuchKey({ $metadata: { httpStatusCode: 404 }, message: 'x' }),
    );
    await expect(store().get('k')).rejects.toBeInstanceOf(BlobNotFoundError);
  });

  it('maps a bare 404 to BlobNotFoundError and other failures to DependencyError', async () => {
    s3.on(GetObjectCommand)
      .rejectsOnce(serviceError('UnknownError', 404))
      .rejectsOnce(serviceError('SlowDown', 503));
    await expect(store().get('k')).rejects.toBeInstanceOf(BlobNotFoundError);
    await expect(store().get('k')).rejects.toBeInstanceOf(DependencyError);
  });

  it('does not mistake a missing bucket for a missing blob', async () => {
    s3.on(GetObjectCommand).rejects(serviceError('NoSuchBucket', 404));
    await expect(store().get('k')).rejects.toBeInstanceOf(DependencyError);
  });

  it('exists is false on 404 and fails on 403', async () => {
    s3.on(HeadObjectCommand)
      .rejectsOnce(serviceError('NotFound', 404))
      .rejectsOnce(serviceError('Forbidden', 403));
    expect(await store().exists('k')).toBe(false);
    await expect(store().exists('k')).rejects.toBeInstanceOf(DependencyError);
  });
});

describe('list', () => {
  it('maps prefix, limit and cursor to ListObjectsV2 and strips the store prefix', async () => {
    s3.on(ListObjectsV2Command).resolves({
      Contents: [{ Key: 'vault/e/1' }, { Key: 'vault/e/2' }],
      IsTruncated: true,
      NextContinuationToken: 'token-2',
    });
    const page = await store({ prefix: 'vault/' }).list('e/', { limit: 2, cursor: 'token-1' });
    expect(page).toEqual({ keys: ['e/1', 'e/2'], nextCursor: 'token-2' });
    expect(s3.commandCalls(ListObjectsV2Command)[0]?.args[0].input).toEqual({
      Bucket: BUCKET,
      Prefix: 'vault/e/',
      MaxKeys: 2,
      ContinuationToken: 'token-1',
    });
  });

  it('has no cursor on the last page', async () => {
    s3.on(ListObjectsV2Command).resolves({ Contents: [{ Key: 'a' }], IsTruncated: false });
    expect(await store().list('')).toEqual({ keys: ['a'] });
  });
});

describe('validation and ping', () => {
  it('refuses unsafe keys before any request is sent', async () => {
    await expect(store().put('../x', Buffer.from('x'))).rejects.toBeInstanceOf(InvalidBlobKeyError);
    await expect(store().delete('a//b')).rejects.toBeInstanceOf(InvalidBlobKeyError);
    await expect(store().list('%2e%2e/')).rejects.toBeInstanceOf(InvalidBlobKeyError);
    expect(s3.calls()).toHaveLength(0);
  });

  it('refuses an unsafe store prefix at construction', () => {
    expect(() => store({ prefix: '../other-tenant' })).toThrow(InvalidBlobKeyError);
  });

  it('pings with HeadBucket and wraps its failure', async () => {
    s3.on(HeadBucketCommand).resolvesOnce({}).rejectsOnce(serviceError('NoSuchBucket', 404));
    await expect(store().ping()).resolves.toBeUndefined();
    await expect(store().ping()).rejects.toBeInstanceOf(DependencyError);
    expect(s3.commandCalls(HeadBucketCommand)[0]?.args[0].input).toEqual({ Bucket: BUCKET });
  });
});
