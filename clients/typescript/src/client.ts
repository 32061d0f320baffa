import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { delimiter, dirname, join, sep } from "node:path";
import { fileURLToPath } from "node:url";
import {
  CancellationTokenSource,
  ResponseError,
  StreamMessageReader,
  StreamMessageWriter,
  createMessageConnection,
  type MessageConnection,
} from "vscode-jsonrpc/node";

import { AcctpoolError } from "./errors.js";
import {
  AcctpoolMethods,
  SERVER_NOTIFICATION_NAMES,
  type AccountsSetMainParams,
  type CallOptions,
  type InitializeParams,
  type InitializeResult,
  type MethodName,
  type Methods,
  type ServerNotifications,
} from "./generated/protocol.js";

/** The acctpool protocol versions this client speaks, newest first. */
export const PROTOCOL_VERSIONS = ["1.0"] as const;

/** The server binary's file name: `acctpool` (`acctpool.exe` on Windows), in the platform package's bin/, the repository's bin/ (scripts/build) and on PATH. */
export const SERVER_BINARY = process.platform === "win32" ? "acctpool.exe" : "acctpool";

/**
 * platformPackage is the npm package that carries the prebuilt server for
 * a platform and CPU (process.platform, process.arch): `@acctpool/server-linux-x64`,
 * `@acctpool/server-darwin-arm64`, `@acctpool/server-win32-x64`, ... Each is
 * an optionalDependency of @acctpool/client, so npm installs only the one
 * that matches the machine.
 */
export function platformPackage(platform: string = process.platform, arch: string = process.arch): string {
  return `@acctpool/server-${platform}-${arch}`;
}

/** One line for the host's log: a server stderr line or a client message. */
export interface LogEntry {
  /** "server" for a line of the server's stderr, "client" for the client's own notes. */
  source: "server" | "client";
  level: "debug" | "info" | "warn" | "error";
  message: string;
  /** The server process id the line belongs to. */
  pid?: number;
}

/** Restart policy after the server exits on its own. */
export interface RestartOptions {
  /** First delay before a restart, ms (default 100). */
  initialDelayMs?: number;
  /** Delay cap, ms (default 5000). */
  maxDelayMs?: number;
  /** Consecutive failed starts or early crashes before giving up until the next call (default 6). */
  maxAttempts?: number;
  /** A server that stayed up this long resets the backoff, ms (default 10000). */
  stableAfterMs?: number;
}

/** Options of AcctpoolClient. Every field is optional. */
export interface ClientOptions {
  /** The server binary. Default: see findServer ($ACCTPOOL_SERVER, the platform package, acctpool on PATH). */
  binaryPath?: string;
  /** Arguments before the flags (default ["serve"], the acctpool binary's server subcommand; [] for a binary that is the server alone). */
  command?: string[];
  /** --config: anthropic-auth.json. */
  config?: string;
  /** --state: anthropic-auth-state.json. */
  state?: string;
  /** --token-url, --usage-url, --profile-url: Anthropic endpoints (tests point them at a fake). */
  tokenUrl?: string;
  usageUrl?: string;
  profileUrl?: string;
  /** --clock manual (conformance and tests only). */
  clock?: "manual";
  /** --log-level of the server (default info). */
  logLevel?: "debug" | "info" | "warn" | "error";
  /** --plugin manifests. */
  plugins?: string[];
  /** More arguments, appended as given. */
  extraArgs?: string[];
  /** Environment of the server (default process.env). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Receives every server stderr line and the client's own notes (default: dropped). */
  logger?: (entry: LogEntry) => void;
  /** clientInfo of initialize (default {name: "acctpool-ts"}). */
  clientInfo?: { name: string; version?: string };
  /** processId of initialize: the server exits when it dies (default process.pid; null to omit). */
  processId?: number | null;
  /** Timeout of each call, ms (default 30000; 0 for none). */
  requestTimeoutMs?: number;
  /** Timeout of spawn + initialize, ms (default 10000). */
  startTimeoutMs?: number;
  /** How long close() waits for shutdown and then for the exit, ms (default 2000). */
  shutdownGraceMs?: number;
  /** Restart policy; false to stay down after a crash. */
  restart?: RestartOptions | false;
  /** Send the last accounts/setMain credentials (or the newest from accounts/mainRefreshed) to a restarted server (default true). */
  replayMainCredentials?: boolean;
  /** Kill the server when this Node process exits (default true). */
  killOnHostExit?: boolean;
}

