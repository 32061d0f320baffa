import { isAcctpoolError, isNoRoute } from "./errors.js";
import type {
  CallOptions,
  NoRoute,
  ReportResult,
  ReportedRoute,
  Route,
  RouteReportParams,
  RouteSelectParams,
} from "./generated/protocol.js";

/** The two calls the fetch wrapper needs; an AcctpoolClient has them. */
export interface Router {
  routeSelect(params?: RouteSelectParams, options?: CallOptions): Promise<Route>;
  routeReport(params: RouteReportParams, options?: CallOptions): Promise<ReportResult>;
}

/** What the wrapper tells the host about each attempt (for logs and tests). */
export interface AttemptInfo {
  attempt: number;
  route: Route;
  url: string;
  status: number;
  network: boolean;
  streamRateLimit: boolean;
  report: ReportResult | undefined;
}

export interface AcctpoolFetchOptions {
  /** The router, usually an AcctpoolClient. */
  client: Router;
  /** The fetch that sends upstream (default globalThis.fetch). */
  fetch?: typeof globalThis.fetch;
  /**
   * The session id of a request, for sticky routing. Default: the
   * x-session-affinity or x-opencode-session header.
   */
  sessionId?: (url: URL, headers: Headers) => string | undefined;
  /** Attempts per request, the first included (default 8). */
  maxAttempts?: number;
  /** How much of an error body goes into route/report (default 4096 bytes). */
  bodyExcerptBytes?: number;
  /** How much of a 200 event stream is read to look for a rate_limit_error (default 64 KiB, as upstream). */
  streamPeekBytes?: number;
  /** Called after each attempt's report. */
  onAttempt?: (info: AttemptInfo) => void;
  /**
   * How a route/select failure other than no_account_available reaches the
   * host (the server cannot start, no main account, a corrupt file): as a
   * synthetic Anthropic error response whose message is the acctpool error
   * (default, so the host shows it in its own error), or, when false, as a
   * rejection of the fetch. An aborted call always rejects.
   */
  errorResponses?: boolean;
}

const SESSION_HEADERS = ["x-session-affinity", "x-opencode-session"];
/** The beta flag Anthropic requires on requests that carry an OAuth bearer token. */
export const OAUTH_BETA = "oauth-2025-04-20";

/**
 * createAcctpoolFetch returns a fetch for Anthropic requests, in the style of
 * an OpenCode auth plugin's fetch override. For each request it:
 *
 *  1. asks route/select which account serves it (session id, model, body size);
 *  2. puts that account's credential on the request: Authorization: Bearer, or
 *     x-api-key, and for API-key routes the route's base URL;
 *  3. sends it and calls route/report with the status, headers, an excerpt
 *     of an error body, whether the body can be sent again, and
 *     streamRateLimit when a 200 event stream opens with rate_limit_error;
 *  4. does what the report says: returns the response, sends again on the
 *     next route (only when the body is replayable), or holds (a 429 with
 *     Retry-After).
 *
 * When no account can serve, route/select fails with no_account_available;
 * the wrapper answers with the synthetic upstream error the server describes
 * (401 authentication_error or 429 rate_limit_error, Retry-After), its
 * message extended by each account's reason, and the details under
 * "acctpool" in the body. Other select failures (the server cannot start,
 * main not set) become a synthetic error response too (see errorResponses),
 * so the host's own error shows acctpool's message and its fix.
 *
 * Headers: OAuth routes get the anthropic-beta flag oauth-2025-04-20 that
 * Anthropic requires of bearer requests, merged with the beta flags the host
 * set; API-key routes get the host's flags without it.
 */
