/**
 * The Envelope contract: every adapter (local AES keyring, KMS keyring) must pass it.
 * Imported by envelope.*.test.ts, each with its own harness.
 */
import { randomBytes } from 'node:crypto';
import {
  DecryptionError,
  EncryptionContextMismatchError,
  PlaintextTooLargeError,
  VaultError,
} from '../../src/core/errors';
import type { EncryptionContext, Envelope } from '../../src/core/ports';

export interface EnvelopeHarness {
  /** The configured maximum plaintext size of `create()`'s envelopes. */
  readonly maxPlaintextBytes: number;
  /** An envelope under the harness's key. Every call shares the key. */
  create(options?: { maxPlaintextBytes?: number }): Envelope;
  /** An envelope that cannot unwrap the data keys of `create()`'s envelopes. */
  createWithWrongKey(): Envelope;
}

export const ownerA: EncryptionContext = Object.freeze({
  purpose: 'facemap',
  enrollment: 'enr-7f3a2c',
  user: 'uh-0c9e4b1d',
  v: '1',
});
export const ownerB: EncryptionContext = Object.freeze({
  purpose: 'facemap',
  enrollment: 'enr-51d0aa',
  user: 'uh-88be02f4',
  v: '1',
});

/** Bytes of the final frame around its content: end marker, seq, IV, length, tag. */
const FINAL_FRAME_PREFIX = 4 + 4 + 12 + 4;
const TAG = 16;

