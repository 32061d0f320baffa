// Test helpers: find (or build) the real server binary, and start a client
// against it with its own temporary config and the fake Anthropic.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { AcctpoolClient, type ClientOptions, type LogEntry } from "../../src/index.js";
import { FakeAnthropic } from "./fake-anthropic.js";

/** The repository root: clients/typescript/dist/test/support → ../../../../.. */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "..", "..");
export const serverBinary = join(repoRoot, "bin", process.platform === "win32" ? "acctpool.exe" : "acctpool");

let built = false;

/** serverPath returns the server binary, building it with scripts/build when missing. */
export function serverPath(): string {
  if (process.env.ACCTPOOL_SERVER) return process.env.ACCTPOOL_SERVER;
  if (!built && !existsSync(serverBinary)) {
    execFileSync("bash", [join(repoRoot, "scripts", "build")], { stdio: "inherit" });
  }
  built = true;
  return serverBinary;
}

export const MAIN = { access: "sk-ant-oat01-MAIN", refresh: "sk-ant-ort01-MAIN" };
export const FALLBACK = { access: "sk-ant-oat01-FB1", refresh: "sk-ant-ort01-FB1" };
export const API_KEY = "sk-ant-api03-ROUTE";

export interface Env {
  fake: FakeAnthropic;
  client: AcctpoolClient;
  dir: string;
  logs: LogEntry[];
  close(): Promise<void>;
}

/** start runs a fake Anthropic and a client on a fresh config directory. */
export async function start(options: ClientOptions = {}): Promise<Env> {
  const fake = await FakeAnthropic.start();
  const dir = mkdtempSync(join(tmpdir(), "acctpool-ts-"));
  const logs: LogEntry[] = [];
  const client = new AcctpoolClient({
    binaryPath: serverPath(),
    config: join(dir, "anthropic-auth.json"),
    state: join(dir, "anthropic-auth-state.json"),
    tokenUrl: `${fake.url}/v1/oauth/token`,
    usageUrl: `${fake.url}/api/oauth/usage`,
    profileUrl: `${fake.url}/api/oauth/profile`,
    logLevel: "debug",
    requestTimeoutMs: 60_000, // a deadlock guard, not a speed requirement
    logger: (e) => {
      logs.push(e);
      if (process.env.ACCTPOOL_TEST_LOG) console.error(`[${e.source}] ${e.message}`);
    },
    restart: { initialDelayMs: 20, maxDelayMs: 200 },
    ...options,
  });
  await client.start();
  return {
    fake,
    client,
    dir,
    logs,
    async close() {
      await client.close();
      await fake.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An expiry eight hours from now, epoch ms: outside the 4 h refresh-before-expiry window. */
export const freshExpiry = (): number => Date.now() + 8 * 3600_000;
