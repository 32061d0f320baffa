import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";

import type { AuthHook, Hooks, Plugin, PluginInput, PluginOptions } from "@opencode-ai/plugin";
import {
  AcctpoolClient,
  createAcctpoolFetch,
  type AccountsMainRefreshedParams,
  type ClientOptions,
  type LogEntry,
} from "@acctpool/client";

/** The OpenCode provider the plugin serves. */
export const PROVIDER_ID = "anthropic";

/**
 * The key stored in OpenCode's auth store when the pool has no main
 * account: the login put the Claude account into acctpool's pool, which
 * holds its tokens; OpenCode only needs to know that acctpool serves
 * Anthropic. It is never sent upstream (the fetch wrapper puts the route's
 * own credential on every request).
 */
export const POOL_KEY = "acctpool-pool";

/**
 * Options of the plugin, from opencode.json:
 * `"plugin": [["@acctpool/opencode", { "logLevel": "debug" }]]`.
 * Every field is optional; environment variables (ACCTPOOL_SERVER,
 * ACCTPOOL_CONFIG, ...) work as well.
 */
export interface AcctpoolOpenCodeOptions {
  /** The acctpool binary (default: $ACCTPOOL_SERVER, else the platform package). */
  binaryPath?: string;
  /** anthropic-auth.json (default as the server resolves it: ~/.config/opencode/anthropic-auth.json). */
  config?: string;
  /** anthropic-auth-state.json (default beside the config). */
  state?: string;
  /** The server's log level (default info); its lines go to OpenCode's log. */
  logLevel?: "debug" | "info" | "warn" | "error";
  /** OAuth token, usage and profile endpoints (tests point them at a fake). */
  tokenUrl?: string;
  usageUrl?: string;
  profileUrl?: string;
  /** WebAssembly classifier manifests (--plugin). */
  plugins?: string[];
}

/** The part of an AcctpoolClient the plugin uses; tests pass a fake. */
export type PoolClient = Pick<
  AcctpoolClient,
  "start" | "close" | "on" | "once" | "state" | "routeSelect" | "routeReport" | "accountsSetMain" | "accountsLoginStart" | "accountsLoginFinish"
>;

/** How the plugin makes its client (tests replace it). */
export type ClientFactory = (options: ClientOptions) => PoolClient;

const OPTION_KEYS: ReadonlyArray<keyof AcctpoolOpenCodeOptions> = [
  "binaryPath",
  "config",
  "state",
  "logLevel",
  "tokenUrl",
  "usageUrl",
  "profileUrl",
  "plugins",
];

/** parseOptions checks the opencode.json options: unknown keys and wrong types are errors that name the key. */
export function parseOptions(raw: PluginOptions | undefined): AcctpoolOpenCodeOptions {
  const out: AcctpoolOpenCodeOptions = {};
  for (const [k, v] of Object.entries(raw ?? {})) {
    if (!(OPTION_KEYS as readonly string[]).includes(k)) {
      throw new Error(`@acctpool/opencode: unknown option ${JSON.stringify(k)} (known: ${OPTION_KEYS.join(", ")})`);
    }
    if (k === "plugins") {
      if (!Array.isArray(v) || !v.every((p) => typeof p === "string")) throw new Error("@acctpool/opencode: option plugins must be an array of paths");
      out.plugins = v as string[];
      continue;
    }
    if (typeof v !== "string") throw new Error(`@acctpool/opencode: option ${k} must be a string`);
    if (k === "logLevel" && !["debug", "info", "warn", "error"].includes(v)) {
      throw new Error(`@acctpool/opencode: option logLevel must be debug, info, warn or error, not ${JSON.stringify(v)}`);
    }
    (out as Record<string, unknown>)[k] = v;
  }
  return out;
}

/**
 * createAcctpoolPlugin returns the OpenCode plugin. What it does:
 *
 *  - auth hook for provider anthropic: the loader hands OpenCode's stored
 *    OAuth credential to acctpool (accounts/setMain) and gives the provider
 *    acctpool's fetch wrapper, which picks the account for every request,
 *    puts its credential and the OAuth beta flag on it, and falls back to the
 *    next account on 401/403/429;
 *  - main tokens acctpool rotates are written back to OpenCode's auth store
 *    (client.auth.set), so OpenCode never holds a spent refresh token;
 *  - auth methods: log in a Claude Pro/Max account, or add a fallback
 *    account, both through acctpool's OAuth (PKCE) login;
 *  - the server is closed on dispose.
 *
 * The server is started on first use, not when OpenCode loads the plugin.
 */
