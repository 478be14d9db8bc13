#!/usr/bin/env node
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { ENROLLMENT_STATES, type EnrollmentState } from '../core/ports';
import { ROLES, type Role } from '../http/api-keys';
import { processIo, UsageError, type Io } from './io';

/**
 * `vault`: the operator's command line, the one place that parses arguments. Each command
 * lives in its own module, loaded only when that command runs (`vault inventory` or
 * `vault migrate` need the ledger alone, not the AWS SDKs, the HTTP stack and the simulator
 * that `vault demo` or `vault purge` load: most of a CLI process's memory is the code it
 * loaded), and returns its exit code:
 * 0 done, 1 failed (the reason on stderr), 2 bad usage (unknown command or option, a
 * missing or invalid argument). Settings come from the environment, as for the server.
 */

function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new InvalidArgumentError('must be a positive integer');
  }
  return n;
}

function isoDate(value: string): Date {
  const date = new Date(value);
  if (!/^\d{4}-\d{2}-\d{2}/.test(value) || Number.isNaN(date.getTime())) {
    throw new InvalidArgumentError('must be an ISO 8601 date or time');
  }
  return date;
}

function booleanText(value: string): boolean {
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw new InvalidArgumentError('must be true or false');
}

function buildProgram(io: Io, stdin: NodeJS.ReadableStream & { isTTY?: boolean }) {
  let exitCode = 0;
  const program = new Command('vault')
    .description(
      'Operator commands of the facemap vault. Settings come from the environment, as ' +
        'for the server (README: Configuration). Exit codes: 0 ok, 1 failed, 2 bad usage.',
    )
    // Set before the commands are added, so that each inherits them.
    .exitOverride()
    .configureOutput({
      writeOut: (text) => io.out(text.replace(/\n$/, '')),
      writeErr: (text) => io.err(text.replace(/\n$/, '')),
    })
    .showHelpAfterError('(add --help for usage)');

  program
    .command('migrate')
    .summary('apply pending ledger migrations')
    .description(
      'Apply pending ledger migrations (the vault also applies them at start-up). Reads ' +
        'only the ledger settings: VAULT_DATA_DIR, DATABASE_URL, DATABASE_POOL_MAX.',
    )
    .option('--json', 'print {ledger, applied, version} as JSON')
    .action(async (options: { json?: boolean }) => {
      exitCode = await (await import('./migrate.js')).migrate({ json: options.json === true }, io);
    });

  program
    .command('replay')
    .summary("put a user's FAILED enrollment back into the pipeline")
    .description(
      "Put a user's FAILED enrollment back into the pipeline at the step it failed in, " +
        'with a fresh attempt budget, audited as enrollment.replayed by cli:<os user>. ' +
        "A running vault's workers pick it up. Reads only the ledger settings.",
    )
    .argument('<userReference>', 'the user whose FAILED enrollment to replay')
    .option('--json', 'print the replayed enrollment as JSON')
    .action(async (userReference: string, options: { json?: boolean }) => {
      exitCode = await (
        await import('./replay.js')
      ).replay(userReference, { json: options.json === true }, io);
    });

  program
    .command('hash-token')
    .summary('hash an API token for VAULT_API_KEYS, or generate one')
    .description(
      'Print the SHA-256 of an API token for VAULT_API_KEYS, read from stdin ' +
        '(`vault hash-token < token.txt`); with --name and --role, the whole name:role:sha256 ' +
        'entry. --generate makes a random token and prints the paste-ready entry and, apart ' +
        'from it, the token for the calling service.',
    )
    .argument('[token]', 'the token; prefer stdin, an argument stays in shell history')
    .option('--generate', 'generate a random 32-byte token (needs --name and --role)')
    .option('--name <name>', 'API key name for the entry (A-Z a-z 0-9 . _ -, up to 64)')
    .addOption(new Option('--role <role>', 'role for the entry').choices(ROLES))
    .option('--json', 'print {sha256, entry, token?} as JSON')
    .action(
      async (
        token: string | undefined,
        options: {
          generate?: boolean;
          name?: string;
          role?: Role;
          json?: boolean;
        },
      ) => {
        exitCode = await (
          await import('./hash-token.js')
        ).hashTokenCommand(
          token,
          {
            generate: options.generate === true,
            name: options.name,
            role: options.role,
            json: options.json === true,
          },
          io,
          stdin,
        );
      },
    );

  program
    .command('callback-ips')
    .summary('print the JUMIO_CALLBACK_ALLOWED_CIDRS line from DNS')
    .description(
      "Resolve Jumio's callback DNS name for a region and print the " +
        'JUMIO_CALLBACK_ALLOWED_CIDRS line to deploy, with what changed against the ' +
        'built-in list. Exit 1 when DNS fails or answers with a non-public address.',
    )
    .argument('[region]', 'US, EU or SGP (default: JUMIO_REGION, else US)')
    .option('--json', 'print {region, host, addresses, added, gone, line} as JSON')
    .action(async (region: string | undefined, options: { json?: boolean }) => {
      exitCode = await (
        await import('./callback-ips.js')
      ).callbackIps(region, { json: options.json === true }, io.env, io.out);
    });

  program
    .command('doctor')
    .summary('check the configuration and every dependency, say what to fix')
    .description(
      'Check the configuration as the server reads it, the ledger (reachable, migrations ' +
        'current), the blob store (write, read, delete a probe), the envelope (round ' +
        'trip under the current key, and decrypt permission for every previous key), the ' +
        'Jumio credentials (a read that changes nothing) ' +
        'and the callback allowlist, without starting the server or its workers. One line ' +
        'per check with what to fix; exit 1 if any fails. With the embedded ledger, run it ' +
        'while the vault is stopped.',
    )
    .option('--json', 'print {ok, checks: [{name, status, detail, fix?}]} as JSON')
    .option('--timeout <seconds>', 'the longest one check may take', positiveInt, 15)
    .action(async (options: { json?: boolean; timeout: number }) => {
      exitCode = await (
        await import('./doctor.js')
      ).doctor({ json: options.json === true, timeoutMs: options.timeout * 1000 }, io);
    });

  program
    .command('rewrap')
    .summary('re-encrypt everything under a previous key with the current key')
    .description(
      'Re-encrypt every stored facemap and wrapped vault key that is not under the current ' +
        'key (KMS_KEY_ID or VAULT_LOCAL_KEY_FILE) but under a previous one ' +
        '(KMS_PREVIOUS_KEY_IDS, VAULT_LOCAL_PREVIOUS_KEY_FILES): decrypt, encrypt under the ' +
        'current key, write a new object, verify it, record it (audited facemap.rewrapped), ' +
        'destroy the old object. Safe while vaults run on PostgreSQL (row leases); stopped ' +
        'at any point, run it again to finish. Exit 1 while anything is left (failed, held ' +
        'by another worker, or under a key that is not configured).',
    )
    .option('--dry-run', 'count what would be rewrapped, per key, and change nothing')
    .option('--limit <n>', 'rewrap at most n facemaps in this run', positiveInt)
    .option('--concurrency <n>', 'facemaps rewrapped at once', positiveInt, 4)
    .option('--max-rate <n>', 'at most n facemaps a second (spares KMS and the store)', positiveInt)
    .option(
      '--lease-seconds <n>',
      'how long a facemap stays reserved (a re-run after a crash waits this long for it)',
      positiveInt,
      120,
    )
    .option(
      '--wait-seconds <n>',
      'how long to wait for facemaps other workers hold before giving up on them',
      positiveInt,
      300,
    )
    .option('--json', 'print the per-key plan or the result as JSON')
    .action(
      async (options: {
        dryRun?: boolean;
        json?: boolean;
        limit?: number;
        concurrency: number;
        maxRate?: number;
        leaseSeconds: number;
        waitSeconds: number;
      }) => {
        exitCode = await (
          await import('./rewrap.js')
        ).rewrap(
          {
            dryRun: options.dryRun === true,
            json: options.json === true,
            limit: options.limit,
            concurrency: options.concurrency,
            maxPerSecond: options.maxRate,
            leaseSeconds: options.leaseSeconds,
            waitSeconds: options.waitSeconds,
          },
          io,
        );
      },
    );

  program
    .command('demo')
    .summary('one whole onboarding against the in-process simulator, checked')
    .description(
      'One whole onboarding through the vault on embedded defaults against the ' +
        'in-process Jumio simulator, in a temporary data directory, every step checked: ' +
        'exit 0 when all held. LOG_LEVEL=info also shows the vault logs.',
    )
    .option('--keep', 'keep the temporary data directory')
    .action(async (options: { keep?: boolean }) => {
      exitCode = await (await import('./demo.js')).runDemo({ keep: options.keep === true });
    });

  program
    .command('inventory')
    .summary('export the stored-facemap inventory (metadata only) to stdout')
    .description(
      'Stream the inventory of enrollments (the same rows and filters as ' +
        'GET /v1/inventory/export: metadata only, never biometric bytes) to stdout, with ' +
        'constant memory; progress on stderr. `vault inventory --format csv > inventory.csv`.',
    )
    .addOption(
      new Option('--format <format>', 'output format').choices(['csv', 'ndjson']).default('csv'),
    )
    .addOption(new Option('--state <state>', 'only this state').choices(ENROLLMENT_STATES))
    .option('--created-after <date>', 'created at or after (ISO 8601)', isoDate)
    .option('--created-before <date>', 'created before (ISO 8601)', isoDate)
    .option('--retention-due-before <date>', 'retention deadline before (ISO 8601)', isoDate)
    .option('--legal-hold <bool>', 'only users on (true) or off (false) legal hold', booleanText)
    .action(
      async (options: {
        format: 'csv' | 'ndjson';
        state?: EnrollmentState;
        createdAfter?: Date;
        createdBefore?: Date;
        retentionDueBefore?: Date;
        legalHold?: boolean;
      }) => {
        const { format, ...filter } = options;
        const defined = Object.fromEntries(
          Object.entries(filter).filter(([, v]) => v !== undefined),
        );
        exitCode = await (
          await import('./inventory.js')
        ).inventory({ format, filter: defined }, io);
      },
    );

  program
    .command('purge')
    .summary('erase what is past its retention deadline (the worker does it too)')
    .description(
      'Request the erasure (reason retention) of every enrollment past its retention ' +
        'deadline, users on legal hold excepted, and run the erasures to the end, through ' +
        "the same path as the vault's purge worker. --dry-run lists them and changes nothing.",
    )
    .option('--dry-run', 'list what would be erased (user reference, enrollments) and stop')
    .option('--json', 'print the result as JSON')
    .action(async (options: { dryRun?: boolean; json?: boolean }) => {
      exitCode = await (
        await import('./compliance.js')
      ).purge({ dryRun: options.dryRun === true, json: options.json === true }, io);
    });

  const audit = program
    .command('audit')
    .summary('the tamper-evident audit trail')
    .description('Commands on the audit trail.');
  audit
    .command('verify')
    .summary('recompute the chain and check it against every signed digest')
    .description(
      'Recompute the hash chain of the audit trail and check it against every signed ' +
        'digest in the blob store. Exit 0 when it verifies, 1 with the first broken ' +
        'sequence and why (edited, deleted, rewritten after a digest, digest missing or ' +
        'badly signed).',
    )
    .option('--json', 'print {ok, checkedThrough, digestsChecked} or the break as JSON')
    .action(async (options: { json?: boolean }) => {
      exitCode = await (
        await import('./compliance.js')
      ).auditVerify({ json: options.json === true }, io);
    });

  return { program, exitCode: () => exitCode };
}

/** Parses `args` (without node and the script), runs the command, returns the exit code. */
export async function run(
  args: readonly string[],
  io: Io = processIo,
  stdin: NodeJS.ReadableStream & { isTTY?: boolean } = process.stdin,
): Promise<number> {
  const { program, exitCode } = buildProgram(io, stdin);
  let command = 'vault';
  program.hook('preAction', (_program, action) => {
    command = action.name();
  });
  try {
    await program.parseAsync(args, { from: 'user' });
    return exitCode();
  } catch (error) {
    // Help and version exit 0; every other commander error is a usage error.
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof UsageError) {
      io.err(`vault ${command}: ${error.message}`);
      io.err(`(vault ${command} --help for usage)`);
      return 2;
    }
    io.err(`${command} failed: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}

if (require.main === module) {
  void run(process.argv.slice(2)).then((code) => process.exit(code));
}
