// The module OpenCode loads (package.json "main" and exports["./server"]).
// OpenCode calls every export of this module as a plugin, so it has one:
// the default. Helpers and types are in the package's "." entry.
import { createAcctpoolPlugin } from "./plugin.js";

export default createAcctpoolPlugin();
