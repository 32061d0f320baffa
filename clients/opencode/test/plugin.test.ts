// The plugin against a fake acctpool client and a fake OpenCode input: what
// it hands to acctpool, what it writes back to OpenCode, and its login flows.
import assert from "node:assert/strict";
import { test } from "node:test";

import type { PluginInput } from "@opencode-ai/plugin";

import { POOL_KEY, createAcctpoolPlugin, parseOptions, type PoolClient } from "../src/index.js";

type Call = { method: string; params?: unknown };

class FakeClient {
  calls: Call[] = [];
  state: PoolClient["state"] = "idle";
  listeners = new Map<string, Array<(v: unknown) => void>>();
  finishFails = false;
  startFailures = 0;
  options: unknown;

  async start() {
    this.calls.push({ method: "start" });
    if (this.startFailures-- > 0) {
      this.state = "failed";
      throw new Error("acctpool server binary not found");
    }
    this.state = "ready";
    return {} as never;
  }
  async close() {
    this.calls.push({ method: "close" });
    this.state = "closed";
    return undefined;
  }
  on(event: string, l: (v: unknown) => void) {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), l]);
    return () => {};
  }
  once(event: string) {
    return new Promise((resolve) => this.on(event, resolve as (v: unknown) => void)) as never;
  }
  emit(event: string, v: unknown) {
    for (const l of this.listeners.get(event) ?? []) l(v);
  }
  async routeSelect(params?: unknown) {
    this.calls.push({ method: "route/select", params });
    return { accountId: "main", kind: "main", credential: { type: "bearer", token: "tok" }, reason: "main-first" } as never;
  }
  async routeReport(params: unknown) {
    this.calls.push({ method: "route/report", params });
    return { action: "return" } as never;
  }
  async accountsSetMain(params: unknown) {
    this.calls.push({ method: "accounts/setMain", params });
    return {} as never;
  }
  async accountsLoginStart(params?: unknown) {
    this.calls.push({ method: "accounts/login/start", params });
    return { url: "https://claude.example/authorize?x=1", state: "st-1", redirectUri: "r", expiresAt: 0 } as never;
  }
  async accountsLoginFinish(params: unknown) {
    this.calls.push({ method: "accounts/login/finish", params });
    if (this.finishFails) throw new Error("invalid_grant");
    if ((params as { main?: boolean }).main) {
      // acctpool hands a main login's tokens over as a notification.
      this.emit("accounts/mainRefreshed", { access: "sk-ant-oat01-LOGIN", refresh: "sk-ant-ort01-LOGIN", expires: 8_000_000 });
      return { id: "main", main: true } as never;
    }
    return { id: "acc-1", label: "work" } as never;
  }
}

function setup(rawOptions?: Record<string, unknown>) {
  const fake = new FakeClient();
  const stored: unknown[] = [];
  const logs: string[] = [];
  const input = {
    client: {
      auth: { set: async (o: unknown) => void stored.push(o) },
      app: { log: async (o: { body: { message: string } }) => void logs.push(o.body.message) },
    },
  } as unknown as PluginInput;
  const plugin = createAcctpoolPlugin((o) => {
    fake.options = o;
    return fake as unknown as PoolClient;
  });
  return { fake, stored, logs, hooks: plugin(input, rawOptions) };
}

const oauth = { type: "oauth" as const, access: "sk-ant-oat01-A", refresh: "sk-ant-ort01-R", expires: 1_900_000_000_000 };

test("the loader hands OpenCode's OAuth credential to accounts/setMain and the fetch wrapper to the provider", async () => {
  const { fake, hooks } = setup();
  const h = await hooks;
  assert.equal(h.auth?.provider, "anthropic");
  assert.deepEqual(fake.calls, [], "nothing starts before OpenCode asks");
  const opts = await h.auth!.loader!(async () => oauth, {} as never);
  assert.equal(opts.apiKey, "");
  assert.equal(typeof opts.fetch, "function");
  assert.deepEqual(fake.calls, [
    { method: "start" },
    { method: "accounts/setMain", params: { access: oauth.access, refresh: oauth.refresh, expires: oauth.expires } },
  ]);
});

test("an API-key credential (the pool marker) is not handed over as main", async () => {
  const { fake, hooks } = setup();
  const h = await hooks;
  await h.auth!.loader!(async () => ({ type: "api", key: POOL_KEY }), {} as never);
  assert.ok(!fake.calls.some((c) => c.method === "accounts/setMain"));
});

test("rotated main tokens are written back through client.auth.set", async () => {
  const { fake, stored, hooks } = setup();
  await hooks;
  fake.emit("accounts/mainRefreshed", { access: "NEW-A", refresh: "NEW-R", expires: 42 });
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(stored, [{ path: { id: "anthropic" }, body: { type: "oauth", refresh: "NEW-R", access: "NEW-A", expires: 42 } }]);
});

