// The open-loop sender of steadyLoad (lib.ts), in a process of its own: latency is taken on
// this process's clock, so the harness's own pauses (ts-node, a major GC of its heap: up to
// 80 ms measured) are not counted as the server's. Plain JavaScript with a small heap.
// Input (IPC message): { url, rate, connections, method, headers, bodies }, one request per
// body, evenly spaced. Output: { latencies, statuses, errors, elapsedMs }.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { URL } from 'node:url';
import { Pool } from 'undici';

process.once('message', async ({ url, rate, connections, method, headers, bodies }) => {
  const target = new URL(url);
  const pool = new Pool(target.origin, { connections });
  const latencies = [];
  const statuses = {};
  let errors = 0;
  const started = performance.now();
  const sent = [];
  for (let i = 0; i < bodies.length; i++) {
    const wait = started + (i * 1000) / rate - performance.now();
    if (wait > 0) await sleep(wait);
    const body = bodies[i];
    // From the moment it is due to go (a request waiting for a free connection waits on the
    // clock).
    const t0 = performance.now();
    sent.push(
      pool
        .request({
          path: `${target.pathname}${target.search}`,
          method,
          headers,
          ...(body === null ? {} : { body }),
          headersTimeout: 30_000,
          bodyTimeout: 30_000,
        })
        .then(async (res) => {
          await res.body.dump();
          latencies.push(performance.now() - t0);
          statuses[res.statusCode] = (statuses[res.statusCode] ?? 0) + 1;
        })
        .catch(() => {
          errors++;
        }),
    );
  }
  await Promise.all(sent);
  const elapsedMs = performance.now() - started;
  await pool.close();
  process.send({ latencies, statuses, errors, elapsedMs }, () => process.exit(0));
});