/** What ended a server process. */
export interface ExitInfo {
  pid: number | undefined;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when close() asked for it. */
  expected: boolean;
  /** The last stderr lines before the exit. */
  stderrTail: string[];
}

/** The events of a client: the server's notifications plus lifecycle events. */
export interface ClientEvents extends ServerNotifications {
  /** A server finished initialize (first start and every restart). */
  ready: InitializeResult & { pid: number | undefined; restarts: number };
  /** A server process exited. */
  exit: ExitInfo;
  /** A restart is scheduled. */
  restarting: { attempt: number; delayMs: number; reason: string };
}

type Listener<T> = (value: T) => void;

/** Methods that may be sent again on a fresh server when the first one died before answering. */
const RESENDABLE = new Set<string>([
  "ping",
  "rpc.discover",
  "accounts/list",
  "accounts/get",
  "quota/get",
  "config/get",
  "plugins/list",
  // A selection whose answer never arrived did not reach the host; asking again is safe.
  "route/select",
]);

const STDERR_TAIL = 20;

/**
 * Session is one server process and its connection.
 */
class Session {
  readonly child: ChildProcess;
  readonly conn: MessageConnection;
  readonly pending = new Set<(err: AcctpoolError) => void>();
  readonly exited: Promise<ExitInfo>;
  readonly stderrTail: string[] = [];
  readyAt = 0;
  closing = false;
  /** Set once the connection failed or the process exited: no new calls. */
  dead = false;
  exitInfo: ExitInfo | undefined;
  private stderrBuf = "";

  constructor(
    bin: string,
    args: string[],
    opts: ClientOptions,
    private readonly log: (e: LogEntry) => void,
    onNotification: (method: string, params: unknown) => void,
    onExit: (s: Session, info: ExitInfo) => void,
  ) {
    this.child = spawn(bin, args, {
      stdio: ["pipe", "pipe", "pipe"],
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      windowsHide: true,
    });
    const child = this.child;
    // EPIPE after a crash surfaces as a connection error; don't let it throw.
    child.stdin!.on("error", (err) => this.log({ source: "client", level: "debug", message: `server stdin: ${err.message}`, pid: child.pid }));
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (chunk: string) => this.onStderr(chunk));
    child.stderr!.on("end", () => this.flushStderr());

