import type { Envelope, Ledger, VaultKeyRecord } from '../ports';
import { isKeyProbe } from './vault-keys';

/**
 * What each wrapping key protects (`GET /v1/keys`, `vault rewrap --dry-run`): the facemaps
 * per key as the inventory summary counts them, each key marked current, previous (accepted
 * for decrypt only: `vault rewrap` moves its facemaps off it) or unknown (not configured:
 * nothing under it can be decrypted by this vault).
 */

export type KeyStatus = 'current' | 'previous' | 'unknown';

export interface KeyEntry {
  keyId: string;
  status: KeyStatus;
  /** Facemaps held (STORED, ACTIVE, PARKED) under this key. */
  facemaps: number;
  /** Wrapped vault keys (not probes) under this key. */
  vaultKeys: number;
  /** False for an unknown key: this vault cannot decrypt what it wraps. */
  readable: boolean;
}

export interface KeyReport {
  currentKeyId: string;
  /** The current key, the previous ones (configured order), then unknown ones found. */
  keys: KeyEntry[];
  facemaps: { total: number; underCurrentKey: number; toRewrap: number; unreadable: number };
  /** `toRewrap` includes keys wrapped before their key was recorded. */
  vaultKeys: { total: number; underCurrentKey: number; toRewrap: number };
}

/** Vault keys `vault rewrap` moves to the current key: every one not under it, but probes. */
export function vaultKeysToRewrap(keys: VaultKeyRecord[], currentKeyId: string): VaultKeyRecord[] {
  return keys.filter((k) => !isKeyProbe(k.name) && k.keyId !== currentKeyId);
}

export async function keyReport(deps: { ledger: Ledger; envelope: Envelope }): Promise<KeyReport> {
  const { envelope } = deps;
  const [facemaps, stored] = await deps.ledger.transaction(async (tx) => [
    await tx.inventory.facemapsByKey(),
    await tx.vaultKeys.list(),
  ]);
  const vaultKeys = stored.filter((k) => !isKeyProbe(k.name));
  const statusOf = (keyId: string): KeyStatus =>
    keyId === envelope.keyId
      ? 'current'
      : envelope.previousKeyIds.includes(keyId)
        ? 'previous'
        : 'unknown';
  const found = [...facemaps.map((f) => f.keyId), ...vaultKeys.flatMap((k) => k.keyId ?? [])];
  const unknown = [...new Set(found.filter((id) => statusOf(id) === 'unknown'))].sort();
  const keys = [envelope.keyId, ...envelope.previousKeyIds, ...unknown].map((keyId): KeyEntry => ({
    keyId,
    status: statusOf(keyId),
    facemaps: facemaps.find((f) => f.keyId === keyId)?.facemaps ?? 0,
    vaultKeys: vaultKeys.filter((k) => k.keyId === keyId).length,
    readable: statusOf(keyId) !== 'unknown',
  }));
  const sum = (status: KeyStatus) =>
    keys.filter((k) => k.status === status).reduce((n, k) => n + k.facemaps, 0);
  const underCurrentKey = vaultKeys.filter((k) => k.keyId === envelope.keyId).length;
  return {
    currentKeyId: envelope.keyId,
    keys,
    facemaps: {
      total: facemaps.reduce((n, f) => n + f.facemaps, 0),
      underCurrentKey: sum('current'),
      toRewrap: sum('previous'),
      unreadable: sum('unknown'),
    },
    vaultKeys: {
      total: vaultKeys.length,
      underCurrentKey,
      toRewrap: vaultKeys.length - underCurrentKey,
    },
  };
}
