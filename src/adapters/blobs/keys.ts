import { InvalidBlobKeyError } from '../../core/errors';

/**
 * Blob key validation shared by every BlobStore adapter, so a key is either valid
 * everywhere or nowhere. An allowlist (not a blocklist): keys are `/`-separated
 * segments of [A-Za-z0-9._=-], which keeps them safe as file names on every platform,
 * as S3 keys without URL-encoding surprises, and unable to express traversal.
 */

/** Total length; well under S3's 1024-byte limit, leaving room for a store prefix. */
export const MAX_KEY_LENGTH = 512;
/** Per segment; leaves room under NAME_MAX (255) for the filesystem adapter's suffixes. */
export const MAX_SEGMENT_LENGTH = 128;
/** Page size bounds for `list` (S3 returns at most 1000 keys per request). */
export const DEFAULT_LIST_LIMIT = 1000;
export const MAX_LIST_LIMIT = 1000;

const SEGMENT = /^[A-Za-z0-9._=-]+$/;
// Checked before the allowlist only to give a precise reason in the error.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

function quote(value: unknown): string {
  return typeof value === 'string' ? JSON.stringify(value.slice(0, 80)) : typeof value;
}

/** Splits a key into segments or throws InvalidBlobKeyError with the reason. */
export function keySegments(key: string): string[] {
  if (typeof key !== 'string') throw new InvalidBlobKeyError(`not a string (${quote(key)})`);
  if (key.length === 0) throw new InvalidBlobKeyError('empty key');
  if (key.length > MAX_KEY_LENGTH) {
    throw new InvalidBlobKeyError(`longer than ${MAX_KEY_LENGTH} characters`);
  }
  if (CONTROL.test(key)) {
    throw new InvalidBlobKeyError(`NUL or control character in ${quote(key)}`);
  }
  if (key.includes('\\')) throw new InvalidBlobKeyError(`backslash in ${quote(key)}`);
  if (key.includes('%')) {
    // A percent-encoded `..` or `/` must not be decoded into traversal by any layer.
    throw new InvalidBlobKeyError(`percent-encoding in ${quote(key)}`);
  }
  if (key.normalize('NFC') !== key) {
    throw new InvalidBlobKeyError(`not in Unicode NFC in ${quote(key)}`);
  }
  if (key.startsWith('/')) throw new InvalidBlobKeyError(`absolute path ${quote(key)}`);
  const segments = key.split('/');
  for (const segment of segments) {
    if (segment === '') throw new InvalidBlobKeyError(`empty segment in ${quote(key)}`);
    if (segment === '.' || segment === '..') {
      throw new InvalidBlobKeyError(`"${segment}" segment in ${quote(key)}`);
    }
    if (segment.length > MAX_SEGMENT_LENGTH) {
      throw new InvalidBlobKeyError(`segment longer than ${MAX_SEGMENT_LENGTH} characters`);
    }
    if (!SEGMENT.test(segment)) {
      throw new InvalidBlobKeyError(`characters outside [A-Za-z0-9._=-] in ${quote(key)}`);
    }
  }
  return segments;
}

/** Returns the key unchanged when valid; throws InvalidBlobKeyError otherwise. */
export function assertValidKey(key: string): string {
  keySegments(key);
  return key;
}

/**
 * A list prefix is matched as a plain string prefix (as S3 does). It may be empty
 * (everything) or end with `/`; whatever precedes that must itself be a valid key.
 */
export function assertValidPrefix(prefix: string): string {
  if (typeof prefix !== 'string') throw new InvalidBlobKeyError(`prefix not a string`);
  if (prefix === '') return prefix;
  keySegments(prefix.endsWith('/') ? prefix.slice(0, -1) : prefix);
  return prefix;
}

/** Validates the page size: a positive integer, capped at MAX_LIST_LIMIT. */
export function listLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_LIST_LIMIT;
  if (!Number.isInteger(limit) || limit < 1) {
    throw new RangeError(`list limit must be a positive integer, got ${String(limit)}`);
  }
  return Math.min(limit, MAX_LIST_LIMIT);
}

/** True when `key` passes assertValidKey (for filtering directory entries, not for input). */
export function isValidKey(key: string): boolean {
  try {
    keySegments(key);
    return true;
  } catch {
    return false;
  }
}