    this.exited = new Promise<ExitInfo>((resolve) => {
      let spawnError: Error | undefined;
      child.once("error", (err) => {
        spawnError = err;
        // A failed spawn emits no exit event.
        if (child.pid === undefined) finish(null, null);
      });
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        this.flushStderr();
        if (spawnError && child.pid === undefined) this.stderrTail.push(`spawn ${bin}: ${spawnError.message}`);
        const info: ExitInfo = { pid: child.pid, code, signal, expected: this.closing, stderrTail: [...this.stderrTail] };
        this.dead = true;
        this.exitInfo = info;
        // The client moves on (new ready promise) before any caller sees the loss.
        onExit(this, info);
        this.failPending(
          new AcctpoolError(`acctpool server exited (${describeExit(info)}) before answering${tailText(info)}`, {
            kind: "connection_lost",
          }),
        );
        this.conn.dispose();
        resolve(info);
      };
      child.once("exit", (code, signal) => finish(code, signal));
    });

    const reader = new StreamMessageReader(child.stdout!);
    // vscode-jsonrpc re-arms a 10 s "partial message" timer for as long as a
    // header's body is missing, even after the stream closed: a server that
    // died mid-message would keep the host's Node process alive forever.
    // Nothing listens to that timer's event; a call to a server that stops
    // mid-message still ends by its timeout, the exit or the close.
    reader.partialMessageTimeout = 0;
    this.conn = createMessageConnection(reader, new StreamMessageWriter(child.stdin!), {
      error: (message) => this.log({ source: "client", level: "error", message, pid: child.pid }),
      warn: (message) => this.log({ source: "client", level: "warn", message, pid: child.pid }),
      info: (message) => this.log({ source: "client", level: "info", message, pid: child.pid }),
      log: (message) => this.log({ source: "client", level: "debug", message, pid: child.pid }),
    });
    for (const name of SERVER_NOTIFICATION_NAMES) {
      this.conn.onNotification(name, (params: unknown) => onNotification(name, params));
    }
    this.conn.onUnhandledNotification((msg) =>
      this.log({ source: "client", level: "debug", message: `unhandled notification ${msg.method}`, pid: child.pid }),
    );
    this.conn.onError(([err]) => {
      this.log({ source: "client", level: "debug", message: `connection: ${err.message}`, pid: child.pid });
    });
    // A server whose stdout closed is of no use even if it still runs.
    this.conn.onClose(() => {
      this.dead = true;
      if (this.closing) return;
      setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      }, 1_000).unref();
    });
    this.conn.listen();
  }

  private onStderr(chunk: string): void {
    this.stderrBuf += chunk;
    let nl: number;
    while ((nl = this.stderrBuf.indexOf("\n")) >= 0) {
      this.line(this.stderrBuf.slice(0, nl));
      this.stderrBuf = this.stderrBuf.slice(nl + 1);
    }
  }

  private flushStderr(): void {
    if (this.stderrBuf) this.line(this.stderrBuf);
    this.stderrBuf = "";
  }

  private line(text: string): void {
    const line = text.replace(/\r$/, "");
    if (!line) return;
    this.stderrTail.push(line);
    if (this.stderrTail.length > STDERR_TAIL) this.stderrTail.shift();
    this.log({ source: "server", level: levelOf(line), message: line, pid: this.child.pid });
  }

  failPending(err: AcctpoolError): void {
    for (const reject of this.pending) reject(err);
    this.pending.clear();
  }

  /** call sends one request and settles on its answer, the timeout, the signal or the exit. */
  call<T>(method: string, params: unknown, timeoutMs: number, signal: AbortSignal | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const cts = new CancellationTokenSource();
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        this.pending.delete(fail);
        if (timer) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        cts.dispose();
      };
      const fail = (err: AcctpoolError) => {
        done();
        reject(err);
      };
      const onAbort = () => {
        cts.cancel();
        fail(new AcctpoolError(`${method}: aborted`, { kind: "aborted", method, cause: signal?.reason }));
      };
      if (signal?.aborted) {
        reject(new AcctpoolError(`${method}: aborted`, { kind: "aborted", method, cause: signal.reason }));
        return;
      }
      this.pending.add(fail);
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs > 0) {
        timer = setTimeout(() => {
          cts.cancel();
          fail(new AcctpoolError(`${method}: no answer within ${timeoutMs} ms`, { kind: "timeout", method }));
        }, timeoutMs);
      }
      if (this.dead) {
        fail(new AcctpoolError(`${method}: the server connection is gone`, { kind: "connection_lost", method }));
        return;
      }
      let sent: Promise<T>;
      try {
        sent =
          params === undefined
            ? this.conn.sendRequest<T>(method, cts.token)
            : this.conn.sendRequest<T>(method, params, cts.token);
      } catch (err) {
        fail(toAcctpoolError(err, method));
        return;
      }
      sent.then(
        (result) => {
          if (!this.pending.has(fail)) return;
          done();
          resolve(result);
        },
        (err) => {
          if (!this.pending.has(fail)) return;
          const e = toAcctpoolError(err, method);
          if (e.kind === "connection_lost") this.dead = true;
          fail(e);
        },
      );
    });
  }
}

function levelOf(line: string): LogEntry["level"] {
  const m = /\blevel=(DEBUG|INFO|WARN|ERROR)/.exec(line);
  return m ? (m[1].toLowerCase() as LogEntry["level"]) : "info";
}

function describeExit(info: ExitInfo): string {
  if (info.pid === undefined) return "never started";
  return info.signal ? `signal ${info.signal}` : `code ${info.code}`;
}

function tailText(info: ExitInfo): string {
  const last = info.stderrTail.slice(-3);
  return last.length ? `; last log lines:\n  ${last.join("\n  ")}` : "";
}

/** toAcctpoolError maps a vscode-jsonrpc failure to an AcctpoolError. */
function toAcctpoolError(err: unknown, method: string): AcctpoolError {
  if (err instanceof AcctpoolError) return err;
  if (err instanceof ResponseError) {
    const data = typeof err.data === "object" && err.data !== null ? (err.data as Record<string, unknown>) : undefined;
    // -32099..-32096 are vscode-jsonrpc's own: the connection is gone.
    if (err.code >= -32099 && err.code <= -32096) {
      return new AcctpoolError(`${method}: ${err.message}`, { kind: "connection_lost", code: err.code, method, cause: err });
    }
    const kind = typeof data?.kind === "string" ? data.kind : "rpc_error";
    return new AcctpoolError(err.message, { kind, code: err.code, data, method, cause: err });
  }
  const message = err instanceof Error ? err.message : String(err);
  return new AcctpoolError(`${method}: ${message}`, { kind: "connection_lost", method, cause: err });
}

