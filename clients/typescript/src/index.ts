// @acctpool/client: run acctpool's stdio server from a TypeScript host and
// call it with types generated from schema/openrpc.json.
export {
  AcctpoolClient,
  PROTOCOL_VERSIONS,
  SERVER_BINARY,
  defaultServerPath,
  findServer,
  platformPackage,
  type ServerLookup,
  type ClientEvents,
  type ClientOptions,
  type ExitInfo,
  type LogEntry,
  type RestartOptions,
} from "./client.js";
export { AcctpoolError, isAcctpoolError, isNoRoute, type ClientErrorKind, type NoRouteError } from "./errors.js";
export { OAUTH_BETA, createAcctpoolFetch, noRouteResponse, type AcctpoolFetchOptions, type AttemptInfo, type Router } from "./fetch.js";
export * from "./generated/protocol.js";
