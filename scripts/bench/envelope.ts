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
import { quantile, round, type BenchOptions, type Row, type ScenarioResult } from './lib';

const FACEMAP_BYTES = 300 * 1024;
const MAX_PLAINTEXT = 5 * 1024 * 1024; // FACEMAP_MAX_BYTES default
const context = { purpose: 'facemap', enrollment: 'enr-bench', user: 'uh-bench', v: '1' };

type RoundTrip = (plaintext: Uint8Array) => Promise<void>;

/**
 * The variants interleaved: one round trip of each in turn (the order rotating) until the
 * time is up, so that every variant meets the same load of the shared machine (measured
 * one after the other, a busy second of the machine lands on whichever variant runs then).
 */
async function measureInterleaved(
  variants: Array<{ label: string; roundTrip: RoundTrip }>,
  plaintext: Uint8Array,
  seconds: number,
) {
  for (const { roundTrip } of variants) for (let i = 0; i < 20; i++) await roundTrip(plaintext);
  const times = variants.map(() => [] as number[]);
  const deadline = performance.now() + seconds * 1000 * variants.length;
  for (let turn = 0; performance.now() < deadline; turn++) {
    for (let k = 0; k < variants.length; k++) {
      const i = (turn + k) % variants.length;
      const t = performance.now();
      await variants[i]!.roundTrip(plaintext);
      times[i]!.push(performance.now() - t);
    }
  }
  return variants.map(({ label }, i) => {
    const sorted = [...times[i]!].sort((a, b) => a - b);
    const total = sorted.reduce((sum, t) => sum + t, 0);
    return {
      case: label,
      throughput: round((sorted.length * 1000) / total),
      unit: 'round trips/s',
      p50Ms: round(quantile(sorted, 0.5), 3),
      p99Ms: round(quantile(sorted, 0.99), 3),
      meanMs: round(total / sorted.length, 3),
      iterations: sorted.length,
    } satisfies Row;
  });
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
  const [base, vault, signed] = await measureInterleaved(
    [
      { label: 'raw AES-256-GCM (node:crypto)', roundTrip: raw },
      { label: 'vault envelope: unsigned committing suite, 1 frame', roundTrip: chosen },
      { label: 'SDK default: signed suite, 4 KiB frames', roundTrip: sdkDefault },
    ],
    plaintext,
    seconds,
  );
  const slower = (r: { meanMs: number }) => round(r.meanMs / base!.meanMs, 2);
  const slowerAtP50 = (r: { p50Ms: number }) => round(r.p50Ms / base!.p50Ms, 2);
  const factor = slower(vault!);
  return {
    id: 'envelope',
    title: 'Envelope encrypt+decrypt of a 300 KB facemap',
    method:
      `One encrypt and one decrypt of ${FACEMAP_BYTES} random bytes per round trip, in the ` +
      `harness process, 20 warm-up round trips each, then the variants interleaved (one ` +
      `round trip of each in turn) for ${seconds} s per variant. All variants use the same ` +
      "local AES-256 key (the vault's development keyring); with KMS each call adds a " +
      'network round trip. "x slower" = mean time / raw mean time; "x slower at p50" = ' +
      'p50 / raw p50.',
    rows: [
      { ...base!, baseline: true, ratio: 1, xSlower: 1, xSlowerAtP50: 1 },
      {
        ...vault!,
        ratio: round(vault!.throughput / base!.throughput, 3),
        xSlower: factor,
        xSlowerAtP50: slowerAtP50(vault!),
      },
      {
        ...signed!,
        ratio: round(signed!.throughput / base!.throughput, 3),
        xSlower: slower(signed!),
        xSlowerAtP50: slowerAtP50(signed!),
      },
    ],
    targets: [
      { target: 'vault envelope <= 5x raw AES-256-GCM', measured: `${factor}x`, met: factor <= 5 },
    ],
  };
}