/** Where findServer found the binary, or what it looked for. */
export interface ServerLookup {
  /** The binary, when one was found. */
  path: string | undefined;
  /** How it was found: the binaryPath option, $ACCTPOOL_SERVER, the repository's bin/, the platform package, or PATH. */
  source: "option" | "env" | "repository" | "platform-package" | "path" | undefined;
  /** Every place looked at, in order, for the error message. */
  tried: string[];
  /** The platform package expected on this machine. */
  platformPackage: string;
}

/**
 * findServer finds the server binary, in this order:
 *
 *  1. $ACCTPOOL_SERVER;
 *  2. bin/acctpool in the nearest ancestor directory that has one, while
 *     this package runs from a source checkout (not from node_modules): the
 *     repository root, where scripts/build writes it;
 *  3. the platform package (platformPackage()), resolved from this package;
 *  4. the first acctpool on PATH.
 *
 * The binaryPath option, checked by the client before this, overrides all.
 */
export function findServer(env: NodeJS.ProcessEnv = process.env): ServerLookup {
  const pkg = platformPackage();
  const tried: string[] = [];
  const found = (path: string, source: ServerLookup["source"]): ServerLookup => ({ path, source, tried, platformPackage: pkg });
  if (env.ACCTPOOL_SERVER) return found(env.ACCTPOOL_SERVER, "env");
  tried.push("$ACCTPOOL_SERVER (unset)");
  const here = dirname(fileURLToPath(import.meta.url));
  if (!here.split(sep).includes("node_modules")) {
    for (let dir = here; ; ) {
      const candidate = join(dir, "bin", SERVER_BINARY);
      if (isFile(candidate)) return found(candidate, "repository");
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
    tried.push(`bin/${SERVER_BINARY} above ${here}`);
  }
  try {
    const manifest = createRequire(import.meta.url).resolve(`${pkg}/package.json`);
    const candidate = join(dirname(manifest), "bin", SERVER_BINARY);
    if (isFile(candidate)) return found(candidate, "platform-package");
    tried.push(`${candidate} (package ${pkg} installed without its binary)`);
  } catch {
    tried.push(`the npm package ${pkg} (not installed)`);
  }
  for (const p of (env.PATH ?? "").split(delimiter)) {
    if (p && isFile(join(p, SERVER_BINARY))) return found(join(p, SERVER_BINARY), "path");
  }
  tried.push(`${SERVER_BINARY} on PATH`);
  return { path: undefined, source: undefined, tried, platformPackage: pkg };
}

/** defaultServerPath is findServer(env).path: the binary a client with no binaryPath spawns, or undefined. */
export function defaultServerPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  return findServer(env).path;
}

/** notFoundMessage says what was looked for and how to fix it. */
function notFoundMessage(lookup: ServerLookup): string {
  return (
    `acctpool server binary not found: looked for ${lookup.tried.join(", ")}. ` +
    `Fix: install ${lookup.platformPackage} (npm installs it with @acctpool/client unless optional dependencies are omitted, ` +
    `e.g. --omit=optional or --no-optional, or the lockfile was made on another platform), ` +
    `or set ACCTPOOL_SERVER to an acctpool binary (go install github.com/acctpool/acctpool/cmd/acctpool@latest)`
  );
}

/** startFix says how to fix a binary that was found but does not start. */
function startFix(bin: string, source: ServerLookup["source"]): string {
  const where =
    source === "option"
      ? "the binaryPath option"
      : source === "env"
        ? "$ACCTPOOL_SERVER"
        : source === "platform-package"
          ? `the platform package ${platformPackage()}`
          : source === "repository"
            ? "the repository's bin/ (rebuild it with scripts/build)"
            : "PATH";
  return `Fix: check that ${bin} (from ${where}) is an acctpool binary for ${process.platform}-${process.arch} and runs (\`${bin} serve --help\`), or set ACCTPOOL_SERVER to one that does`;
}

function isFile(p: string): boolean {
  try {
    return existsSync(p) && statSync(p).isFile();
  } catch {
    return false;
  }
}


type State = "idle" | "starting" | "ready" | "waiting" | "failed" | "closing" | "closed";

