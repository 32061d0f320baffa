// The fetch wrapper's own mechanics, with a scripted router instead of the
// server: what it selects with, what it puts on the wire, what it reports,
// and how it acts on each answer.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import {
  AcctpoolError,
  createAcctpoolFetch,
  type ReportResult,
  type Route,
  type RouteReportParams,
  type RouteSelectParams,
  type Router,
} from "../src/index.js";
import { FakeAnthropic, ok, streamOk, streamRateLimit } from "./support/fake-anthropic.js";

let fake: FakeAnthropic;
before(async () => {
  fake = await FakeAnthropic.start();
});
after(() => fake.close());

const main: Route = { accountId: "main", kind: "main", credential: { type: "bearer", token: "tok-main" }, reason: "main-first" };
const fb: Route = { accountId: "fb-1", kind: "oauth", credential: { type: "bearer", token: "tok-fb" }, reason: "fallback" };

class ScriptedRouter implements Router {
  selects: RouteSelectParams[] = [];
  reports: RouteReportParams[] = [];
  constructor(
    private select: () => Route | Promise<Route>,
    private report: (p: RouteReportParams) => ReportResult | Promise<ReportResult>,
  ) {}
  async routeSelect(params: RouteSelectParams = {}): Promise<Route> {
    this.selects.push(params);
    return this.select();
  }
  async routeReport(params: RouteReportParams): Promise<ReportResult> {
    this.reports.push(params);
    return this.report(params);
  }
}

const retryOnErrors = (next: Route) => (p: RouteReportParams): ReportResult =>
  p.status === 200 && !p.streamRateLimit ? { action: "return" } : { action: "retry", next };

function post(body: BodyInit, headers: Record<string, string> = {}): [string, RequestInit] {
  fake.requests.length = 0;
  return [
    `${fake.url}/v1/messages?beta=true`,
    {
      method: "POST",
      headers: { "content-type": "application/json", authorization: "Bearer stale", "anthropic-beta": "oauth-2025-04-20,tools-1", ...headers },
      body,
    },
  ];
}

const body = JSON.stringify({ model: "claude-opus-4-1", messages: [] });

test("selects with session, model and size; sends the bearer credential; reports the outcome", async () => {
  fake.script("messages", { status: 200, body: { ok: true }, headers: { "anthropic-ratelimit-unified-5h-utilization": "0.4" } });
  const router = new ScriptedRouter(() => main, () => ({ action: "return" }));
  const res = await createAcctpoolFetch({ client: router })(...post(body, { "x-opencode-session": "ses_1" }));
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { ok: true });
  assert.deepEqual(router.selects, [{ sessionId: "ses_1", model: "claude-opus-4-1", promptBytes: body.length }]);
  const sent = fake.calls("messages")[0];
  assert.equal(sent.headers.authorization, "Bearer tok-main");
  assert.equal(sent.headers["x-api-key"], undefined);
  assert.equal(sent.headers["anthropic-beta"], "oauth-2025-04-20,tools-1");
  assert.equal(router.reports.length, 1);
  const r = router.reports[0];
  assert.equal(r.status, 200);
  assert.equal(r.replayable, true);
  assert.equal(r.body, undefined);
  assert.equal(r.headers?.["anthropic-ratelimit-unified-5h-utilization"], "0.4");
  assert.deepEqual(r.route, main);
});

test("an OAuth route always carries the OAuth beta flag, merged with the host's flags", async () => {
  const cases: Array<{ beta: string | undefined; want: string }> = [
    { beta: undefined, want: "oauth-2025-04-20" },
    { beta: "tools-1", want: "oauth-2025-04-20,tools-1" },
    { beta: "tools-1, oauth-2025-04-20 ,fine-grained-2", want: "oauth-2025-04-20,tools-1,fine-grained-2" },
  ];
  for (const c of cases) {
    fake.script("messages", ok("main"));
    const router = new ScriptedRouter(() => main, () => ({ action: "return" }));
    const [url, init] = post(body);
    const headers = { ...(init.headers as Record<string, string>) };
    delete headers["anthropic-beta"];
    if (c.beta !== undefined) headers["anthropic-beta"] = c.beta;
    const res = await createAcctpoolFetch({ client: router })(url, { ...init, headers });
    assert.equal(res.status, 200);
    assert.equal(fake.calls("messages")[0].headers["anthropic-beta"], c.want, `host beta ${c.beta}`);
  }
});

