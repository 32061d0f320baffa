// The fetch wrapper against the real Go server and a fake Anthropic.
import assert from "node:assert/strict";

import { createAcctpoolFetch, isNoRoute, type AttemptInfo, type Router } from "../src/index.js";
import { e2e } from "./support/e2e.js";
import { API_KEY, FALLBACK, MAIN, freshExpiry, type Env } from "./support/env.js";
import { ok, streamOk, streamRateLimit, type Recorded } from "./support/fake-anthropic.js";

const MODEL = "claude-sonnet-4-5";

function request(env: Env, init: { body?: BodyInit; headers?: Record<string, string> } = {}): [string, RequestInit] {
  return [
    `${env.fake.url}/v1/messages?beta=true`,
    {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "oauth-2025-04-20,interleaved-thinking-2025-05-14",
        authorization: "Bearer placeholder-the-wrapper-replaces",
        ...init.headers,
      },
      body:
        init.body ?? JSON.stringify({ model: MODEL, max_tokens: 64, messages: [{ role: "user", content: "hello" }] }),
    },
  ];
}

const auth = (r: Recorded) => r.headers.authorization ?? `x-api-key ${r.headers["x-api-key"]}`;

async function setMain(env: Env, expires = freshExpiry()): Promise<void> {
  await env.client.accountsSetMain({ ...MAIN, expires });
}

async function addFallback(env: Env, expires = freshExpiry()): Promise<void> {
  await env.client.accountsAdd({ type: "oauth", id: "fb-1", label: "work", ...FALLBACK, expires });
}

function wrapper(env: Env, attempts: AttemptInfo[] = []) {
  return createAcctpoolFetch({ client: env.client, onAttempt: (a) => attempts.push(a) });
}

e2e("a 429 on main falls back to the OAuth fallback and returns its answer", async (env) => {
  await setMain(env);
  await addFallback(env);
  env.fake.on("messages", (r) =>
    r.headers.authorization === `Bearer ${MAIN.access}` ? { status: 429, body: "limited" } : ok("from fallback"),
  );
  const attempts: AttemptInfo[] = [];
  const res = await wrapper(env, attempts)(...request(env));

  assert.equal(res.status, 200, await res.clone().text());
  const body = (await res.json()) as { content: Array<{ text: string }> };
  assert.equal(body.content[0].text, "from fallback");
  assert.deepEqual(env.fake.calls("messages").map(auth), [`Bearer ${MAIN.access}`, `Bearer ${FALLBACK.access}`]);
  assert.equal(attempts[0].status, 429);
  assert.equal(attempts[0].report?.action, "retry");
  assert.equal(attempts[0].report?.verdict?.class, "rate_limited");
  assert.equal(attempts[1].route.accountId, "fb-1");
  // The request itself is unchanged apart from its credential.
  const sent = env.fake.calls("messages")[1];
  assert.equal(sent.path, "/v1/messages?beta=true");
  assert.equal(JSON.parse(sent.body).model, MODEL);
});

e2e("a 200 stream that opens with rate_limit_error falls back too", async (env) => {
  await setMain(env);
  await addFallback(env);
  env.fake.on("messages", (r) =>
    r.headers.authorization === `Bearer ${MAIN.access}` ? streamRateLimit : streamOk("fallback stream"),
  );
  const attempts: AttemptInfo[] = [];
  const res = await wrapper(env, attempts)(...request(env));
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.match(text, /event: message_start/);
  assert.match(text, /fallback stream/);
  assert.equal(attempts[0].streamRateLimit, true);
  assert.equal(attempts[0].report?.action, "retry");
  assert.equal(env.fake.calls("messages").length, 2);
});

e2e("a 403 on main never spends an API-key route", async (env) => {
  await setMain(env);
  await env.client.accountsAdd({ type: "api", id: "api-1", label: "credits", apiKey: API_KEY, baseURL: `${env.fake.url}/api-route`, authHeader: "x-api-key" });
  env.fake.on("messages", () => ({ status: 403, body: { type: "error", error: { type: "permission_error", message: "auth failure" } } }));
  const res = await wrapper(env)(...request(env));

  assert.equal(res.status, 403);
  const body = (await res.json()) as { error: { type: string } };
  assert.equal(body.error.type, "permission_error");
  assert.equal(env.fake.calls("messages").length, 1);
  assert.equal(env.fake.calls("api_messages").length, 0, "an API-key route was used after a 403");
});

