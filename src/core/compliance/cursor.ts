import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { InvalidRequestError } from '../enrollment/admin';
import { vaultKeyContext } from '../keys/vault-keys';
import type { Envelope, Ledger } from '../ports';

/**
 * Opaque paging cursors: base64url JSON and an HMAC over it, so a cursor the vault did not
 * issue (edited, truncated, from another listing) is refused with 400 instead of quietly
 * moving the reader somewhere else. The key is generated once and kept wrapped in the
 * ledger, so every replica accepts every replica's cursors.
 */
export class CursorCodec {
  constructor(private readonly key: Uint8Array) {}

  private mac(kind: string, body: string): Buffer {
    return createHmac('sha256', this.key).update(`${kind}.${body}`).digest().subarray(0, 16);
  }

  encode(kind: string, value: unknown): string {
    const body = Buffer.from(JSON.stringify(value)).toString('base64url');
    return `${body}.${this.mac(kind, body).toString('base64url')}`;
  }

  /** The value, or InvalidRequestError; the caller still validates its shape. */
  decode(kind: string, cursor: string): unknown {
    const [body, tag, extra] = cursor.split('.');
    const given = Buffer.from(tag ?? '', 'base64url');
    const expected = body ? this.mac(kind, body) : Buffer.alloc(0);
    if (
      !body ||
      extra !== undefined ||
      given.length !== expected.length ||
      !timingSafeEqual(given, expected)
    ) {
      throw new InvalidRequestError('cursor: not a cursor this listing issued (tampered with?)');
    }
    return JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  }
}

const CURSOR_KEY = 'cursor-hmac-v1';
const CURSOR_KEY_CONTEXT = vaultKeyContext(CURSOR_KEY);

/** The cursor key, created by the first replica and kept wrapped by the envelope key. */
export async function loadCursorCodec(ledger: Ledger, envelope: Envelope): Promise<CursorCodec> {
  const fresh = randomBytes(32);
  const { ciphertext, keyId } = await envelope.encrypt(fresh, CURSOR_KEY_CONTEXT);
  fresh.fill(0);
  const stored = await ledger.transaction((tx) =>
    tx.vaultKeys.putIfAbsent(CURSOR_KEY, ciphertext, keyId),
  );
  return new CursorCodec(await envelope.decrypt(stored, CURSOR_KEY_CONTEXT));
}
