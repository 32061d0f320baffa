#!/usr/bin/env node
// Generates src/generated/protocol.ts from the repository's OpenRPC document
// (schema/openrpc.json): one TypeScript type per component schema, the params
// and result types of every method, the method and notification maps, the
// error codes, and the AcctpoolMethods base class with one typed method per
// RPC method. Nothing in src/generated is written by hand.
//
//   node scripts/generate.mjs           write the file
//   node scripts/generate.mjs --check   fail if the file is stale
//   node scripts/generate.mjs --warn    write the file; say so if it was stale
//
// npm test uses --warn: the client is compiled and tested against the schema
// as it is now, and an additive schema change made by someone else does not
// turn CI red; the warning says to commit the regenerated file.
//
// The generator understands the JSON Schema subset the document uses: type
// (one or a list), $ref to #/components/schemas, properties, required,
// additionalProperties, items, enum, const, oneOf/anyOf/allOf and
// description. Validation-only keywords (minimum, pattern, ...) are ignored.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkgRoot = join(here, "..");
const schemaPath = process.env.ACCTPOOL_OPENRPC ?? join(pkgRoot, "..", "..", "schema", "openrpc.json");
const outPath = join(pkgRoot, "src", "generated", "protocol.ts");

// Methods whose calls the client makes itself as part of the lifecycle; they
// are in the Methods map but get no public convenience method.
const LIFECYCLE = new Set(["initialize", "initialized", "shutdown", "exit"]);

const IGNORED = new Set([
  "description", "title", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
  "minLength", "maxLength", "pattern", "format", "minItems", "maxItems", "uniqueItems",
  "default", "examples", "$comment", "minProperties", "maxProperties", "multipleOf", "deprecated",
  "readOnly", "writeOnly",
]);
const STRUCTURAL = new Set([
  "type", "$ref", "properties", "required", "additionalProperties", "items", "enum", "const",
  "oneOf", "anyOf", "allOf",
]);

function fail(msg) {
  console.error(`generate: ${msg}`);
  process.exit(1);
}

function pascal(name) {
  return name
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join("");
}

