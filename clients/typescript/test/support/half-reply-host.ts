// A host process for the client test "a server that dies mid-message does
// not keep the host alive": it pings a stub that dies halfway through its
// answer, prints the error kind, closes the client and has nothing else
// to do, so Node exits unless the dead connection left a timer behind.
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

import { AcctpoolClient, isAcctpoolError } from "../../src/index.js";

const stubPath = join(dirname(fileURLToPath(import.meta.url)), "stub-server.js");
const client = new AcctpoolClient({ binaryPath: process.execPath, command: [], extraArgs: [stubPath, "half-reply"], processId: null, restart: false });
await client.start();
try {
  await client.ping();
  console.log("ping answered");
} catch (err) {
  console.log(isAcctpoolError(err) ? err.kind : String(err));
}
await client.close();