export function createAcctpoolPlugin(factory: ClientFactory = (o) => new AcctpoolClient(o)): Plugin {
  return async (input: PluginInput, rawOptions?: PluginOptions): Promise<Hooks> => {
    const options = parseOptions(rawOptions);
    const log = (level: LogEntry["level"], message: string) => {
      void input.client.app
        ?.log({ body: { service: "acctpool", level, message } })
        .catch(() => {});
    };
    const client = factory({
      binaryPath: options.binaryPath,
      config: options.config,
      state: options.state,
      logLevel: options.logLevel,
      tokenUrl: options.tokenUrl,
      usageUrl: options.usageUrl,
      profileUrl: options.profileUrl,
      plugins: options.plugins,
      clientInfo: { name: "@acctpool/opencode", version: "0.1.0" },
      logger: (e) => log(e.level, e.source === "server" ? `server: ${e.message}` : e.message),
    });

    let started: Promise<unknown> | undefined;
    /** ready starts the server on first use, and again after a start that failed. */
    const ready = (): Promise<unknown> => {
      if (client.state === "idle" || client.state === "failed") started = client.start();
      return started ?? Promise.resolve();
    };
    const router = {
      routeSelect: async (...a: Parameters<PoolClient["routeSelect"]>) => {
        await ready().catch(() => {}); // the select below fails with the start error, which the wrapper shows
        return client.routeSelect(...a);
      },
      routeReport: (...a: Parameters<PoolClient["routeReport"]>) => client.routeReport(...a),
    };
    const acctpoolFetch = createAcctpoolFetch({ client: router });

    /** The main credential OpenCode holds, as last seen (loader or refresh). */
    let main: MainTokens | undefined;

    // Rotated main tokens go back to OpenCode's store.
    client.on("accounts/mainRefreshed", (tokens: AccountsMainRefreshedParams) => {
      main = { refresh: tokens.refresh, access: tokens.access, expires: tokens.expires };
      void input.client.auth
        .set({ path: { id: PROVIDER_ID }, body: { type: "oauth", refresh: tokens.refresh, access: tokens.access, expires: tokens.expires } })
        .then(
          () => log("info", "stored the refreshed main tokens"),
          (err: unknown) => log("error", `could not store the refreshed main tokens: ${errText(err)}`),
        );
    });

    const auth: AuthHook = {
      provider: PROVIDER_ID,
      async loader(getAuth) {
        const stored = await getAuth();
        if (stored.type === "oauth") {
          main = { refresh: stored.refresh, access: stored.access, expires: stored.expires };
          try {
            await ready();
            await client.accountsSetMain({ access: stored.access, refresh: stored.refresh, expires: stored.expires });
          } catch (err) {
            // The request itself will fail with this error, where the user sees it.
            log("error", `could not hand the main account to acctpool: ${errText(err)}`);
          }
        }
        // apiKey "" keeps the SDK from demanding a key; the wrapper sets each route's credential.
        return { apiKey: "", fetch: acctpoolFetch };
      },
      methods: [
        {
          type: "oauth",
          label: "Claude Pro/Max (acctpool)",
          async authorize() {
            return loginMain(client, ready, log);
          },
        },
        {
          type: "oauth",
          label: "Add a fallback Claude account (acctpool)",
          prompts: [
            {
              type: "text",
              key: "label",
              message: "A name for this account (shown in acctpool's status)",
              placeholder: "work",
              validate: (v) => (/^[A-Za-z0-9._-]{1,64}$/.test(v) ? undefined : "use 1-64 letters, digits, dots, dashes or underscores"),
            },
            {
              type: "select",
              key: "mode",
              message: "Which kind of Claude account",
              options: [
                { label: "Claude Pro/Max", value: "max" },
                { label: "Anthropic Console", value: "console" },
              ],
            },
          ],
          async authorize(inputs) {
            // OpenCode replaces its stored credential with what the login
            // returns: hand back the main account it holds, so adding a
            // fallback never logs the main account out.
            return login(client, ready, log, inputs?.label ?? "", inputs?.mode === "console" ? "console" : "max", async () => main ?? (await storedMain()));
          },
        },
      ],
    };

    return {
      auth,
      async dispose() {
        await client.close();
      },
    };
  };
}

