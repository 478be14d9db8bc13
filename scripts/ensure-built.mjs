// Compiles dist/ when it is missing or older than the sources, so that `npm start` and
// `npm run vault` run current code without compiling on every call (a no-op costs a few
// milliseconds; a build 5 to 30 s). In the production image there are no sources and
// no compiler: dist/ is used as it is. The compiler's output goes to stderr, so that a
// command's stdout (`--json`) stays clean.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
// The compliance console (console/, built by Vite into dist/console) is part of the build.
const outputs = ['dist/src/main.js', 'dist/src/cli/vault.js', 'dist/console/index.html'].map((f) =>
  path.join(root, f),
);
const inputs = ['src', 'console', 'tsconfig.json', 'tsconfig.build.json'].map((f) =>
  path.join(root, f),
);

/** The newest modification time under `file` (recursively), 0 when it does not exist. */
function newest(file) {
  let stat;
  try {
    stat = statSync(file);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return stat.mtimeMs;
  let latest = stat.mtimeMs;
  for (const entry of readdirSync(file)) latest = Math.max(latest, newest(path.join(file, entry)));
  return latest;
}

function fail(message) {
  process.stderr.write(`facemap-vault: ${message}\n`);
  process.exit(1);
}

if (!existsSync(path.join(root, 'src'))) {
  // A production image: dist/ is all there is.
  if (!outputs.every((f) => existsSync(f)))
    fail('dist/ is incomplete and there is no src/ to build it from');
  process.exit(0);
}

const built = Math.min(...outputs.map((f) => (existsSync(f) ? statSync(f).mtimeMs : -1)));
if (built >= Math.max(...inputs.map(newest))) process.exit(0);

if (!existsSync(path.join(root, 'node_modules/typescript'))) {
  fail('dist/ is missing or stale and TypeScript is not installed: run `npm ci` first');
}
process.stderr.write(
  `facemap-vault: ${built < 0 ? 'building' : 'sources changed: rebuilding'} dist/ (npm run build)\n`,
);
// The one definition of the build is package.json's: run it (npm is there, it runs us).
const result = spawnSync('npm', ['run', '--silent', 'build'], {
  cwd: root,
  stdio: ['ignore', process.stderr, process.stderr],
});
if (result.status !== 0) fail('the build failed (see above)');
