import { userInfo } from 'node:os';

/** Where a command writes, and what it reads: the process's by default, captured in tests. */
export interface Io {
  /** A line for stdout: results, what a script reads. */
  out(line: string): void;
  /** A line for stderr: notes, warnings, errors. */
  err(line: string): void;
  env: NodeJS.ProcessEnv;
}

export const processIo: Io = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  env: process.env,
};

/** Bad usage found after parsing (an option missing with another): exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** The audit actor of an operator command: `cli:<os user>`. */
export function cliActor(env: NodeJS.ProcessEnv): string {
  let user: string | undefined;
  try {
    user = userInfo().username;
  } catch {
    user = env.USER;
  }
  return `cli:${user || 'unknown'}`;
}
