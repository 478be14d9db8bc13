import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '../..');
/** The compiled CLI (jest's globalSetup builds dist/ when it is stale). */
export const VAULT_CLI = path.join(ROOT, 'dist/src/cli/vault.js');

/** A free loopback port (the vault refuses PORT=0 on purpose). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** True when something accepts TCP connections on the loopback port. */
export function isListening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Only PATH and HOME from the caller, so nothing from the developer's shell leaks in. */
function isolatedEnv(env: Record<string, string>): Record<string, string> {
  return { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env };
}

export interface VaultProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
  /** SIGKILL to the process and, when it leads its own group, to whatever it started. */
  killAll(): void;
}

function track(child: ChildProcess, group = false): VaultProcess {
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const killAll = () => {
    try {
      if (group && child.pid) process.kill(-child.pid, 'SIGKILL');
      else child.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  };
  return { child, stdout: () => out, stderr: () => err, exited, killAll };
}

/** Runs the compiled vault (dist/src/main.js) in its own process, as the image does. */
export function spawnVault(env: Record<string, string>): VaultProcess {
  return track(
    spawn(process.execPath, [path.join(ROOT, 'dist/src/main.js')], {
      cwd: ROOT,
      env: isolatedEnv(env),
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

/**
 * `npm start`, as a developer or a process supervisor runs it; the child's pid is npm's,
 * which is where a supervisor sends its signals. It leads its own process group, so that
 * killAll() also reaches a vault orphaned by npm (the bug this guards against).
 */
export function spawnNpmStart(env: Record<string, string>): VaultProcess {
  return track(
    spawn('npm', ['start'], {
      cwd: ROOT,
      env: isolatedEnv({ npm_config_update_notifier: 'false', ...env }),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    }),
    true,
  );
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command line (the compiled `vault` by default) to completion. */
export function runCommand(
  command: string,
  args: readonly string[],
  env: Record<string, string> = {},
  stdin = '',
): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: ROOT,
      env: isolatedEnv(env),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

/** `vault <args>` from dist/, with only PATH, HOME and `env`. */
export function runVault(
  args: readonly string[],
  env: Record<string, string> = {},
  stdin = '',
): Promise<CliRun> {
  return runCommand(process.execPath, [VAULT_CLI, ...args], env, stdin);
}

/**
 * How long a test waits for a fresh vault process to be ready: its first start runs
 * initdb in WebAssembly, which took over 60 s on a 2-core machine at load 14.
 */
export const VAULT_START_MS = 150_000;

export async function waitFor<T>(
  probe: () => Promise<T | undefined>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 100));
  }
}
