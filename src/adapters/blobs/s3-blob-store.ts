import { createHash } from 'node:crypto';

import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectVersionsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type ObjectIdentifier,
  type PutObjectCommandInput,
} from '@aws-sdk/client-s3';

import { BlobNotFoundError, DependencyError, VaultError } from '../../core/errors';
import { awsRequestHandler, DEFAULT_AWS_TIMEOUTS, type AwsHttpTimeouts } from '../aws-http';
import type { BlobListPage, BlobStore } from '../../core/ports';
import { assertValidKey, assertValidPrefix, listLimit } from './keys';

export interface S3BlobStoreOptions {
  client: S3Client;
  bucket: string;
  /** Key prefix inside the bucket (e.g. `vault/`); a trailing `/` is added when missing. */
  prefix?: string;
  /** When set, every put asks S3 to encrypt with this KMS key (SSE-KMS). */
  sseKmsKeyId?: string;
}

export interface S3ClientOptions {
  region: string;
  /** For S3-compatible stores (MinIO, s3rver, LocalStack). */
  endpoint?: string;
  forcePathStyle?: boolean;
  /** Defaults to the SDK's provider chain (environment, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Connection, request and socket timeouts; the documented defaults when omitted. */
  timeouts?: AwsHttpTimeouts;
}

/** DeleteObjects accepts at most 1000 keys per request. */
const DELETE_BATCH = 1000;
/** Passes over the version list; more than one only when writers race the delete. */
const DELETE_PASSES = 5;

/** Builds the S3 client; bounded timeouts so a stuck store fails a call instead of hanging it. */
export function createS3Client(options: S3ClientOptions): S3Client {
  return new S3Client({
    region: options.region,
    ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
    ...(options.forcePathStyle === undefined ? {} : { forcePathStyle: options.forcePathStyle }),
    ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    requestHandler: awsRequestHandler(options.timeouts ?? DEFAULT_AWS_TIMEOUTS),
  });
}

interface AwsErrorShape {
  name?: unknown;
  Code?: unknown;
  $metadata?: { httpStatusCode?: unknown };
}

function awsError(err: unknown): { name: string | undefined; status: number | undefined } {
  if (typeof err !== 'object' || err === null) return { name: undefined, status: undefined };
  const shape = err as AwsErrorShape;
  const name =
    typeof shape.name === 'string'
      ? shape.name
      : typeof shape.Code === 'string'
        ? shape.Code
        : undefined;
  const status = shape.$metadata?.httpStatusCode;
  return { name, status: typeof status === 'number' ? status : undefined };
}

function isNotFound(err: unknown): boolean {
  const { name, status } = awsError(err);
  // A missing bucket is misconfiguration, not a missing blob (HEAD cannot tell them apart).
  if (name === 'NoSuchBucket') return false;
  return name === 'NoSuchKey' || name === 'NotFound' || status === 404;
}

/** The store cannot list versions at all (s3rver answers 405/501); not a permission error. */
function isUnsupported(err: unknown): boolean {
  const { name, status } = awsError(err);
  return (
    name === 'NotImplemented' || name === 'MethodNotAllowed' || status === 501 || status === 405
  );
}

function wrap(operation: string, err: unknown): VaultError {
  if (err instanceof VaultError) return err;
  const { name, status } = awsError(err);
  const detail = [name, status === undefined ? undefined : `HTTP ${status}`]
    .filter((part) => part !== undefined)
    .join(', ');
  return new DependencyError('blob store', `S3 ${operation} failed (${detail || 'unknown'})`, {
    cause: err,
  });
}

/**
 * BlobStore on Amazon S3 or an S3-compatible store. Keys are validated exactly as the
 * filesystem adapter does, so both accept the same keys.
 */
export class S3BlobStore implements BlobStore {
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly sseKmsKeyId: string | undefined;
  readonly location: string;

  constructor(options: S3BlobStoreOptions) {
    this.client = options.client;
    this.bucket = options.bucket;
    const prefix = options.prefix ?? '';
    this.prefix = prefix === '' || prefix.endsWith('/') ? prefix : `${prefix}/`;
    if (this.prefix !== '') assertValidPrefix(this.prefix);
    this.sseKmsKeyId = options.sseKmsKeyId;
    this.location = `s3://${this.bucket}/${this.prefix}`;
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    const input: PutObjectCommandInput = {
      Bucket: this.bucket,
      Key: this.objectKey(key),
      Body: body,
      ContentLength: body.byteLength,
      ContentType: 'application/octet-stream',
      // S3 verifies it and rejects a body damaged in transit.
      ChecksumSHA256: createHash('sha256').update(body).digest('base64'),
    };
    if (this.sseKmsKeyId !== undefined) {
      input.ServerSideEncryption = 'aws:kms';
      input.SSEKMSKeyId = this.sseKmsKeyId;
    }
    try {
      await this.client.send(new PutObjectCommand(input));
    } catch (err) {
      throw wrap('put', err);
    }
  }

