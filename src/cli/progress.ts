import { SingleBar } from 'cli-progress';

/**
 * Progress of a long command (rewrap, inventory export, purge): a bar with count, rate and
 * ETA when the stream is a terminal; otherwise plain lines, at most one per interval (and
 * a last one), so logs of a job run under a scheduler stay readable. Written to stderr by
 * default, so stdout keeps only the result (and `--json` stays parseable).
 */
export interface Progress {
  /** Counts `n` more items done (default 1). */
  increment(n?: number): void;
  /** Prints the final state and releases the terminal; idempotent. */
  stop(): void;
}

export interface ProgressOptions {
  /** What is counted, e.g. `rewrapped`. */
  label: string;
  total: number;
  stream?: NodeJS.WritableStream & { isTTY?: boolean };
  /** Plain mode: the most a line is delayed (default 10 s). */
  intervalMs?: number;
  /** Milliseconds clock; tests inject one. */
  now?: () => number;
}

/** `1h02m`, `3m05s`, `42s`; `?` until a rate is known. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  const pad = (n: number) => String(n).padStart(2, '0');
  if (h > 0) return `${h}h${pad(m)}m`;
  if (m > 0) return `${m}m${pad(rest)}s`;
  return `${rest}s`;
}

/** Items per second since the start, and the seconds left at that rate. */
export function rateAndEta(
  done: number,
  total: number,
  elapsedMs: number,
): { rate: number; etaSeconds: number } {
  const rate = elapsedMs > 0 ? (done * 1000) / elapsedMs : 0;
  return { rate, etaSeconds: rate > 0 ? Math.max(0, total - done) / rate : Number.NaN };
}

const formatRate = (rate: number) => (rate >= 10 ? rate.toFixed(0) : rate.toFixed(1));

export function startProgress(options: ProgressOptions): Progress {
  const stream = options.stream ?? process.stderr;
  const now = options.now ?? Date.now;
  const total = Math.max(0, options.total);
  const started = now();
  let done = 0;
  let stopped = false;
  const rate = () => formatRate(rateAndEta(done, total, now() - started).rate);

  if (stream.isTTY) {
    const bar = new SingleBar({
      stream: stream as NodeJS.WriteStream,
      format: `${options.label} [{bar}] {value}/{total} {percentage}% | {rate}/s | ETA {eta_formatted}`,
      hideCursor: true,
      etaBuffer: 50,
    });
    bar.start(total, 0, { rate: '0.0' });
    return {
      increment(n = 1) {
        if (stopped) return;
        done += n;
        bar.update(done, { rate: rate() });
      },
      stop() {
        if (stopped) return;
        stopped = true;
        bar.update(done, { rate: rate() });
        bar.stop();
      },
    };
  }

  const intervalMs = options.intervalMs ?? 10_000;
  let lastLine = started;
  const line = () => {
    lastLine = now();
    const { rate: r, etaSeconds } = rateAndEta(done, total, lastLine - started);
    const percent = total > 0 ? Math.floor((done * 100) / total) : 100;
    stream.write(
      `${options.label}: ${done}/${total} (${percent}%), ${formatRate(r)}/s, ETA ${formatDuration(etaSeconds)}\n`,
    );
  };
  // Also when nothing moves: a stalled job says so instead of going quiet.
  const timer = setInterval(line, intervalMs);
  timer.unref();
  return {
    increment(n = 1) {
      if (stopped) return;
      done += n;
      if (now() - lastLine >= intervalMs) line();
    },
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      const elapsed = (now() - started) / 1000;
      stream.write(
        `${options.label}: ${done}/${total} done in ${formatDuration(elapsed)}, ${rate()}/s\n`,
      );
    },
  };
}
