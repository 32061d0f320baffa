// The extension against a fake acctpool client and a fake Pi: the provider
// it registers, the relay, and the OAuth callbacks.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";

import type { ExtensionAPI, ProviderConfig } from "@mariozechner/pi-coding-agent";

import { createAcctpoolExtension, startRelay, type PiCredentials, type PoolClient } from "../src/index.js";

type Call = { method: string; params?: unknown };

class FakeClient {
  calls: Call[] = [];
  state: PoolClient["state"] = "idle";
  listeners = new Map<string, Array<(v: unknown) => void>>();
  async start() {
    this.calls.push({ method: "start" });
    this.state = "ready";
    return {} as never;
  }
  async close() {
    this.calls.push({ method: "close" });
    return undefined;
  }
  on(event: string, l: (v: unknown) => void) {
    this.listeners.set(event, [...(this.listeners.get(event) ?? []), l]);
    return () => {};
  }
  once(event: string) {
    return new Promise((resolve) => this.on(event, resolve));
  }
  emit(event: string, v: unknown) {
    for (const l of this.listeners.get(event) ?? []) l(v);
  }
  async routeSelect(params?: unknown) {
    this.calls.push({ method: "route/select", params });
    return { accountId: "main", kind: "main", credential: { type: "bearer", token: "sk-ant-oat01-ROUTE" }, reason: "main-first" } as never;
  }
  async routeReport(params: unknown) {
    this.calls.push({ method: "route/report", params });
    return { action: "return" } as never;
  }
  async accountsSetMain(params: unknown) {
    this.calls.push({ method: "accounts/setMain", params });
    return {} as never;
  }
  async accountsRefresh(params: unknown) {
    this.calls.push({ method: "accounts/refresh", params });
    this.emit("accounts/mainRefreshed", { access: "NEW-A", refresh: "NEW-R", expires: 9_000_000 });
    return {} as never;
  }
  async accountsLoginStart(params?: unknown) {
    this.calls.push({ method: "accounts/login/start", params });
    return { url: "https://claude.example/authorize", state: "st-1", redirectUri: "r", expiresAt: 0 } as never;
  }
  async accountsLoginFinish(params: unknown) {
    this.calls.push({ method: "accounts/login/finish", params });
    if ((params as { main?: boolean }).main) {
      // acctpool hands a main login's tokens over as a notification.
      this.emit("accounts/mainRefreshed", { access: "sk-ant-oat01-LOGIN", refresh: "sk-ant-ort01-LOGIN", expires: 8_000_000 });
      return { id: "main", main: true } as never;
    }
    return { id: "acc-1", label: "work" } as never;
  }
}

