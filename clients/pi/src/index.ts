// @acctpool/pi: the library entry, for code that builds on the extension.
// Pi itself loads ./extension (see extension.ts).
export {
  DEFAULT_UPSTREAM,
  POOL_REFRESH,
  createAcctpoolExtension,
  startRelay,
  type AcctpoolPiOptions,
  type PiCredentials,
  type PoolClient,
} from "./pi.js";
