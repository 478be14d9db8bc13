/**
 * `npm run bench`: every benchmark scenario of the vault, each against its baseline in the
 * same run, written to bench/results.json and rendered to bench/RESULTS.md.
 *
 *   npm run bench                          every scenario, full size (about 20 minutes)
 *   npm run bench -- --quick               small counts (CI: proves the harness works)
 *   npm run bench -- --only envelope,export-inventory
 *   npm run bench -- --list                the scenario ids
 *   options: --seconds <n> (each load phase), --database-url <url> (PostgreSQL admin URL,
 *   default BENCH_DATABASE_URL or postgres://postgres@127.0.0.1:5432/test), --out <dir>
 *   (default bench/), --no-write (print only), --cpu-prof <dir> (a V8 CPU profile of every
 *   vault process, written when it stops), --render (RESULTS.md again from results.json and
 *   bench/NOTES.md, without measuring).
 *
 * A quick run writes to bench/quick/ unless --out is given, so that the committed full
 * figures are not overwritten by CI.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as prettier from 'prettier';
import { auditAppend } from './audit-chain';
import { callbackAck, callbackStalled } from './callbacks';
import { endToEnd } from './end-to-end';
import { envelope } from './envelope';
import { exportInventory, verifyAudit } from './compliance';
import { initiateOverhead } from './initiate';
import { ROOT, type BenchOptions, type ScenarioResult } from './lib';
import { renderMarkdown, type Report } from './report';

const SCENARIOS: Record<string, (o: BenchOptions) => Promise<ScenarioResult>> = {
  'callback-ack-pglite': (o) => callbackAck('pglite', o),
  'callback-ack-postgres': (o) => callbackAck('postgres', o),
  'callback-stalled': callbackStalled,
  'end-to-end': endToEnd,
  'initiate-overhead': initiateOverhead,
  envelope,
  'export-inventory': exportInventory,
  'verify-audit': verifyAudit,
  'audit-append': auditAppend,
};

function machine() {
  const git = (args: string[]) => {
    try {
      return execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  };
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    ramGb: Math.round(os.totalmem() / 1024 ** 3),
    node: process.version,
    os: `${os.type()} ${os.release()}`,
    postgres: (() => {
      try {
        return execFileSync('psql', ['--version'], { encoding: 'utf8' }).trim();
      } catch {
        return 'unknown';
      }
    })(),
    commit: git(['rev-parse', '--short', 'HEAD']),
    dirty: git(['status', '--porcelain', '--untracked-files=no']) !== '',
    loadAverageAtStart: os.loadavg().map((n) => Math.round(n * 100) / 100),
  };
}

/** bench/NOTES.md: hand-written explanations (no figures) embedded in RESULTS.md. */
function readNotes(): string {
  try {
    return readFileSync(path.join(ROOT, 'bench/NOTES.md'), 'utf8');
  } catch {
    return '';
  }
}

/** bench/before.json: the full run before the changes measured (not for quick runs). */
function readBefore(report: Report): Report | undefined {
  if (report.quick) return undefined;
  try {
    return JSON.parse(readFileSync(path.join(ROOT, 'bench/before.json'), 'utf8')) as Report;
  } catch {
    return undefined;
  }
}

/** RESULTS.md, formatted as `npm run lint` expects it. */
async function markdown(report: Report): Promise<string> {
  const options = (await prettier.resolveConfig(path.join(ROOT, 'bench/RESULTS.md'))) ?? {};
  return prettier.format(renderMarkdown(report, readNotes(), readBefore(report)), {
    ...options,
    parser: 'markdown',
  });
}

