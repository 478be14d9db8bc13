import { Writable } from 'node:stream';
import { createLogger } from '../../src/logging';
import type { Logger } from '../../src/core/ports';

/** A real pino logger whose every line is kept, so tests can search what was logged. */
export function captureLogs(level = 'trace'): { logger: Logger; lines: string[]; text(): string } {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { logger: createLogger(level, sink), lines, text: () => lines.join('\n') };
}
