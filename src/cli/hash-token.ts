import { randomBytes } from 'node:crypto';
import { hashToken, isWellFormedToken, MAX_TOKEN_LENGTH } from '../http/api-keys';

/**
 * `npm run hash-token` prints the SHA-256 hex of a token, for VAULT_API_KEYS entries
 * (`name:role:<hex>`). The token is read from stdin (`... < token.txt` or a pipe): an
 * argument also works but lands in shell history and the process list.
 * `--generate` makes a fresh 32-byte token and prints it with its hash.
 */
const USAGE =
  'usage: npm run hash-token [-- <token>] (or pipe the token on stdin)\n' +
  '       npm run hash-token -- --generate';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin) {
    const buf = chunk as Buffer;
    size += buf.length;
    // A token is at most MAX_TOKEN_LENGTH characters; do not slurp a whole file by mistake.
    if (size > MAX_TOKEN_LENGTH + 2) throw new Error('stdin holds more than one token');
    chunks.push(buf);
  }
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('-h') || args.includes('--help') || args.length > 1) {
    console.error(USAGE);
    process.exit(args.length > 1 ? 2 : 0);
  }
  if (args[0] === '--generate') {
    const token = randomBytes(32).toString('base64url');
    console.log(`token:  ${token}`);
    console.log(`sha256: ${hashToken(token)}`);
    console.error('Give the token to the calling service; put only the sha256 in VAULT_API_KEYS.');
    return;
  }
  let token = args[0];
  if (token === undefined) {
    if (process.stdin.isTTY) console.error('reading the token from stdin (end with Ctrl-D)');
    token = await readStdin();
  } else {
    console.error('note: a token given as an argument stays in shell history; prefer stdin');
  }
  if (!isWellFormedToken(token)) {
    throw new Error(
      `the token must be 1 to ${MAX_TOKEN_LENGTH} of A-Z a-z 0-9 - . _ ~ + / (then = padding), ` +
        'the characters a bearer token may hold',
    );
  }
  console.log(hashToken(token));
}

main().catch((error: unknown) => {
  // The message never contains the token.
  console.error(`hash-token failed: ${error instanceof Error ? error.message : String(error)}`);
  console.error(USAGE);
  process.exit(1);
});