function camel(name) {
  const p = pascal(name);
  return p[0].toLowerCase() + p.slice(1);
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const key = (k) => (IDENT.test(k) ? k : JSON.stringify(k));

function doc(text, indent) {
  if (!text) return "";
  const lines = String(text).replace(/\*\//g, "*\\/").split("\n");
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} * ${l}`.trimEnd()).join("\n")}\n${indent} */\n`;
}

function refName(ref, where) {
  const m = /^#\/components\/schemas\/([^/]+)$/.exec(ref);
  if (!m) fail(`${where}: unsupported $ref ${ref}`);
  return pascal(m[1]);
}

// tsType renders a schema as a TypeScript type expression.
function tsType(s, where, indent = "") {
  if (s === true || s === undefined) return "unknown";
  if (s === false) return "never";
  if (typeof s !== "object" || s === null) fail(`${where}: schema is not an object`);
  for (const k of Object.keys(s)) {
    if (!IGNORED.has(k) && !STRUCTURAL.has(k) && !k.startsWith("x-")) {
      fail(`${where}: unsupported schema keyword ${JSON.stringify(k)}; teach scripts/generate.mjs`);
    }
  }
  if (s.$ref) return refName(s.$ref, where);
  if ("const" in s) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (s.oneOf || s.anyOf) {
    return (s.oneOf ?? s.anyOf).map((x, i) => paren(tsType(x, `${where}/${i}`, indent))).join(" | ");
  }
  if (s.allOf) return s.allOf.map((x, i) => paren(tsType(x, `${where}/${i}`, indent))).join(" & ");
  const types = s.type === undefined ? (s.properties ? ["object"] : []) : [].concat(s.type);
  if (types.length === 0) return "unknown";
  return types.map((t) => paren(typeOf(t, s, where, indent))).join(" | ");
}

function paren(t) {
  return /[|&]/.test(t) && !t.startsWith("{") ? `(${t})` : t;
}

function typeOf(t, s, where, indent) {
  switch (t) {
    case "string":
      return "string";
    case "integer":
    case "number":
      return "number";
    case "boolean":
      return "boolean";
    case "null":
      return "null";
    case "array":
      return `Array<${tsType(s.items, `${where}/items`, indent)}>`;
    case "object":
      return objectType(s, where, indent);
  }
  fail(`${where}: unsupported type ${JSON.stringify(t)}`);
}

function objectType(s, where, indent) {
  const props = s.properties ?? {};
  const required = new Set(s.required ?? []);
  const inner = indent + "  ";
  let out = "";
  for (const [name, ps] of Object.entries(props)) {
    out += doc(ps && ps.description, inner);
    out += `${inner}${key(name)}${required.has(name) ? "" : "?"}: ${tsType(ps, `${where}/${name}`, inner)};\n`;
  }
  const ap = s.additionalProperties;
  if (ap !== false) {
    const t = ap === undefined || ap === true ? "unknown" : tsType(ap, `${where}/additionalProperties`, inner);
    // Known properties must fit the index signature; widen it if needed.
    const idx = Object.keys(props).length > 0 && t !== "unknown" ? "unknown" : t;
    out += `${inner}[key: string]: ${idx};\n`;
  }
  if (!out) return "Record<string, never>";
  return `{\n${out}${indent}}`;
}

function declare(name, s, where) {
  const t = tsType(s, where);
  const d = doc(s && s.description, "");
  if (t.startsWith("{\n")) return `${d}export interface ${name} ${t}\n`;
  return `${d}export type ${name} = ${t};\n`;
}

function main() {
  let doc0;
  try {
    doc0 = JSON.parse(readFileSync(schemaPath, "utf8"));
  } catch (err) {
    fail(`read ${schemaPath}: ${err.message}`);
  }
  const methods = doc0.methods ?? fail("document has no methods");
  const notes = doc0["x-notifications"] ?? [];
  const schemas = doc0.components?.schemas ?? {};
  const errors = doc0.components?.errors ?? {};

  let out = "";
  out += "// Code generated by scripts/generate.mjs from schema/openrpc.json. DO NOT EDIT.\n";
  out += `// OpenRPC ${doc0.openrpc}, ${doc0.info?.title} API version ${doc0.info?.version}.\n`;
  out += "/* eslint-disable */\n\n";

  out += "// Component schemas.\n\n";
  for (const [name, s] of Object.entries(schemas)) {
    out += declare(pascal(name), s, `components/schemas/${name}`) + "\n";
  }

  out += "// Method params and results.\n\n";
  const entries = [];
  for (const m of methods) {
    if (m.paramStructure && m.paramStructure !== "by-name") {
      fail(`${m.name}: paramStructure ${m.paramStructure} is not supported (by-name only)`);
    }
    const base = pascal(m.name);
    const params = (m.params ?? []).map((p) => (p.$ref ? fail(`${m.name}: $ref params are not supported`) : p));
    const paramsName = `${base}Params`;
    const obj = {
      type: "object",
      properties: Object.fromEntries(params.map((p) => [p.name, { ...p.schema, description: p.description ?? p.summary ?? p.schema?.description }])),
      required: params.filter((p) => p.required).map((p) => p.name),
      additionalProperties: false,
    };
    out += declare(paramsName, { ...obj, description: `Params of ${m.name}.` }, `${m.name}/params`) + "\n";
    let resultName = null;
    if (m.result) {
      resultName = `${base}Result`;
      const rs = m.result.schema ?? {};
      out += declare(resultName, { ...rs, description: rs.description ?? `Result of ${m.name}.` }, `${m.name}/result`) + "\n";
    }
    entries.push({
      name: m.name,
      base,
      paramsName,
      resultName,
      hasParams: params.length > 0,
      paramsRequired: params.some((p) => p.required),
      summary: m.summary,
      description: m.description,
      errors: (m.errors ?? []).map((e) => (e.$ref ? e.$ref.split("/").pop() : e.message)),
    });
  }

  out += "// Server-to-host notifications (x-notifications).\n\n";
  const noteEntries = [];
  for (const n of notes) {
    const name = `${pascal(n.name)}Params`;
    const ps = n.params?.schema ?? {};
    out += declare(name, { ...ps, description: ps.$ref ? undefined : n.summary }, `x-notifications/${n.name}`);
    noteEntries.push({ name: n.name, type: name, summary: n.summary });
    out += "\n";
  }

  const requests = entries.filter((e) => e.resultName);
  const hostNotes = entries.filter((e) => !e.resultName);

  out += "/** Every request method: its params and result. */\n";
  out += "export interface Methods {\n";
  for (const e of requests) out += `  ${JSON.stringify(e.name)}: { params: ${e.paramsName}; result: ${e.resultName} };\n`;
  out += "}\n\n";
  out += "/** Notifications the host sends to the server. */\n";
  out += "export interface HostNotifications {\n";
  for (const e of hostNotes) out += `  ${JSON.stringify(e.name)}: ${e.paramsName};\n`;
  out += "}\n\n";
  out += "/** Notifications the server sends to the host, after initialized. */\n";
  out += "export interface ServerNotifications {\n";
  for (const n of noteEntries) out += doc(n.summary, "  ") + `  ${JSON.stringify(n.name)}: ${n.type};\n`;
  out += "}\n\n";
  out += "export type MethodName = keyof Methods;\n";
  out += "export type ServerNotificationName = keyof ServerNotifications;\n\n";
  out += `export const METHOD_NAMES: readonly MethodName[] = ${JSON.stringify(requests.map((e) => e.name))};\n\n`;
  out += `export const SERVER_NOTIFICATION_NAMES: readonly ServerNotificationName[] = ${JSON.stringify(noteEntries.map((n) => n.name))};\n\n`;
  out += "/** Methods with no params of their own. */\n";
  out += `export const PARAMLESS_METHODS: ReadonlySet<MethodName> = new Set<MethodName>(${JSON.stringify(requests.filter((e) => !e.hasParams).map((e) => e.name))});\n\n`;

  out += "/** The errors the document declares, by name: code, message and example data. */\n";
  out += "export const ERRORS = {\n";
  for (const [name, e] of Object.entries(errors)) {
    out += `  ${key(name)}: { code: ${e.code}, kind: ${JSON.stringify(e.data?.kind ?? null)} },\n`;
  }
  out += "} as const;\n\n";
  const kinds = [...new Set(Object.values(errors).map((e) => e.data?.kind).filter(Boolean))];
  out += "/** Every data.kind the server documents. */\n";
  out += `export type ErrorKind = ${kinds.map((k) => JSON.stringify(k)).join(" | ") || "string"};\n\n`;

  out += "/** Per-call options. */\n";
  out += "export interface CallOptions {\n";
  out += "  /** Overrides the client's request timeout, in ms (0: none). */\n";
  out += "  timeoutMs?: number;\n";
  out += "  /** Aborts the call; the server is sent $/cancelRequest. */\n";
  out += "  signal?: AbortSignal;\n";
  out += "}\n\n";
  out += "/** One typed method per RPC method; subclasses provide request(). */\n";
  out += "export abstract class AcctpoolMethods {\n";
  out += "  abstract request<M extends MethodName>(method: M, params: Methods[M][\"params\"] | undefined, options?: CallOptions): Promise<Methods[M][\"result\"]>;\n";
  for (const e of requests) {
    if (LIFECYCLE.has(e.name)) continue;
    const text = [e.summary, e.description, e.errors.length ? `Errors: ${e.errors.join(", ")}.` : ""]
      .filter(Boolean)
      .join("\n\n");
    out += "\n" + doc(`\`${e.name}\`: ${text}`, "  ");
    if (!e.hasParams) {
      out += `  ${camel(e.name)}(options?: CallOptions): Promise<${e.resultName}> {\n`;
      out += `    return this.request(${JSON.stringify(e.name)}, undefined, options);\n  }\n`;
    } else {
      const opt = e.paramsRequired ? "" : "?";
      out += `  ${camel(e.name)}(params${opt}: ${e.paramsName}, options?: CallOptions): Promise<${e.resultName}> {\n`;
      out += `    return this.request(${JSON.stringify(e.name)}, params, options);\n  }\n`;
    }
  }
  out += "}\n";

  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(outPath, "utf8");
    } catch {}
    if (current !== out) {
      console.error(
        `generate: ${relative(process.cwd(), outPath)} is stale against ${relative(process.cwd(), schemaPath)}.\n` +
          "Run `npm run generate` in clients/typescript and commit the result.",
      );
      process.exit(1);
    }
    return;
  }
  if (process.argv.includes("--warn")) {
    let current = "";
    try {
      current = readFileSync(outPath, "utf8");
    } catch {}
    if (current === out) return;
    console.warn(
      `generate: WARNING ${relative(process.cwd(), outPath)} was stale against ${relative(process.cwd(), schemaPath)}; ` +
        "regenerated it. Commit the result.",
    );
  }
  mkdirSync(dirname(outPath), { recursive: true });
  writeFileSync(outPath, out);
  console.log(`generate: wrote ${relative(process.cwd(), outPath)} (${requests.length} methods, ${noteEntries.length} notifications)`);
}

main();