/** An OAuth credential as OpenCode stores it. */
interface MainTokens {
  refresh: string;
  access: string;
  expires: number;
}

/**
 * storedMain reads the anthropic OAuth credential from OpenCode's auth
 * store ($XDG_DATA_HOME/opencode/auth.json, else
 * ~/.local/share/opencode/auth.json) when the plugin has not seen it yet (an
 * `opencode auth login` process never runs the loader). Anything unreadable
 * is "none".
 */
async function storedMain(): Promise<MainTokens | undefined> {
  const dir = process.env.XDG_DATA_HOME || join(homedir(), ".local", "share");
  try {
    const all = JSON.parse(await readFile(join(dir, "opencode", "auth.json"), "utf8")) as Record<string, unknown>;
    const a = all[PROVIDER_ID] as Partial<MainTokens> & { type?: string };
    if (a?.type === "oauth" && typeof a.refresh === "string" && typeof a.access === "string" && typeof a.expires === "number") {
      return { refresh: a.refresh, access: a.access, expires: a.expires };
    }
  } catch {
    // no store, or not ours to judge
  }
  return undefined;
}

type OAuthResult = Awaited<ReturnType<Extract<AuthHook["methods"][number], { type: "oauth" }>["authorize"]>>;

/**
 * login runs acctpool's PKCE login for a fallback account:
 * accounts/login/start gives the authorize URL, the user pastes the code
 * Claude shows, accounts/login/finish exchanges it and adds the account to
 * acctpool's pool, which keeps its tokens. OpenCode keeps the main
 * credential it holds (keep), or POOL_KEY when it has none, so that it calls
 * the loader; a fallback's tokens never pass through OpenCode.
 */
async function login(
  client: PoolClient,
  ready: () => Promise<unknown>,
  log: (level: LogEntry["level"], message: string) => void,
  label: string,
  mode: "max" | "console" | undefined,
  keep: () => Promise<MainTokens | undefined>,
): Promise<OAuthResult> {
  return pkce(client, ready, log, mode, async (code, state) => {
    const account = await client.accountsLoginFinish({ code, state, ...(label ? { label } : {}) });
    log("info", `added ${account.label ?? account.id} to the acctpool pool`);
    const main = await keep();
    return main ? { type: "success", ...main } : { type: "success", key: POOL_KEY };
  });
}

/**
 * loginMain runs acctpool's PKCE login for OpenCode's own (main) account:
 * accounts/login/finish with main: true makes it acctpool's main account,
 * and acctpool hands its tokens to the host as accounts/mainRefreshed (they
 * are never in a result). OpenCode stores them as its anthropic OAuth
 * credential, so the loader hands them back on every start.
 */
async function loginMain(
  client: PoolClient,
  ready: () => Promise<unknown>,
  log: (level: LogEntry["level"], message: string) => void,
): Promise<OAuthResult> {
  return pkce(client, ready, log, "max", async (code, state) => {
    const handed = client.once("accounts/mainRefreshed");
    await client.accountsLoginFinish({ code, state, main: true });
    const t = await handed;
    log("info", "logged in the main account through acctpool");
    return { type: "success", refresh: t.refresh, access: t.access, expires: t.expires };
  });
}

type OAuthCallbackResult = Awaited<ReturnType<Extract<OAuthResult, { method: "code" }>["callback"]>>;

/** pkce starts a login and finishes it with the code the user pastes; a failure is logged and answered "failed". */
async function pkce(
  client: PoolClient,
  ready: () => Promise<unknown>,
  log: (level: LogEntry["level"], message: string) => void,
  mode: "max" | "console" | undefined,
  finish: (code: string, state: string) => Promise<OAuthCallbackResult>,
): Promise<OAuthResult> {
  await ready();
  const start = await client.accountsLoginStart(mode ? { mode } : {});
  return {
    url: start.url,
    instructions: "Open the link, authorize, and paste the code Claude shows (code#state) here.",
    method: "code",
    async callback(code: string) {
      try {
        return await finish(code, start.state);
      } catch (err) {
        log("error", `acctpool login failed: ${errText(err)}`);
        return { type: "failed" };
      }
    },
  };
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