/**
 * AcctpoolClient runs one acctpool server and calls it. It spawns the
 * server on start(), speaks LSP-framed JSON-RPC through vscode-jsonrpc, runs
 * initialize and initialized, drains stderr into the logger, restarts the
 * server with backoff when it dies, and shuts it down on close().
 *
 *     const client = await AcctpoolClient.start({ logger: (e) => console.error(e.message) });
 *     client.on("accounts/mainRefreshed", (c) => saveMainTokens(c));
 *     const route = await client.routeSelect({ model: "claude-sonnet-4-5" });
 *     await client.close();
 *
 * Calls made while the server is (re)starting wait for it, within their
 * timeout. A call in flight when the server dies rejects with kind
 * "connection_lost", except for read-only calls and route/select, which are
 * sent once more to the new server.
 */
export class AcctpoolClient extends AcctpoolMethods {
  readonly options: Readonly<ClientOptions>;
  #state: State = "idle";
  #session: Session | undefined;
  #ready: Promise<Session> | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #attempts = 0;
  #restarts = 0;
  #lastError: AcctpoolError | undefined;
  #listeners = new Map<keyof ClientEvents, Set<Listener<never>>>();
  #mainCredentials: AccountsSetMainParams | undefined;
  #info: InitializeResult | undefined;
  #hostExitHook = () => this.#session?.child.kill("SIGKILL");

  constructor(options: ClientOptions = {}) {
    super();
    this.options = { ...options };
  }

  /** start creates a client and waits for its server to be initialized. */
  static async start(options: ClientOptions = {}): Promise<AcctpoolClient> {
    const client = new AcctpoolClient(options);
    await client.start();
    return client;
  }

  /** The initialize result of the current server. */
  get serverInfo(): InitializeResult | undefined {
    return this.#info;
  }

  /** The current server's process id. */
  get pid(): number | undefined {
    return this.#session?.child.pid;
  }

  /** How many times the server was restarted. */
  get restarts(): number {
    return this.#restarts;
  }

  /** The client's state: idle, starting, ready, waiting (to restart), failed, closing or closed. */
  get state(): State {
    return this.#state;
  }

