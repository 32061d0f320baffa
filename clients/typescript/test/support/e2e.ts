import { test, type TestContext } from "node:test";

import { isAcctpoolError } from "../../src/index.js";
import { start, type Env } from "./env.js";
import type { ClientOptions } from "../../src/index.js";

const STUB = /not implemented yet/;

/**
 * e2e runs fn against a fresh real server and fake Anthropic. While core's
 * stubs still answer "not implemented yet", the test is skipped and says
 * which method is missing; any other failure fails the test.
 */
export function e2e(name: string, fn: (env: Env, t: TestContext) => Promise<void>, options: ClientOptions = {}): void {
  test(name, async (t) => {
    const env = await start(options);
    try {
      await fn(env, t);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (STUB.test(message) || (err instanceof Error && err.cause instanceof Error && STUB.test(err.cause.message))) {
        const method = isAcctpoolError(err) ? err.method : undefined;
        t.skip(`server stub: ${method ?? "a method"} is not implemented yet`);
        return;
      }
      if (process.env.ACCTPOOL_TEST_LOG === undefined) {
        // Show the server's log for a failure; it is quiet otherwise.
        const tail = env.logs.slice(-40).map((e) => `  [${e.source}] ${e.message}`);
        err instanceof Error && (err.message += `\nlast log lines:\n${tail.join("\n")}`);
      }
      throw err;
    } finally {
      await env.close();
    }
  });
}