test("a route with a ticket is reported by ticket, without its credential", async () => {
  fake.script("messages", { status: 200, body: { ok: true } });
  const ticketed: Route = { ...main, ticket: "t-1" };
  const router = new ScriptedRouter(() => ticketed, () => ({ action: "return" }));
  const res = await createAcctpoolFetch({ client: router })(...post(body));
  assert.equal(res.status, 200);
  assert.equal(fake.calls("messages")[0].headers.authorization, "Bearer tok-main");
  const { credential: _c, ...rest } = ticketed;
  assert.deepEqual(router.reports[0].route, rest);
  assert.equal(JSON.stringify(router.reports[0]).includes("tok-main"), false);
});

test("an API-key route gets x-api-key, its base URL, and no OAuth beta flag", async () => {
  const api: Route = {
    accountId: "api-1",
    kind: "api",
    credential: { type: "x-api-key", token: "sk-ant-api03-K", baseURL: `${fake.url}/api-route/` },
    reason: "api",
  };
  fake.script("api_messages", ok("api"));
  const router = new ScriptedRouter(() => api, () => ({ action: "return" }));
  const res = await createAcctpoolFetch({ client: router })(...post(body));
  assert.equal(res.status, 200);
  const sent = fake.calls("api_messages")[0];
  assert.equal(sent.path, "/api-route/v1/messages?beta=true");
  assert.equal(sent.headers["x-api-key"], "sk-ant-api03-K");
  assert.equal(sent.headers.authorization, undefined);
  assert.equal(sent.headers["anthropic-beta"], "tools-1");
  assert.equal(fake.calls("messages").length, 0);
});

test("retries on the next route with the same body, reporting the error excerpt", async () => {
  fake.on("messages", (r) => (r.headers.authorization === "Bearer tok-main" ? { status: 429, body: "x".repeat(10_000) } : ok("fb")));
  const router = new ScriptedRouter(() => main, retryOnErrors(fb));
  const res = await createAcctpoolFetch({ client: router, bodyExcerptBytes: 100 })(...post(body));
  assert.equal(res.status, 200);
  const calls = fake.calls("messages");
  assert.deepEqual(calls.map((c) => c.headers.authorization), ["Bearer tok-main", "Bearer tok-fb"]);
  assert.equal(calls[1].body, body);
  assert.equal(router.reports[0].status, 429);
  assert.equal(router.reports[0].body, "x".repeat(100));
  assert.deepEqual(router.reports[1].route, fb);
});

test("a Request input with a body is buffered and replayable", async () => {
  fake.on("messages", (r) => (r.headers.authorization === "Bearer tok-main" ? { status: 401, body: "expired" } : ok("fb")));
  const router = new ScriptedRouter(() => main, retryOnErrors(fb));
  const [url, init] = post(body);
  const res = await createAcctpoolFetch({ client: router })(new Request(url, init));
  assert.equal(res.status, 200);
  assert.equal(fake.calls("messages")[1].body, body);
  assert.equal(router.reports[0].replayable, true);
});

test("a streamed body is reported as not replayable and never retried", async () => {
  fake.script("messages", { status: 429, body: "limited" });
  const router = new ScriptedRouter(() => main, retryOnErrors(fb));
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new TextEncoder().encode(body));
      c.close();
    },
  });
  const res = await createAcctpoolFetch({ client: router })(...post(stream));
  assert.equal(res.status, 429);
  assert.equal(await res.text(), "limited");
  assert.equal(router.reports[0].replayable, false);
  assert.equal(fake.calls("messages").length, 1);
});

test("a 200 stream opening with rate_limit_error is reported and retried; a good stream passes through whole", async () => {
  fake.on("messages", (r) => (r.headers.authorization === "Bearer tok-main" ? streamRateLimit : streamOk("hello")));
  const router = new ScriptedRouter(() => main, retryOnErrors(fb));
  const res = await createAcctpoolFetch({ client: router })(...post(body));
  assert.equal(res.status, 200);
  const text = await res.text();
  assert.equal(text.split("\n\n").filter(Boolean).length, 3, text);
  assert.match(text, /"text":"hello"/);
  assert.equal(router.reports[0].streamRateLimit, true);
  assert.match(router.reports[0].body ?? "", /rate_limit_error/);
  assert.equal(router.reports[1].streamRateLimit, undefined);
});

test("hold returns a 429 with the server's Retry-After", async () => {
  fake.script("messages", { status: 429, body: "limited", headers: { "retry-after": "3" } });
  const router = new ScriptedRouter(() => main, () => ({ action: "hold", retryAfterMs: 42_500 }));
  const res = await createAcctpoolFetch({ client: router })(...post(body));
  assert.equal(res.status, 429);
  assert.equal(res.headers.get("retry-after"), "43");
  assert.equal(await res.text(), "limited");
});