export function createAcctpoolFetch(options: AcctpoolFetchOptions): typeof globalThis.fetch {
  const send = options.fetch ?? globalThis.fetch;
  const maxAttempts = options.maxAttempts ?? 8;
  const excerptBytes = options.bodyExcerptBytes ?? 4096;
  const peekBytes = options.streamPeekBytes ?? 64 * 1024;
  const sessionOf =
    options.sessionId ??
    ((_url: URL, headers: Headers) => {
      for (const h of SESSION_HEADERS) {
        const v = headers.get(h);
        if (v) return v;
      }
      return undefined;
    });

  return async function acctpoolFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    const req = await normalize(input, init);
    const sessionId = sessionOf(req.url, req.headers);
    const select: RouteSelectParams = {};
    if (sessionId) select.sessionId = sessionId;
    const model = modelOf(req.body);
    if (model) select.model = model;
    if (req.body instanceof Uint8Array) select.promptBytes = req.body.byteLength;

    let route: Route;
    try {
      route = await options.client.routeSelect(select);
    } catch (err) {
      if (isNoRoute(err)) return noRouteResponse(err.data, err.data.kind);
      if (options.errorResponses !== false && isAcctpoolError(err) && err.kind !== "aborted" && !req.passthrough.signal?.aborted) {
        return selectErrorResponse(err.kind, err.message);
      }
      throw err;
    }

    for (let attempt = 1; ; attempt++) {
      const target = targetOf(req, route);
      let res: Response;
      try {
        res = await send(target.url, {
          ...req.passthrough,
          method: req.method,
          headers: target.headers,
          body: req.body as BodyInit | null,
          ...(req.body instanceof ReadableStream ? { duplex: "half" } : {}),
        } as RequestInit);
      } catch (err) {
        if (req.passthrough.signal?.aborted) throw err; // the caller gave up; not the upstream's fault
        const report = await reportSafely(options.client, { route: reported(route), status: 0, network: true, replayable: req.replayable });
        options.onAttempt?.({ attempt, route, url: target.url, status: 0, network: true, streamRateLimit: false, report });
        if (report?.action === "retry" && report.next && req.replayable && attempt < maxAttempts) {
          route = report.next;
          continue;
        }
        throw err;
      }

      const headers = headersObject(res.headers);
      let out: Response;
      let body: string | undefined;
      let streamRateLimit = false;
      let discard: () => void = () => {};
      if (res.status >= 400) {
        const bytes = new Uint8Array(await res.arrayBuffer());
        body = decode(bytes.subarray(0, excerptBytes));
        out = rebuild(res, bytes);
      } else if (res.status === 200 && res.body && isEventStream(res.headers)) {
        const peeked = await peekStream(res.body, peekBytes);
        streamRateLimit = peeked.rateLimited;
        if (streamRateLimit) body = decode(peeked.head.subarray(0, excerptBytes));
        out = rebuild(res, peeked.stream);
        discard = () => void peeked.stream.cancel().catch(() => {});
      } else {
        out = res;
        discard = () => void res.body?.cancel().catch(() => {});
      }

      const params: RouteReportParams = { route: reported(route), status: res.status, headers, replayable: req.replayable };
      if (body !== undefined) params.body = body;
      if (streamRateLimit) params.streamRateLimit = true;
      const report = await reportSafely(options.client, params);
      options.onAttempt?.({ attempt, route, url: target.url, status: res.status, network: false, streamRateLimit, report });
      if (!report) return out;

      switch (report.action) {
        case "retry":
          if (report.next && req.replayable && attempt < maxAttempts) {
            discard();
            route = report.next;
            continue;
          }
          if (!report.next && report.noRoute) {
            discard();
            return noRouteResponse(report.noRoute);
          }
          return out;
        case "hold":
          return holdResponse(out, report, discard);
        default:
          return out;
      }
    }
  };
}

interface Normalized {
  url: URL;
  method: string;
  headers: Headers;
  /** Buffered bytes (replayable), a one-shot stream, a reusable FormData, or null. */
  body: Uint8Array | ReadableStream<Uint8Array> | FormData | null;
  replayable: boolean;
  /** Every other init field (signal, redirect, ...), passed to each send. */
  passthrough: RequestInit;
}

