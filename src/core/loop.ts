import type { Logger } from './ports';

export interface Loop {
  /** Resolves once the iteration in progress (if any) has finished. */
  stop(): Promise<void>;
}

/**
 * Runs `work` again and again: immediately while it reports progress, else after
 * `idleMs`. Errors are logged and retried on the next tick, never thrown away silently.
 */
export function startLoop(
  name: string,
  work: () => Promise<number>,
  idleMs: number,
  logger: Logger,
): Loop {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  const done = (async () => {
    while (!stopped) {
      let progressed = 0;
      try {
        progressed = await work();
      } catch (error) {
        logger.error(
          { loop: name, err: error instanceof Error ? error.message : String(error) },
          'loop iteration failed',
        );
      }
      if (stopped) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, progressed > 0 ? 0 : idleMs);
      });
    }
  })();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      wake?.();
      await done;
    },
  };
}