test("a retry with no next route but a NoRoute becomes the synthetic error", async () => {
  fake.script("messages", { status: 429, body: "limited" });
  const router = new ScriptedRouter(
    () => main,
    () => ({
      action: "retry",
      noRoute: {
        status: 429,
        errorType: "rate_limit_error",
        message: "No OAuth account is currently routable.",
        retryAfterMs: 60_000,
        accounts: [{ accountId: "fb-1", reason: "quota backoff", until: Date.UTC(2026, 0, 1) }],
      },
    }),
  );
  const res = await createAcctpoolFetch({ client: router })(...post(body));
  assert.equal(res.status, 429);
  assert.equal(res.headers.get("retry-after"), "60");
  const b = (await res.json()) as { error: { type: string; message: string } };
  assert.equal(b.error.type, "rate_limit_error");
  assert.equal(b.error.message, "No OAuth account is currently routable. (fb-1: quota backoff until 2026-01-01T00:00:00.000Z)");
});

test("a NoRoute from route/select is answered without going upstream", async () => {
  const router = new ScriptedRouter(
    () => {
      throw new AcctpoolError("no account available", {
        kind: "no_account_available",
        code: -31001,
        data: {
          kind: "no_account_available",
          status: 401,
          errorType: "authentication_error",
          message: "Main Claude OAuth account requires re-login, and no fallback OAuth account is currently routable.",
          accounts: [{ accountId: "main", reason: "re-login required" }],
        },
      });
    },
    () => ({ action: "return" }),
  );
  const res = await createAcctpoolFetch({ client: router })(...post(body));
  assert.equal(res.status, 401);
  assert.equal(res.headers.get("retry-after"), null);
  const b = (await res.json()) as { error: { type: string; message: string } };
  assert.equal(b.error.type, "authentication_error");
  assert.match(b.error.message, /requires re-login.*\(main: re-login required\)$/);
  assert.equal(fake.calls("messages").length, 0);
});

test("other select failures answer with the acctpool message, or reject when asked", async () => {
  const router = new ScriptedRouter(
    () => {
      throw new AcctpoolError("main account credentials not set", { kind: "main_not_set", code: -31010 });
    },
    () => ({ action: "return" }),
  );
  const res = await createAcctpoolFetch({ client: router })(...post(body));
  assert.equal(res.status, 401);
  assert.equal(res.headers.get("x-acctpool-error"), "main_not_set");
  const json = (await res.json()) as { error: { type: string; message: string } };
  assert.equal(json.error.type, "authentication_error");
  assert.match(json.error.message, /acctpool: main account credentials not set/);

  const down = new ScriptedRouter(
    () => {
      throw new AcctpoolError("acctpool server binary not found: ... Fix: set ACCTPOOL_SERVER", { kind: "server_unavailable" });
    },
    () => ({ action: "return" }),
  );
  const res2 = await createAcctpoolFetch({ client: down })(...post(body));
  assert.equal(res2.status, 424);
  assert.match(((await res2.json()) as { error: { message: string } }).error.message, /ACCTPOOL_SERVER/);

  await assert.rejects(createAcctpoolFetch({ client: router, errorResponses: false })(...post(body)), /main account credentials not set/);
});

test("a network failure is reported and retried on the next route", async () => {
  fake.on("messages", (r) => (r.headers.authorization === "Bearer tok-main" ? { network: true } : ok("fb")));
  const router = new ScriptedRouter(() => main, (p) => (p.network ? { action: "retry", next: fb } : { action: "return" }));
  const res = await createAcctpoolFetch({ client: router })(...post(body));
  assert.equal(res.status, 200);
  assert.deepEqual(router.reports[0], { route: main, status: 0, network: true, replayable: true });
});

test("a failing route/report still returns the response", async () => {
  fake.script("messages", { status: 500, body: "upstream broke" });
  const router = new ScriptedRouter(() => main, () => {
    throw new AcctpoolError("connection lost", { kind: "connection_lost" });
  });
  const res = await createAcctpoolFetch({ client: router })(...post(body));
  assert.equal(res.status, 500);
  assert.equal(await res.text(), "upstream broke");
});

test("gives up after maxAttempts", async () => {
  fake.script("messages", { status: 429, body: "limited" });
  const router = new ScriptedRouter(() => main, () => ({ action: "retry", next: fb }));
  const res = await createAcctpoolFetch({ client: router, maxAttempts: 3 })(...post(body));
  assert.equal(res.status, 429);
  assert.equal(fake.calls("messages").length, 3);
});