async function normalize(input: RequestInfo | URL, init: RequestInit | undefined): Promise<Normalized> {
  const isRequest = typeof Request !== "undefined" && input instanceof Request;
  const url = new URL(isRequest ? (input as Request).url : String(input));
  const headers = new Headers(isRequest ? (input as Request).headers : undefined);
  if (init?.headers) new Headers(init.headers).forEach((v, k) => headers.set(k, v));
  const method = (init?.method ?? (isRequest ? (input as Request).method : "GET")).toUpperCase();
  const { body: _b, headers: _h, method: _m, ...rest } = init ?? {};
  const passthrough: RequestInit = { ...rest };
  if (isRequest && !passthrough.signal) passthrough.signal = (input as Request).signal;

  let raw: unknown = init?.body;
  if (raw === undefined && isRequest && (input as Request).body) {
    // A Request's body is read once here, so it can be sent again.
    raw = new Uint8Array(await (input as Request).arrayBuffer());
  }
  if (raw === undefined || raw === null) return { url, method, headers, body: null, replayable: true, passthrough };
  if (typeof raw === "string") return { url, method, headers, body: new TextEncoder().encode(raw), replayable: true, passthrough };
  if (raw instanceof Uint8Array) return { url, method, headers, body: raw, replayable: true, passthrough };
  if (raw instanceof ArrayBuffer) return { url, method, headers, body: new Uint8Array(raw), replayable: true, passthrough };
  if (ArrayBuffer.isView(raw)) {
    return { url, method, headers, body: new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength), replayable: true, passthrough };
  }
  if (raw instanceof URLSearchParams) {
    if (!headers.has("content-type")) headers.set("content-type", "application/x-www-form-urlencoded;charset=UTF-8");
    return { url, method, headers, body: new TextEncoder().encode(raw.toString()), replayable: true, passthrough };
  }
  if (typeof Blob !== "undefined" && raw instanceof Blob) {
    if (!headers.has("content-type") && raw.type) headers.set("content-type", raw.type);
    return { url, method, headers, body: new Uint8Array(await raw.arrayBuffer()), replayable: true, passthrough };
  }
  if (typeof FormData !== "undefined" && raw instanceof FormData) return { url, method, headers, body: raw, replayable: true, passthrough };
  if (raw instanceof ReadableStream) return { url, method, headers, body: raw, replayable: false, passthrough };
  // An async iterable or another one-shot source: sent once, never replayed.
  return { url, method, headers, body: raw as ReadableStream<Uint8Array>, replayable: false, passthrough };
}

/** modelOf reads the top-level "model" of a JSON body. */
function modelOf(body: Normalized["body"]): string | undefined {
  if (!(body instanceof Uint8Array) || body.byteLength === 0 || body[0] !== 0x7b /* { */) return undefined;
  try {
    const v = JSON.parse(decode(body)) as { model?: unknown };
    return typeof v.model === "string" ? v.model : undefined;
  } catch {
    return undefined;
  }
}

/** targetOf puts the route's credential (and, for API-key routes, base URL) on the request. */
function targetOf(req: Normalized, route: Route): { url: string; headers: Headers } {
  const headers = new Headers(req.headers);
  headers.delete("authorization");
  headers.delete("x-api-key");
  const cred = route.credential;
  if (cred.type === "x-api-key") headers.set("x-api-key", cred.token);
  else headers.set("authorization", `Bearer ${cred.token}`);
  let url = req.url;
  if (cred.baseURL) {
    const base = new URL(cred.baseURL);
    url = new URL(base.href);
    url.pathname = base.pathname.replace(/\/+$/, "") + req.url.pathname;
    url.search = req.url.search;
  }
  // Anthropic accepts an OAuth bearer token only with the OAuth beta flag;
  // the flag means nothing to an API-key endpoint. The host's own flags stay.
  const flags = (headers.get("anthropic-beta") ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s && s !== OAUTH_BETA);
  if (cred.type !== "x-api-key") flags.unshift(OAUTH_BETA);
  if (flags.length) headers.set("anthropic-beta", [...new Set(flags)].join(","));
  else headers.delete("anthropic-beta");
  return { url: url.href, headers };
}

/**
 * reported is the route as route/report needs it: with a ticket the server
 * keeps its own record, so the credential is not sent back; without one
 * (an older server) the whole route is echoed.
 */
function reported(route: Route): ReportedRoute {
  if (!route.ticket) return route;
  const { credential: _credential, ...rest } = route;
  return rest;
}

async function reportSafely(client: Router, params: RouteReportParams): Promise<ReportResult | undefined> {
  try {
    return await client.routeReport(params);
  } catch {
    // A report that fails must not cost the caller the response it has.
    return undefined;
  }
}

function headersObject(h: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  h.forEach((v, k) => (out[k] = v));
  return out;
}

function isEventStream(h: Headers): boolean {
  return (h.get("content-type") ?? "").toLowerCase().includes("text/event-stream");
}

const decoder = new TextDecoder();
function decode(b: Uint8Array): string {
  return decoder.decode(b);
}

/** rebuild makes a fresh Response with res's status and headers around body. */
function rebuild(res: Response, body: BodyInit | null): Response {
  const headers = new Headers(res.headers);
  // The body is already decoded and may be a different length.
  headers.delete("content-encoding");
  headers.delete("content-length");
  return new Response(body, { status: res.status, statusText: res.statusText, headers });
}