function flip(bytes: Uint8Array, at: number): Uint8Array {
  const copy = new Uint8Array(bytes);
  copy[at] = (copy[at] ?? 0) ^ 0x01;
  return copy;
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** The plaintext as a copy that is a plain Uint8Array (toEqual distinguishes Buffer). */
function binary(size: number): Uint8Array {
  return new Uint8Array(randomBytes(size));
}

export function describeEnvelopeContract(
  name: string,
  makeHarness: () => EnvelopeHarness | Promise<EnvelopeHarness>,
): void {
  describe(`Envelope contract: ${name}`, () => {
    let h: EnvelopeHarness;
    let envelope: Envelope;

    beforeEach(async () => {
      h = await makeHarness();
      envelope = h.create();
    });

    describe('round trip', () => {
      it('returns the same binary bytes, every byte value included', async () => {
        const plaintext = new Uint8Array(512);
        for (let i = 0; i < plaintext.length; i++) plaintext[i] = i % 256;
        const { ciphertext, keyId } = await envelope.encrypt(plaintext, ownerA);
        expect(keyId).toBe(envelope.keyId);
        expect(await envelope.decrypt(ciphertext, ownerA)).toEqual(plaintext);
      });

      it('works across envelope instances sharing the key (a restart)', async () => {
        const plaintext = binary(3000);
        const { ciphertext } = await envelope.encrypt(plaintext, ownerA);
        expect(await h.create().decrypt(ciphertext, ownerA)).toEqual(plaintext);
      });

      it('round-trips a one-byte and an empty plaintext', async () => {
        for (const plaintext of [Uint8Array.of(0), new Uint8Array(0)]) {
          const { ciphertext } = await envelope.encrypt(plaintext, ownerA);
          expect(await envelope.decrypt(ciphertext, ownerA)).toEqual(plaintext);
        }
      });

      it('round-trips with non-ASCII context values (UTF-8 lengths in the header)', async () => {
        const plaintext = binary(100);
        const context = { ...ownerA, note: 'één-ß-東京' };
        const { ciphertext } = await envelope.encrypt(plaintext, context);
        expect(await envelope.decrypt(ciphertext, context)).toEqual(plaintext);
      });

      it('encrypts the same plaintext differently each time', async () => {
        const plaintext = binary(100);
        const a = await envelope.encrypt(plaintext, ownerA);
        const b = await envelope.encrypt(plaintext, ownerA);
        expect(asBuffer(a.ciphertext).equals(asBuffer(b.ciphertext))).toBe(false);
      });

      it('does not contain the plaintext, nor any 16-byte piece of it', async () => {
        const plaintext = binary(4096);
        const ct = asBuffer((await envelope.encrypt(plaintext, ownerA)).ciphertext);
        expect(ct.indexOf(asBuffer(plaintext))).toBe(-1);
        for (let i = 0; i + 16 <= plaintext.length; i += 256) {
          expect(ct.indexOf(asBuffer(plaintext.subarray(i, i + 16)))).toBe(-1);
        }
      });

      it('does not mutate the caller plaintext or context', async () => {
        const plaintext = binary(64);
        const before = new Uint8Array(plaintext);
        const context = { ...ownerA };
        await envelope.decrypt((await envelope.encrypt(plaintext, context)).ciphertext, context);
        expect(plaintext).toEqual(before);
        expect(context).toEqual(ownerA);
      });
    });

    describe('size limit', () => {
      it('refuses a plaintext one byte above the maximum with PlaintextTooLargeError', async () => {
        const err = await envelope.encrypt(binary(h.maxPlaintextBytes + 1), ownerA).catch((e) => e);
        expect(err).toBeInstanceOf(PlaintextTooLargeError);
        expect((err as VaultError).code).toBe('plaintext_too_large');
      });

      it('accepts a plaintext of exactly the maximum, in one frame', async () => {
        const max = h.maxPlaintextBytes;
        const plaintext = binary(max);
        const { ciphertext } = await envelope.encrypt(plaintext, ownerA);
        expect(await envelope.decrypt(ciphertext, ownerA)).toEqual(plaintext);

        // The message ends with the final frame; with no signature, its layout is fixed.
        // If it is also frame number 1, the whole facemap sits in one frame.
        const view = new DataView(ciphertext.buffer, ciphertext.byteOffset, ciphertext.byteLength);
        const frameStart = ciphertext.byteLength - TAG - max - FINAL_FRAME_PREFIX;
        expect(view.getUint32(frameStart)).toBe(0xffffffff); // final-frame marker
        expect(view.getUint32(frameStart + 4)).toBe(1); // sequence number
        expect(view.getUint32(frameStart + 20)).toBe(max); // content length
      });

      it('refuses to decrypt a message whose frame exceeds its maximum', async () => {
        const small = h.create({ maxPlaintextBytes: 100 });
        const { ciphertext } = await envelope.encrypt(binary(101), ownerA);
        await expect(small.decrypt(ciphertext, ownerA)).rejects.toBeInstanceOf(DecryptionError);
      });
    });

    describe('encryption context (invariant 6)', () => {
      it('refuses to encrypt or decrypt with an empty context', async () => {
        const encErr = await envelope.encrypt(binary(10), {}).catch((e) => e);
        expect(encErr).toBeInstanceOf(VaultError);
        expect((encErr as VaultError).code).toBe('invalid_encryption_context');

        const { ciphertext } = await envelope.encrypt(binary(10), ownerA);
        const decErr = await envelope.decrypt(ciphertext, {}).catch((e) => e);
        expect(decErr).toBeInstanceOf(VaultError);
        expect((decErr as VaultError).code).toBe('invalid_encryption_context');
      });

      it('refuses keys reserved by the SDK', async () => {
        const err = await envelope
          .encrypt(binary(10), { ...ownerA, 'aws-crypto-public-key': 'x' })
          .catch((e) => e);
        expect((err as VaultError).code).toBe('invalid_encryption_context');
      });

      it("refuses another owner's blob with EncryptionContextMismatchError", async () => {
        const { ciphertext } = await envelope.encrypt(binary(256), ownerA);
        const err = await envelope.decrypt(ciphertext, ownerB).catch((e) => e);
        expect(err).toBeInstanceOf(EncryptionContextMismatchError);
        expect((err as EncryptionContextMismatchError).keys).toEqual(['enrollment', 'user']);
        // Names the keys, never the values (they reach logs and CloudTrail-like places).
        for (const value of [...Object.values(ownerA), ...Object.values(ownerB)]) {
          if (value.length > 1) expect((err as Error).message).not.toContain(value);
        }
      });

      it('refuses when the expected context has an extra key', async () => {
        const { ciphertext } = await envelope.encrypt(binary(32), ownerA);
        const err = await envelope.decrypt(ciphertext, { ...ownerA, tenant: 't1' }).catch((e) => e);
        expect(err).toBeInstanceOf(EncryptionContextMismatchError);
        expect((err as EncryptionContextMismatchError).keys).toEqual(['tenant']);
      });

      it('refuses when the expected context lacks a key', async () => {
        const { ciphertext } = await envelope.encrypt(binary(32), ownerA);
        const { v: _v, ...withoutVersion } = ownerA;
        const err = await envelope.decrypt(ciphertext, withoutVersion).catch((e) => e);
        expect(err).toBeInstanceOf(EncryptionContextMismatchError);
        expect((err as EncryptionContextMismatchError).keys).toEqual(['v']);
      });

      it('refuses a value that differs only in case', async () => {
        const { ciphertext } = await envelope.encrypt(binary(32), ownerA);
        const err = await envelope
          .decrypt(ciphertext, { ...ownerA, purpose: 'Facemap' })
          .catch((e) => e);
        expect(err).toBeInstanceOf(EncryptionContextMismatchError);
      });

      it('accepts the same context given in another key order', async () => {
        const plaintext = binary(32);
        const { ciphertext } = await envelope.encrypt(plaintext, ownerA);
        const reordered = Object.fromEntries(Object.entries(ownerA).reverse());
        expect(await envelope.decrypt(ciphertext, reordered)).toEqual(plaintext);
      });
    });

    describe('tampering', () => {
      let plaintext: Uint8Array;
      let ciphertext: Uint8Array;

      beforeEach(async () => {
        plaintext = binary(2000);
        ({ ciphertext } = await envelope.encrypt(plaintext, ownerA));
      });

      async function expectDecryptionError(bytes: Uint8Array): Promise<void> {
        const err = await envelope.decrypt(bytes, ownerA).catch((e) => e);
        expect(err).toBeInstanceOf(DecryptionError);
        // The message is ours and short: no ciphertext or plaintext bytes in it.
        expect((err as Error).message.length).toBeLessThan(200);
        if (bytes.byteLength >= 12) {
          expect((err as Error).message).not.toContain(
            asBuffer(bytes).toString('base64').slice(0, 16),
          );
        }
      }

      it('refuses a flipped byte in the authentication tag', async () => {
        await expectDecryptionError(flip(ciphertext, ciphertext.byteLength - 1));
        await expectDecryptionError(flip(ciphertext, ciphertext.byteLength - TAG));
      });

      it('refuses a flipped byte in the encrypted body', async () => {
        await expectDecryptionError(flip(ciphertext, ciphertext.byteLength - TAG - 1));
        await expectDecryptionError(flip(ciphertext, ciphertext.byteLength - TAG - 1000));
        // The frame's IV, just before its content length.
        const frameStart = ciphertext.byteLength - TAG - plaintext.byteLength - FINAL_FRAME_PREFIX;
        await expectDecryptionError(flip(ciphertext, frameStart + 10));
      });

      it('refuses a flipped byte in the header (version, suite, message id)', async () => {
        await expectDecryptionError(flip(ciphertext, 0));
        await expectDecryptionError(flip(ciphertext, 2));
        await expectDecryptionError(flip(ciphertext, 10));
      });

      it('refuses a header whose stored context was edited (it is authenticated)', async () => {
        const at = asBuffer(ciphertext).indexOf(Buffer.from(ownerA.enrollment ?? '', 'utf8'));
        expect(at).toBeGreaterThan(0);
        await expectDecryptionError(flip(ciphertext, at + 4));
      });

      it('refuses a flipped byte in the encrypted data key', async () => {
        // The data key sits after the context; the header auth tag comes after it.
        const contextEnd =
          asBuffer(ciphertext).indexOf(Buffer.from(ownerA.user ?? '', 'utf8')) +
          (ownerA.user ?? '').length;
        const frameStart = ciphertext.byteLength - TAG - plaintext.byteLength - FINAL_FRAME_PREFIX;
        // Header tail: ... EDKs, content type (1), frame length (4), suite data (32),
        // header auth tag (16). Flip the last byte of the EDK section.
        const edkLastByte = frameStart - 16 - 32 - 4 - 1 - 1;
        expect(edkLastByte).toBeGreaterThan(contextEnd);
        await expectDecryptionError(flip(ciphertext, edkLastByte));
      });

      it('refuses a truncated blob at every kind of cut point', async () => {
        const n = ciphertext.byteLength;
        for (const cut of [1, 3, 20, 40, 100, Math.floor(n / 2), n - 17, n - TAG, n - 1]) {
          await expectDecryptionError(ciphertext.subarray(0, cut));
        }
      });

      it('refuses an empty blob and random bytes', async () => {
        await expectDecryptionError(new Uint8Array(0));
        await expectDecryptionError(binary(ciphertext.byteLength));
      });

      it('refuses trailing bytes after the message', async () => {
        const extended = new Uint8Array(ciphertext.byteLength + 8);
        extended.set(ciphertext);
        await expectDecryptionError(extended);
      });
    });

    describe('keys', () => {
      it('refuses a blob made under another key with DecryptionError', async () => {
        const { ciphertext } = await envelope.encrypt(binary(500), ownerA);
        await expect(h.createWithWrongKey().decrypt(ciphertext, ownerA)).rejects.toBeInstanceOf(
          DecryptionError,
        );
      });
    });
  });
}

/** Key rotation: the same contract for every adapter (local keys, KMS keys). */
export interface RotationHarness {
  readonly oldKeyId: string;
  readonly newKeyId: string;
  /** Encrypts and decrypts under the old key alone: before the rotation. */
  createOld(): Envelope;
  /** The new key current, the old one accepted for decrypt only: during the rotation. */
  createRotated(): Envelope;
  /** The new key alone: the old one retired. */
  createNewOnly(): Envelope;
}

export function describeRotationContract(
  name: string,
  makeHarness: () => RotationHarness | Promise<RotationHarness>,
): void {
  describe(`Envelope rotation contract: ${name}`, () => {
    let h: RotationHarness;

    beforeAll(async () => {
      h = await makeHarness();
    });

    it('names the current key and the previous one', () => {
      const rotated = h.createRotated();
      expect(rotated.keyId).toBe(h.newKeyId);
      expect(rotated.previousKeyIds).toContain(h.oldKeyId);
      expect(rotated.previousKeyIds).not.toContain(h.newKeyId);
      expect(h.createNewOnly().previousKeyIds).not.toContain(h.oldKeyId);
    });

    it('decrypts what the old key wrapped, and encrypts under the new key only', async () => {
      const plaintext = binary(2000);
      const old = await h.createOld().encrypt(plaintext, ownerA);
      expect(old.keyId).toBe(h.oldKeyId);
      const rotated = h.createRotated();
      expect(await rotated.decrypt(old.ciphertext, ownerA)).toEqual(plaintext);
      // The context is still checked on what the old key wrapped.
      await expect(rotated.decrypt(old.ciphertext, ownerB)).rejects.toBeInstanceOf(
        EncryptionContextMismatchError,
      );

      const fresh = await rotated.encrypt(plaintext, ownerA);
      expect(fresh.keyId).toBe(h.newKeyId);
      expect(await h.createNewOnly().decrypt(fresh.ciphertext, ownerA)).toEqual(plaintext);
      // No data key under the old key rides along: the old key alone cannot read it.
      await expect(h.createOld().decrypt(fresh.ciphertext, ownerA)).rejects.toBeInstanceOf(
        DecryptionError,
      );
    });

    it('once the old key is retired, what it wrapped is unreadable', async () => {
      const old = await h.createOld().encrypt(binary(100), ownerA);
      await expect(h.createNewOnly().decrypt(old.ciphertext, ownerA)).rejects.toBeInstanceOf(
        DecryptionError,
      );
    });

    it('verifyKey proves one key unwraps a data key, and refuses any other key', async () => {
      const rotated = h.createRotated();
      const old = await h.createOld().encrypt(binary(100), ownerA);
      const fresh = await rotated.encrypt(binary(100), ownerA);
      await expect(rotated.verifyKey(h.oldKeyId, old.ciphertext)).resolves.toBeUndefined();
      await expect(rotated.verifyKey(h.newKeyId, fresh.ciphertext)).resolves.toBeUndefined();
      for (const [keyId, ciphertext] of [
        [h.newKeyId, old.ciphertext],
        [h.oldKeyId, fresh.ciphertext],
        ['not-a-configured-key', old.ciphertext],
      ] as const) {
        await expect(rotated.verifyKey(keyId, ciphertext)).rejects.toBeInstanceOf(DecryptionError);
      }
      await expect(h.createNewOnly().verifyKey(h.oldKeyId, old.ciphertext)).rejects.toThrow(
        /not configured/,
      );
      await expect(
        rotated.verifyKey(h.oldKeyId, old.ciphertext.subarray(0, 20)),
      ).rejects.toBeInstanceOf(DecryptionError);
    });
  });
}
