import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LocalKeyError, loadOrCreateLocalKey } from '../../src/adapters/crypto/local-key';
import type { Logger } from '../../src/core/ports';

interface LogCall {
  level: string;
  obj: object;
  msg?: string;
}

function recordingLogger(calls: LogCall[] = []): Logger & { calls: LogCall[] } {
  const at =
    (level: string) =>
    (obj: object, msg?: string): void => {
      calls.push({ level, obj, msg });
    };
  return {
    calls,
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: () => recordingLogger(calls),
  };
}

const posix = process.platform !== 'win32';
const runningAsRoot = typeof process.getuid === 'function' && process.getuid() === 0;

describe('loadOrCreateLocalKey', () => {
  let dir: string;
  let file: string;

  beforeEach(async () => {
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'local-key-'));
    file = path.join(dir, 'master.key');
  });

  afterEach(async () => {
    await fs.rm(dir, { recursive: true, force: true });
  });

  async function writeKeyFile(content: string | Buffer, mode = 0o600): Promise<void> {
    await fs.writeFile(file, content, { mode });
    await fs.chmod(file, mode); // writeFile's mode is subject to the umask
  }

  it('creates a 32-byte key in a 0600 base64 file and warns that it is for development', async () => {
    const logger = recordingLogger();
    const key = await loadOrCreateLocalKey(file, logger);

    expect(key).toBeInstanceOf(Uint8Array);
    expect(key.byteLength).toBe(32);
    const text = await fs.readFile(file, 'ascii');
    expect(text).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    expect(new Uint8Array(Buffer.from(text.trim(), 'base64'))).toEqual(key);
    if (posix) expect((await fs.stat(file)).mode & 0o777).toBe(0o600);

    const warnings = logger.calls.filter((c) => c.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.msg).toMatch(/development only/i);
    // The key itself never reaches the log.
    expect(JSON.stringify(logger.calls)).not.toContain(text.trim());
    // No temporary file is left behind.
    expect(await fs.readdir(dir)).toEqual(['master.key']);
  });

  it('creates the missing parent directory', async () => {
    file = path.join(dir, 'nested', 'data', 'master.key');
    const key = await loadOrCreateLocalKey(file, recordingLogger());
    expect(key.byteLength).toBe(32);
  });

  it('returns the same key on the next start, without warning again', async () => {
    const first = await loadOrCreateLocalKey(file, recordingLogger());
    const logger = recordingLogger();
    const second = await loadOrCreateLocalKey(file, logger);
    expect(second).toEqual(first);
    expect(logger.calls).toHaveLength(0);
  });

  it('reads a key written by an operator, with or without a trailing newline', async () => {
    const bytes = randomBytes(32);
    for (const content of [bytes.toString('base64'), `${bytes.toString('base64')}\n`]) {
      await writeKeyFile(content);
      expect(await loadOrCreateLocalKey(file, recordingLogger())).toEqual(new Uint8Array(bytes));
    }
  });

  it('yields one key when several starts race to create it', async () => {
    const logger = recordingLogger();
    const keys = await Promise.all(
      Array.from({ length: 8 }, () => loadOrCreateLocalKey(file, logger)),
    );
    for (const key of keys) expect(key).toEqual(keys[0]);
    // Only the winner generated a key, so only it warns.
    expect(logger.calls.filter((c) => c.level === 'warn')).toHaveLength(1);
    expect(await fs.readdir(dir)).toEqual(['master.key']);
  });

  describe('refuses, naming VAULT_LOCAL_KEY_FILE', () => {
    async function expectRefusal(pattern: RegExp): Promise<void> {
      const err = await loadOrCreateLocalKey(file, recordingLogger()).catch((e) => e);
      expect(err).toBeInstanceOf(LocalKeyError);
      expect((err as Error).message).toContain('VAULT_LOCAL_KEY_FILE');
      expect((err as Error).message).toContain(file);
      expect((err as Error).message).toMatch(pattern);
    }

    it('a key of the wrong length', async () => {
      await writeKeyFile(randomBytes(16).toString('base64'));
      await expectRefusal(/32 bytes/);
      await writeKeyFile(randomBytes(48).toString('base64'));
      await expectRefusal(/32 bytes/);
    });

    it('raw bytes instead of base64, without echoing them', async () => {
      const raw = randomBytes(32);
      await writeKeyFile(raw);
      await expectRefusal(/base64/);
      const err = await loadOrCreateLocalKey(file, recordingLogger()).catch((e) => e);
      expect((err as Error).message).not.toContain(raw.toString('base64'));
    });

    it('an empty file', async () => {
      await writeKeyFile('');
      await expectRefusal(/base64/);
    });

    (posix ? it : it.skip)('a file readable by group or others', async () => {
      for (const mode of [0o640, 0o604, 0o644, 0o660]) {
        await writeKeyFile(randomBytes(32).toString('base64'), mode);
        await expectRefusal(/chmod 600/);
      }
    });

    (posix && !runningAsRoot ? it : it.skip)('an unreadable file', async () => {
      await writeKeyFile(randomBytes(32).toString('base64'), 0o000);
      await expectRefusal(/EACCES/);
    });

    // Works as root too (root ignores mode 000): any open failure but "absent" is refused.
    it('a path that cannot be opened', async () => {
      await fs.writeFile(path.join(dir, 'not-a-dir'), '');
      file = path.join(dir, 'not-a-dir', 'master.key');
      await expectRefusal(/cannot be opened \(ENOTDIR\)/);
    });

    it('a directory in place of the file', async () => {
      await fs.mkdir(file, { mode: 0o700 });
      await expectRefusal(/not a regular file|EISDIR/);
    });
  });
});