test("adding a fallback account: prompts, PKCE through acctpool, and OpenCode keeps its main credential", async () => {
  const { fake, hooks } = setup();
  const h = await hooks;
  await h.auth!.loader!(async () => oauth, {} as never);
  const method = h.auth!.methods[1];
  assert.equal(method.type, "oauth");
  if (method.type !== "oauth") return;
  assert.deepEqual(method.prompts?.map((p) => p.key), ["label", "mode"]);
  const label = method.prompts![0];
  assert.ok(label.type === "text" && label.validate);
  if (label.type === "text" && label.validate) {
    assert.equal(label.validate("work"), undefined);
    assert.match(label.validate("no spaces please") ?? "", /letters, digits/);
  }
  const auth = await method.authorize({ label: "work", mode: "console" });
  assert.equal(auth.url, "https://claude.example/authorize?x=1");
  assert.equal(auth.method, "code");
  if (auth.method !== "code") return;
  const res = await auth.callback("the-code#st-1");
  assert.deepEqual(res, { type: "success", refresh: oauth.refresh, access: oauth.access, expires: oauth.expires });
  assert.deepEqual(
    fake.calls.filter((c) => c.method.startsWith("accounts/login")),
    [
      { method: "accounts/login/start", params: { mode: "console" } },
      { method: "accounts/login/finish", params: { code: "the-code#st-1", state: "st-1", label: "work" } },
    ],
  );
});

test("the main login hands OpenCode the tokens acctpool got; a failed exchange is reported as failed", async () => {
  const prev = process.env.XDG_DATA_HOME;
  process.env.XDG_DATA_HOME = "/nonexistent-acctpool-test"; // no OpenCode auth store to read
  try {
    const { fake, logs, hooks } = setup();
    const h = await hooks;
    const main = h.auth!.methods[0];
    assert.ok(main.type === "oauth");
    if (main.type !== "oauth") return;
    const auth = await main.authorize();
    assert.ok(auth.method === "code");
    if (auth.method !== "code") return;
    assert.deepEqual(await auth.callback("c#st-1"), { type: "success", refresh: "sk-ant-ort01-LOGIN", access: "sk-ant-oat01-LOGIN", expires: 8_000_000 });
    assert.deepEqual(fake.calls.find((c) => c.method === "accounts/login/finish")?.params, { code: "c#st-1", state: "st-1", main: true });

    fake.finishFails = true;
    const again = await main.authorize();
    assert.ok(again.method === "code");
    if (again.method !== "code") return;
    assert.deepEqual(await again.callback("c#st-1"), { type: "failed" });
    await new Promise((r) => setImmediate(r));
    assert.ok(logs.some((l) => /acctpool login failed: invalid_grant/.test(l)), JSON.stringify(logs));
  } finally {
    if (prev === undefined) delete process.env.XDG_DATA_HOME;
    else process.env.XDG_DATA_HOME = prev;
  }
});

test("dispose closes the server", async () => {
  const { fake, hooks } = setup();
  const h = await hooks;
  await h.dispose!();
  assert.deepEqual(fake.calls.at(-1), { method: "close" });
});

test("options from opencode.json reach the client; bad ones are errors that name the key", async () => {
  const { fake, hooks } = setup({ logLevel: "debug", binaryPath: "/opt/acctpool" });
  await hooks;
  assert.equal((fake.options as { logLevel: string }).logLevel, "debug");
  assert.equal((fake.options as { binaryPath: string }).binaryPath, "/opt/acctpool");
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ nope: 1 }, /unknown option "nope"/],
    [{ logLevel: "loud" }, /logLevel must be debug, info, warn or error/],
    [{ config: 5 }, /option config must be a string/],
    [{ plugins: "x.json" }, /plugins must be an array/],
  ];
  for (const [raw, want] of cases) assert.throws(() => parseOptions(raw), want);
});

test("the module OpenCode loads exports nothing but one plugin function", async () => {
  const mod = (await import("../src/server.js")) as Record<string, unknown>;
  assert.deepEqual(Object.keys(mod), ["default"]);
  assert.equal(typeof mod.default, "function");
});

test("a start that failed is tried again on the next use, and the loader still hands OpenCode the wrapper", async () => {
  const { fake, logs, hooks } = setup();
  fake.startFailures = 1;
  const h = await hooks;
  const opts = await h.auth!.loader!(async () => oauth, {} as never);
  assert.equal(typeof opts.fetch, "function");
  await new Promise((r) => setImmediate(r));
  assert.ok(logs.some((l) => /could not hand the main account to acctpool: acctpool server binary not found/.test(l)), JSON.stringify(logs));
  const method = h.auth!.methods[0];
  assert.ok(method.type === "oauth");
  if (method.type !== "oauth") return;
  await method.authorize();
  assert.deepEqual(fake.calls.filter((c) => c.method === "start").length, 2);
  assert.equal(fake.state, "ready");
});
