import { test, type TestContext } from "node:test";

import { start, type Env } from "./env.js";
import type { ClientOptions } from "../../src/index.js";

/**
 * e2e runs fn against a fresh real server and fake Anthropic, and appends
 * the end of the server's log to a failure (set ACCTPOOL_TEST_LOG=1 to see
 * all of it as it happens).
 */
export function e2e(name: string, fn: (env: Env, t: TestContext) => Promise<void>, options: ClientOptions = {}): void {
  test(name, async (t) => {
    const env = await start(options);
    try {
      await fn(env, t);
    } catch (err) {
      if (process.env.ACCTPOOL_TEST_LOG === undefined && err instanceof Error) {
        const tail = env.logs.slice(-40).map((e) => `  [${e.source}] ${e.message}`);
        err.message += `\nlast log lines:\n${tail.join("\n")}`;
      }
      throw err;
    } finally {
      await env.close();
    }
  });
}
