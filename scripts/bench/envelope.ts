/**
 * Envelope encryption scenario of `npm run bench`: encrypt+decrypt of a 300 KB facemap by
 * the vault's envelope against raw AES-256-GCM (node:crypto, the cost floor), and against
 * the SDK's defaults, which is why the vault uses the committing suite without a signature
 * and one frame per facemap (design, "Envelope encryption").
 *
 * All variants use the same local AES-256 key, so the figures measure the SDK's own cost
 * (data key derivation and commitment, framing, ECDSA P-384 for the signed default); with
 * KMS, each encrypt and decrypt adds one network round trip on top.
 *   raw: AES-256-GCM with a random 96-bit IV, decrypt checks the tag (baseline);
 *   chosen: EncryptionSdkEnvelope as the vault runs it: committing suite without
 *       signature, one frame, plus its own context, suite and length checks;
 *   default: the SDK defaults under REQUIRE_ENCRYPT_REQUIRE_DECRYPT, i.e. the committing
 *       suite WITH ECDSA P-384 signature, 4 KiB frames (plain SDK calls).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { buildClient, CommitmentPolicy } from '@aws-crypto/client-node';
import { EncryptionSdkEnvelope } from '../../src/adapters/crypto/encryption-sdk-envelope';
import { localKeyring } from '../../src/adapters/crypto/keyrings';
import { round, type BenchOptions, type Row, type ScenarioResult } from './lib';

const FACEMAP_BYTES = 300 * 1024;
const MAX_PLAINTEXT = 5 * 1024 * 1024; // FACEMAP_MAX_BYTES default
const context = { purpose: 'facemap', enrollment: 'enr-bench', user: 'uh-bench', v: '1' };

type RoundTrip = (plaintext: Uint8Array) => Promise<void>;

async function measure(
  label: string,
  roundTrip: RoundTrip,
  plaintext: Uint8Array,
  seconds: number,
) {
  for (let i = 0; i < 20; i++) await roundTrip(plaintext);
  const times: number[] = [];
  const start = performance.now();
  const deadline = start + seconds * 1000;
  while (performance.now() < deadline) {
    const t = performance.now();
    await roundTrip(plaintext);
    times.push(performance.now() - t);
  }
  const elapsed = performance.now() - start;
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
  return {
    case: label,
    throughput: round((times.length * 1000) / elapsed),
    unit: 'round trips/s',
    p50Ms: round(at(0.5), 3),
    p99Ms: round(at(0.99), 3),
    meanMs: round(elapsed / times.length, 3),
    iterations: times.length,
  } satisfies Row;
}

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`benchmark self-check failed: ${what}`);
}

export async function envelope(options: BenchOptions): Promise<ScenarioResult> {
  const seconds = options.seconds ?? (options.quick ? 0.5 : 5);
  const masterKey = randomBytes(32);
  const keyring = localKeyring({
    keyName: 'bench-key',
    keyNamespace: 'facemap-vault-bench',
    masterKey,
  });

  const raw: RoundTrip = async (plaintext) => {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', masterKey, iv);
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const tag = cipher.getAuthTag();
    const decipher = createDecipheriv('aes-256-gcm', masterKey, iv);
    decipher.setAuthTag(tag);
    const out = Buffer.concat([decipher.update(ciphertext), decipher.final()]);
    check(out.byteLength === plaintext.byteLength, 'raw round trip');
  };

  const envelopeImpl = new EncryptionSdkEnvelope({
    keyring,
    keyId: 'bench-key',
    maxPlaintextBytes: MAX_PLAINTEXT,
  });
  const chosen: RoundTrip = async (plaintext) => {
    const { ciphertext } = await envelopeImpl.encrypt(plaintext, context);
    const out = await envelopeImpl.decrypt(ciphertext, context);
    check(out.byteLength === plaintext.byteLength, 'chosen round trip');
  };

  const sdk = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
  const sdkDefault: RoundTrip = async (plaintext) => {
    const { result } = await sdk.encrypt(keyring, plaintext, { encryptionContext: context });
    const { plaintext: out } = await sdk.decrypt(keyring, result);
    check(out.byteLength === plaintext.byteLength, 'default round trip');
  };

  const plaintext = new Uint8Array(randomBytes(FACEMAP_BYTES));
  const base = await measure('raw AES-256-GCM (node:crypto)', raw, plaintext, seconds);
  const vault = await measure(
    'vault envelope: unsigned committing suite, 1 frame',
    chosen,
    plaintext,
    seconds,
  );
  const signed = await measure(
    'SDK default: signed suite, 4 KiB frames',
    sdkDefault,
    plaintext,
    seconds,
  );
  const slower = (r: { meanMs: number }) => round(r.meanMs / base.meanMs, 2);
  const factor = slower(vault);
  return {
    id: 'envelope',
    title: 'Envelope encrypt+decrypt of a 300 KB facemap',
    method:
      `One encrypt and one decrypt of ${FACEMAP_BYTES} random bytes per round trip, in the ` +
      `harness process, 20 warm-up round trips then ${seconds} s per variant, sequentially. ` +
      "All variants use the same local AES-256 key (the vault's development keyring); with " +
      'KMS each call adds a network round trip. "x slower" = mean time / raw mean time.',
    rows: [
      { ...base, baseline: true, ratio: 1, xSlower: 1 },
      { ...vault, ratio: round(vault.throughput / base.throughput, 3), xSlower: factor },
      { ...signed, ratio: round(signed.throughput / base.throughput, 3), xSlower: slower(signed) },
    ],
    targets: [
      { target: 'vault envelope <= 5x raw AES-256-GCM', measured: `${factor}x`, met: factor <= 5 },
    ],
  };
}
