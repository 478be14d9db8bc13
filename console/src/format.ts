/** Display helpers. Everything returned is plain text: JSX renders it escaped. */

/** `2026-05-01 14:03:07 UTC`: one unambiguous zone for every reader of the trail. */
export function when(iso: string | null | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

export function day(iso: string | null | undefined): string {
  return iso ? iso.slice(0, 10) : '—';
}

const integer = new Intl.NumberFormat('en-GB', { maximumFractionDigits: 0 });
export function count(n: number | null | undefined): string {
  return n === null || n === undefined ? '—' : integer.format(n);
}

export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** `2026-05` -> `May 2026` */
export function monthLabel(month: string, short = false): string {
  const [y, m] = month.split('-').map(Number);
  if (!y || !m) return month;
  const name = new Date(Date.UTC(y, m - 1, 1)).toLocaleString('en-GB', {
    month: short ? 'short' : 'long',
    timeZone: 'UTC',
  });
  return short ? `${name} ${String(y).slice(2)}` : `${name} ${y}`;
}

/** A value from an audit entry's details, as text (objects as compact JSON). */
export function detailText(value: unknown): string {
  if (value === null || value === undefined) return '—';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** `YYYY-MM-DD` from a date input -> the ISO instant at 00:00 UTC that day. */
export function dayStart(value: string): string | undefined {
  return /^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00.000Z` : undefined;
}
