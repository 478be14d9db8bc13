import { randomBytes } from 'node:crypto';
import {
  API_KEY_NAME,
  hashToken,
  isWellFormedToken,
  MAX_TOKEN_LENGTH,
  type Role,
} from '../http/api-keys';
import { UsageError, type Io } from './io';

export interface HashTokenOptions {
  generate: boolean;
  name?: string;
  role?: Role;
  json: boolean;
}

/** Reads one token from stdin; refuses more than a token's worth of bytes. */
export async function readToken(stdin: AsyncIterable<unknown>): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const buf = Buffer.from(chunk as Uint8Array);
    size += buf.length;
    // A token is at most MAX_TOKEN_LENGTH characters; do not slurp a whole file by mistake.
    if (size > MAX_TOKEN_LENGTH + 2) throw new Error('stdin holds more than one token');
    chunks.push(buf);
  }
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

/**
 * `vault hash-token`: the SHA-256 hex of a token, for VAULT_API_KEYS (`name:role:<hex>`).
 * The token comes from stdin (an argument also works but lands in shell history and the
 * process list). `--generate` makes a fresh 32-byte token and prints the paste-ready
 * VAULT_API_KEYS entry and, apart from it, the token for the calling service.
 */
export async function hashTokenCommand(
  tokenArgument: string | undefined,
  options: HashTokenOptions,
  io: Io,
  stdin: { isTTY?: boolean } & AsyncIterable<unknown>,
): Promise<number> {
  const { name, role } = options;
  if (name !== undefined && !API_KEY_NAME.test(name)) {
    throw new UsageError('--name must be 1-64 of A-Z a-z 0-9 . _ -');
  }
  if (options.generate) {
    if (tokenArgument !== undefined) throw new UsageError('--generate takes no token');
    // Which role a new token gets is a decision, not a default.
    if (!name || !role) {
      throw new UsageError('--generate needs --name and --role (the VAULT_API_KEYS entry)');
    }
  } else if ((name === undefined) !== (role === undefined)) {
    throw new UsageError('--name and --role go together (the VAULT_API_KEYS entry)');
  }

  let token: string;
  if (options.generate) {
    token = randomBytes(32).toString('base64url');
  } else if (tokenArgument !== undefined) {
    io.err('note: a token given as an argument stays in shell history; prefer stdin');
    token = tokenArgument;
  } else {
    if (stdin.isTTY) io.err('reading the token from stdin (end with Ctrl-D)');
    token = await readToken(stdin);
  }
  if (!isWellFormedToken(token)) {
    // The message never contains the token.
    throw new Error(
      `the token must be 1 to ${MAX_TOKEN_LENGTH} of A-Z a-z 0-9 - . _ ~ + / (then = padding), ` +
        'the characters a bearer token may hold',
    );
  }
  const sha256 = hashToken(token);
  const entry = name && role ? `${name}:${role}:${sha256}` : undefined;

  if (options.json) {
    io.out(JSON.stringify({ sha256, entry, ...(options.generate ? { name, role, token } : {}) }));
  } else if (options.generate) {
    io.out(
      '# VAULT_API_KEYS entry: append it to the comma-separated list (it holds only the hash)',
    );
    io.out(entry!);
    io.out('');
    io.out('# token for the calling service, shown once: keep it in its secret store only');
    io.out(token);
  } else {
    io.out(entry ?? sha256);
  }
  return 0;
}
