/**
 * Envelope encryption benchmark: why the vault uses the committing suite without a
 * signature and one frame per facemap (design, "Envelope encryption").
 *
 *   npx ts-node scripts/bench/envelope.ts            (BENCH_SECONDS=2 per case by default)
 *
 * Both variants use the same local AES-256 keyring, so the numbers measure the SDK's own
 * cost (ECDSA P-384 signing and verification, framing); with KMS, each encrypt and decrypt
 * adds one network round trip on top.
 *   (a) baseline: the SDK defaults under REQUIRE_ENCRYPT_REQUIRE_DECRYPT, i.e. the
 *       committing suite WITH ECDSA P-384 signature, 4 KiB frames (plain SDK calls);
 *   (b) chosen: EncryptionSdkEnvelope as the vault runs it: committing suite without
 *       signature, one frame, plus its own context, suite and length checks.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { buildClient, CommitmentPolicy } from '@aws-crypto/client-node';
import { EncryptionSdkEnvelope } from '../../src/adapters/crypto/encryption-sdk-envelope';
import { localKeyring } from '../../src/adapters/crypto/keyrings';

const SECONDS = Number(process.env.BENCH_SECONDS ?? '2');
const WARMUP = 20;
const SIZES = [
  { label: '100 KiB', bytes: 100 * 1024 },
  { label: '1 MiB', bytes: 1024 * 1024 },
];
const MAX_PLAINTEXT = 5 * 1024 * 1024; // FACEMAP_MAX_BYTES default
const context = { purpose: 'facemap', enrollment: 'enr-bench', user: 'uh-bench', v: '1' };

type RoundTrip = (plaintext: Uint8Array) => Promise<void>;

interface Result {
  opsPerSecond: number;
  meanMs: number;
  iterations: number;
}

async function measure(roundTrip: RoundTrip, plaintext: Uint8Array): Promise<Result> {
  for (let i = 0; i < WARMUP; i++) await roundTrip(plaintext);
  let iterations = 0;
  const start = performance.now();
  const deadline = start + SECONDS * 1000;
  while (performance.now() < deadline) {
    await roundTrip(plaintext);
    iterations++;
  }
  const elapsedMs = performance.now() - start;
  return {
    opsPerSecond: (iterations * 1000) / elapsedMs,
    meanMs: elapsedMs / iterations,
    iterations,
  };
}

function check(condition: boolean, what: string): void {
  if (!condition) throw new Error(`benchmark self-check failed: ${what}`);
}

async function main(): Promise<void> {
  const keyring = localKeyring({
    keyName: 'bench-key',
    keyNamespace: 'facemap-vault-bench',
    masterKey: randomBytes(32),
  });

  const sdk = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT);
  const baseline: RoundTrip = async (plaintext) => {
    const { result } = await sdk.encrypt(keyring, plaintext, { encryptionContext: context });
    const { plaintext: out } = await sdk.decrypt(keyring, result);
    check(out.byteLength === plaintext.byteLength, 'baseline round trip');
  };

  const envelope = new EncryptionSdkEnvelope({
    keyring,
    keyId: 'bench-key',
    maxPlaintextBytes: MAX_PLAINTEXT,
  });
  const chosen: RoundTrip = async (plaintext) => {
    const { ciphertext } = await envelope.encrypt(plaintext, context);
    const out = await envelope.decrypt(ciphertext, context);
    check(out.byteLength === plaintext.byteLength, 'chosen round trip');
  };

  console.log(
    `Envelope encrypt+decrypt round trips, local AES keyring, ${SECONDS}s per case, Node ${process.version}\n`,
  );
  const rows: string[][] = [['size', 'variant', 'ops/s', 'mean ms', 'iterations']];
  const ratios: string[] = [];
  for (const { label, bytes } of SIZES) {
    const plaintext = new Uint8Array(randomBytes(bytes));
    const a = await measure(baseline, plaintext);
    const b = await measure(chosen, plaintext);
    rows.push([
      label,
      '(a) default: signed suite, 4 KiB frames',
      fmt(a.opsPerSecond),
      fmt(a.meanMs, 3),
      String(a.iterations),
    ]);
    rows.push([
      label,
      '(b) chosen: unsigned committing, 1 frame',
      fmt(b.opsPerSecond),
      fmt(b.meanMs, 3),
      String(b.iterations),
    ]);
    ratios.push(`${label}: (b) is ${(a.meanMs / b.meanMs).toFixed(2)}x the throughput of (a)`);
  }
  printTable(rows);
  console.log(`\n${ratios.join('\n')}`);
}

function fmt(n: number, digits = 1): string {
  return n.toFixed(digits);
}

function printTable(rows: string[][]): void {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  for (const row of rows) {
    console.log(
      row
        .map((cell, i) => (i >= 2 ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
        .join('  '),
    );
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
