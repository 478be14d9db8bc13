import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AuditSigningKeyError, FileAuditSigner } from '../../src/adapters/audit/file-signer';
import { captureLogs } from '../helpers/logs';
import { describeAuditSignerContract } from './audit-signer.contract';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'audit-signer-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

const logger = () => captureLogs().logger;

describeAuditSignerContract('key file', async () => ({
  signer: await FileAuditSigner.open(path.join(dir, 'a.key'), logger()),
  other: await FileAuditSigner.open(path.join(dir, 'b.key'), logger()),
}));

describe('FileAuditSigner', () => {
  it('creates the key file with mode 0600 and signs the same after a restart', async () => {
    const file = path.join(dir, 'sub', 'signing.key');
    const first = await FileAuditSigner.open(file, logger());
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    const again = await FileAuditSigner.open(file, logger());
    const message = new TextEncoder().encode('x');
    await expect(again.verify(message, await first.sign(message))).resolves.toBe(true);
    expect(again.keyId).toBe(first.keyId);
    expect(first.keyId).not.toContain((await readFile(file, 'ascii')).trim());
  });

  it('refuses a key file readable by others, or one that is not a key', async () => {
    const open = path.join(dir, 'open.key');
    await writeFile(open, `${Buffer.alloc(32, 1).toString('base64')}\n`, { mode: 0o644 });
    await chmod(open, 0o644);
    await expect(FileAuditSigner.open(open, logger())).rejects.toThrow(
      /AUDIT_SIGNING_KEY_FILE.*chmod 600/,
    );
    const junk = path.join(dir, 'junk.key');
    await writeFile(junk, 'not a key\n', { mode: 0o600 });
    await expect(FileAuditSigner.open(junk, logger())).rejects.toBeInstanceOf(AuditSigningKeyError);
  });
});