/** An upstream that records what reached it and answers with a small event stream. */
async function upstream(): Promise<{ url: string; seen: Array<{ path: string; auth: string | undefined; beta: string | undefined; body: string }>; close(): Promise<void> }> {
  const seen: Array<{ path: string; auth: string | undefined; beta: string | undefined; body: string }> = [];
  const server = createServer(async (req, res) => {
    let body = "";
    for await (const c of req) body += c;
    seen.push({ path: req.url ?? "", auth: req.headers.authorization, beta: req.headers["anthropic-beta"] as string | undefined, body });
    res.writeHead(200, { "content-type": "text/event-stream" });
    res.end("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

async function load(up: string) {
  const fake = new FakeClient();
  const stored: PiCredentials[] = [];
  let provider: { name: string; config: ProviderConfig } | undefined;
  const handlers = new Map<string, () => Promise<void>>();
  const pi = {
    registerProvider: (name: string, config: ProviderConfig) => (provider = { name, config }),
    on: (event: string, h: () => Promise<void>) => handlers.set(event, h),
  } as unknown as ExtensionAPI;
  await createAcctpoolExtension({
    client: () => fake as unknown as PoolClient,
    upstream: up,
    storeMain: async (t) => void stored.push(t),
    now: () => 1_000_000,
  })(pi);
  assert.ok(provider);
  return { fake, stored, provider: provider!, shutdown: () => handlers.get("session_shutdown")!() };
}

test("the anthropic provider goes through the relay into acctpool's fetch wrapper", async () => {
  const up = await upstream();
  const { fake, provider, shutdown } = await load(up.url);
  try {
    assert.equal(provider.name, "anthropic");
    assert.match(provider.config.baseUrl ?? "", /^http:\/\/127\.0\.0\.1:\d+$/);
    const oauth = provider.config.oauth!;
    const key = oauth.getApiKey({ access: "sk-ant-oat01-MAIN", refresh: "sk-ant-ort01-MAIN", expires: 5_000_000 });
    assert.match(key, /^sk-ant-oat01-acctpool-/, "an OAuth-shaped key, so Pi sends its OAuth identity headers");

    const res = await fetch(`${provider.config.baseUrl}/v1/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json", "anthropic-beta": "claude-code-20250219" },
      body: JSON.stringify({ model: "claude-x", stream: true }),
    });
    assert.equal(res.status, 200);
    assert.match(await res.text(), /message_stop/);
    assert.equal(up.seen.length, 1);
    assert.equal(up.seen[0].path, "/v1/messages");
    assert.equal(up.seen[0].auth, "Bearer sk-ant-oat01-ROUTE", "the route's credential, not the relay key");
    assert.equal(up.seen[0].beta, "oauth-2025-04-20,claude-code-20250219");
    assert.deepEqual(
      fake.calls.map((c) => c.method),
      ["start", "accounts/setMain", "route/select", "route/report"],
    );
    assert.deepEqual(fake.calls[1].params, { access: "sk-ant-oat01-MAIN", refresh: "sk-ant-ort01-MAIN", expires: 5_000_000 });

    // Without the key the relay sends nothing upstream.
    const denied = await fetch(`${provider.config.baseUrl}/v1/messages`, { method: "POST", headers: { authorization: "Bearer sk-ant-oat01-GUESS" }, body: "{}" });
    assert.equal(denied.status, 401);
    assert.equal(up.seen.length, 1);
  } finally {
    await shutdown();
    await up.close();
  }
  assert.equal(fake.calls.at(-1)?.method, "close");
});

test("login goes through acctpool's PKCE login as the main account and stores its tokens in Pi", async () => {
  const up = await upstream();
  const { fake, provider, shutdown } = await load(up.url);
  try {
    const prompts: string[] = [];
    let shown = "";
    const creds = await provider.config.oauth!.login({
      onAuth: (info) => (shown = info.url),
      onPrompt: async (p) => {
        prompts.push(p.message);
        return "the-code#st-1";
      },
    });
    assert.equal(shown, "https://claude.example/authorize");
    assert.equal(prompts.length, 1);
    assert.deepEqual(fake.calls.find((c) => c.method === "accounts/login/finish")?.params, { code: "the-code#st-1", state: "st-1", main: true });
    assert.deepEqual(creds, { refresh: "sk-ant-ort01-LOGIN", access: "sk-ant-oat01-LOGIN", expires: 8_000_000 }, "Pi stores the tokens acctpool handed over");
    // A fresh credential is handed back without touching acctpool.
    const n = fake.calls.length;
    const again = await provider.config.oauth!.refreshToken(creds);
    assert.equal(again.refresh, "sk-ant-ort01-LOGIN");
    assert.equal(fake.calls.filter((c) => c.method === "accounts/refresh").length, 0);
    assert.ok(fake.calls.length >= n);
  } finally {
    await shutdown();
    await up.close();
  }
});

test("an expired main credential is refreshed by acctpool, and rotated tokens reach Pi's store", async () => {
  const up = await upstream();
  const { fake, stored, provider, shutdown } = await load(up.url);
  try {
    const out = await provider.config.oauth!.refreshToken({ access: "OLD-A", refresh: "OLD-R", expires: 500 });
    assert.deepEqual(out, { access: "NEW-A", refresh: "NEW-R", expires: 9_000_000 });
    assert.deepEqual(
      fake.calls.filter((c) => c.method.startsWith("accounts/")),
      [
        { method: "accounts/setMain", params: { access: "OLD-A", refresh: "OLD-R", expires: 500 } },
        { method: "accounts/refresh", params: { id: "main" } },
      ],
    );
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(stored, [{ access: "NEW-A", refresh: "NEW-R", expires: 9_000_000 }]);
  } finally {
    await shutdown();
    await up.close();
  }
});

test("the relay answers 502 with the reason when the wrapper cannot send", async () => {
  const relay = await startRelay("k", "http://127.0.0.1:1", async () => {
    throw new Error("connect ECONNREFUSED");
  });
  try {
    const res = await fetch(`${relay.url}/v1/messages`, { method: "POST", headers: { "x-api-key": "k" }, body: "{}" });
    assert.equal(res.status, 502);
    assert.match(await res.text(), /acctpool relay: connect ECONNREFUSED/);
  } finally {
    await relay.close();
  }
});
