// An acctpool classification plugin in AssemblyScript (ABI "errclass v1"):
// a 429 from the usage endpoint is treated as transient with a 30 s wait,
// everything else gets no opinion. See README.md for the build command.

// The input buffer the host writes into, and the last verdict; both are
// kept alive in globals and reused.
let input: ArrayBuffer = new ArrayBuffer(0);
let output: ArrayBuffer = new ArrayBuffer(0);

// The marker export: its presence says "ABI errclass v1".
export function errclass_abi_v1(): void {}

// errclass_alloc returns a buffer of at least size bytes for the input.
export function errclass_alloc(size: i32): i32 {
  if (input.byteLength < size) input = new ArrayBuffer(size);
  return changetype<i32>(input);
}

// errclass_classify reads the input JSON at [ptr, ptr+len) and returns
// (outPtr << 32) | outLen, or 0 for no opinion.
export function errclass_classify(ptr: i32, len: i32): i64 {
  const json = String.UTF8.decodeUnsafe(ptr, len);
  if (!json.includes('"status":429') || !json.includes('"source":"usage"')) return 0;
  output = String.UTF8.encode(
    '{"class":"transient","retryAfterMs":30000,"reason":"usage 429 is a transient blip here"}');
  return (i64(changetype<i32>(output)) << 32) | i64(output.byteLength);
}

// abort replaces AssemblyScript's default env.abort import, which the host
// does not allow-list: trapping is enough, the host falls back.
export function myAbort(msg: usize, file: usize, line: u32, col: u32): void {
  unreachable();
}
