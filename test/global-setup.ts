import { execFileSync } from 'node:child_process';
import path from 'node:path';

/**
 * Compiles dist/ once per jest run when it is stale (a no-op otherwise): process tests run
 * the compiled vault and CLI, as operators and the production image do, and never
 * compile per command.
 */
export default function globalSetup(): void {
  const root = path.resolve(__dirname, '..');
  execFileSync(process.execPath, [path.join(root, 'scripts/ensure-built.mjs')], {
    cwd: root,
    stdio: 'inherit',
    // jest's flags are for jest.
    env: { ...process.env, NODE_OPTIONS: '' },
  });
}
