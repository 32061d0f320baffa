// A scripted stand-in for Anthropic on 127.0.0.1: the OAuth token endpoint,
// the usage endpoint, the profile endpoint, /v1/messages, and an API-key
// route's base URL (/api-route/v1/messages). Each endpoint answers from a
// handler the test sets; every request is recorded.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export type Endpoint = "token" | "usage" | "profile" | "messages" | "api_messages";

export interface Recorded {
  endpoint: Endpoint | "unknown";
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

export interface Reply {
  status?: number;
  headers?: Record<string, string>;
  /** An object is sent as JSON. */
  body?: unknown;
  /** Server-sent events: each string is one event's text, written in turn. */
  sse?: string[];
  /** Drop the connection without an answer. */
  network?: boolean;
  /** Wait before answering, ms. */
  delayMs?: number;
}

export type Handler = (req: Recorded) => Reply | Promise<Reply>;

export const PATHS: Record<string, Endpoint> = {
  "/v1/oauth/token": "token",
  "/api/oauth/usage": "usage",
  "/api/oauth/profile": "profile",
  "/v1/messages": "messages",
  "/api-route/v1/messages": "api_messages",
};

/** A usage body with both standard windows at the given utilization (percent). */
export function usageBody(fiveHour: number, sevenDay: number, now = Date.now()): unknown {
  return {
    five_hour: { utilization: fiveHour, resets_at: new Date(now + 2 * 3600_000).toISOString() },
    seven_day: { utilization: sevenDay, resets_at: new Date(now + 3 * 86400_000).toISOString() },
  };
}

export const ok = (text = "ok"): Reply => ({
  status: 200,
  body: { id: "msg_1", type: "message", role: "assistant", content: [{ type: "text", text }], model: "claude-sonnet-4-5" },
});

export class FakeAnthropic {
  readonly requests: Recorded[] = [];
  handlers: Record<Endpoint, Handler> = {
    token: () => {
      const n = this.calls("token").length;
      return {
        status: 200,
        body: { access_token: `sk-ant-oat01-ROTATED${n}`, refresh_token: `sk-ant-ort01-ROTATED${n}`, expires_in: 8 * 3600 },
      };
    },
    usage: () => ({ status: 200, body: usageBody(10, 10) }),
    profile: () => ({ status: 200, body: { account: { uuid: "acct-1", email_address: "user@example.com" } } }),
    messages: () => ok(),
    api_messages: () => ok("api"),
  };
  private server: Server;
  private base = "";

  private constructor() {
    this.server = createServer((req, res) => void this.serve(req, res));
  }

  static async start(): Promise<FakeAnthropic> {
    const f = new FakeAnthropic();
    await new Promise<void>((resolve) => f.server.listen(0, "127.0.0.1", resolve));
    f.base = `http://127.0.0.1:${(f.server.address() as AddressInfo).port}`;
    return f;
  }

  get url(): string {
    return this.base;
  }

  on(endpoint: Endpoint, handler: Handler): this {
    this.handlers[endpoint] = handler;
    return this;
  }

  /** Replies in order, repeating the last one. */
  script(endpoint: Endpoint, ...replies: Reply[]): this {
    let i = 0;
    return this.on(endpoint, () => replies[Math.min(i++, replies.length - 1)]);
  }

  calls(endpoint: Endpoint): Recorded[] {
    return this.requests.filter((r) => r.endpoint === endpoint);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? "/", this.base);
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) headers[k] = Array.isArray(v) ? v.join(", ") : (v ?? "");
    const rec: Recorded = {
      endpoint: PATHS[url.pathname] ?? "unknown",
      method: req.method ?? "GET",
      path: url.pathname + url.search,
      headers,
      body: Buffer.concat(chunks).toString("utf8"),
    };
    this.requests.push(rec);
    if (rec.endpoint === "unknown") {
      res.writeHead(404, { "content-type": "text/plain" }).end(`fake: unknown path ${url.pathname}`);
      return;
    }
    let reply: Reply;
    try {
      reply = await this.handlers[rec.endpoint](rec);
    } catch (err) {
      res.writeHead(500, { "content-type": "text/plain" }).end(`fake handler threw: ${String(err)}`);
      return;
    }
    if (reply.delayMs) await new Promise((r) => setTimeout(r, reply.delayMs));
    if (reply.network) {
      req.socket.destroy();
      return;
    }
    const status = reply.status ?? 200;
    if (reply.sse) {
      res.writeHead(status, { "content-type": "text/event-stream", "cache-control": "no-cache", ...reply.headers });
      for (const ev of reply.sse) {
        res.write(ev.endsWith("\n\n") ? ev : `${ev}\n\n`);
        await new Promise((r) => setTimeout(r, 5));
      }
      res.end();
      return;
    }
    const isText = typeof reply.body === "string" || reply.body === undefined;
    const body = isText ? ((reply.body as string | undefined) ?? "") : JSON.stringify(reply.body);
    res.writeHead(status, { "content-type": isText ? "text/plain" : "application/json", ...reply.headers });
    res.end(body);
  }
}

/** An SSE stream whose first event is the rate_limit_error Anthropic sends inside a 200. */
export const streamRateLimit: Reply = {
  status: 200,
  sse: [
    'event: error\ndata: {"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed your account rate limit"}}',
  ],
};

/** A healthy SSE stream. */
export function streamOk(text = "streamed"): Reply {
  return {
    status: 200,
    sse: [
      'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[]}}',
      `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":${JSON.stringify(text)}}}`,
      'event: message_stop\ndata: {"type":"message_stop"}',
    ],
  };
}