async function main() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      list: { type: 'boolean', default: false },
      seconds: { type: 'string' },
      'database-url': { type: 'string' },
      out: { type: 'string' },
      'no-write': { type: 'boolean', default: false },
      'cpu-prof': { type: 'string' },
      render: { type: 'boolean', default: false },
    },
  });
  const out = path.resolve(values.out ?? path.join(ROOT, values.quick ? 'bench/quick' : 'bench'));
  if (values.render) {
    // Only RESULTS.md again, from results.json and the current notes (no measurement).
    const report = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8')) as Report;
    writeFileSync(path.join(out, 'RESULTS.md'), await markdown(report));
    return;
  }
  if (values['cpu-prof']) process.env.BENCH_CPU_PROF = values['cpu-prof'];
  if (values.list) {
    console.log(Object.keys(SCENARIOS).join('\n'));
    return;
  }
  const only = values.only
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const unknown = only?.filter((id) => !SCENARIOS[id]) ?? [];
  if (unknown.length > 0) {
    throw new Error(`unknown scenario ${unknown.join(', ')}; --list shows them`);
  }
  const seconds = values.seconds === undefined ? undefined : Number(values.seconds);
  if (seconds !== undefined && !(seconds > 0))
    throw new Error('--seconds must be a positive number');
  const options: BenchOptions = {
    quick: values.quick,
    databaseUrl:
      values['database-url'] ??
      process.env.BENCH_DATABASE_URL ??
      'postgres://postgres@127.0.0.1:5432/test',
    ...(seconds !== undefined ? { seconds } : {}),
  };

  // The scenarios run the built vault: compile dist/ when it is stale.
  const built = spawnSync(process.execPath, [path.join(ROOT, 'scripts/ensure-built.mjs')], {
    stdio: 'inherit',
  });
  if (built.status !== 0) throw new Error('build failed');

  const started = new Date();
  const info = machine();
  console.log(
    `bench: ${info.cpu}, ${info.cores} cores, ${info.ramGb} GB, Node ${info.node}, ` +
      `commit ${info.commit}, load ${info.loadAverageAtStart.join(' ')}${options.quick ? ', quick' : ''}`,
  );
  const results: ScenarioResult[] = [];
  for (const [id, run] of Object.entries(SCENARIOS)) {
    if (only && !only.includes(id)) continue;
    const t0 = Date.now();
    console.log(`\n== ${id}`);
    let result: ScenarioResult;
    try {
      result = await run(options);
    } catch (error) {
      console.error(error);
      result = { id, title: id, method: '', rows: [], targets: [], error: String(error) };
      process.exitCode = 1;
    }
    result.seconds = Math.round((Date.now() - t0) / 100) / 10;
    result.loadAverage = os.loadavg().map((n) => Math.round(n * 100) / 100);
    result.ranAt = new Date(t0).toISOString();
    result.commit = `${info.commit}${info.dirty ? ' (with uncommitted changes)' : ''}`;
    console.table(result.rows);
    for (const t of result.targets) {
      console.log(`  ${t.met ? 'met    ' : 'MISSED '} ${t.target}: ${t.measured}`);
    }
    results.push(result);
  }
  const report: Report = {
    date: started.toISOString(),
    quick: options.quick,
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    machine: { ...info, loadAverageAtEnd: os.loadavg().map((n) => Math.round(n * 100) / 100) },
    totalSeconds: Math.round((Date.now() - started.getTime()) / 1000),
    scenarios: results,
  };
  if (values['no-write']) return;
  mkdirSync(out, { recursive: true });
  // --only replaces those scenarios in an existing results.json and keeps the others (each
  // scenario records when and on which commit it ran).
  if (only) {
    try {
      const previous = JSON.parse(readFileSync(path.join(out, 'results.json'), 'utf8')) as Report;
      if (previous.quick === options.quick) {
        const fresh = new Map(results.map((r) => [r.id, r]));
        report.scenarios = [
          ...previous.scenarios.map((r) => fresh.get(r.id) ?? r),
          ...results.filter((r) => !previous.scenarios.some((p) => p.id === r.id)),
        ];
        report.date = previous.date;
        report.command = previous.command;
        report.machine = { ...previous.machine, loadAverageAtEnd: report.machine.loadAverageAtEnd };
        report.totalSeconds = previous.totalSeconds;
      }
    } catch {
      // No previous results: these scenarios alone.
    }
  }
  writeFileSync(
    path.join(out, 'results.json'),
    await prettier.format(JSON.stringify(report), { parser: 'json' }),
  );
  writeFileSync(path.join(out, 'RESULTS.md'), await markdown(report));
  console.log(
    `\nwrote ${path.relative(ROOT, out)}/results.json and RESULTS.md (${report.totalSeconds} s)`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
