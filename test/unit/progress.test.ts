import { Writable } from 'node:stream';
import { formatDuration, rateAndEta, startProgress } from '../../src/cli/progress';

/** A stream that records what is written; a terminal when `isTTY`. */
function recorder(isTTY: boolean): Writable & { isTTY: boolean; columns: number; text(): string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  return Object.assign(stream, { isTTY, columns: 120, text: () => chunks.join('') });
}

describe('progress reporter', () => {
  let t: number;
  const now = () => t;
  beforeEach(() => {
    t = 1_000_000;
  });

  it('on a terminal: a bar with count, percentage, rate and ETA, redrawn in place', () => {
    const stream = recorder(true);
    const progress = startProgress({ label: 'rewrapped', total: 10, stream, now });
    t += 1000;
    progress.increment(3);
    t += 1000;
    progress.increment(7);
    progress.stop();
    const out = stream.text();
    // cli-progress drives the terminal: cursor hidden, then shown again at the end.
    expect(out).toContain('\x1B[?25l');
    expect(out).toContain('\x1B[?25h');
    expect(out).toMatch(/rewrapped \[=+\] 10\/10 100% \| 5\.0\/s \| ETA 0s/);
    expect(out).not.toContain('done in'); // the plain mode's last line
  });

  it('elsewhere: plain lines, at most one per interval, and a last one', () => {
    const stream = recorder(false);
    const progress = startProgress({
      label: 'rewrapped',
      total: 10,
      stream,
      now,
      intervalMs: 1000,
    });
    t += 500;
    progress.increment(2);
    t += 500;
    progress.increment(1); // one interval since the start: a line
    t += 500;
    progress.increment(5); // within the interval: no line
    t += 500;
    progress.increment(2);
    t += 500;
    progress.stop();
    progress.stop(); // idempotent
    expect(stream.text().split('\n')).toEqual([
      'rewrapped: 3/10 (30%), 3.0/s, ETA 2s',
      'rewrapped: 10/10 (100%), 5.0/s, ETA 0s',
      'rewrapped: 10/10 done in 3s, 4.0/s',
      '',
    ]);
    expect(stream.text()).not.toContain('\x1B');
  });

  it('elsewhere, when nothing moves: still a line per interval, saying so', () => {
    jest.useFakeTimers();
    try {
      const stream = recorder(false);
      const progress = startProgress({ label: 'purged', total: 4, stream, now, intervalMs: 5000 });
      t += 5000;
      jest.advanceTimersByTime(5000);
      expect(stream.text()).toBe('purged: 0/4 (0%), 0.0/s, ETA ?\n');
      progress.stop();
      jest.advanceTimersByTime(20_000);
      expect(stream.text().split('\n')).toHaveLength(3); // the stall line, the last line, ''
    } finally {
      jest.useRealTimers();
    }
  });

  it('computes rate and ETA from the start, and formats durations', () => {
    expect(rateAndEta(50, 200, 10_000)).toEqual({ rate: 5, etaSeconds: 30 });
    expect(rateAndEta(0, 200, 10_000).etaSeconds).toBeNaN();
    expect(formatDuration(42)).toBe('42s');
    expect(formatDuration(185)).toBe('3m05s');
    expect(formatDuration(3720)).toBe('1h02m');
    expect(formatDuration(Number.NaN)).toBe('?');
  });
});
