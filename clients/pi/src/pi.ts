// The Pi extension as a factory; extension.ts is what Pi loads.
//
// How requests reach acctpool. Pi's Anthropic provider builds its own
// Anthropic SDK client from the provider's baseUrl and API key, and offers
// no fetch hook; replacing its stream (streamSimple) would mean
// re-implementing its request building (Claude Code identity, tool names,
// thinking budgets). So the extension keeps Pi's stream as it is and points
// the provider's baseUrl at a relay on 127.0.0.1 that this process starts:
// the relay sends each request on through acctpool's fetch wrapper (account
// choice, credential, OAuth beta flag, fallback), to the real upstream. The
// relay accepts only requests that carry this process's random key, which
// Pi gets from the provider's getApiKey.
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Readable } from "node:stream";

import type { ExtensionAPI } from "@mariozechner/pi-coding-agent";
import {
  AcctpoolClient,
  createAcctpoolFetch,
  type AccountsMainRefreshedParams,
  type ClientOptions,
} from "@acctpool/client";

/** The Anthropic API the relay forwards to (ACCTPOOL_ANTHROPIC_BASE_URL overrides it, for tests). */
export const DEFAULT_UPSTREAM = "https://api.anthropic.com";

/**
 * POOL_REFRESH marks the credential Pi stores after a login through
 * acctpool: the account's tokens live in acctpool's pool, not in Pi.
 */
export const POOL_REFRESH = "acctpool-pool";

/** A credential as Pi stores it (OAuthCredentials). */
export interface PiCredentials {
  refresh: string;
  access: string;
  expires: number;
  [key: string]: unknown;
}

/** The part of an AcctpoolClient the extension uses; tests pass a fake. */
export type PoolClient = Pick<
  AcctpoolClient,
  | "start"
  | "close"
  | "on"
  | "once"
  | "state"
  | "routeSelect"
  | "routeReport"
  | "accountsSetMain"
  | "accountsRefresh"
  | "accountsLoginStart"
  | "accountsLoginFinish"
>;

/** Options of createAcctpoolExtension; every field is optional. */
export interface AcctpoolPiOptions {
  /** Makes the client (default: an AcctpoolClient with the ACCTPOOL_* environment). */
  client?: (options: ClientOptions) => PoolClient;
  /** The upstream Anthropic API (default $ACCTPOOL_ANTHROPIC_BASE_URL, else DEFAULT_UPSTREAM). */
  upstream?: string;
  /** Stores rotated main tokens in Pi's auth store (default: Pi's AuthStorage, under its lock). */
  storeMain?: (tokens: PiCredentials) => Promise<void>;
  /** The clock, epoch ms (tests). */
  now?: () => number;
}

/** How long a pool credential is good for in Pi's eyes; refreshing it only extends it. */
const POOL_CREDENTIAL_MS = 30 * 24 * 3600_000;

/**
 * createAcctpoolExtension returns the Pi extension. It registers the
 * provider "anthropic" again with:
 *
 *  - baseUrl: the relay (see the file comment), so every Anthropic request
 *    goes through acctpool;
 *  - oauth: login through acctpool's PKCE login (the account joins
 *    acctpool's pool); refresh and the API key through acctpool. A Claude
 *    OAuth credential Pi already holds (from its own login) is handed to
 *    acctpool as the main account, and tokens acctpool rotates are written
 *    back to Pi's auth store.
 *
 * The server stops when Pi's session shuts down.
 */
