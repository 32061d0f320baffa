// The client's lifecycle: against the real server for the protocol, and
// against a stub server for timeouts, crashes and stubborn processes.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import {
  AcctpoolClient,
  METHOD_NAMES,
  SERVER_NOTIFICATION_NAMES,
  isAcctpoolError,
  type ClientOptions,
  type LogEntry,
} from "../src/index.js";
import { serverPath } from "./support/env.js";

const stubPath = join(dirname(fileURLToPath(import.meta.url)), "support", "stub-server.js");

function stub(mode: string, options: ClientOptions = {}): AcctpoolClient {
  return new AcctpoolClient({ binaryPath: process.execPath, command: [], extraArgs: [stubPath, mode], processId: null, ...options });
}

function tempConfig(): { config: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), "acctpool-ts-"));
  return { config: join(dir, "anthropic-auth.json"), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test("real server: initialize, ping, discover, errors, clean shutdown", async () => {
  const { config, cleanup } = tempConfig();
  const logs: LogEntry[] = [];
  const client = new AcctpoolClient({ binaryPath: serverPath(), config, logLevel: "debug", logger: (e) => logs.push(e) });
  try {
    const info = await client.start();
    assert.equal(info.protocolVersion, "1.0");
    assert.equal(info.serverInfo.name, "acctpool");
    assert.deepEqual([...info.capabilities.notifications].sort(), [...SERVER_NOTIFICATION_NAMES].sort());
    for (const m of METHOD_NAMES) {
      if (m.startsWith("test/")) continue; // only with --clock manual
      assert.ok(info.capabilities.methods.includes(m), `server lacks ${m}`);
    }
    assert.deepEqual(await client.ping(), {});

    const doc = await client.rpcDiscover();
    const names = (doc.methods as Array<{ name: string }>).map((m) => m.name);
    for (const m of METHOD_NAMES) assert.ok(names.includes(m), `rpc.discover lacks ${m}`);

    // A protocol error keeps its code and kind.
    await assert.rejects(client.accountsGet({ id: "" }), (err: unknown) => {
      assert.ok(isAcctpoolError(err, "invalid_params"), String(err));
      assert.equal(err.code, -32602);
      assert.equal(err.data?.field, "id");
      return true;
    });

    // stderr is drained into the logger, line by line.
    assert.ok(logs.some((e) => e.source === "server" && /msg=initialize/.test(e.message)), JSON.stringify(logs));
    // A clean exit is the point, not its speed: a busy machine gets a
    // grace period no exit comes near before SIGTERM.
    const exit = await client.close({ graceMs: 60_000 });
    assert.equal(exit?.code, 0, JSON.stringify(exit));
    assert.equal(exit?.signal, null);
    await assert.rejects(client.ping(), (err: unknown) => isAcctpoolError(err, "client_closed"));
  } finally {
    await client.close();
    cleanup();
  }
});

test("real server: --clock manual exposes the test clock", async () => {
  const { config, cleanup } = tempConfig();
  const client = await AcctpoolClient.start({ binaryPath: serverPath(), config, clock: "manual" });
  try {
    const now = Date.UTC(2026, 0, 1);
    assert.deepEqual(await client.testClockSet({ nowMs: now }), { nowMs: now });
    assert.deepEqual(await client.testClockAdvance({ ms: 1500 }), { nowMs: now + 1500 });
  } finally {
    await client.close();
    cleanup();
  }
});

test("real server: killed, restarted with backoff and a fresh initialize", async () => {
  const { config, cleanup } = tempConfig();
  const client = await AcctpoolClient.start({ binaryPath: serverPath(), config, restart: { initialDelayMs: 10 } });
  try {
    const events: string[] = [];
    client.on("exit", (e) => events.push(`exit ${e.signal}`));
    client.on("restarting", (e) => events.push(`restarting ${e.attempt}`));
    client.on("ready", (e) => events.push(`ready ${e.restarts}`));
    const pid = client.pid!;
    process.kill(pid, "SIGKILL");
    assert.deepEqual(await client.ping(), {});
    assert.notEqual(client.pid, pid);
    assert.deepEqual(events, ["exit SIGKILL", "restarting 1", "ready 1"]);
  } finally {
    await client.close();
    cleanup();
  }
});

test("a missing binary is a clear error", async () => {
  const client = new AcctpoolClient({ binaryPath: "/nonexistent/acctpool-stdio-server", restart: false });
  await assert.rejects(client.start(), (err: unknown) => {
    assert.ok(isAcctpoolError(err, "server_unavailable"), String(err));
    assert.match(err.message, /nonexistent\/acctpool-stdio-server/);
    assert.match(err.message, /ENOENT/);
    return true;
  });
  await client.close();
});

test("a call times out, and the server is told to cancel it", async () => {
  const logs: string[] = [];
  const client = stub("normal", { logger: (e) => logs.push(e.message) });
  await client.start();
  try {
    // The stub never answers route/select: only the timeout can end the call.
    await assert.rejects(client.routeSelect({ model: "m" }, { timeoutMs: 150 }), (err: unknown) => {
      assert.ok(isAcctpoolError(err, "timeout"), String(err));
      assert.equal(err.method, "route/select");
      return true;
    });
    // The connection is still good, and the stub saw $/cancelRequest.
    assert.deepEqual(await client.ping(), {});
    await waitFor(() => logs.some((l) => /cancel \d+/.test(l)));

    const ac = new AbortController();
    const call = client.routeSelect({}, { signal: ac.signal, timeoutMs: 0 });
    ac.abort();
    await assert.rejects(call, (err: unknown) => isAcctpoolError(err, "aborted"));

    await assert.rejects(client.request("fail" as "ping", undefined), (err: unknown) => {
      assert.ok(isAcctpoolError(err, "account_not_found"));
      assert.equal(err.code, -31007);
      return true;
    });
  } finally {
    await client.close();
  }
});

test("every server notification becomes an event; mainRefreshed credentials are replayed after a restart", async () => {
  const logs: string[] = [];
  const client = stub("notify", { logger: (e) => logs.push(e.message), restart: { initialDelayMs: 10 } });
  const seen: Record<string, unknown> = {};
  for (const n of SERVER_NOTIFICATION_NAMES) client.on(n, (p) => (seen[n] = p));
  await client.start();
  try {
    await waitFor(() => Object.keys(seen).length === SERVER_NOTIFICATION_NAMES.length);
    assert.deepEqual(seen["accounts/changed"], { accounts: ["fb-1"] });
    assert.deepEqual(seen["quota/changed"], { accounts: ["main"] });
    assert.deepEqual(seen["accounts/mainRefreshed"], { access: "new-a", refresh: "new-r", expires: 42 });
    assert.deepEqual(seen["accounts/alert"], { accountId: "fb-2", label: "work", reason: "needs re-login", since: 7, fix: "acctpool login --replace fb-2" });

    process.kill(client.pid!, "SIGKILL");
    await client.ping();
    await waitFor(() => logs.some((l) => l.includes('setMain {"access":"new-a","refresh":"new-r","expires":42}')));
  } finally {
    await client.close();
  }
});

test("a server that dies on start fails the first call at once, with its last words and the fix", async () => {
  const client = stub("crash-on-start", { restart: { initialDelayMs: 5, maxDelayMs: 20, maxAttempts: 3 } });
  const restarts: number[] = [];
  client.on("restarting", (e) => restarts.push(e.delayMs));
  // A server that cannot start fails the first call at once: no retry loop.
  await assert.rejects(client.start(), (err: unknown) => {
    assert.ok(isAcctpoolError(err, "server_unavailable"), String(err));
    assert.match(err.message, /code 3/);
    assert.match(err.message, /open state: permission denied/);
    assert.match(err.message, /Fix: .*ACCTPOOL_SERVER/);
    return true;
  });
  assert.deepEqual(restarts, []);
  assert.equal(client.state, "failed");
  await client.close();
});

test("a server that crashes right after initialize backs off and gives up", async () => {
  const client = stub("crash-after-init", { restart: { initialDelayMs: 5, maxDelayMs: 40, maxAttempts: 2 } });
  const delays: number[] = [];
  let exits = 0;
  client.on("restarting", (e) => delays.push(e.delayMs));
  client.on("exit", () => exits++);
  await client.start();
  await waitFor(() => client.state === "failed");
  assert.deepEqual(delays, [5, 10]);
  assert.equal(exits, 3);
  // The next call would try again from scratch; close instead.
  await client.close();
});

test("close kills a server that ignores shutdown, after the grace period", async () => {
  const logs: LogEntry[] = [];
  const client = stub("ignore-shutdown", { shutdownGraceMs: 150, logger: (e) => logs.push(e) });
  await client.start();
  const exit = await client.close();
  // The stub ignores shutdown, exit, stdin EOF and SIGTERM: only SIGKILL,
  // sent once the grace period has run out, can have ended it.
  assert.equal(exit?.signal, "SIGKILL");
  assert.ok(
    logs.some((e) => e.source === "client" && e.level === "warn" && /did not exit within 150 ms; killing it/.test(e.message)),
    JSON.stringify(logs),
  );
});

test("a server that closes stdout is replaced", async () => {
  const client = stub("no-stdout", { restart: { initialDelayMs: 5, maxAttempts: 1 } });
  await client.start();
  const first = client.pid;
  await waitFor(() => client.pid !== first);
  await client.close();
});

// waitFor polls cond until it holds. The bound is a deadlock guard, not a
// speed requirement: a passing test never comes near it.
// The test runner's timeout is the deadlock guard (a hung host fails the
// test, and t.after kills it); nothing here measures time.
test("a server that dies mid-message does not keep the host alive", { timeout: 120_000 }, async (t) => {
  // Run as its own process: the point is that Node can exit afterwards.
  const host = spawn(process.execPath, [join(dirname(stubPath), "half-reply-host.js")], { stdio: ["ignore", "pipe", "inherit"] });
  t.after(() => {
    if (host.exitCode === null && host.signalCode === null) host.kill("SIGKILL");
  });
  let out = "";
  host.stdout.setEncoding("utf8").on("data", (d: string) => (out += d));
  const [code, signal] = (await once(host, "exit")) as [number | null, NodeJS.Signals | null];
  assert.equal(out.trim(), "connection_lost");
  assert.deepEqual({ code, signal }, { code: 0, signal: null }, "the host process did not exit by itself");
});

async function waitFor(cond: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
