/** Jumio documents UTC timestamps with zero to three fraction digits; the simulator emits all four. */
export type FractionDigits = 0 | 1 | 2 | 3;

export function formatJumioTimestamp(date: Date, digits: FractionDigits = 3, zulu = true): string {
  const iso = date.toISOString(); // always YYYY-MM-DDThh:mm:ss.sssZ
  const fraction = digits === 0 ? '' : `.${iso.slice(20, 20 + digits)}`;
  return `${iso.slice(0, 19)}${fraction}${zulu ? 'Z' : ''}`;
}

/**
 * The simulator's clock: the injected `now` plus an offset that the control API can move,
 * so time-based rules (the 15-minute rule) are testable without waiting.
 */
export class SimClock {
  private offsetMs = 0;

  constructor(private readonly base: () => Date = () => new Date()) {}

  now(): Date {
    return new Date(this.base().getTime() + this.offsetMs);
  }

  advance(ms: number): void {
    this.offsetMs += ms;
  }

  set(date: Date): void {
    this.offsetMs = date.getTime() - this.base().getTime();
  }

  reset(): void {
    this.offsetMs = 0;
  }
}