export function createAcctpoolExtension(options: AcctpoolPiOptions = {}): (pi: ExtensionAPI) => Promise<void> {
  return async (pi: ExtensionAPI) => {
    const now = options.now ?? Date.now;
    const upstream = (options.upstream ?? process.env.ACCTPOOL_ANTHROPIC_BASE_URL ?? DEFAULT_UPSTREAM).replace(/\/+$/, "");
    const client = (options.client ?? ((o) => new AcctpoolClient(o)))({
      clientInfo: { name: "@acctpool/pi", version: "0.1.0" },
      // Pi keeps its files in ~/.pi/agent (PI_AGENT_DIR, PI_ANTHROPIC_AUTH_FILE),
      // as the upstream Pi extension does.
      extraArgs: ["--host", "pi"],
    });
    let started: Promise<unknown> | undefined;
    const ready = (): Promise<unknown> => {
      if (client.state === "idle" || client.state === "failed") started = client.start();
      return started ?? Promise.resolve();
    };

    // The main credential Pi holds, and its hand-over to acctpool.
    let main: PiCredentials | undefined;
    let mainHanded: Promise<unknown> = Promise.resolve();
    const handMain = (creds: PiCredentials) => {
      if (creds.refresh === POOL_REFRESH || (main && main.access === creds.access && main.refresh === creds.refresh)) return;
      main = { refresh: creds.refresh, access: creds.access, expires: creds.expires };
      const m = main;
      mainHanded = ready()
        .then(() => client.accountsSetMain(m))
        .catch(() => {}); // a failure shows up on the request, through route/select
    };
    const storeMain = options.storeMain ?? storeInPi;
    client.on("accounts/mainRefreshed", (t: AccountsMainRefreshedParams) => {
      main = { refresh: t.refresh, access: t.access, expires: t.expires };
      void storeMain(main).catch(() => {});
    });

    const key = `sk-ant-oat01-acctpool-${randomBytes(24).toString("base64url")}`;
    const wrapped = createAcctpoolFetch({
      client: {
        routeSelect: async (...a: Parameters<PoolClient["routeSelect"]>) => {
          await ready().catch(() => {}); // the select fails with the start error, which the wrapper shows
          await mainHanded;
          return client.routeSelect(...a);
        },
        routeReport: (...a: Parameters<PoolClient["routeReport"]>) => client.routeReport(...a),
      },
    });
    const relay = await startRelay(key, upstream, wrapped);

    pi.registerProvider("anthropic", {
      baseUrl: relay.url,
      oauth: {
        name: "Claude Pro/Max (acctpool)",
        async login(callbacks) {
          await ready();
          const start = await client.accountsLoginStart({});
          callbacks.onAuth({ url: start.url, instructions: "Authorize, then paste the code Claude shows (code#state)." });
          const code = await callbacks.onPrompt({ message: "Paste the authorization code:" });
          // main: true makes this Pi's main account; acctpool hands its
          // tokens over as accounts/mainRefreshed (never in a result).
          const handed = client.once("accounts/mainRefreshed");
          await client.accountsLoginFinish({ code, state: start.state, main: true });
          const t = await handed;
          main = { refresh: t.refresh, access: t.access, expires: t.expires };
          callbacks.onProgress?.("logged in; acctpool routes this account as main");
          return main;
        },
        async refreshToken(creds) {
          if (creds.refresh === POOL_REFRESH) return { ...creds, expires: now() + POOL_CREDENTIAL_MS };
          // acctpool may have rotated the tokens already; hand over the newest and let it refresh.
          const current = main && main.expires > creds.expires ? main : (creds as PiCredentials);
          if (current.expires > now() + 60_000) return current;
          await ready();
          const refreshed = client.once("accounts/mainRefreshed");
          await client.accountsSetMain({ access: current.access, refresh: current.refresh, expires: current.expires });
          await client.accountsRefresh({ id: "main" });
          const t = await refreshed;
          main = { refresh: t.refresh, access: t.access, expires: t.expires };
          return main;
        },
        getApiKey(creds) {
          handMain(creds as PiCredentials);
          return key;
        },
      },
    });

    pi.on("session_shutdown", async () => {
      await relay.close();
      await client.close();
    });
  };
}

/** storeInPi writes main tokens to Pi's auth store through Pi's own AuthStorage (file lock, mode 0600). */
async function storeInPi(tokens: PiCredentials): Promise<void> {
  const { AuthStorage } = await import("@mariozechner/pi-coding-agent");
  AuthStorage.create().set("anthropic", { type: "oauth", refresh: tokens.refresh, access: tokens.access, expires: tokens.expires });
}

/** A running relay: its base URL and how to stop it. */
interface Relay {
  url: string;
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set(["connection", "keep-alive", "transfer-encoding", "upgrade", "host", "content-length", "proxy-connection"]);

/**
 * startRelay serves 127.0.0.1 on a free port and sends every request that
 * carries key (as a Bearer token or x-api-key) to upstream through send.
 * Anything else is answered 401 and sent nowhere.
 */
export async function startRelay(key: string, upstream: string, send: typeof globalThis.fetch): Promise<Relay> {
  const server = createServer((req, res) => void relayOne(req, res, key, upstream, send));
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  server.unref(); // the relay never keeps Pi alive by itself
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function relayOne(req: IncomingMessage, res: ServerResponse, key: string, upstream: string, send: typeof globalThis.fetch): Promise<void> {
  const auth = req.headers.authorization === `Bearer ${key}` || req.headers["x-api-key"] === key;
  if (!auth) {
    res.writeHead(401, { "content-type": "application/json" });
    res.end(JSON.stringify({ type: "error", error: { type: "authentication_error", message: "acctpool relay: unknown caller" } }));
    return;
  }
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const headers = new Headers();
  for (const [k, v] of Object.entries(req.headers)) {
    if (v === undefined || HOP_BY_HOP.has(k)) continue;
    headers.set(k, Array.isArray(v) ? v.join(", ") : v);
  }
  const abort = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) abort.abort();
  });
  try {
    const body = chunks.length ? new Uint8Array(Buffer.concat(chunks)) : undefined;
    const out = await send(upstream + (req.url ?? "/"), { method: req.method, headers, body, signal: abort.signal });
    const h: Record<string, string> = {};
    out.headers.forEach((v, k) => {
      if (!HOP_BY_HOP.has(k) && k !== "content-encoding") h[k] = v;
    });
    res.writeHead(out.status, h);
    if (out.body) Readable.fromWeb(out.body as import("node:stream/web").ReadableStream<Uint8Array>).pipe(res);
    else res.end();
  } catch (err) {
    if (abort.signal.aborted) return;
    res.writeHead(502, { "content-type": "application/json" });
    res.end(JSON.stringify({ type: "error", error: { type: "api_error", message: `acctpool relay: ${err instanceof Error ? err.message : String(err)}` } }));
  }
}