e2e("a 403 on main goes to the OAuth fallback, not the API-key route", async (env) => {
  await setMain(env);
  await addFallback(env);
  await env.client.accountsAdd({ type: "api", id: "api-1", apiKey: API_KEY, baseURL: `${env.fake.url}/api-route` });
  env.fake.on("messages", (r) =>
    r.headers.authorization === `Bearer ${MAIN.access}`
      ? { status: 403, body: { type: "error", error: { type: "permission_error", message: "auth failure" } } }
      : ok("from fallback"),
  );
  const res = await wrapper(env)(...request(env));
  assert.equal(res.status, 200);
  assert.deepEqual(env.fake.calls("messages").map(auth), [`Bearer ${MAIN.access}`, `Bearer ${FALLBACK.access}`]);
  assert.equal(env.fake.calls("api_messages").length, 0);
});

e2e("no routable account gives a synthetic upstream error that explains itself", async (env) => {
  const past = Date.now() - 60_000;
  env.fake.on("token", () => ({ status: 400, body: { error: "invalid_grant", error_description: "Refresh token not found or invalid" } }));
  await setMain(env, past);
  await addFallback(env, past);

  // The wrapper answers as Anthropic would; the RPC error it got carries the NoRoute.
  let seen: unknown;
  const recording: Router = {
    routeSelect: (p) => env.client.routeSelect(p).catch((e: unknown) => Promise.reject((seen = e))),
    routeReport: (p) => env.client.routeReport(p),
  };
  const res = await createAcctpoolFetch({ client: recording })(...request(env));
  if (process.env.ACCTPOOL_TEST_LOG) console.error("NoRoute response:", res.status, [...res.headers], await res.clone().text());
  const err = seen;
  assert.ok(isNoRoute(err), `want no_account_available, got ${String(err)}`);
  assert.ok([401, 429].includes(err.data.status), `status ${err.data.status}`);
  assert.ok(err.data.message.length > 0);
  const ids = err.data.accounts.map((a) => a.accountId);
  assert.ok(ids.includes("fb-1"), `accounts ${JSON.stringify(err.data.accounts)}`);
  for (const a of err.data.accounts) assert.ok(a.reason.length > 0, `account ${a.accountId} has no reason`);

  assert.equal(res.status, err.data.status);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.equal(res.headers.get("x-acctpool-error"), "no_account_available");
  if (err.data.retryAfterMs) assert.ok(Number(res.headers.get("retry-after")) >= 1);
  const body = (await res.json()) as {
    type: string;
    error: { type: string; message: string };
    acctpool: { kind: string; accounts: Array<{ accountId: string; reason: string }> };
  };
  assert.equal(body.type, "error");
  assert.equal(body.error.type, err.data.errorType);
  assert.equal(body.error.type, res.status === 401 ? "authentication_error" : "rate_limit_error");
  assert.ok(body.error.message.startsWith(err.data.message));
  for (const a of err.data.accounts) {
    const named = a.reason === err.data.message ? a.accountId : `${a.accountId}: ${a.reason}`;
    assert.ok(body.error.message.includes(named), body.error.message);
  }
  assert.deepEqual(body.acctpool.accounts, err.data.accounts);
  assert.equal(env.fake.calls("messages").length, 0, "a request went upstream without a route");

  // Asked again, the server still explains (now from the stored state).
  await assert.rejects(env.client.routeSelect({ model: MODEL }), (again: unknown) => {
    assert.ok(isNoRoute(again), String(again));
    assert.ok(again.data.accounts.length > 0);
    return true;
  });
});

e2e("a body that cannot be replayed is never sent twice", async (env) => {
  await setMain(env);
  await addFallback(env);
  env.fake.on("messages", (r) =>
    r.headers.authorization === `Bearer ${MAIN.access}` ? { status: 429, body: "limited" } : ok("from fallback"),
  );
  const json = JSON.stringify({ model: MODEL, max_tokens: 64, messages: [{ role: "user", content: "hi" }] });
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new TextEncoder().encode(json));
      c.close();
    },
  });
  const res = await wrapper(env)(...request(env, { body: stream }));
  assert.equal(res.status, 429);
  assert.equal(await res.text(), "limited");
  assert.equal(env.fake.calls("messages").length, 1);
});

e2e("after the server is killed the next request works on a restarted server", async (env) => {
  await setMain(env);
  const fetch = wrapper(env);
  assert.equal((await fetch(...request(env))).status, 200);
  const first = env.client.pid;
  assert.ok(first);

  const ready = env.client.once("ready");
  process.kill(first, "SIGKILL");
  const res = await fetch(...request(env));
  assert.equal(res.status, 200, await res.clone().text());
  const info = await ready;
  assert.notEqual(info.pid, first);
  assert.equal(env.client.restarts, 1);
  // The restarted server was handed the main credentials again.
  assert.deepEqual(env.fake.calls("messages").map(auth), [`Bearer ${MAIN.access}`, `Bearer ${MAIN.access}`]);
});
