// npm run bench: round trips of ping and route/select from Node through
// AcctpoolClient (vscode-jsonrpc, LSP framing) to the real server, p50, p99
// and throughput with 1 and 64 calls in flight, printed next to the Go
// client's figures from the RPC engineer's load tool (rpcload), run in the
// same session with the same fixture.
//
//   npm run bench                        # 20,000 calls x 3 rounds, then rpcload
//   npm run bench -- -n 5000 -rounds 1   # quicker
//   npm run bench -- -no-go              # Node only
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { AcctpoolClient, type MethodName } from "../src/index.js";
import { FakeAnthropic } from "../test/support/fake-anthropic.js";
import { repoRoot, serverPath } from "../test/support/env.js";

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`-${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const N = arg("n", 20_000);
const WARM = arg("warm", 2_000);
const ROUNDS = arg("rounds", 3);
const RUN_GO = !process.argv.includes("-no-go");

interface Stats {
  p50: number; // µs
  p99: number;
  rps: number;
  errors: number;
}

const SELECT = { sessionId: "bench-session", model: "claude-sonnet-4-5", promptBytes: 2048 };

async function load(client: AcctpoolClient, method: MethodName, n: number, inflight: number): Promise<Stats> {
  const params = method === "route/select" ? SELECT : undefined;
  const lat = new Float64Array(n);
  let next = 0;
  let errors = 0;
  const begin = process.hrtime.bigint();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= n) return;
      const t0 = process.hrtime.bigint();
      try {
        await client.request(method, params as never, { timeoutMs: 0 });
      } catch {
        errors++;
      }
      lat[i] = Number(process.hrtime.bigint() - t0) / 1000;
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  const secs = Number(process.hrtime.bigint() - begin) / 1e9;
  lat.sort();
  return { p50: lat[Math.floor(n * 0.5)], p99: lat[Math.min(n - 1, Math.floor(n * 0.99))], rps: n / secs, errors };
}

function median(xs: Stats[]): Stats {
  const s = [...xs].sort((a, b) => a.p50 - b.p50);
  return s[Math.floor(s.length / 2)];
}

const us = (v: number) => (v >= 1000 ? `${(v / 1000).toFixed(2)} ms` : `${v.toFixed(1)} µs`);

async function main(): Promise<void> {
  const fake = await FakeAnthropic.start();
  const dir = mkdtempSync(join(tmpdir(), "acctpool-bench-"));
  const client = await AcctpoolClient.start({
    binaryPath: serverPath(),
    config: join(dir, "anthropic-auth.json"),
    state: join(dir, "anthropic-auth-state.json"),
    tokenUrl: `${fake.url}/v1/oauth/token`,
    usageUrl: `${fake.url}/api/oauth/usage`,
    profileUrl: `${fake.url}/api/oauth/profile`,
    logLevel: "error",
  });
  // The fixture rpcload uses: main credentials and three API-key accounts.
  const problems: string[] = [];
  const attempt = async (what: string, f: () => Promise<unknown>) => {
    try {
      await f();
    } catch (err) {
      problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  await attempt("accounts/setMain", () => client.accountsSetMain({ access: "bench-access", refresh: "bench-refresh", expires: Date.now() + 86400_000 }));
  for (let i = 1; i <= 3; i++) {
    await attempt("accounts/add", () => client.accountsAdd({ id: `api${i}`, type: "api", apiKey: `bench-key-${i}`, baseURL: "http://127.0.0.1:9" }));
  }
  await attempt("route/select", () => client.routeSelect(SELECT));

  console.log(`node ${process.version}, vscode-jsonrpc, LSP framing; ${N} calls per run, ${WARM} warm-up, median of ${ROUNDS} rounds`);
  console.log(
    problems.length
      ? `route/select fixture: NOTE the measured route/select is not a real selection: ${problems.join("; ")}`
      : "route/select fixture: main + 3 API-key accounts; route/select returns a route",
  );
  console.log();

  const methods: MethodName[] = ["ping", "route/select"];
  const results = new Map<string, Stats[]>();
  for (let r = 0; r < ROUNDS; r++) {
    for (const m of methods) {
      for (const inflight of [1, 64]) {
        await load(client, m, WARM, inflight);
        const st = await load(client, m, N, inflight);
        const k = `${m} ${inflight}`;
        results.set(k, [...(results.get(k) ?? []), st]);
      }
    }
  }
  await client.close();
  await fake.close();
  rmSync(dir, { recursive: true, force: true });

  const node = new Map<string, Stats>();
  for (const [k, v] of results) node.set(k, median(v));

  let go = new Map<string, { p50: string; p99: string; rps: string }>();
  let goText = "";
  if (RUN_GO) {
    const hasGo = spawnSync("go", ["version"]).status === 0;
    if (!hasGo || !existsSync(join(repoRoot, "cmd", "stdio-server", "internal", "rpcload"))) {
      goText = "(go or cmd/stdio-server/internal/rpcload not found; Go figures skipped)";
    } else {
      console.log(`running the Go client: go run ./cmd/stdio-server/internal/rpcload -n ${N} -warm ${WARM} -rounds ${ROUNDS} -spawns 5 ...`);
      goText = execFileSync(
        "go",
        ["run", "./cmd/stdio-server/internal/rpcload", "-n", String(N), "-warm", String(WARM), "-rounds", String(ROUNDS), "-spawns", "5"],
        { cwd: repoRoot, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 16 << 20 },
      );
      go = parseRpcload(goText);
    }
  }

  const pad = (s: string, n: number) => s.padEnd(n);
  console.log();
  console.log(`${pad("method", 13)}${pad("in flight", 10)}${pad("Node p50", 12)}${pad("Node p99", 12)}${pad("Node req/s", 12)}${pad("Go p50", 12)}${pad("Go p99", 12)}${pad("Go req/s", 10)}`);
  for (const m of methods) {
    for (const inflight of [1, 64]) {
      const k = `${m} ${inflight}`;
      const n = node.get(k)!;
      const g = go.get(k);
      console.log(
        `${pad(m, 13)}${pad(String(inflight), 10)}${pad(us(n.p50), 12)}${pad(us(n.p99), 12)}${pad(n.rps.toFixed(0), 12)}` +
          `${pad(g?.p50 ?? "-", 12)}${pad(g?.p99 ?? "-", 12)}${pad(g?.rps ?? "-", 10)}` +
          (n.errors ? `  (${n.errors} error answers)` : ""),
      );
    }
  }
  if (goText) {
    console.log("\nrpcload output (Go client; bare_echo is a plain sourcegraph/jsonrpc2 server for scale):\n");
    console.log(goText.trimEnd());
  }
}

/** parseRpcload reads the acctpool rows of rpcload's table: method, in flight, server, p50, p99, req/s. */
function parseRpcload(text: string): Map<string, { p50: string; p99: string; rps: string }> {
  const out = new Map<string, { p50: string; p99: string; rps: string }>();
  for (const line of text.split("\n")) {
    const m = /^(\S+)\s+(\d+)\s+acctpool\s+(\S+(?: \S+)?)\s+(\S+(?: \S+)?)\s+(\d+)\s*$/.exec(line);
    if (m) out.set(`${m[1]} ${m[2]}`, { p50: m[3], p99: m[4], rps: m[5] });
  }
  return out;
}

main().catch((err) => {
  console.error("bench:", err);
  process.exit(1);
});
