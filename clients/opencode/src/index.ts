// @acctpool/opencode: the library entry, for code that builds on the plugin.
// OpenCode itself loads ./server (see server.ts).
export {
  POOL_KEY,
  PROVIDER_ID,
  createAcctpoolPlugin,
  parseOptions,
  type AcctpoolOpenCodeOptions,
  type ClientFactory,
  type PoolClient,
} from "./plugin.js";