  async get(key: string): Promise<Uint8Array> {
    const objectKey = this.objectKey(key);
    try {
      const out = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }),
      );
      if (out.Body === undefined) throw new Error('response has no body');
      return await out.Body.transformToByteArray();
    } catch (err) {
      if (isNotFound(err)) throw new BlobNotFoundError(key);
      throw wrap('get', err);
    }
  }

  async exists(key: string): Promise<boolean> {
    return (await this.stat(key)) !== null;
  }

  async stat(key: string): Promise<{ size: number; lastModified: Date } | null> {
    const objectKey = this.objectKey(key);
    try {
      const out = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: objectKey }),
      );
      return { size: out.ContentLength ?? 0, lastModified: out.LastModified ?? new Date(0) };
    } catch (err) {
      if (isNotFound(err)) return null;
      throw wrap('stat', err);
    }
  }

  /**
   * Deletes every version and delete marker of the key, so nothing is left to restore
   * (erasure must be real on a versioned bucket). No plain DeleteObject follows: on a
   * versioned bucket it would add a fresh delete marker on every call, so repeated
   * deletes would never leave the key empty. The plain delete is only the fallback for
   * stores that cannot list versions (they keep none).
   */
  async delete(key: string): Promise<void> {
    const objectKey = this.objectKey(key);
    try {
      for (let pass = 1; pass <= DELETE_PASSES; pass += 1) {
        const versions = await this.listVersions(objectKey);
        if (versions === 'unsupported') {
          await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: objectKey }));
          return;
        }
        if (versions.length === 0) return;
        await this.deleteVersions(versions);
      }
    } catch (err) {
      throw wrap('delete', err);
    }
    // Writers kept adding versions faster than we deleted them.
    throw new DependencyError(
      'blob store',
      `S3 delete did not converge for key ${JSON.stringify(key)}`,
    );
  }

  async list(prefix: string, options?: { cursor?: string; limit?: number }): Promise<BlobListPage> {
    assertValidPrefix(prefix);
    const limit = listLimit(options?.limit);
    try {
      const out = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: this.prefix + prefix,
          MaxKeys: limit,
          ...(options?.cursor === undefined ? {} : { ContinuationToken: options.cursor }),
        }),
      );
      const keys = (out.Contents ?? [])
        .map((object) => object.Key)
        .filter((k): k is string => k !== undefined && k.startsWith(this.prefix))
        .map((k) => k.slice(this.prefix.length));
      return out.IsTruncated === true && out.NextContinuationToken !== undefined
        ? { keys, nextCursor: out.NextContinuationToken }
        : { keys };
    } catch (err) {
      throw wrap('list', err);
    }
  }

  async ping(): Promise<void> {
    try {
      await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
    } catch (err) {
      throw wrap('ping', err);
    }
  }

  private objectKey(key: string): string {
    return this.prefix + assertValidKey(key);
  }

  /** Every version and delete marker of exactly `objectKey` (not of keys it prefixes). */
  private async listVersions(objectKey: string): Promise<ObjectIdentifier[] | 'unsupported'> {
    const found: ObjectIdentifier[] = [];
    let keyMarker: string | undefined;
    let versionIdMarker: string | undefined;
    for (;;) {
      let out;
      try {
        out = await this.client.send(
          new ListObjectVersionsCommand({
            Bucket: this.bucket,
            Prefix: objectKey,
            ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
            ...(versionIdMarker === undefined ? {} : { VersionIdMarker: versionIdMarker }),
          }),
        );
      } catch (err) {
        if (isUnsupported(err)) return 'unsupported';
        throw err;
      }
      let passedKey = false;
      for (const entry of [...(out.Versions ?? []), ...(out.DeleteMarkers ?? [])]) {
        if (entry.Key !== objectKey) {
          passedKey = true;
          continue;
        }
        // Unversioned buckets report the single version as "null", which DeleteObjects accepts.
        found.push({ Key: objectKey, VersionId: entry.VersionId ?? 'null' });
      }
      // Keys come in order and `objectKey` sorts first among those it prefixes.
      if (out.IsTruncated !== true || passedKey) return found;
      if (out.NextKeyMarker === undefined)
        throw new Error('truncated version list without a marker');
      keyMarker = out.NextKeyMarker;
      versionIdMarker = out.NextVersionIdMarker;
    }
  }

  private async deleteVersions(versions: ObjectIdentifier[]): Promise<void> {
    for (let start = 0; start < versions.length; start += DELETE_BATCH) {
      const out = await this.client.send(
        new DeleteObjectsCommand({
          Bucket: this.bucket,
          Delete: { Objects: versions.slice(start, start + DELETE_BATCH), Quiet: true },
        }),
      );
      const first = out.Errors?.[0];
      if (first !== undefined) {
        throw new DependencyError(
          'blob store',
          `S3 delete refused for ${out.Errors?.length ?? 0} version(s) (${first.Code ?? 'unknown'})`,
        );
      }
    }
  }
}
