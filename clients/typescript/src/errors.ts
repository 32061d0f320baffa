import type { ErrorKind, NoRouteErrorData } from "./generated/protocol.js";

/**
 * Kinds the client raises on its own, beside the server's data.kind values:
 * - timeout: the call took longer than its timeout; the server was sent $/cancelRequest.
 * - aborted: the caller's AbortSignal fired.
 * - connection_lost: the server exited (or its pipes closed) before answering.
 * - server_unavailable: the server could not be started (see cause).
 * - client_closed: close() was called.
 * - rpc_error: an error response without a data.kind (protocol errors from older servers).
 */
export type ClientErrorKind =
  | "timeout"
  | "aborted"
  | "connection_lost"
  | "server_unavailable"
  | "client_closed"
  | "rpc_error";

/**
 * AcctpoolError is every error a client call rejects with. Switch on kind:
 * the server's data.kind for error responses, or one of ClientErrorKind.
 */
export class AcctpoolError extends Error {
  override readonly name = "AcctpoolError";
  /** The server's data.kind, or the client's own kind. */
  readonly kind: ErrorKind | ClientErrorKind | (string & {});
  /** The JSON-RPC error code, when the server answered with an error. */
  readonly code: number | undefined;
  /** The error's data member, as sent. */
  readonly data: Record<string, unknown> | undefined;
  /** The method of the failed call. */
  readonly method: string | undefined;

  constructor(
    message: string,
    init: { kind: AcctpoolError["kind"]; code?: number; data?: Record<string, unknown>; method?: string; cause?: unknown },
  ) {
    super(message, init.cause === undefined ? undefined : { cause: init.cause });
    this.kind = init.kind;
    this.code = init.code;
    this.data = init.data;
    this.method = init.method;
  }
}

/** A no_account_available error: data says what to answer and why. */
export type NoRouteError = AcctpoolError & { kind: "no_account_available"; data: NoRouteErrorData };

/** isNoRoute reports whether err is a no_account_available error from route/select. */
export function isNoRoute(err: unknown): err is NoRouteError {
  return err instanceof AcctpoolError && err.kind === "no_account_available" && typeof err.data === "object";
}

/** isAcctpoolError reports whether err is an AcctpoolError, optionally of one kind. */
export function isAcctpoolError(err: unknown, kind?: AcctpoolError["kind"]): err is AcctpoolError {
  return err instanceof AcctpoolError && (kind === undefined || err.kind === kind);
}