  /** start spawns and initializes the server (once; later calls return the same promise). */
  async start(): Promise<InitializeResult> {
    if (this.#state === "closing" || this.#state === "closed") {
      throw new AcctpoolError("client is closed", { kind: "client_closed" });
    }
    if (this.#state === "idle") {
      if (this.options.killOnHostExit !== false) process.once("exit", this.#hostExitHook);
      this.#cycle();
    }
    await this.#session_();
    return this.#info!;
  }

  /** on subscribes to a notification or lifecycle event; it returns the unsubscribe function. */
  on<E extends keyof ClientEvents>(event: E, listener: Listener<ClientEvents[E]>): () => void {
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  /** off removes a listener added with on. */
  off<E extends keyof ClientEvents>(event: E, listener: Listener<ClientEvents[E]>): void {
    this.#listeners.get(event)?.delete(listener as Listener<never>);
  }

  /** once resolves with the next value of an event. */
  once<E extends keyof ClientEvents>(event: E): Promise<ClientEvents[E]> {
    return new Promise((resolve) => {
      const off = this.on(event, (v) => {
        off();
        resolve(v);
      });
    });
  }

  #emit<E extends keyof ClientEvents>(event: E, value: ClientEvents[E]): void {
    for (const l of [...(this.#listeners.get(event) ?? [])]) {
      try {
        (l as Listener<ClientEvents[E]>)(value);
      } catch (err) {
        this.#log("error", `listener of ${String(event)} threw: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  #log(level: LogEntry["level"], message: string): void {
    this.#logEntry({ source: "client", level, message, pid: this.#session?.child.pid });
  }

  #logEntry = (entry: LogEntry): void => {
    try {
      this.options.logger?.(entry);
    } catch {
      // A failing logger must not take the client down.
    }
  };

  /**
   * request calls any method by name. The generated methods (routeSelect,
   * accountsList, ...) call it; use it for methods newer than this client.
   */
  async request<M extends MethodName>(
    method: M,
    params: Methods[M]["params"] | undefined,
    options: CallOptions = {},
  ): Promise<Methods[M]["result"]> {
    const timeoutMs = options.timeoutMs ?? this.options.requestTimeoutMs ?? 30_000;
    const deadline = timeoutMs > 0 ? Date.now() + timeoutMs : Infinity;
    const wire = params === undefined || (typeof params === "object" && params !== null && Object.keys(params).length === 0) ? undefined : params;
    for (let attempt = 0; ; attempt++) {
      const session = await this.#sessionWithin(method, deadline, options.signal);
      const left = deadline === Infinity ? 0 : Math.max(1, deadline - Date.now());
      try {
        const result = await session.call<Methods[M]["result"]>(method, wire, left, options.signal);
        if (method === "accounts/setMain" && params) this.#mainCredentials = { ...(params as AccountsSetMainParams) };
        return result;
      } catch (err) {
        if (err instanceof AcctpoolError && err.kind === "connection_lost" && attempt === 0 && RESENDABLE.has(method)) {
          this.#log("info", `${method}: server died before answering; sending again to the restarted server`);
          continue;
        }
        throw err;
      }
    }
  }

  /** notify sends a notification to the server (rarely needed; lifecycle is handled). */
  async notify(method: string, params?: object): Promise<void> {
    const session = await this.#session_();
    await session.conn.sendNotification(method, params);
  }

  async #sessionWithin(method: string, deadline: number, signal: AbortSignal | undefined): Promise<Session> {
    const cur = this.#session;
    if (this.#state === "ready" && cur && !cur.dead) return cur;
    // A dead server not yet reaped: its exit moves the client to the next cycle.
    const waiting = this.#state === "ready" && cur ? cur.exited.then(() => this.#session_()) : this.#session_();
    if (deadline === Infinity && !signal) return waiting;
    return new Promise<Session>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const onAbort = () => finish(() => reject(new AcctpoolError(`${method}: aborted`, { kind: "aborted", method, cause: signal?.reason })));
      const finish = (f: () => void) => {
        if (timer) clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
        f();
      };
      if (signal?.aborted) return onAbort();
      signal?.addEventListener("abort", onAbort, { once: true });
      if (deadline !== Infinity) {
        timer = setTimeout(
          () =>
            finish(() =>
              reject(
                new AcctpoolError(`${method}: the server was not ready within the timeout${this.#lastError ? ` (${this.#lastError.message})` : ""}`, {
                  kind: "timeout",
                  method,
                  cause: this.#lastError,
                }),
              ),
            ),
          Math.max(0, deadline - Date.now()),
        );
      }
      waiting.then(
        (s) => finish(() => resolve(s)),
        (e) => finish(() => reject(e)),
      );
    });
  }

  /** #session_ returns the ready session, starting a new cycle if the client gave up earlier. */
  #session_(): Promise<Session> {
    switch (this.#state) {
      case "closing":
      case "closed":
        return Promise.reject(new AcctpoolError("client is closed", { kind: "client_closed" }));
      case "idle":
        return Promise.reject(new AcctpoolError("client not started: call start() first", { kind: "server_unavailable" }));
      case "failed":
        this.#attempts = 0;
        this.#cycle();
        break;
    }
    return this.#ready!;
  }

  /** #cycle makes a new ready promise and starts (now or after the backoff) until a server is up or the attempts run out. */
  #cycle(delayMs = 0, reason = "start"): void {
    const firstStart = reason === "start";
    let resolve!: (s: Session) => void;
    let reject!: (e: AcctpoolError) => void;
    this.#ready = new Promise<Session>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Callers attach their own handlers; this keeps an unobserved failure quiet.
    this.#ready.catch(() => {});
    const attempt = async (delay: number, why: string): Promise<void> => {
      if (delay > 0) {
        this.#state = "waiting";
        this.#emit("restarting", { attempt: this.#attempts, delayMs: delay, reason: why });
        this.#log("warn", `restarting the server in ${delay} ms (attempt ${this.#attempts}): ${why}`);
        await new Promise<void>((r) => {
          this.#restartTimer = setTimeout(r, delay);
          this.#wake = r;
        });
        this.#restartTimer = undefined;
        this.#wake = undefined;
      }
      if (this.#closed()) {
        reject(new AcctpoolError("client is closed", { kind: "client_closed" }));
        return;
      }
      this.#state = "starting";
      try {
        const session = await this.#launch();
        if (this.#closed()) {
          session.closing = true;
          void this.#stop(session, this.options.shutdownGraceMs ?? 2_000);
          reject(new AcctpoolError("client is closed", { kind: "client_closed" }));
          return;
        }
        this.#state = "ready";
        this.#lastError = undefined;
        resolve(session);
      } catch (err) {
        const e = err instanceof AcctpoolError ? err : new AcctpoolError(String(err), { kind: "server_unavailable", cause: err });
        this.#lastError = e;
        if (this.#closed()) {
          reject(new AcctpoolError("client is closed", { kind: "client_closed", cause: e }));
          return;
        }
        this.#attempts++;
        // A server that cannot start (not found, not executable, exits or
        // hangs before answering initialize) is not retried: trying again
        // would fail the same way, only later. Restarts after a server that
        // was up follow the restart policy.
        const next = firstStart ? undefined : this.#backoff();
        if (next === undefined) {
          this.#state = "failed";
          this.#log("error", firstStart ? `the server cannot start: ${e.message}` : `giving up on the server after ${this.#attempts} attempts: ${e.message}`);
          reject(
            new AcctpoolError(`acctpool server unavailable: ${e.message}`, { kind: "server_unavailable", data: e.data, cause: e }),
          );
          return;
        }
        await attempt(next, e.message);
      }
    };
    void attempt(delayMs, reason);
  }

  #closed(): boolean {
    return this.#state === "closing" || this.#state === "closed";
  }

