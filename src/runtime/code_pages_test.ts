import assert from "node:assert/strict";
import { cleanExecutableMappings } from "./code_pages.ts";

const EXE = "/opt/deno/bin/deno";
const mapping = (range: string, perms: string, path: string, fields: Record<string, number>) =>
  [
    `${range} ${perms} 00000000 08:01 4242${path ? `                       ${path}` : ""}`,
    ...Object.entries({
      Size: 4,
      Rss: 0,
      Private_Dirty: 0,
      Shared_Dirty: 0,
      Anonymous: 0,
      Swap: 0,
      ...fields,
    })
      .map(([name, kib]) => `${name}:${" ".repeat(16 - name.length)}${kib} kB`),
    "VmFlags: rd mr mw me sd",
  ].join("\n");

Deno.test("cleanExecutableMappings keeps read-only mappings of the executable that hold only file pages", () => {
  const smaps = [
    mapping("1000-3000", "r--p", EXE, { Rss: 8 }),
    // a binary installed moments ago: its page cache is dirty (not yet on disk), its pages still the file's
    mapping("3000-9000", "r-xp", EXE, { Rss: 20, Private_Dirty: 20 }),
    // relocated by the loader, then made read-only: its dirty pages must not be reset to the file
    mapping("9000-a000", "r--p", EXE, { Rss: 4, Private_Dirty: 4, Anonymous: 4 }),
    mapping("a000-b000", "rw-p", EXE, { Rss: 4 }),
    mapping("b000-c000", "r-xp", "/usr/lib/x86_64-linux-gnu/libc.so.6", { Rss: 4 }),
    mapping("c000-d000", "rw-p", "", { Rss: 4, Anonymous: 4 }),
    mapping("7f00000000-7f00001000", "r-xp", EXE, { Rss: 4, Swap: 4 }),
    mapping("7f00002000-7f00004000", "r-xp", EXE, {}),
    "",
  ].join("\n");
  assert.deepEqual(cleanExecutableMappings(smaps, EXE), [
    { start: 0x1000n, end: 0x3000n, residentBytes: 8 * 1024 },
    { start: 0x3000n, end: 0x9000n, residentBytes: 20 * 1024 },
    { start: 0x7f00002000n, end: 0x7f00004000n, residentBytes: 0 },
  ]);
  assert.deepEqual(cleanExecutableMappings(smaps, "/other/deno"), []);
  assert.deepEqual(cleanExecutableMappings("", EXE), []);
});

Deno.test({
  name: "releaseCodePages shrinks a Deno process's file pages and the process keeps working",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--no-lock", new URL("./testdata/release_then_work.ts", import.meta.url).pathname],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 0, stderr);
    const report = JSON.parse(new TextDecoder().decode(output.stdout));
    assert.ok(report.released.mappings >= 2, JSON.stringify(report));
    // the runtime's start-up had ~20 MiB of the executable resident; most of it goes
    assert.ok(report.before.file > 10 * 2 ** 20, JSON.stringify(report));
    assert.ok(report.after.file < report.before.file - 8 * 2 ** 20, JSON.stringify(report));
    assert.equal(report.echoed, "ping");
    assert.equal(report.digestBytes, 32);
    assert.equal(report.compiled, 42);
  },
});
