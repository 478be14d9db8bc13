import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { localKeyId, localKeyName } from '../../src/adapters/crypto/keyrings';
import {
  type LedgerChoice,
  type SimulatorClient,
  startTestSimulator,
  startTestVault,
  vaultLedgerKinds,
} from '../helpers/vault';

/** The key id of a local key file's content: a name derived from the key. */
const keyIdOf = (file: string) => localKeyId(localKeyName(Buffer.from(file.trim(), 'base64')));

const exists = (file: string) =>
  stat(file).then(
    () => true,
    () => false,
  );

describe.each(vaultLedgerKinds)('a data directory and its master key on %s', (_n, choose) => {
  let sim: SimulatorClient;
  let ledger: LedgerChoice;
  let dir: string;
  let keyFile: string;
  let original: string;

  beforeAll(async () => {
    sim = await startTestSimulator();
    ledger = await choose();
    dir = await mkdtemp(path.join(tmpdir(), 'vault-key-'));
    keyFile = path.join(dir, 'master.key');
    // A first start generates the key and wraps the user-reference key under it.
    const first = await startTestVault(sim, ledger, {}, dir);
    await first.stop();
    original = await readFile(keyFile, 'utf8');
  });
  afterAll(async () => {
    await ledger?.dispose();
    await sim?.running.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses to generate a new key when the ledger holds data under the missing one', async () => {
    await rm(keyFile);
    const error = await startTestVault(sim, ledger, {}, dir).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toContain(`VAULT_LOCAL_KEY_FILE (${keyFile}): is missing`);
    expect(message).toContain(`wrapped vault key(s) under key id ${keyIdOf(original)}`);
    expect(message).toMatch(/Restore the key file/);
    // No fresh key was left behind to be mistaken for the real one.
    expect(await exists(keyFile)).toBe(false);
    await writeFile(keyFile, original, { mode: 0o600 });
  });

  it('names the key file and key id when the key does not decrypt the ledger', async () => {
    const other = randomBytes(32).toString('base64');
    await writeFile(keyFile, `${other}\n`, { mode: 0o600 });
    try {
      const error = await startTestVault(sim, ledger, {}, dir).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toContain(
        `VAULT_LOCAL_KEY_FILE (${keyFile}): this master key (key id ${keyIdOf(other)}) cannot decrypt`,
      );
      // It names the key the ledger's vault keys are wrapped under.
      expect((error as Error).message).toContain(`under key id ${keyIdOf(original)}`);
      expect((error as Error).message).toMatch(/written under another master key/);
      // The operator's file is left as it was.
      expect(await readFile(keyFile, 'utf8')).toBe(`${other}\n`);
    } finally {
      await writeFile(keyFile, original, { mode: 0o600 });
    }
  });

  it('starts again with the right key', async () => {
    const vault = await startTestVault(sim, ledger, {}, dir);
    await vault.stop();
    expect(await readFile(keyFile, 'utf8')).toBe(original);
  });
});
