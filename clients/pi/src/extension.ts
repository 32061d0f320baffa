// The module Pi loads (package.json "pi.extensions"): the extension as the
// default export, with the defaults (ACCTPOOL_* environment). The factory
// and its options are in the package's "." entry.
import { createAcctpoolExtension } from "./pi.js";

export default createAcctpoolExtension();