  /** #backoff is the delay before the next attempt, or undefined to give up. */
  #backoff(): number | undefined {
    const r = this.options.restart;
    if (r === false) return undefined;
    const max = r?.maxAttempts ?? 6;
    if (this.#attempts > max) return undefined;
    const initial = r?.initialDelayMs ?? 100;
    const cap = r?.maxDelayMs ?? 5_000;
    return Math.min(cap, initial * 2 ** Math.max(0, this.#attempts - 1));
  }

  /** #launch spawns one server and initializes it. */
  async #launch(): Promise<Session> {
    const lookup: ServerLookup = this.options.binaryPath
      ? { path: this.options.binaryPath, source: "option", tried: [], platformPackage: platformPackage() }
      : findServer(this.options.env ?? process.env);
    const bin = lookup.path;
    if (!bin) throw new AcctpoolError(notFoundMessage(lookup), { kind: "server_unavailable", data: { tried: lookup.tried, platformPackage: lookup.platformPackage } });
    const session = new Session(
      bin,
      this.#args(),
      this.options,
      this.#logEntry,
      (method, params) => this.#onNotification(method, params),
      (s, info) => this.#onExit(s, info),
    );
    this.#session = session;
    const timeout = this.options.startTimeoutMs ?? 10_000;
    try {
      const params: InitializeParams = {
        protocolVersion: PROTOCOL_VERSIONS[0],
        clientInfo: this.options.clientInfo ?? { name: "acctpool-ts", version: "0.1.0" },
        capabilities: {},
      };
      const pid = this.options.processId === undefined ? process.pid : this.options.processId;
      if (pid !== null) params.processId = pid;
      const info = await session.call<InitializeResult>("initialize", params, timeout, undefined);
      if (!(PROTOCOL_VERSIONS as readonly string[]).includes(info.protocolVersion)) {
        throw new AcctpoolError(
          `acctpool server speaks protocol ${info.protocolVersion}; this client speaks ${PROTOCOL_VERSIONS.join(", ")}`,
          { kind: "server_unavailable" },
        );
      }
      await session.conn.sendNotification("initialized", {});
      if (this.#restarts > 0 || this.#attempts > 0) await this.#replayMain(session, timeout);
      session.readyAt = Date.now();
      this.#info = info;
      this.#log("info", `server ready: ${info.serverInfo.name} ${info.serverInfo.version}, protocol ${info.protocolVersion}`);
      this.#emit("ready", { ...info, pid: session.child.pid, restarts: this.#restarts });
      return session;
    } catch (err) {
      session.closing = true;
      session.child.kill("SIGKILL");
      await session.exited;
      const e = err instanceof AcctpoolError ? err : toAcctpoolError(err, "initialize");
      throw new AcctpoolError(`start acctpool server ${bin}: ${e.message}. ${startFix(bin, lookup.source)}`, {
        kind: "server_unavailable",
        data: { path: bin },
        cause: e,
      });
    }
  }

  async #replayMain(session: Session, timeout: number): Promise<void> {
    if (this.options.replayMainCredentials === false || !this.#mainCredentials) return;
    try {
      await session.call("accounts/setMain", this.#mainCredentials, timeout, undefined);
      this.#log("info", "main credentials handed to the restarted server");
    } catch (err) {
      this.#log("warn", `could not hand the main credentials to the restarted server: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  #args(): string[] {
    const o = this.options;
    const args: string[] = [...(o.command ?? ["serve"])];
    const flag = (name: string, v: string | undefined) => {
      if (v !== undefined) args.push(`--${name}`, v);
    };
    flag("config", o.config);
    flag("state", o.state);
    flag("token-url", o.tokenUrl);
    flag("usage-url", o.usageUrl);
    flag("profile-url", o.profileUrl);
    flag("clock", o.clock);
    flag("log-level", o.logLevel);
    for (const p of o.plugins ?? []) flag("plugin", p);
    args.push(...(o.extraArgs ?? []));
    return args;
  }

  #onNotification(method: string, params: unknown): void {
    if (method === "accounts/mainRefreshed" && params && typeof params === "object") {
      this.#mainCredentials = { ...(params as AccountsSetMainParams) };
    }
    this.#emit(method as keyof ServerNotifications, params as never);
  }

  #onExit(session: Session, info: ExitInfo): void {
    this.#emit("exit", info);
    if (session !== this.#session || session.closing) return;
    this.#log("warn", `server exited unexpectedly (${describeExit(info)})${tailText(info)}`);
    if (this.#state !== "ready") return; // a start in progress handles its own failure
    const stableAfterMs = (this.options.restart || undefined)?.stableAfterMs ?? 10_000;
    if (session.readyAt > 0 && Date.now() - session.readyAt >= stableAfterMs) {
      this.#attempts = 0;
    }
    this.#attempts++;
    this.#restarts++;
    const delay = this.#backoff();
    if (delay === undefined) {
      this.#state = "failed";
      this.#lastError = new AcctpoolError(`acctpool server exited (${describeExit(info)})`, { kind: "server_unavailable" });
      this.#log("error", "not restarting the server (restart policy)");
      this.#ready = Promise.reject(this.#lastError);
      this.#ready.catch(() => {});
      return;
    }
    this.#cycle(delay, `server exited (${describeExit(info)})`);
  }

  /** restart stops the current server (if any) and starts a fresh one. */
  async restart(): Promise<InitializeResult> {
    if (this.#state === "closing" || this.#state === "closed") throw new AcctpoolError("client is closed", { kind: "client_closed" });
    const old = this.#session;
    if (old) {
      old.closing = true;
      await this.#stop(old, this.options.shutdownGraceMs ?? 2_000);
    }
    this.#attempts = 0;
    this.#restarts++;
    this.#cycle();
    await this.#ready;
    return this.#info!;
  }

  /**
   * close shuts the server down: shutdown, exit, then SIGTERM and SIGKILL if
   * it has not exited within the grace period. Calls in flight reject with
   * kind "client_closed". It resolves with the server's exit.
   */
  async close(options: { graceMs?: number } = {}): Promise<ExitInfo | undefined> {
    if (this.#state === "closed") return undefined;
    const grace = options.graceMs ?? this.options.shutdownGraceMs ?? 2_000;
    this.#state = "closing";
    process.removeListener("exit", this.#hostExitHook);
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    this.#wake?.(); // a pending restart sees the close and rejects its waiters
    const session = this.#session;
    let info: ExitInfo | undefined;
    if (session) {
      session.closing = true;
      info = await this.#stop(session, grace);
    }
    this.#state = "closed";
    return info;
  }

  async #stop(session: Session, grace: number): Promise<ExitInfo> {
    const exited = session.exited;
    if (!session.exitInfo) {
      try {
        await session.call("shutdown", undefined, grace, undefined);
        await session.conn.sendNotification("exit");
      } catch (err) {
        this.#log("debug", `shutdown: ${err instanceof Error ? err.message : String(err)}`);
      }
      session.failPending(new AcctpoolError("client is closed", { kind: "client_closed" }));
      session.child.stdin?.end();
      let timer: NodeJS.Timeout | undefined;
      const waited = await Promise.race([
        exited.then(() => true),
        new Promise<false>((r) => (timer = setTimeout(() => r(false), grace))),
      ]);
      clearTimeout(timer);
      if (!waited) {
        this.#log("warn", `server did not exit within ${grace} ms; killing it`);
        session.child.kill("SIGTERM");
        const termed = await Promise.race([
          exited.then(() => true),
          new Promise<false>((r) => (timer = setTimeout(() => r(false), Math.min(grace, 1_000)))),
        ]);
        clearTimeout(timer);
        if (!termed) session.child.kill("SIGKILL");
      }
    }
    return exited;
  }
}