const RATE_LIMIT = /rate_limit_error|exceed your account'?s rate limit/i;

/**
 * peekStream reads an event stream until its first blank line (the end of
 * the first event) or limit bytes, says whether that head is a rate-limit
 * error, and returns a stream that replays the head and then the rest.
 */
async function peekStream(
  body: ReadableStream<Uint8Array>,
  limit: number,
): Promise<{ head: Uint8Array; rateLimited: boolean; stream: ReadableStream<Uint8Array> }> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  let done = false;
  let text = "";
  const dec = new TextDecoder();
  while (size < limit) {
    const r = await reader.read();
    if (r.done) {
      done = true;
      break;
    }
    chunks.push(r.value);
    size += r.value.byteLength;
    text += dec.decode(r.value, { stream: true });
    if (/\r?\n\r?\n/.test(text)) break;
  }
  const head = concat(chunks, size);
  const firstEvent = text.split(/\r?\n\r?\n/)[0] ?? "";
  const rateLimited = RATE_LIMIT.test(firstEvent);
  let sentHead = false;
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!sentHead) {
        sentHead = true;
        if (head.byteLength) controller.enqueue(head);
        if (done) controller.close();
        return;
      }
      const r = await reader.read();
      if (r.done) controller.close();
      else controller.enqueue(r.value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  });
  return { head, rateLimited, stream };
}

function concat(chunks: Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.byteLength;
  }
  return out;
}

/**
 * noRouteResponse is the synthetic upstream error for a NoRoute: the status,
 * error type and message the server chose, Retry-After, and why each account
 * cannot serve.
 */
export function noRouteResponse(nr: NoRoute, kind = "no_account_available"): Response {
  // An account whose reason is the headline itself is named, not repeated.
  const reasons = nr.accounts.map(
    (a) =>
      `${a.accountId}${a.reason && a.reason !== nr.message ? `: ${a.reason}` : ""}` +
      (a.until ? ` until ${new Date(a.until).toISOString()}` : ""),
  );
  const message = reasons.length ? `${nr.message} (${reasons.join("; ")})` : nr.message;
  const headers = new Headers({ "content-type": "application/json", "x-acctpool-error": kind });
  if (nr.retryAfterMs) headers.set("retry-after", String(Math.max(1, Math.ceil(nr.retryAfterMs / 1000))));
  const body = {
    type: "error",
    error: { type: nr.errorType, message },
    acctpool: { kind, retryAfterMs: nr.retryAfterMs ?? null, accounts: nr.accounts },
  };
  return new Response(JSON.stringify(body), { status: nr.status, headers });
}

/**
 * selectErrorResponse is the synthetic upstream error for a route/select
 * failure that is not a NoRoute: 401 authentication_error when no main
 * account is set (the user must log in), else 424 (a dependency failed; a
 * status hosts do not retry, since trying again fails the same way) with
 * acctpool's message, which names the cause and the fix.
 */
function selectErrorResponse(kind: string, message: string): Response {
  const status = kind === "main_not_set" || kind === "invalid_grant" ? 401 : 424;
  const errorType = status === 401 ? "authentication_error" : "api_error";
  const headers = new Headers({ "content-type": "application/json", "x-acctpool-error": kind });
  const body = { type: "error", error: { type: errorType, message: `acctpool: ${message}` }, acctpool: { kind } };
  return new Response(JSON.stringify(body), { status, headers });
}

/** holdResponse answers a hold: the upstream 429 with the server's Retry-After, or a synthetic one. */
function holdResponse(out: Response, report: ReportResult, discard: () => void): Response {
  const retryAfterMs = report.retryAfterMs ?? report.noRoute?.retryAfterMs ?? report.verdict?.retryAfterMs;
  if (out.status === 429) {
    const headers = new Headers(out.headers);
    if (retryAfterMs) headers.set("retry-after", String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
    return new Response(out.body, { status: 429, statusText: out.statusText, headers });
  }
  discard();
  if (report.noRoute) return noRouteResponse({ ...report.noRoute, retryAfterMs: retryAfterMs ?? report.noRoute.retryAfterMs });
  return noRouteResponse(
    {
      status: 429,
      errorType: "rate_limit_error",
      message: report.verdict?.reason ?? "Rate limited; retry later.",
      retryAfterMs,
      accounts: [],
    },
    "hold",
  );
}
