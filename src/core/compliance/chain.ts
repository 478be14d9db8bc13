import { createHash } from 'node:crypto';

/**
 * The tamper-evident audit trail (invariant 9): every entry carries its sequence, the
 * previous entry's hash and its own hash, SHA-256 over a canonical encoding of all its
 * fields. The encoding is defined here, in code an auditor can read and re-implement, not
 * by the database (whose functions whoever controls it could replace).
 */

/** The `prevHash` of sequence 1. */
export const GENESIS_HASH = '0'.repeat(64);

/** The fields an entry's hash covers: all of them. */
export interface ChainedFields {
  seq: number;
  at: Date;
  type: string;
  actor: string;
  enrollmentReference: string | null;
  authenticationReference: string | null;
  userReference: string | null;
  details: Record<string, unknown>;
  prevHash: string;
}

/** JSON with object keys sorted at every depth: one text per value, whatever its origin. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    const text = JSON.stringify(value);
    // undefined, functions and symbols have no JSON form; they never reach the ledger.
    return text === undefined ? 'null' : text;
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/**
 * `v1` + a JSON array of the fields in a fixed order; `at` in milliseconds since the
 * epoch (what both drivers return), `details` canonical.
 */
export function canonicalEntry(e: ChainedFields): string {
  return `v1${canonicalJson([
    e.seq,
    e.at.getTime(),
    e.type,
    e.actor,
    e.enrollmentReference,
    e.authenticationReference,
    e.userReference,
    e.details,
    e.prevHash,
  ])}`;
}

export function entryHash(e: ChainedFields): string {
  return createHash('sha256').update(canonicalEntry(e), 'utf8').digest('hex');
}

/**
 * `details` as the ledger will give it back (jsonb keeps JSON values only): hashing the
 * normalised value at append time makes the hash match what verification reads.
 */
export function normaliseDetails(details: Record<string, unknown> | undefined) {
  return JSON.parse(JSON.stringify(details ?? {})) as Record<string, unknown>;
}
