// Where the client looks for the server binary.
import assert from "node:assert/strict";
import { test } from "node:test";

import { SERVER_BINARY, findServer, platformPackage } from "../src/index.js";
import { serverPath } from "./support/env.js";

test("platform packages are named by process.platform and process.arch", () => {
  const cases: Array<[string, string, string]> = [
    ["linux", "x64", "@acctpool/server-linux-x64"],
    ["darwin", "arm64", "@acctpool/server-darwin-arm64"],
    ["win32", "x64", "@acctpool/server-win32-x64"],
  ];
  for (const [os, cpu, want] of cases) assert.equal(platformPackage(os, cpu), want);
  assert.equal(platformPackage(), `@acctpool/server-${process.platform}-${process.arch}`);
});

test("ACCTPOOL_SERVER comes first; from a checkout the repository's bin/ comes next", () => {
  assert.deepEqual(findServer({ ACCTPOOL_SERVER: "/opt/acctpool/bin/acctpool" }).path, "/opt/acctpool/bin/acctpool");
  assert.equal(findServer({ ACCTPOOL_SERVER: "/x" }).source, "env");
  serverPath(); // builds bin/acctpool when missing
  const found = findServer({ PATH: "" });
  assert.equal(found.source, "repository", JSON.stringify(found));
  assert.ok(found.path?.endsWith(`bin/${SERVER_BINARY}`), found.path);
  assert.deepEqual(found.tried, ["$ACCTPOOL_SERVER (unset)"]);
});
