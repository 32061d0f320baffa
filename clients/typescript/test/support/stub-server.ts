// A tiny LSP-framed JSON-RPC server for the client's own machinery tests
// (timeouts, cancellation, crash loops, a server that ignores shutdown),
// run as `node stub-server.js MODE`. Modes:
//   normal           answers initialize, shutdown, ping; never answers route/select;
//                    answers $/cancelRequest'ed requests with -32800 and logs "cancel <id>"
//   crash-on-start   logs a reason to stderr and exits 3 before reading anything
//   crash-after-init exits 4 right after answering initialize
//   ignore-shutdown  never answers shutdown, ignores exit, stdin EOF and SIGTERM
//   notify           sends every server notification after initialized
//   no-stdout        closes stdout after initialize but keeps running
//   half-reply       answers ping with a header and half its body, then exits 5
const mode = process.argv[2] ?? "normal";
const log = (s: string) => process.stderr.write(`level=INFO msg="${s}"\n`);

if (mode === "crash-on-start") {
  process.stderr.write("level=ERROR msg=start err=\"open state: permission denied\"\n");
  process.exit(3);
}
if (mode === "ignore-shutdown") process.on("SIGTERM", () => log("ignoring SIGTERM"));

type Msg = { jsonrpc: "2.0"; id?: number | string; method?: string; params?: unknown };
const parked = new Map<number | string, string>();

function send(m: object): void {
  const body = Buffer.from(JSON.stringify({ jsonrpc: "2.0", ...m }), "utf8");
  process.stdout.write(`Content-Length: ${body.length}\r\n\r\n`);
  process.stdout.write(body);
}

function handle(m: Msg): void {
  const { id, method } = m;
  switch (method) {
    case "initialize":
      send({
        id,
        result: {
          protocolVersion: mode === "old-protocol" ? "0.9" : "1.0",
          serverInfo: { name: "stub", version: mode },
          capabilities: { methods: ["ping"], notifications: [] },
        },
      });
      if (mode === "crash-after-init") setTimeout(() => process.exit(4), 5);
      if (mode === "no-stdout") setTimeout(() => process.stdout.end(), 20);
      return;
    case "initialized":
      log("initialized");
      if (mode === "notify") {
        send({ method: "accounts/changed", params: { accounts: ["fb-1"] } });
        send({ method: "quota/changed", params: { accounts: ["main"] } });
        send({ method: "accounts/mainRefreshed", params: { access: "new-a", refresh: "new-r", expires: 42 } });
        send({ method: "accounts/alert", params: { accountId: "fb-2", label: "work", reason: "needs re-login", since: 7, fix: "acctpool login --replace fb-2" } });
      }
      return;
    case "ping":
      if (mode === "half-reply") {
        const body = JSON.stringify({ jsonrpc: "2.0", id, result: {} });
        process.stdout.write(`Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, body.length >> 1)}`);
        process.exit(5);
      }
      send({ id, result: {} });
      return;
    case "accounts/setMain":
      log(`setMain ${JSON.stringify(m.params)}`);
      send({ id, result: { id: "main", type: "oauth", main: true, enabled: true, order: -1, hasCredential: true, usable: true, needsRelogin: false } });
      return;
    case "shutdown":
      if (mode !== "ignore-shutdown") send({ id, result: null });
      return;
    case "exit":
      if (mode !== "ignore-shutdown") process.exit(0);
      return;
    case "$/cancelRequest": {
      const target = (m.params as { id: number | string }).id;
      log(`cancel ${target}`);
      if (parked.delete(target)) send({ id: target, error: { code: -32800, message: "request cancelled", data: { kind: "cancelled" } } });
      return;
    }
    case "route/select":
      parked.set(id!, method);
      return;
    case "fail":
      send({ id, error: { code: -31007, message: "no such account: \"x\"", data: { kind: "account_not_found" } } });
      return;
  }
  if (id !== undefined) send({ id, error: { code: -32601, message: `method not found: ${method}`, data: { kind: "method_not_found" } } });
}

let buf = Buffer.alloc(0);
process.stdin.on("data", (chunk: Buffer) => {
  buf = Buffer.concat([buf, chunk]);
  for (;;) {
    const end = buf.indexOf("\r\n\r\n");
    if (end < 0) return;
    const len = Number(/content-length:\s*(\d+)/i.exec(buf.subarray(0, end).toString("ascii"))?.[1]);
    if (buf.length < end + 4 + len) return;
    const body = buf.subarray(end + 4, end + 4 + len).toString("utf8");
    buf = buf.subarray(end + 4 + len);
    handle(JSON.parse(body) as Msg);
  }
});
process.stdin.on("end", () => {
  if (mode === "ignore-shutdown") {
    setInterval(() => {}, 1000);
    return;
  }
  process.exit(0);
});
